"""P&L through the running system: a real gateway (simulator) and recorder, a holding
bought yesterday, a buy and a partial sell today; the recorder's P&L against a hand
computation from the fills and against the broker's own asset figures, and `qmtbus pnl`."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import msgspec
import pytest

from qmtbus import Gateway, protocol
from qmtbus.config import load_config
from qmtbus.gateway.broker.sim.broker import SimBroker
from tests.gateway.sim_support import DAY, Clock, Sim, response_for, wait_status
from tests.recorder.helpers import sql, start_recorder, wait_caught_up
from tests.support import Proc, Stack, start_gateway, wait_for

CODE = "600000.SH"
INITIAL_CASH = 1_000_000.0


def hold_since_yesterday(stack: Stack, volume: int) -> None:
    """The account opens today holding shares bought yesterday (sellable, T+1), before
    the recorder ever ran: the P&L book must open at the broker's own cost."""
    yesterday = Clock(time.time() - DAY)
    sim = Sim(SimBroker(load_config(stack.config_path), clock=yesterday), yesterday)
    try:
        trader, recorder = sim.session()
        last = sim.broker.instrument(CODE)
        assert last is not None
        seq = sim.buy(trader, volume, round(last.prev_close * 1.02, 2), remark="yesterday")
        wait_status(recorder, response_for(recorder, seq).order_id, protocol.ORDER_SUCCEEDED)
    finally:
        sim.close()


@pytest.fixture
def system(stack: Stack) -> Iterator[tuple[Proc, Proc]]:
    stack.write_config(sim={"volatility": 0.0}, recorder={"mark_interval": 0.5})
    hold_since_yesterday(stack, 1000)
    gateway = start_gateway(stack)
    recorder = start_recorder(stack)
    yield gateway, recorder
    recorder.stop()
    gateway.stop()


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "qmtbus", "--config", str(stack.config_path), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def filled(gw: Gateway, ack: protocol.OrderAck) -> protocol.Order:
    def done() -> protocol.Order | None:
        order = next(o for o in gw.orders() if o.order_id == ack.order_id)
        return order if order.order_status == protocol.ORDER_SUCCEEDED else None

    return wait_for(done, 15, f"order {ack.client_order_id} filled")  # type: ignore[no-any-return]


def test_given_a_buy_and_a_partial_sell_then_pnl_agrees_with_fills_and_the_brokers_asset(
    stack: Stack, system: tuple[Proc, Proc]
) -> None:
    with Gateway.from_config(stack.config_path) as gw:
        (opening,) = gw.positions()
        assert (opening.volume, opening.can_use_volume) == (1000, 1000)
        last = gw.quotes([CODE])[0].lastPrice
        filled(gw, gw.buy(CODE, 500, round(last * 1.01, 2), strategy_name="beta"))
        filled(gw, gw.sell(CODE, 400, round(last * 0.99, 2), strategy_name="alpha"))
        fills = {t.order_type: t for t in gw.trades()}
        wait_caught_up(stack)
        # a mark after the sell: the recorder holds the price the broker values at
        wait_for(
            lambda: sql(stack, "SELECT count(*) FROM position_marks WHERE volume = 1100")[0][0],
            15,
            "a mark of the position after the sell",
        )
        asset = gw.asset()
        (position,) = gw.positions()

    buy, sell = fills[protocol.STOCK_BUY], fills[protocol.STOCK_SELL]
    # by hand: the book opens at the broker's cost of yesterday's 1000 shares
    cost = 1000 * opening.avg_price + buy.traded_amount + buy.commission
    realized = sell.traded_amount - sell.commission - cost * 400 / 1500
    cost_left = cost * 1100 / 1500
    unrealized = 1100 * position.last_price - cost_left

    (row,) = sql(
        stack,
        "SELECT volume, avg_cost, last_price, unrealized, realized_today, fees_today, "
        "fills_today FROM pnl_today",
    )
    volume, avg_cost, last_price, got_unrealized, got_realized, fees, fill_count = row
    assert (volume, fill_count) == (1100, 2)
    assert last_price == position.last_price
    assert got_realized == pytest.approx(realized, abs=0.006)
    assert got_unrealized == pytest.approx(unrealized, abs=0.006)
    assert fees == pytest.approx(buy.commission + sell.commission, abs=0.001)
    # the broker's own average cost, buy fees included, to its 4 decimals
    assert avg_cost == pytest.approx(position.avg_price, abs=0.00011)
    # everything made since the account opened is in the broker's total asset
    # (yesterday's avg_price has 4 decimals: 1000 x 0.00005 at most)
    assert got_realized + got_unrealized == pytest.approx(
        asset.total_asset - INITIAL_CASH, abs=0.06
    )

    # per strategy: alpha sold (realized), beta bought; the book's opening is strategy ""
    strategies = {
        r[0]: r[1:]
        for r in sql(
            stack,
            "SELECT strategy_name, realized, unrealized FROM pnl_by_strategy "
            "WHERE trading_day = CAST(timezone('Asia/Shanghai', now()) AS DATE)",
        )
    }
    assert set(strategies) == {"", "alpha", "beta"}
    assert strategies["alpha"][0] == got_realized and strategies["beta"][0] == 0
    assert sum(u for _, u in strategies.values()) == pytest.approx(got_unrealized, abs=0.01)

    # the CLI says the same
    report = msgspec.json.decode(cli(stack, "pnl", "--json").stdout)
    assert report["stocks"][0]["realized"] == got_realized
    assert report["unrealized"] == pytest.approx(got_unrealized, abs=0.005)
    (account,) = report["account"]
    assert (account["realized"], account["fills"]) == (got_realized, 2)
    out = cli(stack, "pnl", "--strategy", "alpha")
    assert out.returncode == 0 and "alpha" in out.stdout
    assert f"{got_realized:.2f}" in out.stdout.replace(",", "")
    # a day with nothing recorded says so
    out = cli(stack, "pnl", "--day", "2026-01-05")
    assert (out.returncode, out.stdout) == (0, "P&L 2026-01-05\nnothing recorded for this day\n")


def test_given_a_bad_day_then_pnl_says_so_in_one_sentence(stack: Stack) -> None:
    out = cli(stack, "pnl", "--day", "yesterday")
    assert out.returncode == 2
    assert out.stderr == "error: --day 'yesterday' is not a date; give it as YYYY-MM-DD\n"
