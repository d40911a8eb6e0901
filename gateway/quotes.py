"""Quotes on the bus: who subscribed to what (ref-counted per client, with leases), the tick
buffer between the broker and the I/O thread, and the quote thread that calls the broker.

Ticks travel on their own PUB socket (gateway.quotes_address), never on the
event stream: they are not journaled, their `seq` is the quotes stream's own
counter, and a burst of them can only ever cost ticks. On the way:

- the broker's thread hands ticks to `TickBuffer.put`, which keeps only the
  latest tick per symbol until the I/O thread takes it (a storm coalesces
  instead of queueing);
- the I/O thread publishes at most MAX_TICKS_PER_TURN ticks per loop turn,
  after the turn's events and replies, so commands and order events go first;
- every broker call that may block (xtdata's subscribe_quote, get_full_tick)
  runs on the quote thread, never on the I/O or the broker thread.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec
import zmq

from qmtbus import protocol as p
from qmtbus.gateway import marketdata
from qmtbus.gateway.handoff import (
    Answer,
    ChangeQuotes,
    CheckQuotes,
    Item,
    QueryMarketData,
    QueryQuotes,
    QuoteJob,
    QuotesChecked,
    TicksReady,
)

if TYPE_CHECKING:
    from qmtbus.gateway.server import Server

log = logging.getLogger("gateway.quotes")

# Ticks published per loop turn: more wait for the next turn, after its requests, so a burst
# of ticks (10,000/s over 100 symbols arrive 100 at a time) never holds an order up for
# more than a few hundred µs (bench/RESULTS.md, under load).
MAX_TICKS_PER_TURN = 64
_MORE = int(zmq.SNDMORE)
# libzmq's send without pyzmq's Python layer (send_multipart builds Frames and does enum
# arithmetic: 3.7-4.3 µs a tick against 1.2 µs, measured alone)
_send = zmq.backend.Socket.send


def tick_event(raw: Mapping[str, Any], **header: Any) -> p.TickEvent:
    """A broker's full tick (xtdata field names, plus "stock_code") as a `tick` event.

    Unknown keys are ignored; a value of the wrong type drops only that field. A tick that
    names no stock is no tick: ValueError."""
    if not raw.get("stock_code"):
        raise ValueError("a tick without a stock_code")
    values = {**raw, **header}
    try:
        return msgspec.convert(values, p.TickEvent, strict=False)
    except msgspec.ValidationError:
        clean: dict[str, Any] = {}
        for name in p.TickEvent.__struct_fields__:
            if name in values:
                try:
                    msgspec.convert({name: values[name]}, p.TickEvent, strict=False)
                except msgspec.ValidationError:
                    continue
                clean[name] = values[name]
        return msgspec.convert(clean, p.TickEvent, strict=False)


class Registry:
    """Which client holds which code, until when. A code is subscribed while anyone holds it;
    a holding not renewed within `lease` seconds lapses. I/O thread only."""

    def __init__(self, lease: float):
        self.lease = lease
        self._held: dict[str, dict[str, float]] = {}  # client_id -> code -> expires at
        self._holders: dict[str, int] = {}  # code -> number of clients holding it

    def __contains__(self, code: str) -> bool:
        return code in self._holders

    def union(self) -> list[str]:
        return sorted(self._holders)

    def held_by(self, client_id: str) -> list[str]:
        return sorted(self._held.get(client_id, ()))

    def subscribe(self, client_id: str, codes: list[str], now: float) -> list[str]:
        """Hold (or renew) `codes` for `client_id`; returns the codes new to the union."""
        held = self._held.setdefault(client_id, {})
        added = []
        for code in codes:
            if code not in held:
                count = self._holders.get(code, 0)
                if count == 0:
                    added.append(code)
                self._holders[code] = count + 1
            held[code] = now + self.lease
        return added

    def unsubscribe(self, client_id: str, codes: list[str]) -> list[str]:
        """Release `codes` for `client_id`; returns the codes nobody holds any more."""
        held = self._held.get(client_id, {})
        removed = [code for code in dict.fromkeys(codes) if code in held and self._release(code)]
        for code in codes:
            held.pop(code, None)
        if not held:
            self._held.pop(client_id, None)
        return removed

    def expire(self, now: float) -> list[str]:
        """Drop holdings whose lease ran out; returns the codes nobody holds any more."""
        removed = []
        for client_id, held in list(self._held.items()):
            for code, until in list(held.items()):
                if until <= now:
                    del held[code]
                    if self._release(code):
                        removed.append(code)
            if not held:
                del self._held[client_id]
        return removed

    def _release(self, code: str) -> bool:
        count = self._holders[code] - 1
        if count:
            self._holders[code] = count
            return False
        del self._holders[code]
        return True


class TickBuffer:
    """The latest tick per symbol, waiting for the I/O thread. `put` runs on the broker's
    thread; `take` on the I/O thread."""

    def __init__(self, post: Callable[[Item], None], epoch: str, account_id: str):
        self._post = post
        self._header = {"epoch": epoch, "account_id": account_id}
        self._lock = threading.Lock()
        self._latest: dict[str, p.TickEvent] = {}
        self._armed = False  # a TicksReady is on its way or the I/O thread is draining
        self.received = 0
        self.coalesced = 0  # ticks replaced by a newer one before they were published

    def put(self, raws: list[dict[str, Any]]) -> None:
        now = p.now_ns()
        ticks = []
        for raw in raws:
            try:
                ticks.append(tick_event(raw, ts=now, **self._header))
            except Exception:  # one malformed tick must not cost the batch
                log.exception("dropping a tick that does not convert: %r", raw)
        with self._lock:
            latest = self._latest
            before = len(latest)
            for tick in ticks:
                latest[tick.stock_code] = tick
            self.received += len(ticks)
            self.coalesced += before + len(ticks) - len(latest)
            wake = not self._armed and bool(latest)
            self._armed = self._armed or wake
        if wake:
            self._post(TicksReady())

    def take(self, limit: int) -> tuple[list[p.TickEvent], bool]:
        """Up to `limit` ticks, oldest symbol first; True when more are waiting."""
        with self._lock:
            latest = self._latest
            if len(latest) <= limit:
                ticks = list(latest.values())
                latest.clear()
                self._armed = False
                return ticks, False
            codes = list(itertools.islice(latest, limit))
            return [latest.pop(code) for code in codes], True


class QuoteWorker:
    """The quote thread: every broker call of the quotes path, one at a time, in order."""

    def __init__(self, broker: Any, post: Callable[[Item], None], epoch: str, account_id: str):
        self.broker = broker
        self.post = post
        self._header = {"epoch": epoch, "account_id": account_id}
        self.jobs: queue.Queue[QuoteJob | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="quotes", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def submit(self, job: QuoteJob) -> None:
        self.jobs.put(job)

    def stop(self, timeout: float = 5.0) -> None:
        if self.thread.is_alive():
            self.jobs.put(None)
            self.thread.join(timeout)

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            try:
                self._do(job)
            except Exception:
                log.exception("quote job %s failed", type(job).__name__)

    def _do(self, job: QuoteJob) -> None:
        broker = self.broker
        if isinstance(job, CheckQuotes):
            try:
                unknown = list(broker.subscribe_quotes(job.stock_codes))
            except Exception as err:
                log.warning("subscribe_quotes(%s) failed: %s", job.stock_codes, err)
                self.post(
                    QuotesChecked(
                        job.envelope,
                        job.json,
                        job.client_id,
                        job.stock_codes,
                        [],
                        error=str(err) or type(err).__name__,
                    )
                )
                return
            self.post(
                QuotesChecked(job.envelope, job.json, job.client_id, job.stock_codes, unknown)
            )
        elif isinstance(job, ChangeQuotes):
            if job.remove:
                broker.unsubscribe_quotes(job.remove)
            if job.add:
                broker.subscribe_quotes(job.add)
        elif isinstance(job, QueryQuotes):
            self.post(Answer(job.envelope, job.json, self._query(job.stock_codes)))
        elif isinstance(job, QueryMarketData):
            self.post(Answer(job.envelope, job.json, marketdata.answer(broker, job.command)))

    def _query(self, codes: list[str]) -> Any:
        try:
            raws = {code: self.broker.quote(code) for code in dict.fromkeys(codes)}
        except Exception as err:
            message = f"the broker could not give a quote: {err}"
            return p.ErrorReply(code=p.BROKER_ERROR, message=message)
        unknown = [code for code, raw in raws.items() if raw is None]
        if unknown:
            return p.ErrorReply(code=p.NOT_FOUND, message=_unknown_message(unknown))
        now = p.now_ns()
        quotes = [tick_event(raws[code] or {}, ts=now, **self._header) for code in codes]
        return p.QuotesReply(quotes=quotes)


def _unknown_message(codes: list[str]) -> str:
    names = ", ".join(codes)
    return f"no quote for {names}: the broker does not know {'it' if len(codes) == 1 else 'them'}"


class QuoteDesk:
    """The quotes path on the I/O thread: commands, leases, and publishing ticks."""

    def __init__(self, server: Server, sock: zmq.Socket[Any]):
        g = server.config.gateway
        self.server = server
        self.sock = sock
        self.registry = Registry(g.quote_lease)
        self.buffer = TickBuffer(server.post, server.epoch, server.account_id)
        self.worker = QuoteWorker(server.broker, server.post, server.epoch, server.account_id)
        self.seq = 0  # the quotes stream's own counter, per epoch
        self.pending = False  # ticks left in the buffer after the last turn
        self._expiry_step = min(1.0, g.quote_lease / 4)
        self._next_expiry = time.monotonic() + self._expiry_step
        server.broker.set_tick_sink(self.buffer.put)

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()
        b = self.buffer
        log.info(
            "quotes: %d ticks published, %d received, %d coalesced",
            self.seq,
            b.received,
            b.coalesced,
        )

    # -- commands ---------------------------------------------------------------------
    def subscribe(self, envelope: list[bytes], json: bool, cmd: p.SubscribeQuotes) -> None:
        client_id = _client_id(envelope, cmd.client_id)
        codes = list(dict.fromkeys(cmd.stock_codes))
        new = [code for code in codes if code not in self.registry]
        if new:
            # The broker must know them first; the answer comes back as QuotesChecked.
            self.worker.submit(CheckQuotes(envelope, json, client_id, codes))
            return
        self.registry.subscribe(client_id, codes, time.monotonic())
        self.server.reply(envelope, json, self._ack(client_id))

    def on_checked(self, item: QuotesChecked) -> None:
        registry = self.registry
        if item.error or item.unknown:
            # Nothing is held: undo what the check subscribed and nobody else holds.
            stray = [c for c in item.stock_codes if c not in registry and c not in item.unknown]
            if stray:
                self.worker.submit(ChangeQuotes(add=[], remove=stray))
            if item.error:
                message = f"the broker could not subscribe: {item.error}"
                reply = p.ErrorReply(code=p.BROKER_ERROR, message=message)
            else:
                reply = p.ErrorReply(code=p.NOT_FOUND, message=_unknown_message(item.unknown))
            self.server.reply(item.envelope, item.json, reply)
            return
        added = registry.subscribe(item.client_id, item.stock_codes, time.monotonic())
        if added:
            # Again, in order behind any removal queued since the check (idempotent).
            self.worker.submit(ChangeQuotes(add=added, remove=[]))
        self.server.reply(item.envelope, item.json, self._ack(item.client_id))

    def unsubscribe(self, envelope: list[bytes], json: bool, cmd: p.UnsubscribeQuotes) -> None:
        client_id = _client_id(envelope, cmd.client_id)
        removed = self.registry.unsubscribe(client_id, list(cmd.stock_codes))
        if removed:
            self.worker.submit(ChangeQuotes(add=[], remove=removed))
        self.server.reply(envelope, json, self._ack(client_id))

    def query(self, envelope: list[bytes], json: bool, cmd: p.QueryQuote) -> None:
        self.worker.submit(QueryQuotes(envelope, json, list(cmd.stock_codes)))

    def _ack(self, client_id: str) -> p.QuotesAck:
        return p.QuotesAck(
            stock_codes=self.registry.held_by(client_id),
            subscribed=self.registry.union(),
            quote_lease=self.registry.lease,
        )

    # -- each loop turn -----------------------------------------------------------------
    def next_deadline(self) -> float:
        return self._next_expiry

    def expire(self, now: float) -> None:
        if now < self._next_expiry:
            return
        self._next_expiry = now + self._expiry_step
        removed = self.registry.expire(now)
        if removed:
            log.info("quote lease ran out for %s", ", ".join(removed))
            self.worker.submit(ChangeQuotes(add=[], remove=removed))

    def publish(self) -> None:
        """Publish up to MAX_TICKS_PER_TURN waiting ticks of subscribed symbols. The PUB
        socket drops what a slow subscriber cannot take (quotes_hwm): only ticks."""
        ticks, self.pending = self.buffer.take(MAX_TICKS_PER_TURN)
        sock, encode, replace = self.sock, p.msgpack_encoder.encode, msgspec.structs.replace
        for tick in ticks:
            if tick.stock_code not in self.registry:
                continue  # unsubscribed while the tick was on its way
            self.seq += 1
            payload = encode(replace(tick, seq=self.seq))
            _send(sock, b"tick." + tick.stock_code.encode("ascii"), _MORE)
            _send(sock, payload)


def _client_id(envelope: list[bytes], given: str) -> str:
    """The client's own name, else its socket: REQ peers get a new identity on every
    reconnect, so a client that reconnects should name itself (or let the lease clean up)."""
    return given or "socket:" + envelope[0].hex()
