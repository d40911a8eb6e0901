"""Disconnects and crashes: new sessions, reconciliation, fills once, replay of an old epoch."""

from __future__ import annotations

import zmq

from qmtbus import protocol as p
from tests.gateway.conftest import CODE, order, price, start_listened
from tests.support import Proc, Stack, Subscriber, start_gateway, wait_ready


def _states(events: Subscriber) -> list[p.GatewayEvent]:
    return [e for e in events.drain() if isinstance(e, p.GatewayEvent)]


def test_given_disconnect_when_fills_happen_in_the_gap_then_new_session_reconciles_them_once(
    stack: Stack, events: Subscriber
) -> None:
    # A slow first reconnect leaves time to move the market while no session is subscribed.
    stack.write_config(gateway={"reconnect_initial": 3.0, "reconnect_max": 3.0})
    gateway = start_listened(stack, events)
    try:
        first = stack.call(p.GetStatus())
        ack = stack.call(order("gap-1", volume=300, factor=0.98))
        assert isinstance(ack, p.OrderAck) and ack.status == "accepted"
        events.wait(lambda e: isinstance(e, p.OrderEvent) and e.order_status == 50, 10, "reported")

        stack.call(p.SimFault(fault="disconnect"))
        events.wait(
            lambda e: isinstance(e, p.GatewayEvent) and e.state == "disconnected",
            10,
            "disconnected",
        )
        stack.call(p.SimSetPrice(stock_code=CODE, price=price(0.97)))  # fills while nobody listens

        status = wait_ready(stack, gateway, 20)
        assert status.session_id != first.session_id
        after = _states(events)
        tail = [e.state for e in after][-4:]
        assert tail == ["connecting", "connected", "reconciling", "ready"]

        fills = [e for e in events.drain() if isinstance(e, p.TradeEvent)]
        assert sum(t.traded_volume for t in fills) == 300
        assert len({t.traded_id for t in fills}) == len(fills)
        assert all(t.client_order_id == "gap-1" for t in fills)
        final = [e for e in events.events if isinstance(e, p.OrderEvent) and e.order_status == 56]
        assert len(final) == 1 and final[0].client_order_id == "gap-1"
        ready_seq = next(e.seq for e in reversed(after) if e.state == "ready")
        assert all(t.seq < ready_seq for t in fills), "reconciled fills come before ready"

        # A second reconnect finds nothing new: the fills are not published again.
        stack.call(p.SimFault(fault="disconnect"))
        events.wait(
            lambda e: (
                isinstance(e, p.GatewayEvent) and e.state == "disconnected" and e.seq > ready_seq
            ),
            10,
            "second disconnect",
        )
        wait_ready(stack, gateway, 20)
        events.drain(0.3)
        again = [e for e in events.events if isinstance(e, p.TradeEvent)]
        assert len(again) == len(fills)
    finally:
        gateway.stop()


def test_given_kill9_and_restart_then_old_epoch_is_still_replayed(
    stack: Stack, events: Subscriber
) -> None:
    gateway = start_gateway(stack)
    old = stack.call(p.GetStatus())
    for i in range(20):
        stack.call(p.PublishNote(topic="test", data={"i": i}))
    last = stack.call(p.GetStatus()).last_seq
    gateway.kill()

    restarted = start_gateway(stack)
    try:
        new = stack.call(p.GetStatus())
        assert new.epoch != old.epoch
        reply = stack.call(p.Replay(epoch=old.epoch, from_seq=1, limit=10_000))
        assert isinstance(reply, p.ReplayReply), reply
        seqs = [e.seq for e in reply.events]
        assert seqs[:last] == list(range(1, last + 1))
        notes = [e.data["i"] for e in reply.events if isinstance(e, p.NoteEvent)]
        assert notes == list(range(20))
        assert all(e.epoch == old.epoch for e in reply.events)

        page = stack.call(p.Replay(epoch=old.epoch, from_seq=3, limit=5))
        assert [e.seq for e in page.events] == [3, 4, 5, 6, 7] and page.more
        json_page = stack.call(p.Replay(epoch=old.epoch, from_seq=3, limit=2), json=True)
        assert [e.seq for e in json_page.events] == [3, 4]

        missing = stack.call(p.Replay(epoch="19990101T000000Z-000000", from_seq=1))
        assert isinstance(missing, p.ErrorReply) and missing.code == p.NOT_FOUND
    finally:
        restarted.stop()


def test_given_order_sent_then_gateway_killed_then_restart_resolves_it_by_remark(
    stack: Stack, events: Subscriber
) -> None:
    gateway = start_gateway(stack)
    ack = stack.call(order("crash-1"))
    assert isinstance(ack, p.OrderAck)
    gateway.kill()
    restarted = start_gateway(stack)
    try:
        again = stack.call(order("crash-1"))
        assert isinstance(again, p.OrderAck)
        assert again.duplicate and again.order_id == ack.order_id
        orders = stack.call(p.QueryOrders())
        assert [o.client_order_id for o in orders.orders if o.order_id == ack.order_id] == [
            "crash-1"
        ]
    finally:
        restarted.stop()


def test_given_pub_subscriber_then_topics_filter_by_type_and_account(
    stack: Stack, gateway: Proc
) -> None:
    trades_only = Subscriber(stack.events_address, b"trade.")
    orders_only = Subscriber(stack.events_address, b"order.")
    try:
        for sub in (trades_only, orders_only):  # heartbeats prove the subscription is live
            sub.sock.setsockopt(zmq.SUBSCRIBE, b"heartbeat.")
            sub.wait(lambda e: isinstance(e, p.HeartbeatEvent), 5, "heartbeat")
        stack.call(order("topic-1"))
        trades_only.wait(lambda e: isinstance(e, p.TradeEvent), 10, "trade")
        orders_only.wait(
            lambda e: isinstance(e, p.OrderEvent) and e.order_status == 56, 10, "order"
        )
        trades = [e for e in trades_only.events if not isinstance(e, p.HeartbeatEvent)]
        orders = [e for e in orders_only.events if not isinstance(e, p.HeartbeatEvent)]
        assert trades and all(isinstance(e, p.TradeEvent) for e in trades)
        assert orders and all(isinstance(e, p.OrderEvent) for e in orders)  # no order_error etc.
        assert all(e.account_id == "SIM0001" for e in orders)
    finally:
        trades_only.close()
        orders_only.close()
