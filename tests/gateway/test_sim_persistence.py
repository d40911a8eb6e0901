"""The simulator's book survives kill -9, catches up on the market it missed, and is readable."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from qmtbus.gateway.broker import BrokerUnavailable
from qmtbus.gateway.broker.sim.broker import SimBroker
from qmtbus.gateway.broker.sim.ledger import read_ledger
from tests.gateway.sim_support import (
    CODE,
    TUESDAY_10AM,
    Clock,
    open_sim,
    response_for,
    settle,
    sim_config,
    wait_status,
)
from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[2]

# A gateway stand-in: opens the simulator, trades, reports, then waits to be killed.
CHILD = r"""
import json, sys
from qmtbus.gateway.broker.sim.broker import SimBroker
from qmtbus.config import Config, GatewayConfig, SimConfig

data_dir, now = sys.argv[1], float(sys.argv[2])
sim = SimConfig(tick_interval=3600, seed=7, spread_ticks=0)
config = Config(gateway=GatewayConfig(data_dir=data_dir), sim=sim)
broker = SimBroker(config, clock=lambda: now)

class Callback:
    def __getattr__(self, name):
        return lambda *args: None

trader = broker.new_trader(broker.new_session_id())
trader.register_callback(Callback())
trader.start()
assert trader.connect() == 0
account = broker.account()
p = broker.terminal.instrument("600000.SH").prev_close
filled = trader.order_stock(account, "600000.SH", 23, 500, 11, p, "s", "filled-before-kill")
resting = trader.order_stock(account, "600000.SH", 23, 200, 11, round(p - 0.01, 2), "s", "resting")
print(json.dumps({"filled": filled, "resting": resting, "prev_close": p}), flush=True)
sys.stdin.read()
"""


@contextmanager
def killed_gateway(data_dir: Path, now: float) -> Iterator[dict[str, Any]]:
    """Run CHILD, yield what it placed while it still runs, then kill -9 it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir), repr(now)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(proc.communicate()[1].decode())
        yield json.loads(line)
    finally:
        proc.kill()  # SIGKILL: no flush, no close
        proc.communicate()


