"""SimTrader behaves like XtQuantTrader: one push thread, sessions, disconnects, stop rules."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from qmtbus.gateway.broker.sim.trader import SimTrader
from tests.gateway.sim_support import (
    CODE,
    Call,
    Recorder,
    open_sim,
    response_for,
    settle,
    wait_status,
)


def test_given_pushes_and_responses_then_all_run_on_one_push_thread_not_the_callers(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path, depth_volume=100) as sim:
        trader, rec = sim.session()
        price = sim.prev_close()
        order_id = response_for(rec, sim.buy(trader, 300, price)).order_id
        # Prices moved from another thread still push on the trader's push thread.
        mover = threading.Thread(target=lambda: [sim.set_price(price) for _ in range(2)])
        mover.start()
        mover.join()
        wait_status(rec, order_id, 56)
        trader.cancel_order_stock_async(sim.account, order_id)
        rec.wait_call("on_cancel_error")

        threads = {c.thread for c in rec.calls}
        assert len(threads) == 1
        assert threads != {threading.get_ident(), mover.ident}
        assert "on_connected" not in rec.names()


def test_given_stop_called_from_a_callback_then_it_raises_runtime_error(tmp_path: Path) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        raised: list[BaseException] = []

        def stop_inside(call: Call) -> None:
            if call.name == "on_order_stock_async_response":
                try:
                    trader.stop()
                except RuntimeError as err:
                    raised.append(err)

        rec.on_call = stop_inside
        response_for(rec, sim.buy(trader, 100, sim.prev_close()))
        assert len(raised) == 1
        # The trader still works: the failed stop did nothing.
        assert trader.query_stock_asset(sim.account) is not None


def test_given_sync_call_from_a_callback_then_runtime_error_instead_of_a_deadlock(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        outcomes: dict[str, Any] = {}

        def call_inside(call: Call) -> None:
            if call.name != "on_order_stock_async_response":
                return
            for name, fn in [
                ("order_stock", lambda: trader.order_stock(sim.account, CODE, 23, 100, 11, 1.0)),
                ("query", lambda: trader.query_stock_asset(sim.account)),
                ("async", lambda: trader.cancel_order_stock_async(sim.account, 1)),
            ]:
                try:
                    outcomes[name] = fn()
                except RuntimeError as err:
                    outcomes[name] = err

        rec.on_call = call_inside
        response_for(rec, sim.buy(trader, 100, sim.prev_close()))
        assert isinstance(outcomes["order_stock"], RuntimeError)
        assert isinstance(outcomes["query"], RuntimeError)
        assert isinstance(outcomes["async"], int) and outcomes["async"] > 0


def test_given_relaxed_response_order_then_a_query_from_a_callback_works(tmp_path: Path) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        trader.set_relaxed_response_order_enabled(True)
        seen: list[Any] = []
        rec.on_call = lambda call: (
            seen.append(trader.query_stock_asset(sim.account))
            if call.name == "on_order_stock_async_response"
            else None
        )
        response_for(rec, sim.buy(trader, 100, sim.prev_close()))
        assert seen and seen[0].account_id == sim.account.account_id


def test_given_callback_raises_then_it_is_swallowed_and_later_pushes_still_come(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()

        def explode(call: Call) -> None:
            if call.name == "on_order_stock_async_response":
                raise ValueError("a bug in the gateway's callback")

        rec.on_call = explode
        sim.buy(trader, 100, sim.prev_close())
        rec.wait_call("on_stock_position")
        assert "on_stock_trade" in rec.names()


def test_given_session_id_used_by_a_live_session_when_connect_then_minus_one(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path) as sim:
        first, _ = sim.session()
        twin = sim.broker.new_trader(first.session)
        twin.register_callback(Recorder())
        twin.start()
        sim.traders.append(twin)
        assert twin.connect() == -1
        assert twin.query_stock_asset(sim.account) is None
        assert sim.broker.new_session_id() != first.session


def test_given_no_terminal_at_the_path_when_connect_then_minus_one(tmp_path: Path) -> None:
    trader = SimTrader(str(tmp_path / "nowhere"), 1234)
    trader.start()
    try:
        assert trader.connect() == -1
    finally:
        trader.stop()


def test_given_disconnect_fault_then_on_disconnected_and_the_old_trader_fails_every_call(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        order_id = response_for(rec, sim.buy(trader, 100, sim.prev_close(), "before")).order_id

        assert "1 session" in sim.fault("disconnect")
        rec.wait_call("on_disconnected")
        push_thread = {c.thread for c in rec.calls}
        assert len(push_thread) == 1

        account = sim.account
        assert trader.order_stock_async(account, CODE, 23, 100, 11, 1.0) == -1
        assert trader.cancel_order_stock_async(account, order_id) == -1
        assert trader.subscribe(account) == -1
        assert trader.query_stock_asset(account) is None
        assert trader.query_stock_orders(account) is None
        assert trader.query_account_status() is None
        assert trader.connect() == -1
        trader.stop()  # from the caller's thread, as the gateway does

        fresh, fresh_rec = sim.session()
        assert fresh.session != trader.session
        orders = fresh.query_stock_orders(account)
        assert [o.order_remark for o in orders] == ["before"]
        settle(sim, fresh, fresh_rec)


def test_given_wrong_account_then_subscribe_fails_and_queries_are_empty(tmp_path: Path) -> None:
    from qmtbus.gateway.broker.sim.objects import StockAccount

    with open_sim(tmp_path) as sim:
        trader, _ = sim.session(subscribe=False)
        other = StockAccount("SOMEONE_ELSE")
        assert trader.subscribe(other) == -1
        assert trader.query_stock_orders(other) == []
        assert trader.query_stock_asset(other) is None
        statuses = trader.query_account_status()
        assert [(s.account_id, s.account_type, s.status) for s in statuses] == [
            (sim.account.account_id, 2, 0)
        ]


def test_constructor_sets_a_fresh_event_loop_as_the_calling_threads_loop(
    tmp_path: Path,
) -> None:
    trader = SimTrader(str(tmp_path), 99)
    try:
        assert asyncio.get_event_loop_policy().get_event_loop() is trader.loop
        assert not trader.loop.is_running()
    finally:
        trader.start()
        trader.stop()


def test_stock_account_look_alike_has_account_type_two() -> None:
    from qmtbus.gateway.broker.sim.objects import StockAccount

    account = StockAccount("123", "STOCK")
    assert (account.account_id, account.account_type) == ("123", 2)
    with pytest.raises(ValueError):
        StockAccount("123", "CREDIT")
