"""The gateway's event journal: events are written here before they are published, served
to `replay` by (epoch, seq), kept across restarts and trimmed by age and size."""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import os
import re
import secrets
import struct
import time
import zlib
from collections.abc import Generator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal, NamedTuple

log = logging.getLogger(__name__)

# Layout: <directory>/<epoch>/<first_seq:020d>.seg. A segment is an 8-byte magic, then frames
# `length u32 | crc32 u32 | seq u64 | payload` (little-endian; the crc covers seq and payload).
# A damaged frame is skipped: the reader scans on for the next frame whose checksum verifies,
# and `read` names the seqs in between as lost. A torn tail (kill -9 mid-write) costs at most
# the record being written. Old epochs are never written again. One owner thread (the
# gateway's I/O thread) calls every method, so nothing here locks.
MAGIC = b"QMTJRNL1"
_HEADER = struct.Struct("<IIQ")
_SEQ = struct.Struct("<Q")
HEADER_SIZE = _HEADER.size
# A length above this is junk (a torn or zero-filled tail), never a real event.
MAX_PAYLOAD = 64 * 1024 * 1024
# One sparse index entry per this many bytes: a read scans at most ~32 KiB to its start.
INDEX_STRIDE = 32 * 1024
_READ_CHUNK = 256 * 1024
_EPOCH_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")
_SEGMENT_RE = re.compile(r"^(\d{20})\.seg$")
_STAMP = "%Y%m%dT%H%M%SZ"
# O_BINARY matters on Windows (the real broker's platform): no newline translation.
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_BINARY", 0)


class NotHeld(LookupError):
    """The asked epoch or seq is not in the journal (unknown epoch, trimmed, or damaged).

    `lost_to` is the last seq that cannot be served from `seq` on (None: to the epoch's
    end); `first_seq`..`last_seq` is what the journal still holds of the epoch (0, 0: none).
    """

    def __init__(
        self,
        message: str,
        *,
        epoch: str,
        seq: int,
        reason: Literal["trimmed", "damaged", "not_held"] = "not_held",
        lost_to: int | None = None,
        first_seq: int = 0,
        last_seq: int = 0,
    ) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.seq = seq
        self.reason: Literal["trimmed", "damaged", "not_held"] = reason
        self.lost_to = lost_to
        self.first_seq = first_seq
        self.last_seq = last_seq


class EpochInfo(NamedTuple):
    """One epoch's held range; `first_seq > last_seq` when it holds nothing."""

    epoch: str
    first_seq: int
    last_seq: int


@dataclass
class _Segment:
    path: Path
    first_seq: int
    size: int  # bytes known good: flushed (current epoch) or file size until scanned
    last_seq: int | None = None  # None until known (old epochs are scanned lazily)
    index_seqs: list[int] | None = None  # sparse index, built lazily for old epochs
    index_offsets: list[int] = field(default_factory=list)
    indexed_to: int = 0  # offset of the newest index entry


@dataclass
class _Epoch:
    name: str
    directory: Path
    segments: list[_Segment] = field(default_factory=list)


