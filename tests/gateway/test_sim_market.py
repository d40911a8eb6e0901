"""Simulator market: seeded and reproducible prices, daily limits, tick files, market hours."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from qmtbus.gateway import ashare
from qmtbus.gateway.broker.sim.hours import SHANGHAI
from tests.gateway.sim_support import (
    BUY,
    CODE,
    Clock,
    open_sim,
    response_for,
    wait_status,
)

CODES = ["600000.SH", "000001.SZ", "300750.SZ", "688981.SH", "510300.SH"]


def _path(data_dir: Path, seed: int, ticks: int) -> list[list[float]]:
    with open_sim(data_dir, seed=seed, volatility=0.01) as sim:
        prices = [[sim.broker.terminal.instrument(code).last_price for code in CODES]]
        for _ in range(ticks):
            sim.broker.terminal.tick()
            prices.append([sim.broker.terminal.instrument(code).last_price for code in CODES])
        return prices


def test_given_the_same_seed_then_the_same_initial_prices_and_the_same_walk(
    tmp_path: Path,
) -> None:
    first = _path(tmp_path / "a", seed=11, ticks=50)
    second = _path(tmp_path / "b", seed=11, ticks=50)
    assert first == second
    assert first[0] != first[-1]  # it does walk


def test_given_another_seed_then_other_prices(tmp_path: Path) -> None:
    assert _path(tmp_path / "a", seed=11, ticks=0) != _path(tmp_path / "b", seed=12, ticks=0)


def test_given_the_same_seed_and_orders_then_the_same_fills(tmp_path: Path) -> None:
    def fills(data_dir: Path) -> list[tuple[float, int]]:
        with open_sim(data_dir, seed=5, volatility=0.01, depth_volume=200) as sim:
            trader, rec = sim.session()
            order_id = response_for(rec, sim.buy(trader, 1000, sim.prev_close())).order_id
            for _ in range(40):
                sim.broker.terminal.tick()
            trader.cancel_order_stock_async(sim.account, order_id)
            rec.wait_for(lambda calls: any(c.name.startswith("on_cancel") for c in calls))
            return [
                (t.traded_price, t.traded_volume) for t in trader.query_stock_trades(sim.account)
            ]

    first = fills(tmp_path / "a")
    assert len(first) > 1
    assert first == fills(tmp_path / "b")


def test_given_a_volatile_walk_then_prices_stay_on_tick_and_within_daily_limits(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path, volatility=0.05) as sim:
        for _ in range(300):
            sim.broker.terminal.tick()
            for code in CODES:
                ins = sim.broker.terminal.instrument(code)
                assert ins.down_stop_price <= ins.last_price <= ins.up_stop_price
                assert ashare.on_tick(ins.last_price, ins.price_tick)
                assert (ins.up_stop_price, ins.down_stop_price) == ashare.limit_prices(
                    code, ins.prev_close
                )


def test_given_initial_prices_then_between_5_and_50_and_prev_close_is_the_first_price(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path) as sim:
        for code in CODES:
            ins = sim.broker.terminal.instrument(code)
            assert 5 <= ins.last_price <= 50 and ins.last_price == ins.prev_close
        assert sim.broker.terminal.instrument("not-a-code") is None


def test_given_a_price_beyond_the_limit_when_set_then_clamped_and_said_so(tmp_path: Path) -> None:
    with open_sim(tmp_path) as sim:
        up = sim.broker.terminal.instrument(CODE).up_stop_price
        assert "clamped" in sim.set_price(up * 2)
        assert sim.broker.terminal.instrument(CODE).last_price == up


def test_given_a_tick_file_then_prices_replay_in_order_and_then_hold(tmp_path: Path) -> None:
    ticks = tmp_path / "ticks.csv"
    ticks.write_text(
        "stock_code,price\n600000.SH,10.00\n600000.SH,10.05\n000001.SZ,12.00\n600000.SH,9.95\n"
    )
    with open_sim(tmp_path / "data", tick_file=str(ticks)) as sim:
        assert sim.prev_close(CODE) == 10.00  # the recording's first price
        seen = []
        for _ in range(5):
            sim.broker.terminal.tick()
            seen.append(
                (
                    sim.broker.terminal.instrument(CODE).last_price,
                    sim.broker.terminal.instrument("000001.SZ").last_price,
                )
            )
        assert seen == [
            (10.00, 12.00),
            (10.05, 12.00),
            (10.05, 12.00),
            (9.95, 12.00),
            (9.95, 12.00),
        ]


def test_given_market_hours_then_the_call_auction_takes_limit_orders_and_matches_at_the_open(
    tmp_path: Path,
) -> None:
    auction = dt.datetime(2026, 11, 24, 9, 20, tzinfo=SHANGHAI).timestamp()
    clock = Clock(auction)
    with open_sim(tmp_path, clock, market_hours=True) as sim:
        trader, rec = sim.session()
        up = sim.broker.terminal.instrument(CODE).up_stop_price
        order_id = response_for(rec, sim.buy(trader, 100, up)).order_id
        wait_status(rec, order_id, 50)
        market = trader.order_stock_async(sim.account, CODE, BUY, 100, 42, 0.0)
        assert response_for(rec, market).error_msg
        sim.broker.terminal.tick()
        assert trader.query_stock_order(sim.account, order_id).order_status == 50

        clock.t = dt.datetime(2026, 11, 24, 9, 30, tzinfo=SHANGHAI).timestamp()
        sim.broker.terminal.tick()
        wait_status(rec, order_id, 56)


def test_given_market_hours_off_then_the_market_is_open_at_night(tmp_path: Path) -> None:
    night = dt.datetime(2026, 11, 29, 23, 0, tzinfo=SHANGHAI).timestamp()  # a Sunday
    with open_sim(tmp_path, Clock(night)) as sim:
        trader, rec = sim.session()
        order_id = response_for(rec, sim.buy(trader, 100, sim.prev_close())).order_id
        wait_status(rec, order_id, 56)
