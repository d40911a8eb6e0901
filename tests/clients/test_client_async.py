"""AsyncGateway against a real gateway: the same API awaited, concurrent calls, retries."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from qmtbus import AsyncGateway, GatewayError, GatewayUnreachable, RiskDenied, protocol
from qmtbus.config import SimConfig
from qmtbus.gateway.ashare import round_price
from qmtbus.gateway.broker.sim.market import initial_price
from tests.support import NOBODY, Proc, Stack, start_gateway

CODE = "600000.SH"


def last_price() -> float:
    return round_price(initial_price(SimConfig().seed, CODE), 0.01)


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(tmp_path, {"sim": {"volatility": 0.0}, "client": {"timeout": 1.0, "retries": 4}})


@pytest.fixture
def gateway(stack: Stack) -> Iterator[Proc]:
    proc = start_gateway(stack)
    yield proc
    if proc.alive():
        os.kill(proc.pid, signal.SIGCONT)
        proc.stop()


def run(stack: Stack, body: Callable[[AsyncGateway], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with AsyncGateway.from_config(stack.config_path) as gw:
            return await asyncio.wait_for(body(gw), 30)

    return asyncio.run(main())


def test_given_async_client_then_every_method_answers_like_the_blocking_one(
    stack: Stack, gateway: Proc
) -> None:
    async def body(gw: AsyncGateway) -> None:
        assert isinstance(await gw.ping(), protocol.Pong)
        assert (await gw.status()).state == "ready"
        ack = await gw.buy(CODE, 100, last_price(), strategy_name="aio")
        assert ack.status == "accepted" and not ack.duplicate
        assert (await gw.order(CODE, protocol.STOCK_BUY, 100, last_price(),
                               client_order_id=ack.client_order_id)).duplicate  # fmt: skip
        resting = await gw.buy(CODE, 100, round_price(last_price() * 0.98, 0.01))
        assert resting.order_id in {o.order_id for o in await gw.orders(cancelable_only=True)}
        assert (await gw.cancel(order_id=resting.order_id)).order_id == resting.order_id
        for _ in range(200):
            if any(t.order_id == ack.order_id for t in await gw.trades()):
                break
            await asyncio.sleep(0.05)
        assert [p.volume for p in await gw.positions() if p.stock_code == CODE] == [100]
        assert (await gw.asset()).market_value > 0
        with pytest.raises(RiskDenied):
            await gw.sell(CODE, 100, last_price())  # bought today: T+1
        seq = await gw.note("aio", {"k": "v"})
        replay = await gw.replay((await gw.status()).epoch, seq, limit=1)
        assert isinstance(replay.events[0], protocol.NoteEvent)
        assert (await gw.halt("x")).trading == "halted"
        assert (await gw.reduce_only()).trading == "reduce_only"
        assert (await gw.resume()).trading == "active"
        assert (await gw.subscribe_quotes([CODE])).stock_codes == [CODE]
        assert [t.stock_code for t in await gw.quotes([CODE])] == [CODE]
        assert (await gw.unsubscribe_quotes([CODE])).stock_codes == []
        with pytest.raises(GatewayError) as err:
            await gw.request(protocol.Replay(epoch="gone", from_seq=1))
        assert err.value.code == protocol.NOT_FOUND

    run(stack, body)


def test_given_concurrent_coroutines_then_a_slow_order_does_not_hold_up_pings(
    stack: Stack, gateway: Proc
) -> None:
    # the broker's answer is held back, so the order waits order_reply_timeout (2 s)
    stack.call(protocol.SimFault(fault="delay_callbacks", value=5.0))

    async def body(gw: AsyncGateway) -> tuple[float, protocol.OrderAck]:
        order = asyncio.ensure_future(gw.buy(CODE, 100, last_price()))
        await asyncio.sleep(0.05)
        start = time.monotonic()
        await asyncio.gather(*(gw.ping() for _ in range(20)))
        pings = time.monotonic() - start
        return pings, await order

    pings, ack = run(stack, body)
    gateway.kill()  # its held-back callbacks would slow a graceful stop down (not our subject)
    assert pings < 0.5
    assert ack.status == "pending"


def test_given_gateway_paused_past_the_timeout_then_async_order_is_resent_and_not_doubled(
    stack: Stack, gateway: Proc
) -> None:
    async def body(gw: AsyncGateway) -> protocol.OrderAck:
        await gw.ping()
        os.kill(gateway.pid, signal.SIGSTOP)
        order = asyncio.ensure_future(gw.buy(CODE, 100, last_price(), client_order_id="aio-1"))
        try:
            await asyncio.sleep(2.5)  # past the 1 s timeout: the first try is abandoned
        finally:
            os.kill(gateway.pid, signal.SIGCONT)
        return await order

    ack = run(stack, body)
    assert ack.duplicate
    orders = stack.call(protocol.QueryOrders()).orders
    assert len([o for o in orders if o.order_remark == "aio-1"]) == 1


def test_given_no_gateway_then_async_client_raises_unreachable_in_one_sentence() -> None:
    address = NOBODY

    async def main() -> None:
        async with AsyncGateway(address, timeout=0.2, retries=1) as gw:
            await gw.status()

    with pytest.raises(GatewayUnreachable) as err:
        asyncio.run(main())
    assert str(err.value) == f"gateway not reachable at {address} — is it running?"