def new_epoch_name(existing: list[str], now: dt.datetime | None = None) -> str:
    """UTC time + random hex, always sorting after every epoch in `existing` (even when two
    start in the same second or the clock went back), so string order is start order."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime(_STAMP)
    latest = max(existing, default="")
    low = 0
    if latest and stamp <= latest[:16]:
        stamp, low = latest[:16], int(latest[17:], 16) + 1
        if low > 0xFFFFFF:
            later = dt.datetime.strptime(stamp, _STAMP) + dt.timedelta(seconds=1)
            stamp, low = later.strftime(_STAMP), 0
    return f"{stamp}-{low + secrets.randbelow(0x1000000 - low):06x}"


class Journal:
    """Append-only, segmented, checksummed event journal with sparse-indexed replay."""

    def __init__(
        self,
        directory: Path,
        *,
        fsync_interval: float,
        max_age_days: float,
        max_bytes: int,
        segment_bytes: int,
    ) -> None:
        self.directory = Path(directory)
        self.fsync_interval = fsync_interval
        self.max_age_days = max_age_days
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.directory.mkdir(parents=True, exist_ok=True)
        self._epochs: dict[str, _Epoch] = {}
        for entry in sorted(self.directory.iterdir()):
            if entry.is_dir() and _EPOCH_RE.match(entry.name):
                self._epochs[entry.name] = self._discover(entry)
        while True:
            name = new_epoch_name(list(self._epochs))
            try:
                (self.directory / name).mkdir()
                break
            except FileExistsError:  # another journal on this dir in the same second
                continue
        self.epoch = name
        self._current = _Epoch(name, self.directory / name)
        self._epochs[name] = self._current
        self.last_seq = 0
        self._flushed_seq = 0
        self._pending: list[bytes] = []
        self._fd: int | None = None
        self._active: _Segment | None = None
        self._unsynced = False
        self._new_file = False
        self._last_fsync = time.monotonic()
        self._closed = False

    # ------------------------------------------------------------------ writing

    def append(self, seq: int, payload: bytes) -> None:
        """Buffer one event; `seq` must be `last_seq + 1`. Nothing reaches the OS before flush()."""
        if self._closed:
            raise ValueError(f"journal {self.epoch} is closed")
        if seq != self.last_seq + 1:
            raise ValueError(f"journal seq must be {self.last_seq + 1}, got {seq}")
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"journal payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
        crc = zlib.crc32(payload, zlib.crc32(_SEQ.pack(seq)))
        self._pending.append(_HEADER.pack(len(payload), crc, seq) + payload)
        self.last_seq = seq

    def flush(self) -> None:
        """Write the buffered events to the OS (one os.write per segment touched), then fsync
        if fsync_interval has passed since the last one (0: every flush). Calling it with
        nothing buffered still syncs what is due, so the owner may call it on a timer."""
        if self._closed:
            raise ValueError(f"journal {self.epoch} is closed")
        if self._pending:
            self._write_pending()
        if self._unsynced and time.monotonic() - self._last_fsync >= self.fsync_interval:
            self._fsync()

    def close(self) -> None:
        """Flush and fsync everything; the journal takes no more events."""
        if self._closed:
            return
        if self._pending:
            self._write_pending()
        if self._unsynced:
            self._fsync()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._closed = True

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write_pending(self) -> None:
        frames = self._pending
        done = 0
        seq = self._flushed_seq + 1
        while done < len(frames):
            seg = self._active
            # Roll when the next frame does not fit; an empty segment takes any frame.
            if (
                seg is None
                or self._fd is None
                or (seg.size > len(MAGIC) and seg.size + len(frames[done]) > self.segment_bytes)
            ):
                try:
                    seg = self._roll(seq)
                except OSError:  # no room for a new segment: keep what is not written yet
                    self._pending = frames[done:]
                    raise
            pos = seg.size or len(MAGIC)  # the magic goes out with the first batch
            new_seqs: list[int] = []
            new_offsets: list[int] = []
            indexed_to = seg.indexed_to
            end = done
            while end < len(frames):
                size = len(frames[end])
                if pos > len(MAGIC) and pos + size > self.segment_bytes:
                    break
                if pos - indexed_to >= INDEX_STRIDE:
                    new_seqs.append(seq)
                    new_offsets.append(pos)
                    indexed_to = pos
                pos += size
                seq += 1
                end += 1
            chunk = b"".join(frames[done:end])
            if seg.size == 0:
                chunk = MAGIC + chunk
            try:
                _write_all(self._fd, chunk)
            except OSError:
                # Cut a partial write off again so the next flush does not append after
                # junk; the unwritten events stay buffered for it.
                assert self._fd is not None
                os.ftruncate(self._fd, seg.size)
                self._pending = frames[done:]
                raise
            self._unsynced = True
            # Commit the index only once the bytes are in the OS.
            assert seg.index_seqs is not None
            seg.index_seqs.extend(new_seqs)
            seg.index_offsets.extend(new_offsets)
            seg.indexed_to = indexed_to
            seg.size = pos
            seg.last_seq = seq - 1
            self._flushed_seq = seq - 1
            done = end
        self._pending = []

    def _roll(self, first_seq: int) -> _Segment:
        """Close the active segment (synced, so no hole opens before the new one) and start one."""
        if self._fd is not None:
            if self._unsynced:
                self._fsync()
            fd, self._fd = self._fd, None  # never closed twice if the open below fails
            os.close(fd)
        path = self._current.directory / f"{first_seq:020d}.seg"
        self._fd = os.open(path, _WRITE_FLAGS, 0o644)
        seg = _Segment(path, first_seq, 0, first_seq - 1, [first_seq], [len(MAGIC)], len(MAGIC))
        self._current.segments.append(seg)
        self._active = seg
        self._new_file = True
        return seg

    def _fsync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
        if self._new_file:
            _fsync_dir(self._current.directory)
            self._new_file = False
        self._unsynced = False
        self._last_fsync = time.monotonic()

    # ------------------------------------------------------------------ reading

    def read(self, epoch: str, from_seq: int, limit: int) -> tuple[list[bytes], int, bool]:
        """Payloads from `from_seq` on, in order and without holes, at most `limit`; the last
        seq held for the epoch; and whether it holds more after the last returned. A read
        stops before a damaged stretch; one that starts in it (or before what was trimmed,
        or in an unknown epoch) raises NotHeld naming the seqs lost. Only flushed events
        are seen."""
        if limit < 1 or from_seq < 1:
            raise ValueError(f"read needs from_seq >= 1 and limit >= 1, got {from_seq}, {limit}")
        ep = self._epochs.get(epoch)
        if ep is None:
            # only the epoch asked for: which runs the gateway holds is not every client's business
            raise NotHeld(
                f"epoch {epoch} is not held by the journal",
                epoch=epoch,
                seq=from_seq,
            )
        first, last = self._range(ep)
        if from_seq < first:
            raise NotHeld(
                f"seq {from_seq} of epoch {epoch} is no longer held (held: {first}..{last})",
                epoch=epoch,
                seq=from_seq,
                reason="trimmed",
                lost_to=first - 1,
                first_seq=first,
                last_seq=last,
            )
        if from_seq > last:
            return [], last, False
        out: list[bytes] = []
        hole_to: int | None = None  # the last seq of a damaged stretch at `want`
        i = bisect.bisect_right([s.first_seq for s in ep.segments], from_seq) - 1
        want = from_seq
        while i < len(ep.segments) and len(out) < limit and want <= last and hole_to is None:
            seg = ep.segments[i]
            seqs, offsets = self._index(seg)
            j = bisect.bisect_right(seqs, want) - 1
            # closing(): release the file at once when the limit stops the scan early.
            with closing(_frames(seg.path, offsets[j], seg.size, seqs[j])) as frames:
                for seq, _, payload in frames:
                    if seq < want:
                        continue
                    if seq > want:
                        hole_to = seq - 1
                        break
                    out.append(payload)
                    want = seq + 1
                    if len(out) == limit:
                        break
            if hole_to is None and len(out) < limit and want <= last:
                i += 1
                # a damaged tail of a segment leaves a hole before the next one
                nxt = ep.segments[i].first_seq if i < len(ep.segments) else last + 1
                if nxt != want:
                    hole_to = nxt - 1
        if out:
            return out, last, want <= last
        raise NotHeld(
            f"seqs {want}..{hole_to if hole_to is not None else last} of epoch {epoch} are "
            f"damaged on disk and cannot be replayed (held: {first}..{last})",
            epoch=epoch,
            seq=from_seq,
            reason="damaged",
            lost_to=hole_to if hole_to is not None else last,
            first_seq=first,
            last_seq=last,
        )

    def epochs(self) -> list[EpochInfo]:
        """Every held epoch with its seq range, oldest first (the current one last)."""
        return [EpochInfo(name, *self._range(ep)) for name, ep in sorted(self._epochs.items())]

    def _range(self, ep: _Epoch) -> tuple[int, int]:
        if ep is self._current:
            last = self._flushed_seq
        elif ep.segments:
            tail = ep.segments[-1]
            if tail.last_seq is None:
                self._index(tail)
            assert tail.last_seq is not None
            last = tail.last_seq
        else:
            last = 0
        first = ep.segments[0].first_seq if ep.segments else last + 1
        return first, last

    def _index(self, seg: _Segment) -> tuple[list[int], list[int]]:
        """The segment's sparse index, built by one scan the first time an old segment is read;
        the scan stops at the first torn or damaged frame, which ends the segment."""
        if seg.index_seqs is None:
            seqs, offsets = [seg.first_seq], [len(MAGIC)]
            last, end = seg.first_seq - 1, len(MAGIC)
            for seq, offset, payload in _frames(seg.path, len(MAGIC), seg.size, seg.first_seq):
                if offset - offsets[-1] >= INDEX_STRIDE:
                    seqs.append(seq)
                    offsets.append(offset)
                last, end = seq, offset + HEADER_SIZE + len(payload)
            seg.index_seqs, seg.index_offsets = seqs, offsets
            seg.indexed_to, seg.last_seq, seg.size = offsets[-1], last, min(seg.size, end)
        return seg.index_seqs, seg.index_offsets

    # ------------------------------------------------------------------ trimming

    def trim(self) -> None:
        """Delete the oldest segments while the journal is over max_bytes or a segment's newest
        record is older than max_age_days; never the current epoch's active segment."""
        cutoff = time.time() - self.max_age_days * 86400
        ordered = [(ep, seg) for _, ep in sorted(self._epochs.items()) for seg in ep.segments]
        total = sum(seg.size for _, seg in ordered)
        for ep, seg in ordered:
            if seg is self._active:
                break
            try:
                mtime = seg.path.stat().st_mtime
            except FileNotFoundError:
                mtime = 0.0
            if total <= self.max_bytes and mtime >= cutoff:
                break
            seg.path.unlink(missing_ok=True)
            ep.segments.remove(seg)
            total -= seg.size
            log.info("journal: trimmed %s (%d bytes)", seg.path, seg.size)
        for name, ep in sorted(self._epochs.items()):
            if ep is not self._current and not ep.segments:
                del self._epochs[name]
                try:
                    ep.directory.rmdir()
                except OSError as err:  # a stray file: leave the folder, forget the epoch
                    log.warning("journal: cannot remove %s: %s", ep.directory, err)

    # ------------------------------------------------------------------ discovery

    @staticmethod
    def _discover(directory: Path) -> _Epoch:
        ep = _Epoch(directory.name, directory)
        for entry in sorted(directory.iterdir()):
            m = _SEGMENT_RE.match(entry.name)
            if m and entry.is_file():
                ep.segments.append(_Segment(entry, int(m.group(1)), entry.stat().st_size))
        return ep


