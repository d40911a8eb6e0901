"""Simulator ticks: the book agrees with fills, the day's totals accumulate and start again
on a new day and survive a restart, ticks reach the sink only for subscribed codes and only
while the market is open, and codes outside the universe are unknown."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from qmtbus.gateway.broker.sim.hours import SHANGHAI
from qmtbus.gateway.broker.sim.market import is_stock_code
from qmtbus.gateway.broker.sim.ticks import LOT
from tests.gateway.sim_support import (
    CODE,
    DAY,
    Clock,
    open_sim,
    response_for,
    settle,
    wait_status,
)


def test_given_a_fill_at_ask1_then_the_tick_shows_the_taken_lots_and_the_days_totals(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path, volatility=0.0, depth_volume=1000) as sim:
        before = sim.broker.quote(CODE)
        assert before is not None
        assert before["askPrice"][0] == before["bidPrice"][0] == before["lastPrice"]
        assert before["askVol"] == [10, 0, 0, 0, 0] and before["bidVol"] == [10, 0, 0, 0, 0]

        trader, rec = sim.session()
        seq = sim.buy(trader, 300, before["askPrice"][0])
        order_id = response_for(rec, seq).order_id
        wait_status(rec, order_id, 56)
        [trade] = trader.query_stock_trades(sim.account)
        assert (trade.traded_price, trade.traded_volume) == (before["askPrice"][0], 300)

        after = sim.broker.quote(CODE)
        assert after is not None
        assert after["askVol"][0] == 7, "three lots of ask1 were taken"
        assert after["bidVol"][0] == 10, "a buy leaves the bid side alone"
        assert after["volume"] == before["volume"] + 3
        assert after["pvolume"] == before["pvolume"] + 300
        assert after["amount"] == before["amount"] + 300 * before["lastPrice"]

        # The rest of ask1 fills; beyond it nothing does until the next market step.
        seq = sim.buy(trader, 800, before["askPrice"][1])
        order_id = response_for(rec, seq).order_id
        wait_status(rec, order_id, 55)
        settle(sim, trader, rec)
        assert sim.broker.quote(CODE)["askVol"][0] == 0  # type: ignore[index]
        sim.broker.terminal.tick()  # the next step refills the depth, and the rest fills
        wait_status(rec, order_id, 56)


def test_given_limit_prices_then_book_levels_beyond_them_are_empty(tmp_path: Path) -> None:
    with open_sim(tmp_path, volatility=0.0) as sim:
        up = sim.broker.terminal.instrument(CODE).up_stop_price  # type: ignore[union-attr]
        sim.set_price(up)
        tick = sim.broker.quote(CODE)
        assert tick is not None
        assert tick["lastPrice"] == tick["upStopPrice"] == up
        assert tick["askPrice"] == [up, 0.0, 0.0, 0.0, 0.0]
        assert tick["bidPrice"][1] == round(up - 0.01, 2)
        assert tick["high"] == up


def test_given_a_new_trading_day_then_totals_start_again_from_yesterdays_close(
    tmp_path: Path,
) -> None:
    clock = Clock()
    with open_sim(tmp_path, clock, volatility=0.01) as sim:
        sim.broker.subscribe_quotes([CODE])
        for _ in range(20):
            sim.broker.terminal.tick()
        today = sim.broker.quote(CODE)
        assert today is not None and today["volume"] > 0 and today["high"] > today["low"]
        close = today["lastPrice"]

        clock.advance(DAY)
        sim.broker.terminal.tick()  # rolls the day over, then steps once
        tomorrow = sim.broker.quote(CODE)
        assert tomorrow is not None
        assert tomorrow["lastClose"] == close
        assert tomorrow["open"] == tomorrow["high"] == tomorrow["low"] == tomorrow["lastPrice"]
        assert tomorrow["volume"] < today["volume"]
        assert tomorrow["upStopPrice"] == round(close * 1.1 + 1e-9, 2)


def test_given_a_restart_then_the_days_totals_carry_on(tmp_path: Path) -> None:
    clock = Clock()
    with open_sim(tmp_path, clock, volatility=0.01) as sim:
        sim.broker.subscribe_quotes([CODE])
        for _ in range(10):
            sim.broker.terminal.tick()
        before = sim.broker.quote(CODE)
    with open_sim(tmp_path, clock, volatility=0.01) as sim:
        after = sim.broker.quote(CODE)
    assert before is not None and after is not None
    for field in ("lastPrice", "open", "high", "low", "volume", "amount", "lastClose"):
        assert after[field] == before[field], field


def test_given_subscribed_codes_then_the_sink_gets_their_ticks_only_while_the_market_is_open(
    tmp_path: Path,
) -> None:
    got: list[list[dict[str, Any]]] = []
    clock = Clock()
    with open_sim(tmp_path, clock, volatility=0.0, market_hours=True) as sim:
        sim.broker.set_tick_sink(got.append)
        sim.broker.terminal.publish_ticks()
        assert got == [], "nothing subscribed, nothing sent"

        assert sim.broker.subscribe_quotes([CODE, "000001.SZ", "000001.SH"]) == ["000001.SH"]
        sim.broker.terminal.publish_ticks()
        assert sorted(t["stock_code"] for t in got[-1]) == ["000001.SZ", CODE]
        assert got[-1][0]["time"] == int(clock() * 1000)

        sim.broker.unsubscribe_quotes(["000001.SZ"])
        sim.broker.terminal.publish_ticks()
        assert [t["stock_code"] for t in got[-1]] == [CODE]

        lunch = dt.datetime(2026, 11, 24, 12, 0, tzinfo=SHANGHAI).timestamp()
        clock.advance(lunch - clock())
        sim.broker.terminal.publish_ticks()
        sunday = dt.datetime(2026, 11, 29, 10, 0, tzinfo=SHANGHAI).timestamp()
        clock.advance(sunday - clock())
        sim.broker.terminal.publish_ticks()
        assert len(got) == 2, "no ticks while the market is closed"
        assert sim.broker.quote(CODE) is not None, "a query still answers"


def test_the_universe_is_the_a_share_stock_and_fund_ranges() -> None:
    listed = ["600000.SH", "601318.SH", "603259.SH", "605499.SH", "688981.SH", "689009.SH"]
    listed += ["510300.SH", "000001.SZ", "002594.SZ", "003816.SZ", "300750.SZ", "301269.SZ"]
    listed += ["159915.SZ", "161725.SZ", "430047.BJ", "830799.BJ", "920001.BJ"]
    unknown = ["000001.SH", "000300.SH", "900901.SH", "200002.SZ", "399001.SZ", "110059.SH"]
    unknown += ["123456.SZ", "600000.BJ", "600000", "bogus"]
    assert [c for c in listed if not is_stock_code(c)] == []
    assert [c for c in unknown if is_stock_code(c)] == []
    assert LOT == 100
