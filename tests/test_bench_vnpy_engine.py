"""The bench's vnpy engine peer (bench/vnpy_engine.py): vnpy's MainEngine with a vnpy_xt-like
gateway over the simulated miniQMT, served by vnpy.rpc. Correctness only: what each of its
two round-trip lines waits for. Skipped where vnpy and its engine's imports are missing
(`make bench` installs them)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

pytest.importorskip("vnpy.rpc")

from bench import roundtrip
from bench.common import CODE, Peer, free_port, resting_buy_price, restore_sigint

if not roundtrip.vnpy_engine_available():
    pytest.skip(roundtrip.ENGINE_MISSING, allow_module_level=True)

pytestmark = pytest.mark.process  # its Peer is a process of its own (bench/common.py)


@contextmanager
def engine_client(mode: str) -> Iterator[Any]:
    from vnpy.rpc import RpcClient

    restore_sigint()
    rep, pub = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    with Peer("vnpy-engine", rep, pub, mode):
        client: Any = RpcClient()
        client.callback = lambda topic, data: None
        client.start(rep, pub)
        client.subscribe_topic("bye")
        try:
            yield client
        finally:
            client.bye()  # before stop(), as bench/roundtrip.py says why
            client.stop()
            client.join()


def buy(volume: int) -> Any:
    from vnpy.trader.constant import Direction, Exchange, OrderType
    from vnpy.trader.object import OrderRequest

    return OrderRequest(
        symbol=CODE.split(".")[0],
        exchange=Exchange.SSE,
        direction=Direction.LONG,
        type=OrderType.LIMIT,
        volume=volume,
        price=resting_buy_price(),
        reference="test",
    )


def test_given_both_vnpy_engine_lines_then_every_order_gets_its_vt_orderid() -> None:
    result = roundtrip.Result()
    settings = roundtrip.Settings(runs=1, orders=20, warmup=5)
    roundtrip.vnpy_engine_run(settings, result, answered=False)
    roundtrip.vnpy_engine_run(settings, result, answered=True)
    assert result.counts == {"vnpy_engine": 20, "vnpy_answered": 20}
    assert result.figures.get_figure("vnpy_answered.p50").median > 0


def test_given_an_odd_lot_the_sent_line_returns_at_once_and_the_answered_line_raises() -> None:
    from vnpy.rpc.client import RemoteException

    # vnpy's own behaviour: the vt_orderid comes back before the broker has answered
    with engine_client("sent") as client:
        assert client.send_order(buy(50), "XT").startswith("XT.")
    # the like-for-like line waits for the broker's answer, which refuses the odd lot
    with engine_client("answered") as client:
        assert client.send_order_answered(buy(100), "XT").startswith("XT.")
        with pytest.raises(RemoteException, match="the broker refused order XT"):
            client.send_order_answered(buy(50), "XT")