def test_given_gateway_killed_then_the_reopened_book_has_its_orders_trades_and_positions(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    with (
        killed_gateway(data_dir, TUESDAY_10AM) as placed,
        pytest.raises(BrokerUnavailable, match="in use by another process"),
    ):
        SimBroker(sim_config(data_dir), clock=Clock())

    with open_sim(data_dir) as sim:
        trader, rec = sim.session()
        orders = {o.order_id: o for o in trader.query_stock_orders(sim.account)}
        assert orders[placed["filled"]].order_status == 56
        assert orders[placed["resting"]].order_status == 50
        assert orders[placed["resting"]].order_remark == "resting"
        assert [t.order_id for t in trader.query_stock_trades(sim.account)] == [placed["filled"]]
        held = trader.query_stock_position(sim.account, CODE)
        assert (held.volume, held.can_use_volume) == (500, 0)
        asset = trader.query_stock_asset(sim.account)
        assert asset.frozen_cash > 0
        assert asset.total_asset == pytest.approx(
            asset.cash + asset.frozen_cash + asset.market_value, abs=1e-6
        )
        next_id = response_for(rec, sim.buy(trader, 100, placed["prev_close"])).order_id
        assert next_id > placed["resting"]
        sysids = {o.order_sysid for o in trader.query_stock_orders(sim.account)}
        assert len(sysids) == 3


def test_given_resting_buy_when_price_fell_while_gateway_was_down_then_filled_before_connect(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    with killed_gateway(data_dir, TUESDAY_10AM) as placed:
        pass

    an_hour_later = Clock(TUESDAY_10AM + 3600)
    with open_sim(data_dir, an_hour_later, tick_interval=1.0, volatility=0.02) as sim:
        status = sim.broker.terminal.query(
            sim.account.account_id, lambda book: book.order_view(placed["resting"]), None
        )
        assert status.order_status == 56  # before anyone connected

        trader, _ = sim.session()
        gap_fills = [
            t for t in trader.query_stock_trades(sim.account) if t.order_id == placed["resting"]
        ]
        assert sum(t.traded_volume for t in gap_fills) == 200
        assert all(TUESDAY_10AM < t.traded_time <= TUESDAY_10AM + 3600 for t in gap_fills)
        assert all(t.traded_price <= round(placed["prev_close"] - 0.01, 2) for t in gap_fills)
        assert trader.query_stock_position(sim.account, CODE).volume == 700


def test_read_ledger_lists_every_request_with_its_remark_and_every_fill(tmp_path: Path) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        price = sim.prev_close()
        response_for(rec, sim.buy(trader, 100, price, "ok-1"))
        response_for(rec, sim.buy(trader, 150, price, "bad-lot"))
        sim.fault("silent_reject_next")
        sim.buy(trader, 100, price, "silent")
        order_id = response_for(rec, sim.buy(trader, 200, price, "ok-2")).order_id
        wait_status(rec, order_id, 56)
        settle(sim, trader, rec)

        ledger = read_ledger(tmp_path)  # while the simulator runs

    assert [r["order_remark"] for r in ledger.orders_received] == [
        "ok-1",
        "bad-lot",
        "silent",
        "ok-2",
    ]
    assert {r["stock_code"] for r in ledger.orders_received} == {CODE}
    assert [t["order_remark"] for t in ledger.trades] == ["ok-1", "ok-2"]
    assert len({t["traded_id"] for t in ledger.trades}) == 2
    assert read_ledger(tmp_path).trades == ledger.trades  # and after it closed


def test_given_a_torn_last_line_then_the_book_loads_without_it(tmp_path: Path) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        order_id = response_for(rec, sim.buy(trader, 100, sim.prev_close(), "kept")).order_id
        wait_status(rec, order_id, 56)
    segment = next((tmp_path / "sim").glob("book-*.jsonl"))
    with segment.open("ab") as file:
        file.write(b'{"type":"order","order_id":99,"stock_co')

    with open_sim(tmp_path) as sim:
        trader, _ = sim.session()
        assert [o.order_remark for o in trader.query_stock_orders(sim.account)] == ["kept"]
    assert not segment.read_bytes().endswith(b"stock_co")


def test_given_a_simulator_already_open_on_the_data_dir_then_broker_unavailable(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path), pytest.raises(BrokerUnavailable, match="already runs"):
        SimBroker(sim_config(tmp_path), clock=Clock())


def test_given_a_trade_push_then_its_fill_is_already_on_disk(tmp_path: Path) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        on_disk: list[bool] = []

        def check(call: Any) -> None:
            if call.name == "on_stock_trade":
                ids = {t["traded_id"] for t in read_ledger(tmp_path).trades}
                on_disk.append(call.payload.traded_id in ids)

        rec.on_call = check
        order_id = response_for(rec, sim.buy(trader, 100, sim.prev_close())).order_id
        wait_status(rec, order_id, 56)
        assert on_disk == [True]


def test_given_the_market_save_failing_then_it_is_tried_once_a_save_interval_not_in_a_spin(
    tmp_path: Path,
) -> None:
    # its folder deleted under it, a full disk: the market thread logs the failure and
    # tries again at the next save time (it once spun, 75% of a core and 200 MB of logs)
    from qmtbus.gateway.broker.sim import terminal

    with open_sim(tmp_path) as sim:
        market = sim.broker.terminal._market
        tries: list[float] = []

        def failing_save(now: float) -> None:
            tries.append(time.monotonic())
            raise FileNotFoundError("data/sim/market.tmp")

        market.save = failing_save  # type: ignore[method-assign]
        wait_for(lambda: len(tries) >= 3, 30, "three tries of the save")
        del market.save  # its own again: the close saves once more
        gaps = [b - a for a, b in itertools.pairwise(tries[:3])]
        assert all(gap >= terminal.SAVE_INTERVAL * 0.9 for gap in gaps), gaps
