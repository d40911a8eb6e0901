"""The I/O thread: owns the PUB, ROUTER and quotes sockets; stamps, journals, publishes, replies.

Everything another thread wants from the bus arrives as an item in the inbox
(a deque plus a wake-up pipe polled next to the sockets). Each loop turn:
take items → emit events (journal.append, and the ledger takes them in) →
journal.flush → hand orders whose intent is now journaled to the broker thread →
publish → send replies → publish waiting ticks (a bounded number, on the quotes
socket). So an event is in the OS before anyone can see it, an order is in the
journal before the broker hears of it, a reply never overtakes the events it
reports, and ticks never delay either.

The journal is the one source of truth: at start the ledger (client orders,
published orders and fills, risk counters) is rebuilt from today's journaled
events; the broker's orders and trades fill in what the journal lacks at every
reconnect. A journal that cannot be written (disk full) holds events back and
refuses new orders with DISK_FULL; everything else keeps working, and the first
write that succeeds again publishes what was held.
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

from qmtbus import endpoints
from qmtbus import protocol as p
from qmtbus.clock import trading_day
from qmtbus.config import Config
from qmtbus.failpoints import failpoint
from qmtbus.gateway import commands
from qmtbus.gateway.book import Book
from qmtbus.gateway.handoff import (
    Answer,
    BrokerEvent,
    CancelFailed,
    Item,
    Job,
    OrderFailed,
    OrderSent,
    QuotesChecked,
    ResolvePending,
    SendOrder,
    Snapshot,
    StateChanged,
    TicksReady,
)
from qmtbus.gateway.journal import Journal
from qmtbus.gateway.lifecycle import Lifecycle
from qmtbus.gateway.orders import OrderDesk
from qmtbus.gateway.quotes import QuoteDesk
from qmtbus.gateway.risk import RiskGate
from qmtbus.gateway.store import rebuild
from qmtbus.gateway.window import refusal
from qmtbus.security import secure_server, start_authenticator

log = logging.getLogger("gateway.server")

_MORE = int(zmq.SNDMORE)
_NOBLOCK = int(zmq.NOBLOCK)
_POLLIN = int(zmq.POLLIN)
# The hot path calls libzmq's bindings directly: pyzmq's Python layer adds enum arithmetic
# and attribute-to-option lookups (sock.rcvmore) costing several µs per frame
# (bench/RESULTS.md, "receive path").
_send = zmq.backend.Socket.send
_recv = zmq.backend.Socket.recv
RESOLVE_INTERVAL = 3.0  # seconds between broker queries for orders with no known outcome
TRIM_INTERVAL = 60.0
# At a stop, how long the sockets stay open after the last answer, for clients to read it.
STOP_GRACE = 1.0
# events whose journaling and publishing the failpoints events_journaled/_published watch
_MONEY = (p.ClientOrderEvent, p.OrderEvent, p.TradeEvent, p.OrderResponseEvent, p.OrderErrorEvent)


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
        self.book = Book(trading_day, broker.instrument, broker.instrument_note)
        self.risk = RiskGate(config.risk, _path(data, "risk-state.json"))
        self.disk_full = ""  # why the journal cannot be written now; "" when it can
        if (Path(data) / "gateway.sqlite").exists():
            log.info("data/gateway.sqlite is no longer read (the journal holds the orders)")
        self.state: p.GatewayState = "starting"
        self.state_reason = ""
        self.session_id = 0
        self.stopping = False
        self._stop_asked = float("inf")  # monotonic time of the signal to stop

        self._inbox: collections.deque[Item] = collections.deque()
        self._wake_sent = False  # a wake-up is on its way to the I/O loop
        # Wake-ups from other threads: a socket pair, not os.pipe(): zmq_poll on Windows
        # polls sockets only, and os.set_blocking() on a pipe needs Python 3.12 there.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._out: list[tuple[bytes, bytes]] = []  # (topic, payload) to publish
        self._replies: list[list[bytes]] = []  # multipart replies to send
        self._replied_at = 0.0  # monotonic time of the last replies sent
        self._intents: list[SendOrder] = []  # orders to hand over once their intent is written
        self._money = False  # this turn emitted order or fill events
        self._acked = False  # this turn replies to an order

        self.ctx = zmq.Context()
        self.auth = start_authenticator(self.ctx, config)
        self.pub = self.ctx.socket(zmq.PUB)
        self.router = self.ctx.socket(zmq.ROUTER)
        self.quotes_pub = self.ctx.socket(zmq.PUB)
        self.endpoints: dict[str, str] = {}  # what bind() got: the real ports of `:*` addresses
        self.lifecycle = Lifecycle(config, broker, self.post, post_quietly=self.post_quietly)
        self.orders = OrderDesk(
            self,
            self.book,
            self.risk,
            reply_timeout=g.order_reply_timeout,
            max_in_flight=g.max_in_flight_per_client,
            cancel_windows=g.broker == "xtquant" or config.sim.market_hours,
        )
        self.quotes = QuoteDesk(self, self.quotes_pub)
        self._rebuild()

    # -- the ledger from the journal ----------------------------------------------------
    def _rebuild(self) -> None:
        """Today's ledger from today's journaled events; then what a crash left open: the
        risk counters, a trading state saved but never announced, orders whose outcome
        was lost."""
        ledger = self.book.ledger
        events = rebuild(self.journal, ledger)
        self.risk.restore(
            ledger.day, [(r.strategy_name, r.notional) for r in ledger.client_orders.values()]
        )
        log.info(
            "ledger of %s rebuilt from the journal: %d client orders, %d fills, %d events",
            ledger.day,
            len(ledger.client_orders),
            len(ledger.fills),
            events,
        )
        saved = (self.risk.trading, self.risk.trading_reason)
        if saved[0] != (ledger.trading or ("active", ""))[0]:
            # saved, then the process died before its note: announce it now
            data = {"trading": saved[0], "reason": saved[1], "restored": True}
            self.emit(p.NoteEvent(topic="trading", data=data))
        self.orders.mark_unknown()

    # -- sockets -------------------------------------------------------------------
    def bind(self) -> dict[str, str]:
        """Bind the three sockets (OSError: one sentence) and write the endpoints file; called
        once before run(), so that building a Server touches no port."""
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
        bound: dict[str, str] = {}
        for sock, address, what in (
            (self.pub, g.events_address, "events"),
            (self.router, g.commands_address, "commands"),
            (self.quotes_pub, g.quotes_address, "quotes"),
        ):
            try:
                bound[what] = endpoints.bind(sock, address)
            except zmq.ZMQError as err:
                self.close()
                raise OSError(
                    f"cannot bind the {what} socket to {address} ({err.strerror}); "
                    "is another gateway running there? change gateway."
                    f"{what}_address or stop the other process"
                ) from None
        # a `*` port is known only now: the endpoints file tells tools and tests
        self.endpoints = bound
        endpoints.write(endpoints.endpoints_file(self.config, "gateway"), "gateway", bound)
        return bound

    # -- hand-over from other threads (thread-safe) ----------------------------------
    def post(self, item: Item) -> None:
        """One wake-up per batch: a poster that finds a wake-up already on its way leaves
        the item for the turn it will start. The I/O thread lowers the flag before it
        empties the inbox, so an item appended after that sees the flag down and wakes
        it again (the GIL makes each step atomic)."""
        self._inbox.append(item)
        if not self._wake_sent:
            self._wake_sent = True
            self.post_wake()

    def post_quietly(self, item: Item) -> None:
        """Hand over an item that can wait for the loop's next turn (thread-safe): no
        wake-up; the turn comes with the next item posted, request or deadline."""
        self._inbox.append(item)

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
        self.book.apply(event)
        self._out.append((p.topic(event), payload))
        if isinstance(event, _MONEY):
            self._money = True
        return seq

    # -- OrderDesk's port -----------------------------------------------------------------
    def submit(self, job: Job) -> None:
        self.lifecycle.submit(job)

    def submit_after_journal(self, job: SendOrder) -> None:
        """Hand an order to the broker thread once this turn's journal write holds its intent."""
        self._intents.append(job)

    def refusal(self, what: str) -> p.ErrorReply | None:
        """Why the gateway cannot send an order or a cancel now, or None."""
        if self.stopping or self.state != "ready":
            why = (
                "the gateway is stopping"
                if self.stopping
                else refusal(self.state, self.state_reason)
            )
            return p.ErrorReply(code=p.NOT_CONNECTED, message=f"{why}; {what}")
        if self.disk_full:
            return p.ErrorReply(code=p.DISK_FULL, message=_disk_full(self.disk_full, what))
        return None

    def reply(self, envelope: list[bytes], json: bool, message: Any) -> None:
        if isinstance(message, p.OrderAck):
            self._acked = True
        self._replies.append([*envelope, p.encode(message, json=json)])

    def _flush(self) -> None:
        if (self._out or self.disk_full) and self._write_journal():
            money, self._money = self._money, False
            if money:
                failpoint("events_journaled")
            self._hand_over()
            # Frame by frame with int flags: send_multipart's enum arithmetic costs
            # several µs per event (bench/RESULTS.md, fan-out profile).
            pub = self.pub
            for topic, payload in self._out:
                _send(pub, topic, _MORE)
                _send(pub, payload)
            self._out.clear()
            if money:
                failpoint("events_published")
        router = self.router
        for frames in self._replies:
            for frame in frames[:-1]:
                _send(router, frame, _MORE)
            _send(router, frames[-1])
        if self._replies:
            self._replied_at = time.monotonic()
            self._replies.clear()
        if self._acked:
            self._acked = False
            failpoint("order_replied")

    def _hand_over(self) -> None:
        """Hand the turn's orders, their intents now journaled, to the broker thread."""
        if self._intents:
            failpoint("intent_written")
            for job in self._intents:
                self.lifecycle.submit(job)
            self._intents.clear()

    def _write_journal(self) -> bool:
        """Flush the journal; on an OSError (disk full) hold the events back, refuse the
        orders whose intent it could not take, and say so once."""
        try:
            self.journal.flush()
        except OSError as err:
            reason = err.strerror or str(err)
            if not self.disk_full:
                log.error("%s", _disk_full(reason, "new orders are refused until it can"))
            self.disk_full = reason
            intents, self._intents = self._intents, []
            for job in intents:
                message = _disk_full(reason, "order not sent")
                self.orders.abandon(job.cmd.client_order_id, p.DISK_FULL, message)
            return False
        if self.disk_full:
            log.warning("the journal takes writes again: new orders are accepted")
            self.disk_full = ""
        return True

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> None:
        self.lifecycle.start()
        self.quotes.start()
        # zmq_poll reports a plain socket by its file descriptor, not by the object; called
        # directly, without zmq.Poller's Python layer (a few µs a turn).
        wake = self._wake_r.fileno()
        poll_items: list[tuple[Any, int]] = [(self.router, _POLLIN), (wake, _POLLIN)]
        zmq_poll = zmq.zmq_poll
        interval = self.config.gateway.heartbeat_interval
        now = time.monotonic()
        next_beat, next_resolve, next_trim = now + interval, now + RESOLVE_INTERVAL, now + 5.0
        while not self.stopping:
            deadline = min(next_beat, self.orders.next_deadline(), self.quotes.next_deadline())
            # Ticks left over from the last turn: look at the sockets, do not wait on them.
            timeout = 0.0 if self.quotes.pending else max(0.0, deadline - time.monotonic())
            ready = dict(zmq_poll(poll_items, int(timeout * 1000)))
            if wake in ready:
                _drain(self._wake_r)
            self._take_items()
            if self.router in ready:
                self._take_requests()
            now = time.monotonic()
            self.orders.expire(now)
            if now >= next_beat and not self.disk_full:  # heartbeats would only pile up
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
        self._wake_sent = False  # before emptying the inbox: see post()
        inbox = self._inbox
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
            # outcomes and orders known only to the broker first, so that the order and
            # trade events below carry their client_order_id
            self.orders.resolve_from(item.orders or [], item.trades or [])
            for event in self.book.reconcile(item):
                self.emit(event)
        elif isinstance(item, OrderSent):
            self.orders.on_sent(item.client_order_id, item.async_seq)
        elif isinstance(item, OrderFailed):
            self.orders.on_failed(item.client_order_id, item.message, item.called)
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
        if self.state == "stopping":  # the last word: the broker thread's later news is moot
            log.info("state %s (%s) while stopping: not published", state, reason)
            return
        if session_id != self.session_id:
            self.orders.on_new_session()
        self.state, self.session_id, self.state_reason = state, session_id, reason
        self.emit(p.GatewayEvent(state=state, session_id=session_id, reason=reason))

    def _take_requests(self) -> None:
        """The requests waiting on the ROUTER socket (poll said POLLIN), up to a bound so
        events keep flowing under a request flood. No exception ends the batch and no
        option is read per frame: a frame tells whether more of its message follow
        (`frame.more`), and a zero-timeout poll between messages whether another is
        waiting (reading the EVENTS option instead would build an enum per call)."""
        sock = self.router
        waiting, zmq_poll = [(sock, _POLLIN)], zmq.zmq_poll
        for _ in range(1000):
            try:
                frame = _recv(sock, _NOBLOCK, False)
            except zmq.Again:  # never raised when poll said POLLIN; free when not raised
                return
            frames = [frame.bytes]
            while frame.more:
                frame = _recv(sock, 0, False)
                frames.append(frame.bytes)
            commands.handle(self, frames)
            if not zmq_poll(waiting, 0):
                return

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
            calendar_last_day=self.lifecycle.window.calendar_last_day,
            disk_full=self.disk_full,
        )

    # -- stopping -----------------------------------------------------------------------------
    def ask_stop(self) -> None:
        """The signal handler's part (SIGTERM, SIGINT): the loop ends at its next turn."""
        self._stop_asked = min(self._stop_asked, time.monotonic())
        self.stopping = True
        self.post_wake()

    def shutdown(self) -> None:
        """Graceful stop: refuse new orders, answer what is in flight, publish `stopping`,
        flush the journal, give the answers given since the signal a moment to be read,
        stop the trader."""
        self._stop_asked = min(self._stop_asked, time.monotonic())
        self.stopping = True
        deadline = time.monotonic() + min(3.0, self.config.gateway.order_reply_timeout)
        while self.orders.waiting() and time.monotonic() < deadline:
            if not self._serve_stopping(deadline):
                break
        self.orders.expire(float("inf"))
        self._set_state("stopping", self.session_id, "gateway stopping")
        self._flush()
        # ZeroMQ drops a reply that reached a client but was not read yet when the
        # connection closes under it (a REQ socket connected with ZMQ_IMMEDIATE): answers
        # given since the signal (those in flight, refusals) get STOP_GRACE to be read
        # before the close. A stop with none given waits for nothing.
        if self._replied_at >= self._stop_asked:
            log.info("answers given since the signal get %g s to be read", STOP_GRACE)
            grace_end = self._replied_at + STOP_GRACE
            while time.monotonic() < grace_end and self._serve_stopping(grace_end):
                pass
        self.quotes.stop()
        self.lifecycle.stop()
        self._take_items()
        self._flush()
        self.close()

    def _serve_stopping(self, until: float) -> bool:
        """One turn while stopping: requests answered (orders, cancels, broker queries and
        market data refused: the gateway is stopping), the broker's answers taken, late
        orders told pending. False when the turn failed (the stop goes on without it)."""
        try:
            wait_ms = max(0, min(10, int((until - time.monotonic()) * 1000)))
            wake = self._wake_r.fileno()
            ready = dict(zmq.zmq_poll([(self.router, _POLLIN), (wake, _POLLIN)], wait_ms))
            if wake in ready:
                _drain(self._wake_r)
            self._take_items()
            if self.router in ready:
                self._take_requests()
            self.orders.expire(time.monotonic())
            self._flush()
        except Exception:
            log.exception("serving while stopping failed; stopping without it")
            return False
        return True

    def close(self) -> None:
        self.quotes_pub.close(linger=0)
        for sock in (self.pub, self.router):
            sock.close(linger=1000)
        if self.auth is not None:
            self.auth.stop()
        self.ctx.term()
        try:
            self.journal.close()
        except OSError as err:
            log.error("%s", _disk_full(err.strerror or str(err), "events still held are lost"))
        # A broker callback may still arrive (a trader whose stop() timed out): its
        # send() on the closed socket fails harmlessly (post_wake).
        self._wake_r.close()
        self._wake_w.close()


def _disk_full(reason: str, what: str) -> str:
    return f"disk full: the gateway cannot write its journal ({reason}); {what}"


def _path(data: str, name: str) -> Path:
    return Path(data) / name


def _drain(sock: socket.socket) -> None:
    """Empty the wake-up socket in one read (poll said it is readable; wake-ups come one
    per batch, so 64 KiB holds them all). Reading until BlockingIOError would cost an
    exception every turn; bytes left over only wake the next turn early."""
    with contextlib.suppress(BlockingIOError):
        sock.recv(65536)