def _write_all(fd: int | None, chunk: bytes) -> None:
    """One os.write per batch; loop only for the rare short write."""
    assert fd is not None
    view = memoryview(chunk)
    while view:
        view = view[os.write(fd, view) :]


class _Window:
    """Bytes [start, end) of an open segment, read forward in chunks."""

    def __init__(self, f: BinaryIO, start: int, end: int) -> None:
        self.f, self.end = f, end
        self.base, self.buf = start, b""  # buf holds bytes from file offset `base`
        f.seek(start)

    def get(self, offset: int, size: int) -> bytes | None:
        """Bytes [offset, offset + size), or None past `end`; offsets only move forward."""
        if offset + size > self.end:
            return None
        assert offset >= self.base, "a window reads forward only"
        if offset - self.base > _READ_CHUNK:  # drop what is behind us
            self.buf, self.base = self.buf[offset - self.base :], offset
        missing = offset + size - (self.base + len(self.buf))
        if missing > 0:
            more = self.f.read(max(missing, min(_READ_CHUNK, self.end - self.base - len(self.buf))))
            self.buf += more
            if len(more) < missing:
                return None
        return self.buf[offset - self.base : offset - self.base + size]


def _frame_at(w: _Window, offset: int, min_seq: int, max_seq: int) -> tuple[int, bytes] | None:
    """(seq, payload) of a whole frame at `offset` whose checksum verifies, seq in range."""
    head = w.get(offset, HEADER_SIZE)
    if head is None:
        return None
    length, crc, seq = _HEADER.unpack(head)
    if length > MAX_PAYLOAD or not min_seq <= seq <= max_seq:
        return None
    payload = w.get(offset + HEADER_SIZE, length)
    if payload is None or zlib.crc32(payload, zlib.crc32(_SEQ.pack(seq))) != crc:
        return None
    return seq, payload


