"""Orders through a real gateway on the simulator: acks, events, cancels, queries, idempotency."""

from __future__ import annotations

import datetime as dt

import msgspec

from qmtbus import protocol as p
from qmtbus.gateway.broker.sim.ledger import read_ledger
from tests.gateway.conftest import CODE, order, price, start_listened
from tests.support import Proc, Stack, Subscriber, start_gateway, wait_for


def _events_for(events: Subscriber, cls: type, client_order_id: str) -> list:
    return [
        e for e in events.drain() if isinstance(e, cls) and e.client_order_id == client_order_id
    ]


def _sent_count(stack: Stack, client_order_id: str) -> int:
    ledger = read_ledger(stack.data_dir)
    return sum(1 for o in ledger.orders_received if o["order_remark"] == client_order_id)


def test_given_marketable_buy_then_ack_then_order_and_trade_events_in_seq_order(
    stack: Stack, gateway: Proc, events: Subscriber
) -> None:
    ack = stack.call(order("buy-1"))
    assert isinstance(ack, p.OrderAck), ack
    assert ack.status == "accepted"
    assert ack.order_id > 0
    assert not ack.duplicate

    filled = events.wait(
        lambda e: (
            isinstance(e, p.OrderEvent) and e.order_id == ack.order_id and e.order_status == 56
        ),
        10,
        "filled order event",
    )
    assert filled.client_order_id == "buy-1"
    assert filled.order_remark == "buy-1"
    trades = _events_for(events, p.TradeEvent, "buy-1")
    assert sum(t.traded_volume for t in trades) == 100
    assert all(t.order_id == ack.order_id and t.traded_price == price() for t in trades)
    response = _events_for(events, p.OrderResponseEvent, "buy-1")
    assert [r.order_id for r in response] == [ack.order_id]
    seqs = [e.seq for e in events.events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "seq has holes"
    assert {e.epoch for e in events.events} == {stack.call(p.GetStatus()).epoch}


def test_given_resting_buy_when_cancelled_then_cancel_ack_and_cancelled_event(
    stack: Stack, gateway: Proc, events: Subscriber
) -> None:
    ack = stack.call(order("rest-1", factor=0.98))
    assert isinstance(ack, p.OrderAck) and ack.status == "accepted"
    events.wait(
        lambda e: (
            isinstance(e, p.OrderEvent) and e.order_id == ack.order_id and e.order_status == 50
        ),
        10,
        "reported",
    )
    cancel = stack.call(p.CancelOrder(client_order_id="rest-1"))
    assert isinstance(cancel, p.CancelAck), cancel
    assert cancel.order_id == ack.order_id
    assert cancel.cancel_result == 0
    cancelled = events.wait(
        lambda e: (
            isinstance(e, p.OrderEvent) and e.order_id == ack.order_id and e.order_status == 54
        ),
        10,
        "cancelled",
    )
    assert cancelled.client_order_id == "rest-1"
    again = stack.call(p.CancelOrder(order_id=ack.order_id))
    assert isinstance(again, p.CancelAck)
    assert again.cancel_result == -1
    assert again.error_msg


def test_given_unknown_client_order_id_when_cancel_then_not_found(
    stack: Stack, gateway: Proc
) -> None:
    reply = stack.call(p.CancelOrder(client_order_id="never-placed"))
    assert isinstance(reply, p.ErrorReply)
    assert reply.code == p.NOT_FOUND


def test_given_a_fill_then_every_query_shows_it_in_msgpack_and_json(
    stack: Stack, gateway: Proc, events: Subscriber
) -> None:
    ack = stack.call(order("q-1"))
    events.wait(lambda e: isinstance(e, p.OrderEvent) and e.order_status == 56, 10, "fill")
    for json in (False, True):
        asset = stack.call(p.QueryAsset(), json=json)
        assert isinstance(asset, p.AssetReply)
        assert abs(asset.cash + asset.frozen_cash + asset.market_value - asset.total_asset) < 0.01
        orders = stack.call(p.QueryOrders(), json=json)
        assert isinstance(orders, p.OrdersReply)
        mine = [o for o in orders.orders if o.order_id == ack.order_id]
        assert mine and mine[0].client_order_id == "q-1" and mine[0].order_status == 56
        open_orders = stack.call(p.QueryOrders(cancelable_only=True), json=json)
        assert all(o.order_id != ack.order_id for o in open_orders.orders)
        trades = stack.call(p.QueryTrades(), json=json)
        assert isinstance(trades, p.TradesReply)
        assert sum(t.traded_volume for t in trades.trades if t.client_order_id == "q-1") == 100
        positions = stack.call(p.QueryPositions(), json=json)
        assert isinstance(positions, p.PositionsReply)
        pos = [x for x in positions.positions if x.stock_code == CODE]
        assert pos and pos[0].volume == 100 and pos[0].can_use_volume == 0  # T+1
    events.wait(lambda e: isinstance(e, p.AssetEvent) and e.ts > 0, 5, "queried asset published")


def test_given_duplicate_client_order_id_then_returns_first_ack_and_sends_nothing(
    stack: Stack, gateway: Proc
) -> None:
    first = stack.call(order("dup-1"))
    second = stack.call(order("dup-1", volume=200))
    assert isinstance(second, p.OrderAck)
    assert second.duplicate
    assert (second.order_id, second.status) == (first.order_id, first.status)
    assert _sent_count(stack, "dup-1") == 1


def test_given_duplicate_client_order_id_across_gateway_restart_then_nothing_sent_twice(
    stack: Stack, gateway: Proc
) -> None:
    first = stack.call(order("dup-restart"))
    assert isinstance(first, p.OrderAck) and first.order_id > 0
    gateway.kill()
    again = start_gateway(stack)
    try:
        second = stack.call(order("dup-restart"))
        assert isinstance(second, p.OrderAck)
        assert second.duplicate and second.order_id == first.order_id
        assert _sent_count(stack, "dup-restart") == 1
    finally:
        again.stop()


def test_given_json_client_then_order_round_trip_in_json(stack: Stack, gateway: Proc) -> None:
    body = msgspec.json.encode(order("json-1"))
    reply = stack.call(body)
    assert isinstance(reply, p.OrderAck)
    assert reply.client_order_id == "json-1" and reply.order_id > 0


def test_given_broker_rejects_then_rejected_events_and_duplicate_says_rejected(
    stack: Stack, gateway: Proc, events: Subscriber
) -> None:
    assert isinstance(stack.call(p.SimFault(fault="reject_next")), p.SimAck)
    stack.call(order("rej-1"))
    error = events.wait(lambda e: isinstance(e, p.OrderErrorEvent), 10, "order_error")
    assert error.client_order_id == "rej-1"
    junk = events.wait(lambda e: isinstance(e, p.OrderEvent) and e.order_status == 57, 10, "junk")
    assert junk.client_order_id == "rej-1"
    again = stack.call(order("rej-1"))
    assert isinstance(again, p.OrderAck)
    assert again.duplicate and again.status == "rejected" and again.error_msg


def test_given_silent_reject_then_ack_pending_and_outcome_found_by_query(
    stack: Stack, events: Subscriber
) -> None:
    stack.write_config(gateway={"order_reply_timeout": 0.5})
    proc = start_listened(stack, events)
    try:
        stack.call(p.SimFault(fault="silent_reject_next"))
        ack = stack.call(order("silent-1"))
        assert isinstance(ack, p.OrderAck)
        assert ack.status == "pending" and ack.order_id == 0
        junk = events.wait(
            lambda e: isinstance(e, p.OrderEvent) and e.client_order_id == "silent-1",
            15,
            "resolved",
        )
        assert junk.order_status == 57
        later = stack.call(order("silent-1"))
        assert later.duplicate and later.status == "rejected" and later.order_id == junk.order_id
        assert _sent_count(stack, "silent-1") == 1
    finally:
        proc.stop()


def test_given_order_when_gateway_not_ready_then_not_connected(stack: Stack) -> None:
    window = {
        "always_open": False,
        "trading_days_only": False,
        "open_time": dt.time(0, 0, 0),
        "close_time": dt.time(0, 0, 1),
    }
    stack.write_config(gateway={"window": window})
    proc = start_gateway(stack, ready=False)
    try:
        status = wait_for(
            lambda: (s := _status(stack)) is not None and s.state == "outside_window" and s,
            15,
            "outside_window",
        )
        assert "closed" in status.state_reason or "opens" in status.state_reason
        reply = stack.call(order("early-1"))
        assert isinstance(reply, p.ErrorReply) and reply.code == p.NOT_CONNECTED
    finally:
        proc.stop()


def _status(stack: Stack) -> p.Status | None:
    try:
        reply = stack.call(p.GetStatus(), timeout=0.5)
    except TimeoutError:
        return None
    return reply if isinstance(reply, p.Status) else None
