"""The simulator's default book: a spread of a tick with five levels of depth, marketable
limit orders filling at the book side's prices (walking the levels, in parts when the book
runs out), and a walk that is quiet outside the Shanghai sessions."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from pathlib import Path

from qmtbus.config import SimConfig
from qmtbus.gateway.broker.sim import hours
from qmtbus.gateway.broker.sim.market import QUIET, Market
from tests.gateway.sim_support import CODE, open_sim, response_for, settle, wait_status


def test_given_the_default_spread_then_bid1_is_a_tick_below_ask1_with_five_levels_of_volume(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path, volatility=0.0, spread_ticks=1, depth_volume=1000) as sim:
        tick = sim.broker.quote(CODE)
        assert tick is not None
        asks, bids = tick["askPrice"], tick["bidPrice"]
        assert round(asks[0] - bids[0], 2) == 0.01
        assert bids[0] == tick["lastPrice"]
        assert all(round(b - a, 2) == 0.01 for a, b in itertools.pairwise(asks))
        assert all(round(a - b, 2) == 0.01 for a, b in itertools.pairwise(bids))
        assert tick["askVol"] == tick["bidVol"] == [10] * 5


def test_given_a_spread_then_a_buy_at_ask3_walks_the_asks_and_a_sell_at_bid1_fills_at_bid1(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path, volatility=0.0, spread_ticks=1, depth_volume=1000) as sim:
        book = sim.broker.quote(CODE)
        assert book is not None
        asks, bids = book["askPrice"], book["bidPrice"]
        trader, rec = sim.session()

        # Below ask1 (at the last price) a buy rests: nobody sells there.
        seq = sim.buy(trader, 100, bids[0], remark="rests")
        resting = response_for(rec, seq).order_id
        settle(sim, trader, rec)
        assert rec.order_statuses(resting)[-1] == 50

        seq = sim.buy(trader, 2500, asks[2], remark="walks")
        walker = response_for(rec, seq).order_id
        wait_status(rec, walker, 56)
        trades = [t for t in trader.query_stock_trades(sim.account) if t.order_id == walker]
        assert [(t.traded_price, t.traded_volume) for t in trades] == [
            (asks[0], 1000),
            (asks[1], 1000),
            (asks[2], 500),
        ]

        # The asks up to the limit are gone: the rest of a bigger order waits for the next tick.
        seq = sim.buy(trader, 1000, asks[2], remark="part")
        part = response_for(rec, seq).order_id
        wait_status(rec, part, 55)


def test_given_a_spread_then_a_sell_at_or_below_bid1_fills_at_the_bid_prices(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path, volatility=0.0, spread_ticks=1, depth_volume=1000) as sim:
        trader, rec = sim.session()
        book = sim.broker.quote(CODE)
        assert book is not None
        seq = sim.buy(trader, 2000, book["askPrice"][1])
        wait_status(rec, response_for(rec, seq).order_id, 56)
        sim.clock.advance(86400)  # the next day, the shares are sellable (T+1)
        sim.broker.terminal.tick()
        book = sim.broker.quote(CODE)
        assert book is not None
        bids = book["bidPrice"]
        seq = sim.sell(trader, 1500, bids[1])
        seller = response_for(rec, seq).order_id
        wait_status(rec, seller, 56)
        trades = [t for t in trader.query_stock_trades(sim.account) if t.order_id == seller]
        assert [(t.traded_price, t.traded_volume) for t in trades] == [
            (bids[0], 1000),
            (bids[1], 500),
        ]


def test_given_no_session_then_the_walk_moves_a_tenth_as_far(tmp_path: Path) -> None:
    def walk(in_session: bool, folder: str) -> float:
        (tmp_path / folder).mkdir()
        market = Market(
            seed=3,
            volatility=0.001,
            depth_volume=100,
            tick_file="",
            state_file=tmp_path / folder / "market.json",
            day="20261124",
        )
        start = market.quote(CODE).last_m
        for _ in range(200):
            market.step(in_session)
        return math.log(market.quote(CODE).fair_m / start)

    moved, quiet = walk(True, "day"), walk(False, "night")
    assert moved != 0
    assert math.isclose(quiet, moved * QUIET, rel_tol=1e-6, abs_tol=1e-9)


def test_given_the_default_volatility_then_a_weekday_moves_about_two_percent() -> None:
    config = SimConfig()
    midnight = dt.datetime(2026, 11, 24, tzinfo=hours.SHANGHAI).timestamp()
    steps_per_minute = 60 / config.tick_interval
    variance = 0.0
    for minute in range(24 * 60):
        scale = 1.0 if hours.in_session(midnight + minute * 60) else QUIET
        variance += steps_per_minute * (config.volatility * scale) ** 2
    assert 0.018 < math.sqrt(variance) < 0.022


def test_given_shanghai_times_then_the_sessions_are_the_continuous_ones() -> None:
    def at(day: int, hh: int, mm: int) -> float:
        return dt.datetime(2026, 11, day, hh, mm, tzinfo=hours.SHANGHAI).timestamp()

    assert hours.in_session(at(24, 9, 30)) and hours.in_session(at(24, 13, 0))
    assert not hours.in_session(at(24, 9, 29)) and not hours.in_session(at(24, 11, 30))
    assert not hours.in_session(at(24, 15, 0)) and not hours.in_session(at(24, 2, 0))
    assert not hours.in_session(at(28, 10, 0)), "a Saturday is quiet"