def _frames(
    path: Path, start: int, end: int, first_seq: int
) -> Generator[tuple[int, int, bytes], None, None]:
    """(seq, offset, payload) of one segment's frames from byte `start` (whose frame has seq
    `first_seq`) up to `end`. A damaged frame is skipped: the scan goes on byte by byte to
    the next frame whose checksum verifies and whose seq follows (the caller sees the jump
    in seq); a torn tail ends the segment."""
    expect, offset = first_seq, start
    with open(path, "rb") as f:
        if start == len(MAGIC) and f.read(len(MAGIC)) != MAGIC:
            if end > 0:
                log.warning("journal: %s has no journal header; ignored", path)
            return
        w = _Window(f, start, end)
        while offset + HEADER_SIZE <= end:
            frame = _frame_at(w, offset, expect, expect)
            if frame is None:
                found = _resync(w, offset, expect)
                if found is None:
                    break
                log.warning(
                    "journal: skipped %d damaged bytes at offset %d of %s (seqs %d..%d lost)",
                    found[0] - offset,
                    offset,
                    path,
                    expect,
                    found[1] - 1,
                )
                offset = found[0]
                frame = _frame_at(w, offset, found[1], found[1])
                assert frame is not None
            seq, payload = frame
            yield seq, offset, payload
            offset += HEADER_SIZE + len(payload)
            expect = seq + 1
    if offset < end:
        log.warning(
            "journal: ignored %d torn or damaged bytes at the end of %s", end - offset, path
        )


