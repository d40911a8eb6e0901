"""The I/O thread: owns the PUB, ROUTER and quotes sockets; stamps, journals, publishes, replies.

Everything another thread wants from the bus arrives as an item in the inbox
(a deque plus a wake-up pipe polled next to the sockets). Each loop turn:
take items → emit events (journal.append) → journal.flush → publish → send
replies → publish waiting ticks (a bounded number, on the quotes socket). So an
event is in the OS before anyone can see it, a reply never overtakes the
events it reports, and ticks never delay either.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import msgspec
import zmq

from qmtbus import protocol as p
from qmtbus.config import Config
from qmtbus.gateway import commands
from qmtbus.gateway.book import Book
from qmtbus.gateway.handoff import (
    Answer,
    BrokerEvent,
    CancelFailed,
    Item,
    OrderFailed,
    OrderSent,
    QuotesChecked,
    ResolvePending,
    Snapshot,
    StateChanged,
    TicksReady,
)
from qmtbus.gateway.journal import Journal
from qmtbus.gateway.lifecycle import Lifecycle
from qmtbus.gateway.orders import OrderDesk
from qmtbus.gateway.quotes import QuoteDesk
from qmtbus.gateway.risk import RiskGate
from qmtbus.gateway.store import Store
from qmtbus.gateway.window import trading_day
from qmtbus.security import secure_server, start_authenticator

log = logging.getLogger("gateway.server")

_MORE = int(zmq.SNDMORE)
_NOBLOCK = int(zmq.NOBLOCK)
RESOLVE_INTERVAL = 3.0  # seconds between broker queries for orders with no known outcome
TRIM_INTERVAL = 60.0


class Server:
    def __init__(self, config: Config, broker: Any):
        g = config.gateway
        self.config = config
        self.broker = broker
        self.account_id = g.account_id
        data = os.path.abspath(g.data_dir)
        self.journal = Journal(
            _path(data, "journal"),
            fsync_interval=g.journal_fsync_interval,
            max_age_days=g.journal_max_age_days,
            max_bytes=g.journal_max_bytes,
            segment_bytes=g.journal_segment_bytes,
        )
        self.epoch = self.journal.epoch
        self.store = Store(_path(data, "gateway.sqlite"))
        self.book = Book(self.store, trading_day, broker)
        self.book.load_day()
        self.risk = RiskGate(config.risk, _path(data, "risk-state.json"))
        self.state: p.GatewayState = "starting"
        self.state_reason = ""
        self.session_id = 0
        self.stopping = False

        self._inbox: collections.deque[Item] = collections.deque()
        # Wake-ups from other threads: a socket pair, not os.pipe(): zmq_poll on Windows
        # polls sockets only, and os.set_blocking() on a pipe needs Python 3.12 there.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._out: list[tuple[bytes, bytes]] = []  # (topic, payload) to publish
        self._replies: list[list[bytes]] = []  # multipart replies to send

        self.ctx = zmq.Context()
        self.auth = start_authenticator(self.ctx, config)
        self.pub = self.ctx.socket(zmq.PUB)
        self.router = self.ctx.socket(zmq.ROUTER)
        self.quotes_pub = self.ctx.socket(zmq.PUB)
        self._setup_sockets()
        self.lifecycle = Lifecycle(config, broker, self.post)
        self.orders = OrderDesk(self)
        self.quotes = QuoteDesk(self, self.quotes_pub)

    # -- sockets -------------------------------------------------------------------
    def _setup_sockets(self) -> None:
        g = self.config.gateway
        for sock in (self.pub, self.router, self.quotes_pub):
            sock.setsockopt(zmq.LINGER, 1000)
            sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)
            sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 5000)
            secure_server(sock, self.config)
        self.pub.setsockopt(zmq.SNDHWM, g.pub_hwm)
        # Ticks have their own socket and a small high-water mark: a slow subscriber
        # loses ticks, and the event stream's queue never holds one.
        self.quotes_pub.setsockopt(zmq.SNDHWM, g.quotes_hwm)
        self.quotes_pub.setsockopt(zmq.LINGER, 0)
        # The hard cap protects memory; messages between max_message_size and it
        # are answered with TOO_LARGE instead of a silent disconnect.
        self.router.setsockopt(zmq.MAXMSGSIZE, max(16 * g.max_message_size, 1 << 20))
        self.router.setsockopt(zmq.RCVHWM, 10_000)
        for sock, address, what in (
            (self.pub, g.events_address, "events"),
            (self.router, g.commands_address, "commands"),
            (self.quotes_pub, g.quotes_address, "quotes"),
        ):
            try:
                sock.bind(address)
            except zmq.ZMQError as err:
                self.close()
                raise OSError(
                    f"cannot bind the {what} socket to {address} ({err.strerror}); "
                    "is another gateway running there? change gateway."
                    f"{what}_address or stop the other process"
                ) from None

    # -- hand-over from other threads (thread-safe) ----------------------------------
    def post(self, item: Item) -> None:
        self._inbox.append(item)
        self.post_wake()

    def post_wake(self) -> None:
        # A full buffer already holds wake-ups: the loop will look. A closed socket
        # (a broker callback came late, nobody is left to wake) raises OSError.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"!")

    # -- emitting events ----------------------------------------------------------------
    def emit(self, event: p.Event) -> int:
        """Stamp, journal and queue an event for publishing; returns its seq."""
        seq = self.journal.last_seq + 1
        event = msgspec.structs.replace(
            event,
            epoch=self.epoch,
            seq=seq,
            ts=event.ts or p.now_ns(),
            # an account status names its own account; every other event is this gateway's
            account_id=getattr(event, "account_id", "")
            if isinstance(event, p.AccountStatusEvent)
            else self.account_id,
        )
        payload = p.msgpack_encoder.encode(event)
        self.journal.append(seq, payload)
        self._out.append((p.topic(event), payload))
        return seq

    def reply(self, envelope: list[bytes], json: bool, message: Any) -> None:
        self._replies.append([*envelope, p.encode(message, json=json)])

    def _flush(self) -> None:
        if self._out:
            self.journal.flush()
            # Frame by frame with int flags: send_multipart's enum arithmetic costs
            # several µs per event (bench/RESULTS.md, fan-out profile).
            send = self.pub.send
            for topic, payload in self._out:
                send(topic, _MORE)
                send(payload)
            self._out.clear()
        self.store.commit()
        send = self.router.send
        for frames in self._replies:
            for frame in frames[:-1]:
                send(frame, _MORE)
            send(frames[-1])
        self._replies.clear()

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> None:
        self.lifecycle.start()
        self.quotes.start()
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        # zmq.Poller reports a plain socket by its file descriptor, not by the object.
        wake = self._wake_r.fileno()
        poller.register(wake, zmq.POLLIN)
        interval = self.config.gateway.heartbeat_interval
        now = time.monotonic()
        next_beat, next_resolve, next_trim = now + interval, now + RESOLVE_INTERVAL, now + 5.0
        while not self.stopping:
            deadline = min(next_beat, self.orders.next_deadline(), self.quotes.next_deadline())
            # Ticks left over from the last turn: look at the sockets, do not wait on them.
            timeout = 0.0 if self.quotes.pending else max(0.0, deadline - time.monotonic())
            ready = dict(poller.poll(int(timeout * 1000)))
            if wake in ready:
                _drain(self._wake_r)
            self._take_items()
            if self.router in ready:
                self._take_requests()
            now = time.monotonic()
            self.orders.expire(now)
            if now >= next_beat:
                self.emit(p.HeartbeatEvent(last_seq=self.journal.last_seq, state=self.state))
                next_beat = now + interval
            if now >= next_resolve:
                if self.state == "ready" and self.orders.unresolved():
                    self.lifecycle.submit(ResolvePending())
                next_resolve = now + RESOLVE_INTERVAL
            if now >= next_trim:
                self.journal.trim()
                next_trim = now + TRIM_INTERVAL
            self.quotes.expire(now)
            self._flush()
            self.quotes.publish()

    def _take_items(self) -> None:
        inbox = self._inbox
        if inbox:
            self.store.begin()  # one transaction per loop turn; _flush commits it
        while inbox:
            item = inbox.popleft()
            try:
                self._take(item)
            except Exception:
                log.exception("handling %s failed", type(item).__name__)

    def _take(self, item: Item) -> None:
        if isinstance(item, BrokerEvent):
            self.orders.on_broker_event(item.event)
        elif isinstance(item, StateChanged):
            self._set_state(item.state, item.session_id, item.reason)
        elif isinstance(item, Snapshot):
            for event in self.book.reconcile(item):
                self.emit(event)
            self.orders.resolve_from(item.orders or [])
            if item.orders is not None:  # the broker's whole list: what is missing was never sent
                self.orders.give_up_orphans(item.orders)
        elif isinstance(item, OrderSent):
            self.orders.on_sent(item.client_order_id, item.async_seq)
        elif isinstance(item, OrderFailed):
            self.orders.on_failed(item.client_order_id, item.message)
        elif isinstance(item, CancelFailed):
            self.orders.on_cancel_failed(item.order_id, item.message)
        elif isinstance(item, TicksReady):
            pass  # it woke the loop; publish() takes the ticks after this turn's replies
        elif isinstance(item, QuotesChecked):
            self.quotes.on_checked(item)
        elif isinstance(item, Answer):
            if item.snapshot is not None:
                self._take(item.snapshot)
            reply = item.reply
            if isinstance(reply, p.OrdersReply):
                reply = p.OrdersReply(orders=[self.book.enrich(o) for o in reply.orders])
            elif isinstance(reply, p.TradesReply):
                reply = p.TradesReply(trades=[self.book.enrich(t) for t in reply.trades])
            self.reply(item.envelope, item.json, reply)

    def _set_state(self, state: p.GatewayState, session_id: int, reason: str) -> None:
        self.state, self.session_id, self.state_reason = state, session_id, reason
        self.emit(p.GatewayEvent(state=state, session_id=session_id, reason=reason))

    def _take_requests(self) -> None:
        recv, sock = self.router.recv, self.router
        for _ in range(1000):  # bounded, so events keep flowing under a request flood
            try:
                frames = [recv(_NOBLOCK)]
            except zmq.Again:
                return
            while sock.rcvmore:
                frames.append(recv())
            commands.handle(self, frames)

    def status(self) -> p.Status:
        return p.Status(
            epoch=self.epoch,
            last_seq=self.journal.last_seq,
            state=self.state,
            broker=self.broker.name,
            account_id=self.account_id,
            session_id=self.session_id,
            trading=self.risk.trading,
            trading_reason=self.risk.trading_reason,
            state_reason=self.state_reason,
        )

    # -- stopping -----------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Graceful stop: refuse new orders, answer what is in flight, publish `stopping`,
        flush the journal, stop the trader."""
        self.stopping = True
        deadline = time.monotonic() + min(3.0, self.config.gateway.order_reply_timeout)
        while self.orders.waiting() and time.monotonic() < deadline:
            time.sleep(0.01)
            self._take_items()
            self.orders.expire(time.monotonic())
            self._flush()
        self.orders.expire(float("inf"))
        self._set_state("stopping", self.session_id, "gateway stopping")
        self._flush()
        self.quotes.stop()
        self.lifecycle.stop()
        self._take_items()
        self._flush()
        self.close()

    def close(self) -> None:
        self.quotes_pub.close(linger=0)
        for sock in (self.pub, self.router):
            sock.close(linger=1000)
        if self.auth is not None:
            self.auth.stop()
        self.ctx.term()
        self.journal.close()
        self.store.close()
        # A broker callback may still arrive (a trader whose stop() timed out): its
        # send() on the closed socket fails harmlessly (post_wake).
        self._wake_r.close()
        self._wake_w.close()


def _path(data: str, name: str) -> Path:
    return Path(data) / name


def _drain(sock: socket.socket) -> None:
    with contextlib.suppress(BlockingIOError):
        while sock.recv(65536):
            pass
