"""xtquant's own XtQuantTrader over the simulated native client: one push thread, sessions,
disconnects, stop rules, timeouts, as on a real miniQMT."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from qmtbus.gateway.broker.xtquant import release
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
        assert len(raised) == 1 and "join current thread" in str(raised[0])
        # Half stopped: finish what stop() could not from inside its own push thread.
        sim.traders.remove(trader)
        trader.executor.shutdown(wait=True)
        trader.relaxed_resp_executor.shutdown(wait=True)
        trader.loop.close()


def test_given_the_trader_is_xtquants_own_class_over_the_simulated_native_module(
    tmp_path: Path,
) -> None:
    from xtquant import xttrader

    from qmtbus.gateway.broker.sim import native

    with open_sim(tmp_path) as sim:
        trader, _ = sim.session()
        assert type(trader) is xttrader.XtQuantTrader
        assert xttrader._XTQC_ is native
        assert isinstance(trader.async_client, native.XtQuantAsyncClient)


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
        session = first.async_client.session
        twin = sim.broker.new_trader(session)
        twin.register_callback(Recorder())
        twin.start()
        twin.set_timeout(200)
        sim.traders.append(twin)
        assert twin.connect() == -1
        assert twin.query_stock_asset(sim.account) is None
        assert sim.broker.new_session_id() != session


def test_given_no_terminal_at_the_path_when_connect_then_minus_one(tmp_path: Path) -> None:
    with open_sim(tmp_path / "here"):
        from xtquant.xttrader import XtQuantTrader

        trader = XtQuantTrader(str(tmp_path / "nowhere"), 1234)
        trader.start()
        try:
            assert trader.connect() == -1
        finally:
            release(trader)


def test_given_disconnect_fault_then_order_stock_async_still_returns_a_seq_and_queries_time_out(
    tmp_path: Path,
) -> None:
    # The real order_stock_async never returns -1: an order sent on a dead session is simply
    # never answered, and a query waits for ever unless set_timeout was called.
    with open_sim(tmp_path) as sim:
        trader, rec = sim.session()
        trader.set_timeout(300)
        order_id = response_for(rec, sim.buy(trader, 100, sim.prev_close(), "before")).order_id

        assert "1 session" in sim.fault("disconnect")
        rec.wait_call("on_disconnected")
        push_thread = {c.thread for c in rec.calls}
        assert len(push_thread) == 1

        account = sim.account
        assert trader.order_stock_async(account, CODE, 23, 100, 11, 1.0) > 0
        assert trader.cancel_order_stock_async(account, order_id) > 0
        assert trader.subscribe(account) is None
        assert trader.query_stock_asset(account) is None
        assert trader.query_stock_orders(account) is None
        assert trader.query_account_status() is None
        assert trader.connect() == -1
        release(trader)  # from the caller's thread, as the gateway does
        sim.traders.remove(trader)

        fresh, fresh_rec = sim.session()
        assert fresh.async_client.session != trader.async_client.session
        orders = fresh.query_stock_orders(account)
        assert [o.order_remark for o in orders] == ["before"]
        settle(sim, fresh, fresh_rec)


def test_given_mute_queries_fault_then_set_timeout_bounds_every_query(tmp_path: Path) -> None:
    with open_sim(tmp_path) as sim:
        trader, _ = sim.session()
        trader.set_timeout(300)
        sim.fault("mute_queries", 1)
        assert trader.query_stock_asset(sim.account) is None
        assert trader.query_stock_positions(sim.account) is None
        sim.fault("mute_queries", 0)
        assert trader.query_stock_asset(sim.account) is not None


def test_given_timed_queries_answered_then_no_deadline_is_left_and_a_later_one_still_times_out(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path) as sim:
        trader, _ = sim.session()
        trader.set_timeout(300)
        client = trader.async_client
        assert trader.query_stock_asset(sim.account) is not None
        assert trader.query_stock_positions(sim.account) is not None
        # answered before the callback ran: the push thread watches no clock per push now
        assert client._deadlines == [] and client._waiting == {}
        sim.fault("mute_queries", 1)
        assert trader.query_stock_asset(sim.account) is None  # after its 300 ms
        sim.fault("mute_queries", 0)
        assert trader.query_stock_asset(sim.account) is not None


def test_given_wrong_account_then_subscribe_fails_and_queries_are_empty(tmp_path: Path) -> None:
    with open_sim(tmp_path) as sim:
        trader, _ = sim.session(subscribe=False)
        other = type(sim.account)("SOMEONE_ELSE", "STOCK")
        assert trader.subscribe(other) == -1
        assert trader.query_stock_orders(other) == []
        assert trader.query_stock_asset(other) is None
        statuses = trader.query_account_status()
        # Raw native objects: the m_ names, as xttrader hands them over.
        assert [(s.m_strAccountID, s.m_nAccountType, s.m_nStatus) for s in statuses] == [
            (sim.account.account_id, 2, 0)
        ]


def test_constructor_sets_a_fresh_event_loop_as_the_calling_threads_loop(
    tmp_path: Path,
) -> None:
    with open_sim(tmp_path) as sim:
        result: list[bool] = []

        def build() -> None:  # on a thread of its own, as the gateway's broker thread does
            trader = sim.broker.new_trader(99)
            result.append(asyncio.get_event_loop_policy().get_event_loop() is trader.loop)
            result.append(not trader.loop.is_running())
            trader.start()
            release(trader)

        thread = threading.Thread(target=build)
        thread.start()
        thread.join()
        assert result == [True, True]
