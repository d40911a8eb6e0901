"""Simulator accounting: fees, cash, frozen cash, T+1 and the trading day."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.gateway.sim_support import (
    CODE,
    DAY,
    Clock,
    open_sim,
    response_for,
    settle,
    wait_status,
)


def _consistent(a: Any) -> bool:
    return bool(a.total_asset == pytest.approx(a.cash + a.frozen_cash + a.market_value, abs=1e-6))


def test_given_buy_then_sell_next_day_then_fees_follow_a_share_rules_and_total_asset_adds_up(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        buy_price = sim.prev_close()
        order_id = response_for(rec, sim.buy(trader, 1000, buy_price)).order_id
        wait_status(rec, order_id, 56)
        bought = rec.wait_call("on_stock_trade")

        amount = round(buy_price * 1000, 2)
        buy_fees = round(max(amount * 0.00025, 5.0), 2) + round(amount * 0.00001, 2)
        assert bought.traded_amount == pytest.approx(amount)
        assert bought.commission == pytest.approx(buy_fees, abs=0.011)
        asset = trader.query_stock_asset(sim.account)
        assert asset.cash == pytest.approx(1_000_000 - amount - bought.commission, abs=1e-6)
        assert asset.market_value == pytest.approx(amount) and _consistent(asset)
        held = trader.query_stock_position(sim.account, CODE)
        assert held.avg_price == pytest.approx((amount + bought.commission) / 1000, abs=1e-4)
        assert held.open_price == pytest.approx(buy_price)

        sim.clock.advance(DAY)
        sim.broker.terminal.tick()
        sell_price = round(buy_price * 1.05, 2)
        sim.set_price(sell_price)
        rec.clear()
        order_id = response_for(rec, sim.sell(trader, 1000, sell_price)).order_id
        wait_status(rec, order_id, 56)
        sold = rec.wait_call("on_stock_trade")

        proceeds = round(sell_price * 1000, 2)
        sell_fees = (
            round(max(proceeds * 0.00025, 5.0), 2)
            + round(proceeds * 0.00001, 2)
            + round(proceeds * 0.0005, 2)  # stamp duty, sells only
        )
        assert sold.commission == pytest.approx(sell_fees, abs=0.011)
        settle(sim, trader, rec)
        after = trader.query_stock_asset(sim.account)
        assert after.cash == pytest.approx(asset.cash + proceeds - sold.commission, abs=1e-6)
        assert after.market_value == 0.0 and after.frozen_cash == 0.0 and _consistent(after)


def test_given_shares_bought_today_then_not_sellable_until_the_next_trading_day(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        price = sim.prev_close()
        wait_status(rec, response_for(rec, sim.buy(trader, 500, price)).order_id, 56)
        held = trader.query_stock_position(sim.account, CODE)
        assert (held.volume, held.can_use_volume, held.yesterday_volume) == (500, 0, 0)

        seq = sim.sell(trader, 100, price)
        error = rec.wait_call("on_order_error")
        assert response_for(rec, seq).order_id == error.order_id
        assert "T+1" in error.error_msg

        sim.clock.advance(DAY)
        sim.broker.terminal.tick()
        held = trader.query_stock_position(sim.account, CODE)
        assert (held.volume, held.can_use_volume, held.yesterday_volume) == (500, 500, 500)
        assert trader.query_stock_orders(sim.account) == []  # orders are per trading day
        assert trader.query_stock_trades(sim.account) == []


def test_given_book_reopened_on_a_new_trading_day_then_yesterdays_buys_are_sellable(
    tmp_path: Path,
) -> None:
    clock = Clock()
    with open_sim(tmp_path, clock) as sim:
        trader, rec = sim.session()
        wait_status(rec, response_for(rec, sim.buy(trader, 300, sim.prev_close())).order_id, 56)
        last = sim.broker.terminal.instrument(CODE).last_price

    clock.advance(DAY)
    with open_sim(tmp_path, clock) as sim:
        trader, _ = sim.session()
        held = trader.query_stock_position(sim.account, CODE)
        assert (held.volume, held.can_use_volume, held.yesterday_volume) == (300, 300, 300)
        assert sim.prev_close() == last  # yesterday's last is today's prev_close


def test_given_resting_buy_then_cash_is_frozen_and_total_asset_unchanged(tmp_path: Path) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        limit = round(sim.prev_close() - 0.5, 2)
        order_id = response_for(rec, sim.buy(trader, 1000, limit)).order_id
        wait_status(rec, order_id, 50)
        asset = rec.wait_call("on_stock_asset")
        assert asset.frozen_cash >= limit * 1000
        assert asset.cash == pytest.approx(1_000_000 - asset.frozen_cash)
        assert asset.total_asset == 1_000_000.0 and _consistent(asset)


def test_given_resting_order_at_day_end_then_it_expires_and_frees_its_cash(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        order_id = response_for(rec, sim.buy(trader, 100, round(sim.prev_close() - 1, 2))).order_id
        wait_status(rec, order_id, 50)
        sim.clock.advance(DAY)
        sim.broker.terminal.tick()
        expired = wait_status(rec, order_id, 54)
        assert "expired" in expired.status_msg
        assert trader.query_stock_asset(sim.account).frozen_cash == 0.0


def test_given_orders_filled_in_parts_then_the_commission_minimum_is_charged_once_per_order(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path, depth_volume=100) as sim:
        trader, rec = sim.session()
        price = sim.prev_close()
        order_id = response_for(rec, sim.buy(trader, 300, price)).order_id
        sim.set_price(price)
        sim.set_price(price)
        wait_status(rec, order_id, 56)
        fees = [c.payload.commission for c in rec.calls if c.name == "on_stock_trade"]
        amount = price * 300
        expected_total = round(max(amount * 0.00025, 5.0), 2) + 3 * round(price * 100 * 1e-5, 2)
        assert sum(fees) == pytest.approx(expected_total, abs=0.011)


def test_given_an_etf_bought_today_then_it_sells_today_and_the_sell_pays_no_stamp_duty(
    tmp_path: Path,
) -> None:
    etf = "510300.SH"
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        price = sim.broker.terminal.instrument(etf).last_price
        wait_status(rec, response_for(rec, sim.buy(trader, 1000, price, code=etf)).order_id, 56)
        held = trader.query_stock_position(sim.account, etf)
        assert (held.volume, held.can_use_volume) == (1000, 1000)  # T+0
        sold = response_for(rec, sim.sell(trader, 1000, price, code=etf)).order_id
        wait_status(rec, sold, 56)
        fills = [t for t in trader.query_stock_trades(sim.account) if t.order_id == sold]
        amount = sum(t.traded_amount for t in fills)
        commission = max(round(amount * 0.00025, 2), 5.0)
        transfer = round(amount * 0.00001, 2)
        assert sum(t.commission for t in fills) == pytest.approx(commission + transfer, abs=0.011)
