"""EventStream: the gateway's events in seq order, each once, holes filled from the journal.

A SUB socket may drop messages (slow joiner, high-water mark, a reconnect), so
the stream subscribes to every topic, tracks the (epoch, seq) it has seen, and
fills any hole with the gateway's `replay` command before delivering what
comes after it. Filtering by type happens here, after sequencing: with a
prefix subscription the seqs of other types would look like holes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec
import zmq
import zmq.asyncio

from qmtbus import protocol
from qmtbus.aio import AsyncGateway
from qmtbus.client import CurveKeys, Gateway, client_curve, resolve_config
from qmtbus.config import Config
from qmtbus.errors import GatewayError, GatewaySilent
from qmtbus.keys import secure_client
from qmtbus.sequencer import Gap, Position, Sequencer, unsequenced

__all__ = ["AsyncEventStream", "EventStream", "Gap", "QuoteStream", "Sequencer"]

log = logging.getLogger("qmtbus.stream")

# Ticks travel on the quotes socket (QuoteStream), outside the journaled seq order.
QUOTE_TYPE_NAMES = frozenset({"tick"})
EVENT_TYPE_NAMES = (
    frozenset(str(cls.__struct_config__.tag) for cls in protocol.EVENT_TYPES) - QUOTE_TYPE_NAMES
)


def normalize_types(types: Iterable[str | bytes]) -> frozenset[str]:
    """ "trade", "trade." and b"trade." all mean the trade events; unknown names are an error."""
    names = set()
    for t in types:
        name = (t.decode("ascii") if isinstance(t, bytes) else t).rstrip(".")
        if name in QUOTE_TYPE_NAMES:
            raise ValueError(
                f"{name} events come on the quotes socket, not the event bus: use QuoteStream"
            )
        if name not in EVENT_TYPE_NAMES:
            known = ", ".join(sorted(EVENT_TYPE_NAMES))
            raise ValueError(f"unknown event type {name!r}; known types: {known}")
        names.add(name)
    return frozenset(names)


def _from_config(
    cls: Any,
    client: Any,
    config: Config | str | os.PathLike[str] | None,
    types: Iterable[str | bytes],
    kw: dict[str, Any],
) -> Any:
    """A stream of the gateway `config` names, with a client of its own (closed with it)."""
    config = resolve_config(config)
    gateway = client.from_config(config)
    try:
        stream = cls(
            config.gateway.events_address,
            types=types,
            gateway=gateway,
            curve=client_curve(config),
            **kw,
        )
    except BaseException:
        gateway.close()
        raise
    stream._own_gateway = True
    return stream


class _Base:
    """What the blocking and the asyncio stream share: filtering, callbacks, silence."""

    def __init__(
        self,
        events_address: str,
        types: Iterable[str | bytes],
        account: str | None,
        stale_after: float,
    ) -> None:
        self.events_address = events_address
        self.types = normalize_types(types)
        self.account = account
        self.stale_after = stale_after
        self.curve = False  # names CURVE keys as a likely cause of silence
        self.lost: list[Gap] = []  # holes the gateway could no longer replay
        self.bad_payloads = 0
        self._ready: deque[protocol.Event] = deque()
        self._held: protocol.Event | None = None  # live event waiting for its hole to fill
        self._last_rx = time.monotonic()
        self._seq = Sequencer(None)
        self._handlers: dict[str, list[Callable[[Any], None]]] = {}
        self._silent_handlers: list[Callable[[GatewaySilent], None]] = []
        self._epoch_handlers: list[Callable[[str], None]] = []

    @property
    def position(self) -> Position | None:
        """(epoch, seq) of the last event taken in order: pass it as `start_from` to resume."""
        return None if self._seq.epoch is None else (self._seq.epoch, self._seq.seq)

    def on(self, event_type: str, fn: Callable[[Any], None]) -> None:
        """Call `fn(event)` for each delivered event of `event_type` ("*": every event)."""
        name = "*" if event_type == "*" else next(iter(normalize_types([event_type])))
        self._handlers.setdefault(name, []).append(fn)

    def on_silent(self, fn: Callable[[GatewaySilent], None]) -> None:
        """Call `fn(err)` instead of raising when the gateway goes silent inside run()."""
        self._silent_handlers.append(fn)

    def on_new_epoch(self, fn: Callable[[str], None]) -> None:
        """Call `fn(epoch)` when a new epoch starts (the gateway restarted)."""
        self._epoch_handlers.append(fn)

    def _dispatch(self, ev: protocol.Event) -> None:
        for fn in self._handlers.get(protocol.event_type(ev), ()):
            fn(ev)
        for fn in self._handlers.get("*", ()):
            fn(ev)

    def _wanted(self, ev: protocol.Event) -> bool:
        return (not self.types or protocol.event_type(ev) in self.types) and (
            self.account is None or ev.account_id == self.account
        )

    def _decode(self, frames: list[bytes]) -> protocol.Event | None:
        self._last_rx = time.monotonic()
        try:
            return protocol.decode_event(frames[-1])
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            self.bad_payloads += 1
            log.warning("dropped an undecodable event payload: %s", err)
            return None

    def _accept(self, ev: protocol.Event) -> None:
        before, previous = self._seq.new_epochs, self._seq.epoch
        taken = self._seq.accept(ev)
        # a heartbeat without a seq of its own is delivered, never counted
        if (taken or (unsequenced(ev) and not self._seq.is_old(ev.epoch))) and self._wanted(ev):
            self._ready.append(ev)
        if self._seq.new_epochs != before:
            if previous:
                self._seq.finish(previous)  # its tail was replayed before this event
            log.info("gateway at %s started a new epoch %s", self.events_address, ev.epoch)
            for fn in self._epoch_handlers:
                fn(ev.epoch)

    def _new_epoch(self, ev: protocol.Event) -> bool:
        """The gateway restarted since the last event taken (maybe more than once)."""
        return bool(self._seq.epoch) and ev.epoch > str(self._seq.epoch)

    def _learn(self, listing: protocol.EpochsReply | None) -> None:
        """Which epochs the gateway held since ours: the ones started while this stream
        did not hear them are replayed too, in order, before the new event."""
        if listing is None or not self._seq.epoch:
            return
        ours = self._seq.epoch
        held = [(e.epoch, e.first_seq, e.last_seq) for e in listing.epochs if e.epoch >= ours]
        for gone in self._seq.held(held, listing.current):
            self._seq.finish(gone)  # whether its tail held anything cannot be told

    def _after_fill(self, gap: Gap) -> None:
        have = self._seq.position(gap.epoch)
        if gap.to_seq is not None and self._seq.epoch == gap.epoch and have < gap.to_seq:
            self._lose(Gap(gap.epoch, have + 1, gap.to_seq))
            self._seq.skip_to(gap.epoch, gap.to_seq)

    def _skip_lost(self, epoch: str, from_seq: int, err: GatewayError) -> int | None:
        """A NOT_FOUND that names an end to what is lost (trimmed, damaged): record the
        loss and return the seq to replay on from; None when the replay cannot go on."""
        lost = err.lost
        if err.code != protocol.NOT_FOUND or lost is None or lost.to_seq is None:
            return None
        if lost.to_seq < from_seq:
            return None
        self._lose(Gap(epoch, from_seq, lost.to_seq))
        self._seq.skip_to(epoch, lost.to_seq)
        return lost.to_seq + 1

    def _lose(self, gap: Gap) -> None:
        self.lost.append(gap)
        log.warning(
            "events %s..%s of epoch %s are no longer held by the gateway; this stream missed them",
            gap.from_seq,
            gap.to_seq if gap.to_seq is not None else "end",
            gap.epoch,
        )

    def _replay_failed(self, gap: Gap, err: GatewayError) -> None:
        if err.code != protocol.NOT_FOUND:
            raise err
        if gap.to_seq is not None:  # an open-ended tail of an old epoch may just be empty
            self._lose(gap)

    def _silence(self) -> GatewaySilent | None:
        quiet = time.monotonic() - self._last_rx
        if quiet < self.stale_after:
            return None
        self._last_rx = time.monotonic()  # report once per stale period
        keys = ", and does it accept this client's CURVE key" if self.curve else ""
        return GatewaySilent(
            f"no event or heartbeat from the gateway at {self.events_address} for "
            f"{quiet:.1f} s — is it running{keys}?",
            self.events_address,
            quiet,
        )

    def _wait_ms(self, deadline: float | None) -> int:
        now = time.monotonic()
        wait = self._last_rx + self.stale_after - now
        if deadline is not None:
            wait = min(wait, deadline - now)
        return max(0, int(wait * 1000) + 1)


def _sub_socket(sock: zmq.Socket[Any], address: str, curve: CurveKeys | None, rcvhwm: int) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, rcvhwm)
    secure_client(sock, curve)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(address)


class EventStream(_Base):
    """The gateway's events, in seq order, each once. Not thread-safe: one thread reads it.

    `for ev in stream`, `stream.next(timeout)`, or callbacks with `stream.on("trade", fn)`
    then `stream.run()` / `stream.run_in_thread()`. `types` filters delivery
    ("trade", "order", ...; none: all, heartbeats included); `account` keeps one
    account's events. `start_from=(epoch, seq)` resumes after that event;
    without it the stream starts at the gateway's current position, so every
    event after the stream was made is delivered. Raises GatewaySilent when
    nothing (not even a heartbeat) came for `stale_after` seconds.
    """

    @classmethod
    def from_config(
        cls,
        config: Config | str | os.PathLike[str] | None = None,
        types: Iterable[str | bytes] = (),
        **kw: Any,
    ) -> EventStream:
        """A stream of the gateway `config` names (a Config, a TOML path, or None)."""
        return _from_config(cls, Gateway, config, types, kw)

    def __init__(
        self,
        events_address: str = "tcp://127.0.0.1:7101",
        *,
        types: Iterable[str | bytes] = (),
        account: str | None = None,
        start_from: Position | None = None,
        stale_after: float = 3.0,
        gateway: Gateway | None = None,
        commands_address: str = "tcp://127.0.0.1:7102",
        timeout: float = 5.0,
        retries: int = 3,
        curve: CurveKeys | None = None,
        rcvhwm: int = 100_000,
        context: zmq.Context[Any] | None = None,
    ) -> None:
        super().__init__(events_address, types, account, stale_after)
        self._own_gateway = gateway is None
        self.gateway = gateway or Gateway(
            commands_address, events_address, timeout, retries, curve=curve
        )
        self._sock: zmq.Socket[Any] = (context or zmq.Context.instance()).socket(zmq.SUB)
        _sub_socket(self._sock, events_address, curve, rcvhwm)
        self.curve = curve is not None
        self._stop = threading.Event()
        self.error: BaseException | None = None  # what ended run_in_thread()
        self._thread: threading.Thread | None = None
        self._seq = Sequencer(start_from or self._now())
        self._catch_up = start_from is not None

    def _now(self) -> Position:
        try:
            status = self.gateway.status()
        except TimeoutError:
            # Not running yet: everything of the epoch it will start is new to us.
            return ("", 0)
        return (status.epoch, status.last_seq)

    def next(self, timeout: float | None = None) -> protocol.Event | None:
        """The next event, or None when `timeout` passed without one.

        Raises GatewaySilent after `stale_after` seconds without any message,
        GatewayUnreachable when a hole needs the gateway and it does not answer.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._catch_up:
            assert self._seq.epoch is not None
            self._fill(Gap(self._seq.epoch, self._seq.seq + 1, None))
            self._catch_up = False
        if self._held is not None:
            held, self._held = self._held, None
            self._take(held)
        while not self._ready:
            if self._sock.poll(self._wait_ms(deadline)):
                ev = self._decode(self._sock.recv_multipart())
                if ev is not None:
                    self._take(ev)
                continue
            silent = self._silence()
            if silent is not None:
                raise silent
            if deadline is not None and time.monotonic() >= deadline:
                return None
        return self._ready.popleft()

    def _take(self, ev: protocol.Event) -> None:
        try:
            if self._new_epoch(ev):
                self._learn(self._held_epochs())
            for gap in self._seq.gaps(ev):
                self._fill(gap)
        except BaseException:
            self._held = ev  # retried on the next call: nothing is skipped
            raise
        self._accept(ev)

    def _held_epochs(self) -> protocol.EpochsReply | None:
        try:
            return self.gateway.epochs()
        except GatewayError as err:
            if err.code == protocol.UNKNOWN_TYPE:
                return None  # an older gateway: epochs between the two are not known
            raise

    def _fill(self, gap: Gap) -> None:
        log.debug("replaying %s", gap)
        from_seq = gap.from_seq
        while gap.to_seq is None or from_seq <= gap.to_seq:
            limit = 1000 if gap.to_seq is None else min(1000, gap.to_seq - from_seq + 1)
            try:
                reply = self.gateway.replay(gap.epoch, from_seq, limit)
            except GatewayError as err:
                resume = self._skip_lost(gap.epoch, from_seq, err)
                if resume is None:
                    self._replay_failed(Gap(gap.epoch, from_seq, gap.to_seq), err)
                    return
                from_seq = resume
                continue
            for ev in reply.events:
                self._accept(ev)
            if not reply.events or not reply.more:
                break
            from_seq = reply.events[-1].seq + 1
        self._after_fill(gap)

    def __iter__(self) -> Iterator[protocol.Event]:
        return self

    def __next__(self) -> protocol.Event:
        ev = self.next()
        assert ev is not None
        return ev

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Deliver events to the `on` callbacks until stop() (or `until()` is true).

        GatewaySilent goes to the on_silent callbacks, or is raised when there are none.
        """
        self._stop.clear()
        while not self._stop.is_set() and not (until is not None and until()):
            try:
                ev = self.next(timeout=0.1)
            except GatewaySilent as err:
                if not self._silent_handlers:
                    raise
                for fn in self._silent_handlers:
                    fn(err)
                continue
            if ev is not None:
                self._dispatch(ev)

    def run_in_thread(self) -> threading.Thread:
        """run() on a daemon thread; what ended it (if anything) is left in `error`."""

        def target() -> None:
            try:
                self.run()
            except BaseException as err:
                self.error = err
                log.exception("event stream of %s stopped", self.events_address)

        thread = threading.Thread(target=target, name="qmtbus-stream", daemon=True)
        thread.start()
        self._thread = thread
        return thread

    def stop(self) -> None:
        """Make run() return (from any thread) within about 0.1 s."""
        self._stop.set()

    def close(self) -> None:
        """Stop run_in_thread()'s thread (a socket must not be closed under its reader)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        self._sock.close(0)
        if self._own_gateway:
            self.gateway.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncEventStream(_Base):
    """EventStream for asyncio: `async for ev in stream`, `await stream.next(timeout)`.

    Same sequencing, replay, filtering and silence rules as EventStream. Call
    `await stream.start()` (or use `async with`) before reading, to fix the
    starting position.
    """

    @classmethod
    def from_config(
        cls,
        config: Config | str | os.PathLike[str] | None = None,
        types: Iterable[str | bytes] = (),
        **kw: Any,
    ) -> AsyncEventStream:
        """A stream of the gateway `config` names (a Config, a TOML path, or None)."""
        return _from_config(cls, AsyncGateway, config, types, kw)

    def __init__(
        self,
        events_address: str = "tcp://127.0.0.1:7101",
        *,
        types: Iterable[str | bytes] = (),
        account: str | None = None,
        start_from: Position | None = None,
        stale_after: float = 3.0,
        gateway: AsyncGateway | None = None,
        commands_address: str = "tcp://127.0.0.1:7102",
        timeout: float = 5.0,
        retries: int = 3,
        curve: CurveKeys | None = None,
        rcvhwm: int = 100_000,
    ) -> None:
        super().__init__(events_address, types, account, stale_after)
        self._own_gateway = gateway is None
        self.gateway = gateway or AsyncGateway(
            commands_address, events_address, timeout, retries, curve=curve
        )
        self._sock = zmq.asyncio.Context.instance().socket(zmq.SUB)
        _sub_socket(self._sock, events_address, curve, rcvhwm)
        self.curve = curve is not None
        self._start_from = start_from
        self._started = False

    async def start(self) -> None:
        """Fix the starting position: `start_from` (replayed now) or the gateway's current one."""
        if self._started:
            return
        if self._start_from is None:
            try:
                status = await self.gateway.status()
                self._start_from = (status.epoch, status.last_seq)
            except TimeoutError:
                self._start_from = ("", 0)  # not running: its next epoch is all new
            self._seq = Sequencer(self._start_from)
        else:
            if self._seq.epoch is None:
                self._seq = Sequencer(self._start_from)
            # resumes where an interrupted catch-up stopped
            await self._fill(Gap(self._start_from[0], self._seq.seq + 1, None))
        self._started = True

    async def next(self, timeout: float | None = None) -> protocol.Event | None:
        await self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._held is not None:
            held, self._held = self._held, None
            await self._take(held)
        while not self._ready:
            if await self._sock.poll(self._wait_ms(deadline)):
                ev = self._decode(await self._sock.recv_multipart())
                if ev is not None:
                    await self._take(ev)
                continue
            silent = self._silence()
            if silent is not None:
                raise silent
            if deadline is not None and time.monotonic() >= deadline:
                return None
        return self._ready.popleft()

    async def _take(self, ev: protocol.Event) -> None:
        try:
            if self._new_epoch(ev):
                self._learn(await self._held_epochs())
            for gap in self._seq.gaps(ev):
                await self._fill(gap)
        except BaseException:
            self._held = ev
            raise
        self._accept(ev)

    async def _held_epochs(self) -> protocol.EpochsReply | None:
        try:
            return await self.gateway.epochs()
        except GatewayError as err:
            if err.code == protocol.UNKNOWN_TYPE:
                return None  # an older gateway: epochs between the two are not known
            raise

    async def _fill(self, gap: Gap) -> None:
        from_seq = gap.from_seq
        while gap.to_seq is None or from_seq <= gap.to_seq:
            limit = 1000 if gap.to_seq is None else min(1000, gap.to_seq - from_seq + 1)
            try:
                reply = await self.gateway.replay(gap.epoch, from_seq, limit)
            except GatewayError as err:
                resume = self._skip_lost(gap.epoch, from_seq, err)
                if resume is None:
                    self._replay_failed(Gap(gap.epoch, from_seq, gap.to_seq), err)
                    return
                from_seq = resume
                continue
            for ev in reply.events:
                self._accept(ev)
            if not reply.events or not reply.more:
                break
            from_seq = reply.events[-1].seq + 1
        self._after_fill(gap)

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> protocol.Event:
        ev = await self.next()
        assert ev is not None
        return ev

    def close(self) -> None:
        self._sock.close(0)
        if self._own_gateway:
            self.gateway.close()

    async def __aenter__(self) -> AsyncEventStream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class QuoteStream:
    """Ticks of some codes from the gateway's quotes socket: `for tick in stream`, `next(timeout)`.

    Ticks are market data, not bus events: they are not journaled or replayed,
    and a slow reader loses ticks rather than holding anyone up, so there is no
    seq tracking here. The stream subscribes on creation (NOT_FOUND raises for
    a code the broker does not know), renews the hold while it is read (every
    third of the gateway's quote_lease, and after `resubscribe_after` seconds
    without a tick: a restarted gateway has forgotten every subscription), and
    unsubscribes on close.

    `hold=False` only listens: nothing is subscribed at the gateway, and the
    stream gets the ticks other clients hold (of `stock_codes`, or of every
    code when none are given), as `qmtbus tail --type tick` shows them.
    """

    def __init__(
        self,
        gateway: Gateway,
        stock_codes: Iterable[str],
        *,
        hold: bool = True,
        resubscribe_after: float = 10.0,
        rcvhwm: int = 10_000,
        context: zmq.Context[Any] | None = None,
    ) -> None:
        self.stock_codes = list(dict.fromkeys(stock_codes))
        if hold and not self.stock_codes:
            raise ValueError("a quote stream needs at least one stock code")
        self.hold = hold
        self.resubscribe_after = resubscribe_after
        self.gateway = gateway
        self._sock: zmq.Socket[Any] = (context or zmq.Context.instance()).socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, rcvhwm)
        secure_client(self._sock, gateway.curve)
        for topic in [f"tick.{code}" for code in self.stock_codes] or ["tick."]:
            self._sock.setsockopt(zmq.SUBSCRIBE, topic.encode("ascii"))
        self._sock.connect(gateway.quotes_address)
        self._renew_every = 60.0
        if hold:
            try:
                ack = gateway.subscribe_quotes(self.stock_codes)
            except BaseException:
                self._sock.close(0)
                raise
            if ack.quote_lease > 0:
                self._renew_every = ack.quote_lease / 3
        self._last_tick = time.monotonic()
        self._next_renew = self._last_tick + self._renew_every if hold else float("inf")

    def next(self, timeout: float | None = None) -> protocol.TickEvent | None:
        """The next tick of one of the codes, or None when `timeout` passed without one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            now = time.monotonic()
            renew_at = self._next_renew
            if self.hold:
                renew_at = min(renew_at, self._last_tick + self.resubscribe_after)
            if now >= renew_at:
                self._renew()
                self._last_tick = now  # once per quiet spell, not in a loop
                continue
            until = renew_at if deadline is None else min(renew_at, deadline)
            wait = None if until == float("inf") else max(0, int((until - now) * 1000) + 1)
            if self._sock.poll(wait):
                frames = self._sock.recv_multipart()
                try:
                    tick = protocol.decode_event(frames[-1])
                except (msgspec.DecodeError, msgspec.ValidationError) as err:
                    log.warning("dropped an undecodable tick: %s", err)
                    continue
                if isinstance(tick, protocol.TickEvent):
                    self._last_tick = time.monotonic()
                    return tick
            elif deadline is not None and time.monotonic() >= deadline:
                return None

    def _renew(self) -> None:
        try:
            self.gateway.subscribe_quotes(self.stock_codes)
            self._next_renew = time.monotonic() + self._renew_every
        except TimeoutError as err:
            # keep reading what comes; try again soon, well inside the lease
            log.warning("could not renew the quote subscription: %s", err)
            self._next_renew = time.monotonic() + min(5.0, self._renew_every)

    def __iter__(self) -> Iterator[protocol.TickEvent]:
        return self

    def __next__(self) -> protocol.TickEvent:
        tick = self.next()
        assert tick is not None
        return tick

    def close(self) -> None:
        """Unsubscribe (best effort: the lease ends it anyway) and close the socket."""
        self._sock.close(0)
        if not self.hold:
            return
        try:
            self.gateway.unsubscribe_quotes(self.stock_codes)
        except (TimeoutError, GatewayError) as err:
            log.info("quote unsubscribe not confirmed (%s); the lease will end it", err)

    def __enter__(self) -> QuoteStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