def _resync(w: _Window, damaged: int, expect: int) -> tuple[int, int] | None:
    """(offset, seq) of the next valid frame after the damaged one at `damaged`: the
    checksum verifies and the seq is plausible (each lost frame took at least a header).

    A regex (C speed) finds the offsets that can hold a header at all: a length below
    MAX_PAYLOAD's top byte, a seq whose high half is `expect`'s and whose low half is not
    zero; only those are checked in Python. A zero-filled stretch has none."""
    top = re.escape(bytes([MAX_PAYLOAD >> 24]))
    high = re.escape(_SEQ.pack(expect)[4:])
    candidates = re.compile(rb"(?=...[\x00-" + top + rb"].{4}(?!\x00{4}).{4}" + high + rb")", re.S)
    offset = damaged + 1
    while offset + HEADER_SIZE <= w.end:
        size = min(_READ_CHUNK, w.end - offset)
        chunk = w.get(offset, size)
        if chunk is None:
            return None
        for m in candidates.finditer(chunk):
            at = offset + m.start()
            most = expect + (at - damaged) // HEADER_SIZE + 1
            frame = _frame_at(w, at, expect, most)
            if frame is not None:
                return at, frame[0]
        offset += size - HEADER_SIZE + 1  # a header may straddle the chunks
    return None


def _fsync_dir(directory: Path) -> None:
    """Make a new file's directory entry durable (POSIX; Windows cannot open a folder)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
