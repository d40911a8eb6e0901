"""Simulator orders: the push sequences a miniQMT sends for fills, part fills and rejections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.gateway.sim_support import (
    BUY,
    CODE,
    LIMIT,
    SELL,
    TUESDAY_10AM,
    Clock,
    open_sim,
    response_for,
    settle,
    wait_status,
)

FILL_SEQUENCE = [
    "on_order_stock_async_response",
    "on_stock_order",  # 48 unreported
    "on_stock_order",  # 49 waiting to be reported
    "on_stock_order",  # 50 reported
    "on_stock_trade",
    "on_stock_order",
    "on_stock_asset",
    "on_stock_position",
]


def test_given_limit_buy_at_last_price_then_fills_with_the_miniqmt_push_sequence(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        price = sim.prev_close()
        seq = sim.buy(trader, 300, price, remark="coid-1")
        assert seq > 0
        settle(sim, trader, rec)

        assert rec.names() == FILL_SEQUENCE
        payloads = [c.payload for c in rec.calls]
        response, unreported, waiting, reported, trade, filled, asset, position = payloads
        assert response.seq == seq and response.order_id > 0 and response.order_remark == "coid-1"
        assert (unreported.order_status, waiting.order_status) == (48, 49)
        assert unreported.order_sysid == "" and unreported.order_id == response.order_id
        assert reported.order_id == response.order_id
        assert reported.order_status == 50 and reported.order_sysid.startswith("S")
        assert trade.traded_volume == 300 and trade.traded_price == price
        assert trade.order_sysid == reported.order_sysid and trade.order_remark == "coid-1"
        assert trade.traded_id and trade.commission > 0
        assert filled.order_status == 56 and filled.traded_volume == 300
        assert asset.total_asset == pytest.approx(
            asset.cash + asset.frozen_cash + asset.market_value, abs=1e-6
        )
        assert position.stock_code == CODE and position.volume == 300


def test_given_resting_buy_when_price_falls_through_then_fills_in_parts(tmp_path: Path) -> None:
    with open_sim(tmp_path, depth_volume=1000) as sim:
        trader, rec = sim.session()
        price = sim.prev_close()
        sim.set_price(price)
        seq = sim.buy(trader, 2500, round(price - 0.10, 2))
        order_id = response_for(rec, seq).order_id
        wait_status(rec, order_id, 50)
        assert not [c for c in rec.calls if c.name == "on_stock_trade"], "must rest above market"

        for _ in range(3):  # each price update is a tick with 1000 shares at the market
            sim.set_price(round(price - 0.20, 2))
        wait_status(rec, order_id, 56)

        trades = [c.payload for c in rec.calls if c.name == "on_stock_trade"]
        assert [t.traded_volume for t in trades] == [1000, 1000, 500]
        assert {t.traded_price for t in trades} == {round(price - 0.20, 2)}
        assert len({t.traded_id for t in trades}) == 3
        assert rec.order_statuses(order_id) == [48, 49, 50, 55, 55, 56]


def test_given_market_order_then_fills_at_last_price_and_ioc_remainder_is_cancelled(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path, depth_volume=1000) as sim:
        trader, rec = sim.session()
        last = sim.prev_close()
        # 42: Shanghai best-five-then-cancel: what the market cannot fill now is cancelled.
        seq = trader.order_stock_async(sim.account, CODE, BUY, 1500, 42, 0.0, "t", "ioc")
        order_id = response_for(rec, seq).order_id
        final = wait_status(rec, order_id, 53)
        assert final.traded_volume == 1000 and final.traded_price == last
        asset = rec.wait_call("on_stock_asset")
        assert asset.frozen_cash == 0.0


def test_given_latest_price_order_then_fills_at_last(tmp_path: Path) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        last = sim.prev_close()
        seq = trader.order_stock_async(sim.account, CODE, BUY, 100, 5, 0.0, "t", "latest")
        order_id = response_for(rec, seq).order_id
        filled = wait_status(rec, order_id, 56)
        assert filled.traded_price == last


def _reject_case(sim: Any, trader: Any, case: str) -> int:
    p = sim.prev_close()
    up = sim.broker.terminal.instrument(CODE).up_stop_price
    orders = {
        "bad_lot": (BUY, 150, p),
        "off_tick": (BUY, 100, round(p, 2) + 0.005),
        "above_limit": (BUY, 100, round(up + 0.01, 2)),
        "no_cash": (BUY, 100_000, p),
        "not_sellable": (SELL, 100, p),
        "market_closed": (BUY, 100, p),
    }
    order_type, volume, price = orders[case]
    return trader.order_stock_async(sim.account, CODE, order_type, volume, LIMIT, price, "t", case)


@pytest.mark.parametrize(
    ("case", "error_id", "clock_at"),
    [
        ("bad_lot", 1003, TUESDAY_10AM),
        ("off_tick", 1004, TUESDAY_10AM),
        ("above_limit", 1005, TUESDAY_10AM),
        ("no_cash", 1006, TUESDAY_10AM),
        ("not_sellable", 1007, TUESDAY_10AM),
        ("market_closed", 1002, TUESDAY_10AM + 10 * 3600),  # 20:00 Shanghai
    ],
)
def test_given_order_the_exchange_refuses_then_response_then_57_junk_then_order_error(
    tmp_path: Path, case: str, error_id: int, clock_at: float
) -> None:
    with open_sim(
        tmp_path, Clock(clock_at), market_hours=(case == "market_closed"), initial_cash=100_000.0
    ) as sim:
        trader, rec = sim.session()
        seq = _reject_case(sim, trader, case)
        error = rec.wait_call("on_order_error")
        settle(sim, trader, rec)

        assert rec.names() == ["on_order_stock_async_response", "on_stock_order", "on_order_error"]
        response, junk = rec.calls[0].payload, rec.calls[1].payload
        assert response.seq == seq and response.order_id > 0
        assert junk.order_status == 57 and junk.status_msg and junk.order_remark == case
        assert error.order_id == response.order_id and error.error_id == error_id
        assert error.error_msg == junk.status_msg and error.order_remark == case
        queried = trader.query_stock_order(sim.account, response.order_id)
        assert queried.order_status == 57


def test_given_reject_next_fault_then_next_order_is_junk_and_the_one_after_fills(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        price = sim.prev_close()
        assert "rejected" in sim.fault("reject_next")
        first = response_for(rec, sim.buy(trader, 100, price, "a")).order_id
        error = rec.wait_call("on_order_error")
        assert error.order_id == first and error.error_msg
        second = response_for(rec, sim.buy(trader, 100, price, "b")).order_id
        wait_status(rec, second, 56)
        assert rec.order_statuses(first) == [57]


def test_given_silent_reject_fault_then_no_callback_at_all_but_query_finds_the_junk_order(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        price = sim.prev_close()
        sim.fault("silent_reject_next")
        seq = sim.buy(trader, 100, price, "lost-one")
        assert seq > 0
        settle(sim, trader, rec)

        assert rec.names() == []
        lost = [o for o in trader.query_stock_orders(sim.account) if o.order_remark == "lost-one"]
        assert len(lost) == 1 and lost[0].order_status == 57


def test_given_reorder_fault_then_order_push_overtakes_response_and_56_overtakes_last_trade(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        sim.fault("reorder_callbacks", 1)
        sim.buy(trader, 100, sim.prev_close())
        settle(sim, trader, rec)
        assert rec.names() == [
            "on_stock_order",
            "on_order_stock_async_response",
            "on_stock_order",
            "on_stock_order",
            "on_stock_order",
            "on_stock_trade",
            "on_stock_asset",
            "on_stock_position",
        ]
        statuses = [c.payload.order_status for c in rec.calls if c.name == "on_stock_order"]
        assert statuses == [48, 49, 50, 56]

        sim.fault("clear")
        rec.clear()
        sim.buy(trader, 100, sim.prev_close())
        settle(sim, trader, rec)
        assert rec.names() == FILL_SEQUENCE


def test_given_delay_fault_then_every_push_comes_that_much_later(tmp_path: Path) -> None:
    import time

    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        sim.fault("delay_callbacks", 0.3)
        started = time.monotonic()
        response_for(rec, sim.buy(trader, 100, sim.prev_close()))
        assert time.monotonic() - started >= 0.3


def test_given_sync_order_stock_then_returns_order_id_without_async_response(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        order_id = trader.order_stock(
            sim.account, CODE, BUY, 100, LIMIT, sim.prev_close(), "t", "sync"
        )
        assert order_id > 0
        wait_status(rec, order_id, 56)
        settle(sim, trader, rec)
        assert "on_order_stock_async_response" not in rec.names()


def test_given_order_ids_then_they_increase_and_remarks_come_back_as_given(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        price = sim.prev_close()
        ids = [response_for(rec, sim.buy(trader, 100, price, f"r{i}")).order_id for i in range(3)]
        assert ids == sorted(ids) and len(set(ids)) == 3
        orders = {o.order_id: o for o in trader.query_stock_orders(sim.account)}
        assert [orders[i].order_remark for i in ids] == ["r0", "r1", "r2"]
        assert {orders[i].strategy_name for i in ids} == {"t"}


def test_given_not_subscribed_then_only_the_response_arrives(tmp_path: Path) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session(subscribe=False)
        seq = sim.buy(trader, 100, sim.prev_close())
        settle(sim, trader, rec)
        assert rec.names() == ["on_order_stock_async_response"]
        assert rec.calls[0].payload.seq == seq


def test_given_callback_delay_in_config_then_every_push_comes_that_much_later(
    tmp_path: Path,
) -> None:
    import time

    with open_sim(tmp_path, callback_delay=0.2) as sim:
        trader, rec = sim.session()
        started = time.monotonic()
        response_for(rec, sim.buy(trader, 100, sim.prev_close()))
        assert time.monotonic() - started >= 0.2
