"""The clone pattern: subscribe first, replay from the last committed (epoch, seq), then live.

The ingest accepts exactly the next seq of each epoch. A hole (a dropped
message, a slow start, a heartbeat that names a seq we lack) is filled from
the gateway's journal with `replay` before anything after it is taken; a new
epoch (the gateway restarted) first fetches the old epoch's tail. What the
journal no longer holds is written down in `gaps`, never skipped silently.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

import msgspec
import zmq

from qmtbus import Gateway, GatewayError, protocol
from qmtbus.client import client_curve
from qmtbus.config import Config
from qmtbus.keys import secure_client
from qmtbus.recorder import schema
from qmtbus.recorder.state import Committed
from qmtbus.recorder.writer import Batch, Writer, bad_row, gap_row

log = logging.getLogger(__name__)

REPLAY_CHUNK = 2000  # events per replay request (the protocol allows up to 10,000)
READ_CHUNK = 1000  # live messages taken per poll before checking the batch
# Messages ZeroMQ queues for us while the writer is busy; past it the gateway's
# queue fills, then drops, and the hole is replayed. Bounds our memory.
SUB_HWM = 20_000
RETRY_SECONDS = 2.0  # an unreachable gateway is asked again this often
IDLE_POLL = 0.25

EVENT_TYPES = frozenset(str(cls.__struct_config__.tag) for cls in protocol.EVENT_TYPES)
_HELD = re.compile(r"held: (\d+)\.\.(\d+)")


class _Header(msgspec.Struct):
    """What sequencing needs; every other field is skipped by the decoder."""

    type: str
    epoch: str
    seq: int


_header = msgspec.msgpack.Decoder(_Header)
_generic = msgspec.msgpack.Decoder()
_json = msgspec.json.Encoder()


class Ingest:
    """Reads the bus, keeps order, hands batches to the writer. Runs on the main thread."""

    def __init__(
        self,
        config: Config,
        writer: Writer,
        committed: Committed,
        stop: threading.Event,
        context: zmq.Context[Any] | None = None,
    ) -> None:
        self.config = config
        self.writer = writer
        self.committed = committed
        self.stop = stop
        self.batch_rows = config.recorder.batch_rows
        self.batch_seconds = config.recorder.batch_seconds
        # accepted = committed or waiting in a batch; ahead of DuckDB, never behind it
        self.positions: dict[str, int] = dict(writer.positions)
        self.epoch: str | None = max(self.positions) if self.positions else None
        self.behind: set[str] = set()  # epochs with a hole still to replay
        self.retry_at = 0.0
        self.unreachable = False
        self.batch = Batch()
        self.gateway_seq = 0  # newest seq seen from the gateway, reported with each hand-off
        self.dry = False  # the socket had nothing more to read at the last look
        self.gateway = Gateway(
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
        self._start()
        while not self.stop.is_set():
            if self.writer.fatal is not None:
                raise RuntimeError("the writer thread stopped") from self.writer.fatal
            self._read(self._poll_ms())
            self._maybe_hand_off()
            if self.behind and time.monotonic() >= self.retry_at:
                self._catch_up_all()
        self._hand_off()

    def close(self) -> None:
        self.sock.close(0)
        self.gateway.close()

    def _start(self) -> None:
        """Ask the gateway where it is, and replay what we lack before reading live events."""
        try:
            status = self.gateway.status()
        except TimeoutError:
            log.warning(
                "gateway not reachable at %s; recording starts with its first event",
                self.config.gateway.commands_address,
            )
            return
        except GatewayError as err:
            log.warning("gateway status failed (%s); recording starts with its first event", err)
            return
        self.gateway_seq = status.last_seq
        self.committed.gateway_seq(status.last_seq)
        if status.epoch and status.epoch != self.epoch:
            self._switch_epoch(status.epoch)
        if self.epoch and status.last_seq > self.positions.get(self.epoch, 0):
            self.behind.add(self.epoch)
        self._catch_up_all()

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
            self._on_live(frames)
            if len(self.batch) >= self.batch_rows:
                self._hand_off()

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
            self._hand_off()

    def _hand_off(self) -> None:
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
    def _on_live(self, frames: list[bytes]) -> None:
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
        epoch, seq = head.epoch, head.seq
        if epoch != self.epoch:
            if self.epoch is not None and epoch < self.epoch:
                # a straggler of an older run: fetch what we lack of it by replay
                if seq > self.positions.get(epoch, 0):
                    self.behind.add(epoch)
                return
            self._switch_epoch(epoch)
        self.gateway_seq = seq
        have = self.positions.get(epoch, 0)
        if seq <= have:
            return  # already stored or waiting in a batch: a redelivery changes nothing
        if seq > have + 1:
            self.behind.add(epoch)
            self._catch_up(epoch, upto=seq - 1)
            have = self.positions.get(epoch, 0)
            if seq != have + 1:
                return  # replay brought it already, or could not fill the hole yet
        ev = self._accept(payload, topic, head, "live")
        if isinstance(ev, protocol.HeartbeatEvent) and ev.last_seq > self.positions[epoch]:
            self.behind.add(epoch)
            self._catch_up(epoch, upto=ev.last_seq)

    def _accept(self, payload: bytes, topic: bytes, head: _Header, source: str) -> Any:
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
        self.positions[head.epoch] = head.seq
        return ev

    def _switch_epoch(self, epoch: str) -> None:
        """The gateway restarted: fetch the old epoch's tail while its journal holds it."""
        old = self.epoch
        if old is not None:
            log.info("gateway started epoch %s; fetching the tail of epoch %s first", epoch, old)
            self.behind.add(old)
            self._catch_up(old)
        self.epoch = epoch
        self.positions.setdefault(epoch, 0)

    # -- replay ---------------------------------------------------------------------------
    def _catch_up_all(self) -> None:
        for epoch in sorted(self.behind):
            if not self._catch_up(epoch):
                return

    def _catch_up(self, epoch: str, upto: int | None = None) -> bool:
        """Replay `epoch` from the accepted position up to seq `upto` (a hole before a live
        event: what follows it is waiting in the socket), or to the gateway's end of it.

        True when done; False when the gateway did not answer (tried again later).
        """
        if time.monotonic() < self.retry_at:
            return False
        while not self.stop.is_set():
            start = self.positions.get(epoch, 0) + 1
            if upto is not None and start > upto:
                break
            limit = REPLAY_CHUNK if upto is None else min(REPLAY_CHUNK, upto - start + 1)
            try:
                reply = self.gateway.replay(epoch, start, limit)
            except GatewayError as err:
                if err.code == protocol.NOT_FOUND and self._lost(epoch, start, upto, err.message):
                    continue
                if err.code == protocol.NOT_FOUND:
                    break
                return self._failed(f"replay of epoch {epoch} from seq {start} failed: {err}")
            except TimeoutError as err:
                return self._failed(str(err))
            if self.unreachable:
                log.info("gateway answers again; catching up")
                self.unreachable = False
            for ev in reply.events:
                self._take_replayed(ev)
            if epoch == self.epoch:
                self.gateway_seq = max(self.gateway_seq, reply.last_seq)
            if not reply.more or not reply.events:
                break
        self.behind.discard(epoch)
        return True

    def _take_replayed(self, ev: Any) -> None:
        epoch, seq = ev.epoch, ev.seq
        have = self.positions.get(epoch, 0)
        if seq <= have:
            return
        if seq > have + 1:
            # the journal itself skips these (a damaged segment): name the loss
            self._gap(epoch, have + 1, seq - 1, "the gateway's journal does not hold them")
        self.batch.add(ev, epoch, seq)
        self.positions[epoch] = seq
        if len(self.batch) >= self.batch_rows:
            self._hand_off()

    def _lost(self, epoch: str, start: int, upto: int | None, message: str) -> bool:
        """NOT_FOUND: write down what the journal no longer holds. True: replay on from there."""
        held = _HELD.search(message)
        if held and "no longer held" in message and int(held.group(1)) > start:
            first = int(held.group(1))
            self._gap(epoch, start, first - 1, f"trimmed from the gateway's journal: {message}")
            return True
        if held and "damaged" in message:
            self._gap(epoch, start, start, f"damaged in the gateway's journal: {message}")
            return True
        # the whole epoch is gone (trimmed, or another gateway's data directory)
        if upto is not None and upto >= start:
            self._gap(epoch, start, upto, f"not held by the gateway: {message}")
        elif epoch != self.epoch:
            self._gap(epoch, start, None, f"tail not held by the gateway: {message}")
        return False

    def _gap(self, epoch: str, from_seq: int, to_seq: int | None, reason: str) -> None:
        log.warning(
            "events %d..%s of epoch %s cannot be recorded: %s",
            from_seq,
            "end" if to_seq is None else to_seq,
            epoch,
            reason,
        )
        self.batch.gaps.append(gap_row(epoch, from_seq, to_seq, reason))
        if to_seq is not None:
            self.batch.reach(epoch, to_seq)
            self.positions[epoch] = max(to_seq, self.positions.get(epoch, 0))

    def _failed(self, why: str) -> bool:
        if not self.unreachable:
            log.warning("%s; replay retried every %g s", why, RETRY_SECONDS)
        self.unreachable = True
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
