"""Simulator cancels: 51 then 54, 52 then 53 after a part fill, and cancel errors."""

from __future__ import annotations

from pathlib import Path

from tests.gateway.sim_support import open_sim, response_for, settle, wait_status


def test_given_resting_buy_when_cancelled_then_response_then_51_then_54_and_cash_unfrozen(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        price = sim.prev_close()
        order_id = response_for(rec, sim.buy(trader, 1000, round(price - 0.5, 2))).order_id
        wait_status(rec, order_id, 50)
        frozen = trader.query_stock_asset(sim.account).frozen_cash
        assert frozen > 0
        rec.clear()

        seq = trader.cancel_order_stock_async(sim.account, order_id)
        wait_status(rec, order_id, 54)
        settle(sim, trader, rec)

        assert rec.names() == [
            "on_cancel_order_stock_async_response",
            "on_stock_order",
            "on_stock_order",
            "on_stock_asset",
        ]
        response = rec.calls[0].payload
        assert response.seq == seq and response.cancel_result == 0
        assert response.order_id == order_id and response.order_sysid
        assert rec.order_statuses(order_id) == [51, 54]
        asset = rec.calls[3].payload
        assert asset.frozen_cash == 0.0
        assert asset.cash == asset.total_asset == 1_000_000.0  # nothing traded, nothing held


def test_given_part_filled_buy_when_cancelled_then_52_then_53(tmp_path: Path) -> None:
    with open_sim(tmp_path, depth_volume=300) as sim:
        trader, rec = sim.session()
        price = sim.prev_close()
        order_id = response_for(rec, sim.buy(trader, 1000, price)).order_id
        wait_status(rec, order_id, 55)
        rec.clear()

        trader.cancel_order_stock_async(sim.account, order_id)
        final = wait_status(rec, order_id, 53)

        assert rec.order_statuses(order_id) == [52, 53]
        assert final.traded_volume == 300
        position = trader.query_stock_position(sim.account, final.stock_code)
        assert position.volume == 300
        assert trader.query_stock_asset(sim.account).frozen_cash == 0.0


def test_given_resting_sell_when_cancelled_then_frozen_volume_returns_to_sellable(
    tmp_path: Path,
) -> None:
    from tests.gateway.sim_support import DAY

    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        price = sim.prev_close()
        wait_status(rec, response_for(rec, sim.buy(trader, 500, price)).order_id, 56)
        sim.clock.advance(DAY)
        sim.broker.terminal.tick()  # the next trading day: today's buys become sellable
        order_id = response_for(rec, sim.sell(trader, 200, round(price + 0.5, 2))).order_id
        wait_status(rec, order_id, 50)
        held = trader.query_stock_position(sim.account, "600000.SH")
        assert (held.can_use_volume, held.frozen_volume) == (300, 200)

        trader.cancel_order_stock_async(sim.account, order_id)
        wait_status(rec, order_id, 54)
        held = trader.query_stock_position(sim.account, "600000.SH")
        assert (held.volume, held.can_use_volume, held.frozen_volume) == (500, 500, 0)


def test_given_filled_order_when_cancelled_then_cancel_error_after_the_response(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        order_id = response_for(rec, sim.buy(trader, 100, sim.prev_close())).order_id
        wait_status(rec, order_id, 56)
        rec.clear()

        seq = trader.cancel_order_stock_async(sim.account, order_id)
        error = rec.wait_call("on_cancel_error")

        assert rec.names() == ["on_cancel_order_stock_async_response", "on_cancel_error"]
        assert rec.calls[0].payload.seq == seq
        assert error.order_id == order_id and error.order_sysid and error.error_msg
        assert error.market == 0  # Shanghai
        assert rec.order_statuses(order_id) == []


def test_given_unknown_order_id_when_cancelled_then_result_minus_one_and_cancel_error(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        assert trader.cancel_order_stock(sim.account, 424242) == -1
        error = rec.wait_call("on_cancel_error")
        assert error.order_id == 424242


def test_given_resting_order_when_cancelled_by_sysid_then_cancelled(tmp_path: Path) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        order_id = response_for(rec, sim.buy(trader, 100, round(sim.prev_close() - 1, 2))).order_id
        reported = wait_status(rec, order_id, 50)

        assert trader.cancel_order_stock_sysid(sim.account, "SZ", reported.order_sysid) == -1
        assert trader.cancel_order_stock_sysid(sim.account, "SH", reported.order_sysid) == 0
        wait_status(rec, order_id, 54)
        assert trader.query_stock_orders(sim.account, cancelable_only=True) == []


def test_given_market_hours_then_no_cancel_is_taken_between_0920_and_0925(tmp_path: Path) -> None:
    import datetime as dt

    from qmtbus.gateway.broker.sim.hours import SHANGHAI
    from tests.gateway.sim_support import Clock

    clock = Clock(dt.datetime(2026, 11, 24, 9, 16, tzinfo=SHANGHAI).timestamp())
    with open_sim(tmp_path, clock, market_hours=True) as sim:
        trader, rec = sim.session()
        order_id = response_for(rec, sim.buy(trader, 100, round(sim.prev_close() - 1, 2))).order_id
        wait_status(rec, order_id, 50)
        clock.t = dt.datetime(2026, 11, 24, 9, 21, tzinfo=SHANGHAI).timestamp()
        trader.cancel_order_stock_async(sim.account, order_id)
        error = rec.wait_call("on_cancel_error", lambda e: e.order_id == order_id)
        assert "no cancels between 09:20 and 09:25" in error.error_msg
        assert trader.query_stock_order(sim.account, order_id).order_status == 50
        clock.t = dt.datetime(2026, 11, 24, 9, 26, tzinfo=SHANGHAI).timestamp()
        trader.cancel_order_stock_async(sim.account, order_id)
        wait_status(rec, order_id, 54)


def test_given_market_hours_then_no_cancel_is_taken_at_1457_in_the_closing_auction(
    tmp_path: Path,
) -> None:
    import datetime as dt

    from qmtbus.gateway.broker.sim.hours import SHANGHAI
    from tests.gateway.sim_support import Clock

    def at(hh: int, mm: int, ss: int = 0) -> float:
        return dt.datetime(2026, 11, 24, hh, mm, ss, tzinfo=SHANGHAI).timestamp()

    clock = Clock(at(14, 50))
    with open_sim(tmp_path, clock, market_hours=True) as sim:
        trader, rec = sim.session()
        order_id = response_for(rec, sim.buy(trader, 100, round(sim.prev_close() - 1, 2))).order_id
        wait_status(rec, order_id, 50)
        clock.t = at(14, 57)
        trader.cancel_order_stock_async(sim.account, order_id)
        error = rec.wait_call("on_cancel_error", lambda e: e.order_id == order_id)
        assert "no cancels between 14:57 and 15:00" in error.error_msg
        assert trader.query_stock_order(sim.account, order_id).order_status == 50
        assert 54 not in rec.order_statuses(order_id)
        clock.t = at(14, 56, 59)  # a second earlier it would have gone
        trader.cancel_order_stock_async(sim.account, order_id)
        wait_status(rec, order_id, 54)
