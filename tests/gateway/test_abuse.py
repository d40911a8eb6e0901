"""Abuse limits through a real gateway: oversized requests and clients that pipeline too much.

- A request above gateway.max_message_size is answered TOO_LARGE; a frame above the
  hard cap (16 x max_message_size, at least 1 MiB) is never read: ZeroMQ drops that
  connection, and every other client goes on being served.
- A client with more than gateway.max_in_flight_per_client orders or cancels waiting
  for the broker gets BUSY for the excess, at once, and the excess is never sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from qmtbus import protocol as p
from qmtbus.gateway.broker.sim.ledger import read_ledger
from tests.gateway.conftest import order
from tests.support import Stack, start_gateway, wait_for

MAX_MESSAGE_SIZE = 100_000
HARD_CAP = 16 * MAX_MESSAGE_SIZE  # above the 1 MiB floor, so the 16x rule is what holds

_ctx: zmq.Context[Any] = zmq.Context.instance()


@pytest.fixture
def dealer(stack: Stack) -> Iterator[zmq.Socket[Any]]:
    """A DEALER; the test connects it once the gateway has bound its port."""
    sock = _ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    yield sock
    sock.close()


def _replies(sock: zmq.Socket[Any], n: int, timeout: float = 10.0) -> list[Any]:
    got: list[Any] = []
    for _ in range(n):
        assert sock.poll(int(timeout * 1000)), f"only {len(got)} of {n} replies"
        got.append(p.decode_reply(sock.recv_multipart()[-1]))
    return got


def _received(stack: Stack) -> list[str]:
    return [o["order_remark"] for o in read_ledger(stack.data_dir).orders_received]


def test_given_frame_above_hard_cap_then_connection_dropped_and_others_still_served(
    stack: Stack,
) -> None:
    stack.write_config(gateway={"max_message_size": MAX_MESSAGE_SIZE})
    gateway = start_gateway(stack)
    try:
        # Just inside the hard cap: read, and answered TOO_LARGE.
        at_cap = stack.call(b"\x80" * HARD_CAP)
        assert isinstance(at_cap, p.ErrorReply) and at_cap.code == p.TOO_LARGE
        assert at_cap.message == (
            f"request of {HARD_CAP} bytes exceeds the {MAX_MESSAGE_SIZE}-byte limit"
        )

        offender = _ctx.socket(zmq.DEALER)
        offender.setsockopt(zmq.LINGER, 0)
        offender.setsockopt(zmq.RECONNECT_IVL, 60_000)  # stay dropped while we look
        monitor = offender.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        offender.connect(stack.commands_address)
        try:
            first = recv_monitor_message(monitor)
            assert first["event"] == zmq.EVENT_CONNECTED
            offender.send_multipart([b"", b"\x80" * (HARD_CAP + 1)])
            assert monitor.poll(10_000), "the gateway kept the connection"
            assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
            assert not offender.poll(200), "a frame above the hard cap must not be answered"
        finally:
            offender.disable_monitor()
            monitor.close()
            offender.close()

        assert gateway.alive()
        assert isinstance(stack.call(p.Ping()), p.Pong)
        assert isinstance(stack.call(order("after-drop")), p.OrderAck)
    finally:
        gateway.stop()


def test_given_dealer_pipelining_beyond_max_in_flight_then_excess_is_busy_and_never_sent(
    stack: Stack, dealer: zmq.Socket[Any]
) -> None:
    stack.write_config(gateway={"max_in_flight_per_client": 3, "order_reply_timeout": 10.0})
    gateway = start_gateway(stack)
    dealer.connect(stack.commands_address)
    try:
        # Broker pushes come 0.3 s late each, so the first orders stay in flight. (They come
        # one after another, on xtquant's one push thread: the other client's response
        # waits behind the nine pushes of the first three orders.)
        assert isinstance(stack.call(p.SimFault(fault="delay_callbacks", value=0.3)), p.SimAck)
        coids = [f"pipe-{i}" for i in range(5)]
        for coid in coids:
            dealer.send_multipart([b"", msgspec.msgpack.encode(order(coid, factor=0.98))])

        busy = _replies(dealer, 2)  # first: broker responses come a second late
        assert all(isinstance(r, p.ErrorReply) and r.code == p.BUSY for r in busy), busy
        assert busy[0].message == (
            "more than 3 requests in flight from this client; wait for replies"
        )

        # Another client is not held up by this one's queue.
        other = stack.call(order("other-client", factor=0.98))
        assert isinstance(other, p.OrderAck) and other.status == "accepted"

        acks = _replies(dealer, 3)
        assert sorted(a.client_order_id for a in acks) == coids[:3]
        assert all(isinstance(a, p.OrderAck) and a.status == "accepted" for a in acks)
        assert sorted(_received(stack)) == sorted([*coids[:3], "other-client"])

        # BUSY left no trace: the same client_order_ids go through once there is room.
        for coid in coids[3:]:
            dealer.send_multipart([b"", msgspec.msgpack.encode(order(coid, factor=0.98))])
        late = _replies(dealer, 2)
        assert all(isinstance(a, p.OrderAck) and not a.duplicate for a in late), late
        wait_for(lambda: len(_received(stack)) == 6, 5, "the resent orders reach the broker")
        assert sorted(_received(stack)) == sorted([*coids, "other-client"])
    finally:
        # The simulator still holds a backlog of delayed pushes; a stopped trader drops
        # them, so the graceful stop is quick.
        assert gateway.stop(10) == 0
