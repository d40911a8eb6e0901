"""The clone pattern: subscribe first, replay what is not recorded yet, then live.

The ingest accepts exactly the next seq of each epoch (the shared sans-IO
`Sequencer` says what must come first). At start, and whenever the gateway
starts a new epoch, it asks the gateway which epochs its journal holds
(`epochs`) and replays every one it has not finished, oldest first; a hole in
the live stream, or a heartbeat that names a seq we lack, is replayed before
anything after it is taken. What the journal no longer holds (trimmed,
damaged on disk, a whole epoch gone) comes back as a structured `lost` field
and is written down in `gaps`, never skipped silently.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

import msgspec
import zmq

from qmtbus import GatewayError, protocol
from qmtbus.client import Gateway, client_curve
from qmtbus.config import Config
from qmtbus.keys import secure_client
from qmtbus.recorder import schema
from qmtbus.recorder.state import Committed
from qmtbus.recorder.writer import Batch, bad_row, gap_row
from qmtbus.sequencer import Sequencer, before

log = logging.getLogger(__name__)

REPLAY_CHUNK = 2000  # events per replay request (the protocol allows up to 10,000)
READ_CHUNK = 1000  # live messages taken per poll before checking the batch
# Messages ZeroMQ queues for us while the writer is busy; past it the gateway's
# queue fills, then drops, and the hole is replayed. Bounds our memory.
SUB_HWM = 20_000
RETRY_SECONDS = 2.0  # an unreachable gateway is asked again this often
IDLE_POLL = 0.25

EVENT_TYPES = frozenset(str(cls.__struct_config__.tag) for cls in protocol.EVENT_TYPES)


class GatewayPort(Protocol):
    """What the ingest asks of the gateway (the client's `Gateway`, or a fake in tests)."""

    def status(self) -> protocol.Status: ...

    def epochs(self) -> protocol.EpochsReply: ...

    def replay(self, epoch: str, from_seq: int, limit: int = 1000) -> protocol.ReplayReply: ...

    def close(self) -> None: ...


class WriterPort(Protocol):
    """What the ingest asks of the writer thread (`Writer`, or a fake in tests)."""

    positions: dict[str, int]
    complete: set[str]
    fatal: BaseException | None
    failing: bool

    @property
    def idle(self) -> bool: ...

    def submit(self, batch: Batch, timeout: float) -> bool: ...


class _Header(msgspec.Struct):
    """What sequencing needs; every other field is skipped by the decoder."""

    type: str
    epoch: str
    seq: int
    last_seq: int = 0  # heartbeats only: the newest seq before it


_header = msgspec.msgpack.Decoder(_Header)
_generic = msgspec.msgpack.Decoder()
_json = msgspec.json.Encoder()


class Ingest:
    """Reads the bus, keeps order, hands batches to the writer. Runs on the main thread."""

    def __init__(
        self,
        config: Config,
        writer: WriterPort,
        committed: Committed,
        stop: threading.Event,
        context: zmq.Context[Any] | None = None,
        gateway: GatewayPort | None = None,
    ) -> None:
        self.config = config
        self.writer = writer
        self.committed = committed
        self.stop = stop
        self.batch_rows = config.recorder.batch_rows
        self.batch_seconds = config.recorder.batch_seconds
        # accepted = committed or waiting in a batch; ahead of DuckDB, never behind it.
        # Epoch "" until the first one is known: then everything of it is wanted.
        positions = dict(writer.positions)
        self.seq = Sequencer(None if positions else ("", 0), positions)
        self.seq.finished |= writer.complete
        self.saved_finished = set(writer.complete)  # finished epochs already in a batch
        self.pending = False  # something is still to fetch (the gateway did not answer)
        self.retry_at = 0.0
        self.unreachable = False
        self.batch = Batch()
        self.gateway_seq = 0  # newest seq seen from the gateway, reported with each hand-off
        self.dry = False  # the socket had nothing more to read at the last look
        self.gateway: GatewayPort = gateway or Gateway(
            config.gateway.commands_address,
            config.gateway.events_address,
            timeout=config.client.timeout,
            retries=1,
            curve=client_curve(config),
        )
        self.sock: zmq.Socket[Any] = (context or zmq.Context.instance()).socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, SUB_HWM)
        secure_client(self.sock, client_curve(config))
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(config.gateway.events_address)

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        """Catch up with the gateway, then follow it until `stop`; hands over what is left."""
        self.start()
        while not self.stop.is_set():
            if self.writer.fatal is not None:
                raise RuntimeError("the writer thread stopped") from self.writer.fatal
            self._read(self._poll_ms())
            self._maybe_hand_off()
            if self.pending and time.monotonic() >= self.retry_at:
                self.sync()
        self.hand_off()

    def close(self) -> None:
        self.sock.close(0)
        self.gateway.close()

    def start(self) -> None:
        """Replay what we lack of every epoch the gateway holds before reading live events."""
        if not self.sync() and self.seq.epoch in (None, ""):
            log.warning(
                "gateway not reachable at %s; recording starts with its first event",
                self.config.gateway.commands_address,
            )

    def _poll_ms(self) -> int:
        if len(self.batch):
            due = self.batch.created + self.batch_seconds - time.monotonic()
            return max(0, int(min(due, IDLE_POLL) * 1000))
        return int(IDLE_POLL * 1000)

    def _read(self, timeout_ms: int) -> None:
        self.dry = False
        if not self.sock.poll(timeout_ms):
            self.dry = True
            return
        for _ in range(READ_CHUNK):
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                self.dry = True
                return
            self.on_live(frames)
            if len(self.batch) >= self.batch_rows:
                self.hand_off()

    # -- batches --------------------------------------------------------------------------
    def _maybe_hand_off(self) -> None:
        batch = self.batch
        if not len(batch):
            batch.created = time.monotonic()
            return
        # A small batch goes at once when the writer is idle and the socket is empty:
        # at low rates each event is visible within milliseconds; under load batches
        # grow to batch_rows (or wait batch_seconds) and the writer joins queued ones.
        if (
            len(batch) >= self.batch_rows
            or time.monotonic() - batch.created >= self.batch_seconds
            or (self.dry and self.writer.idle)
        ):
            self.hand_off()

    def hand_off(self) -> None:
        """Give the batch to the writer; while its queue is full we do not read the socket."""
        if not len(self.batch):
            return
        batch, self.batch = self.batch, Batch()
        if self.gateway_seq:
            self.committed.gateway_seq(self.gateway_seq)
        waited = 0.0
        while not self.writer.submit(batch, timeout=0.5):
            if self.writer.fatal is not None:
                raise RuntimeError("the writer thread stopped") from self.writer.fatal
            waited += 0.5
            if self.stop.is_set() and waited >= 5.0 and self.writer.failing:
                log.error(
                    "could not write %d events before stopping; they are replayed at the next "
                    "start while the gateway's journal holds them",
                    len(batch),
                )
                return

    # -- live events ----------------------------------------------------------------------
    def on_live(self, frames: list[bytes]) -> None:
        payload = frames[-1]
        topic = frames[0] if len(frames) > 1 else b""
        try:
            head = _header.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            self.batch.bad.append(bad_row("live", f"undecodable: {err}", topic, payload))
            return
        if head.type in schema.NOT_RECORDED:
            reason = f"a {head.type!r} message is market data, not a bus event; not recorded"
            self.batch.bad.append(bad_row("live", reason, topic, payload, head.epoch, head.seq))
            return
        if head.seq < 1 or not head.epoch:
            reason = f"no valid (epoch, seq) in a {head.type!r} event"
            self.batch.bad.append(bad_row("live", reason, topic, payload, head.epoch, head.seq))
            return
        seq = self.seq
        if seq.is_old(head.epoch):
            # a straggler of an older run: what we lack of it comes by replay
            if head.seq > seq.position(head.epoch) and head.epoch not in seq.finished:
                self._later()
            return
        if head.epoch != seq.epoch and seq.epoch:
            log.info(
                "gateway started epoch %s; fetching what is not recorded of older epochs first",
                head.epoch,
            )
            if not self.sync(until=head.epoch):
                seq.switch(head.epoch)  # record the new epoch now; the old ones later
        self.gateway_seq = max(before(head), head.seq)
        for gap in seq.gaps(head):
            if not self._catch_up(gap.epoch, gap.to_seq):
                break
        if seq.position(head.epoch) < before(head):
            seq.switch(head.epoch)
            self._later()  # the hole could not be filled yet: this event comes by replay
            return
        if seq.accept(head):
            self._accept(payload, topic, head, "live")

    def _accept(self, payload: bytes, topic: bytes, head: _Header, source: str) -> None:
        """Take the next event; an unknown or invalid one is kept in `events` and `bad_events`."""
        try:
            ev: Any = protocol.decode_event(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            if head.type in EVENT_TYPES:
                reason = f"invalid {head.type} event: {err}"
            else:
                reason = f"unknown event type {head.type!r} (a newer gateway?): {err}"
            self.batch.bad.append(bad_row(source, reason, topic, payload, head.epoch, head.seq))
            ev = _as_row(payload, head)
        self.batch.add(ev, head.epoch, head.seq)

    # -- replay ---------------------------------------------------------------------------
    def sync(self, until: str | None = None) -> bool:
        """Ask which epochs the gateway holds; write down the ones it no longer holds; replay
        every one not finished, oldest first (only those before `until`, when given).

        True when done; False when the gateway did not answer (tried again later).
        """
        if time.monotonic() < self.retry_at:
            self.pending = True
            return False
        try:
            listing = self.gateway.epochs()
        except GatewayError as err:
            if err.code != protocol.UNKNOWN_TYPE:
                return self._failed(f"asking the gateway for its epochs failed: {err}")
            older = self._epochs_of_an_older_gateway()
            if older is None:
                return False
            listing = older
        except TimeoutError as err:
            return self._failed(str(err))
        self._answered()
        held = [(e.epoch, e.first_seq, e.last_seq) for e in listing.epochs]
        if held:
            for epoch in self.seq.held(held, listing.current):
                self._gap(epoch, self.seq.position(epoch) + 1, None, "not_held")
                self.seq.finish(epoch)
        if listing.current:
            self.seq.switch(listing.current)
        current = next((e for e in listing.epochs if e.epoch == listing.current), None)
        if current is not None:
            self.gateway_seq = max(self.gateway_seq, current.last_seq)
            self.committed.gateway_seq(current.last_seq)
        for gap in self.seq.unfinished(until=until):
            if not self._catch_up(gap.epoch, gap.to_seq):
                return False
        self._save_finished()
        self.pending = False
        return True

    def _epochs_of_an_older_gateway(self) -> protocol.EpochsReply | None:
        """A gateway without `epochs`: its current epoch from `status`, older ones unknown."""
        try:
            status = self.gateway.status()
        except (GatewayError, TimeoutError) as err:
            self._failed(f"gateway status failed: {err}")
            return None
        return protocol.EpochsReply(current=status.epoch)

    def _catch_up(self, epoch: str, upto: int | None = None) -> bool:
        """Replay `epoch` from the accepted position up to seq `upto` (a hole before a live
        event: what follows it is waiting in the socket), or to the gateway's end of it.

        True when done; False when the gateway did not answer (tried again later).
        """
        if time.monotonic() < self.retry_at:
            self.pending = True
            return False
        seq = self.seq
        at_end = False  # the replay reached the epoch's end (or its end is lost)
        while not self.stop.is_set():
            start = seq.position(epoch) + 1
            if upto is not None and start > upto:
                at_end = seq.ends.get(epoch) == upto
                break
            limit = REPLAY_CHUNK if upto is None else min(REPLAY_CHUNK, upto - start + 1)
            try:
                reply = self.gateway.replay(epoch, start, limit)
            except GatewayError as err:
                if err.code != protocol.NOT_FOUND:
                    return self._failed(f"replay of epoch {epoch} from seq {start} failed: {err}")
                if self._lost(epoch, start, upto, err):
                    continue
                at_end = True
                break
            except TimeoutError as err:
                return self._failed(str(err))
            self._answered()
            for ev in reply.events:
                self._take_replayed(ev)
            if epoch == seq.epoch:
                self.gateway_seq = max(self.gateway_seq, reply.last_seq)
            if not reply.more or not reply.events:
                at_end = upto is None or seq.position(epoch) >= reply.last_seq
                break
        if at_end and seq.is_old(epoch):
            seq.finish(epoch)
        self._save_finished()
        return True

    def _take_replayed(self, ev: Any) -> None:
        epoch, seq = ev.epoch, ev.seq
        have = self.seq.position(epoch)
        if seq <= have:
            return
        if seq > have + 1:
            # an older gateway skips what its journal lost without saying so
            self._gap(epoch, have + 1, seq - 1, "damaged", "missing from the gateway's replay")
        self.seq.take(epoch, seq)
        self.batch.add(ev, epoch, seq)
        if len(self.batch) >= self.batch_rows:
            self.hand_off()

    def _lost(self, epoch: str, start: int, upto: int | None, err: GatewayError) -> bool:
        """NOT_FOUND: write down what the journal cannot replay. True: replay on after it."""
        lost = err.lost
        if lost is not None and lost.to_seq is not None and lost.to_seq >= start:
            self._gap(epoch, start, lost.to_seq, lost.reason, err.message)
            return True
        reason = lost.reason if lost is not None else "not_held"
        # the whole epoch, or all of it from `start`, is gone
        if upto is not None and upto >= start:
            self._gap(epoch, start, upto, reason, err.message)
        elif self.seq.is_old(epoch):
            self._gap(epoch, start, None, reason, err.message)
        return False

    def _gap(
        self, epoch: str, from_seq: int, to_seq: int | None, reason: str, detail: str = ""
    ) -> None:
        words = {
            "trimmed": "trimmed from the gateway's journal",
            "damaged": "damaged on disk in the gateway's journal",
            "not_held": "not held by the gateway's journal",
        }
        text = f"{reason}: {words.get(reason, reason)}" + (f" ({detail})" if detail else "")
        log.warning(
            "events %d..%s of epoch %s cannot be recorded: %s",
            from_seq,
            "end" if to_seq is None else to_seq,
            epoch,
            text,
        )
        self.batch.gaps.append(gap_row(epoch, from_seq, to_seq, text))
        if to_seq is not None:
            self.batch.reach(epoch, to_seq)
            self.seq.skip_to(epoch, to_seq)

    def _save_finished(self) -> None:
        """Old epochs newly finished go to DuckDB with the next batch (progress.complete)."""
        new = self.seq.finished - self.saved_finished
        if new:
            self.batch.finished |= new
            self.saved_finished |= new

    def _later(self) -> None:
        self.pending = True

    def _answered(self) -> None:
        if self.unreachable:
            log.info("gateway answers again; catching up")
            self.unreachable = False

    def _failed(self, why: str) -> bool:
        if not self.unreachable:
            log.warning("%s; replay retried every %g s", why, RETRY_SECONDS)
        self.unreachable = True
        self.pending = True
        self.retry_at = time.monotonic() + RETRY_SECONDS
        return False


def _as_row(payload: bytes, head: _Header) -> dict[str, Any]:
    """An event this recorder cannot type, as a map for the `events` table."""
    try:
        body = _generic.decode(payload)
        if not isinstance(body, dict):
            raise TypeError("not a map")
        _json.encode(body)  # keys and values JSON can hold
    except (msgspec.DecodeError, msgspec.EncodeError, TypeError, ValueError):
        body = {}
    ts, account = body.get("ts"), body.get("account_id")
    body.update(
        type=head.type,
        epoch=head.epoch,
        seq=head.seq,
        ts=ts if isinstance(ts, int) and 0 <= ts < 2**63 else 0,
        account_id=account if isinstance(account, str) else "",
    )
    return body
