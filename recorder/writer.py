"""The DuckDB side: opening the file, and the writer thread that commits batches and progress.

Each batch is one transaction: the event rows, the typed rows, bad events,
gaps and the new `progress` row commit together or not at all. A batch that
cannot be written (disk full, I/O error) is kept and retried; nothing is
marked committed until DuckDB says so.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import msgspec

from qmtbus.failpoints import failpoint
from qmtbus.recorder import schema
from qmtbus.recorder.disk import disk_full
from qmtbus.recorder.retention import HeartbeatRetention
from qmtbus.recorder.state import Committed

log = logging.getLogger(__name__)

# DuckDB's buffer pool would otherwise grow to 80% of RAM; the recorder must stay small.
MEMORY_LIMIT = "100MB"
# Batches waiting for the writer; when full, the ingest stops reading the socket.
QUEUE_BATCHES = 4
# Under backlog the writer joins waiting batches into one transaction, up to this many rows.
MAX_TRANSACTION_ROWS = 20_000
# After SIGTERM a failing disk gets this long before the writer gives up.
STOP_RETRY_SECONDS = 5.0

_json = msgspec.json.Encoder()


class DatabaseLocked(Exception):
    """Another process holds the DuckDB file; str(err) is one sentence for the user."""


class DatabaseError(Exception):
    """The DuckDB file cannot be opened or set up; str(err) is one sentence for the user."""


@dataclass
class Batch:
    """Rows accepted by the ingest, in order, waiting to be committed together."""

    events: list[Any] = field(default_factory=list)  # protocol Structs, or dicts (unknown types)
    headers: list[tuple[str, int]] = field(default_factory=list)  # (epoch, seq) of each event
    bad: list[tuple[Any, ...]] = field(default_factory=list)  # bad_events rows
    gaps: list[tuple[Any, ...]] = field(default_factory=list)  # gaps rows
    # epoch -> the seq the ingest has dealt with (stored, or given up as a gap)
    reached: dict[str, int] = field(default_factory=dict)
    # old epochs the ingest has finished: recorded to their end, or their loss named
    finished: set[str] = field(default_factory=set)
    created: float = field(default_factory=time.monotonic)

    def __len__(self) -> int:
        return len(self.events) + len(self.bad) + len(self.gaps) + len(self.finished)

    def add(self, event: Any, epoch: str, seq: int) -> None:
        self.events.append(event)
        self.headers.append((epoch, seq))
        self.reach(epoch, seq)

    def reach(self, epoch: str, seq: int) -> None:
        if seq > self.reached.get(epoch, 0):
            self.reached[epoch] = seq

    def merge(self, other: Batch) -> None:
        self.events += other.events
        self.headers += other.headers
        self.bad += other.bad
        self.gaps += other.gaps
        self.finished |= other.finished
        for epoch, seq in other.reached.items():
            self.reach(epoch, seq)


class Database:
    """The recorder's DuckDB file: one connection for the writer, one to spawn reader cursors.

    Both are connections to the same in-process database, so readers see each
    commit at once and never take a lock the writer waits for (DuckDB's MVCC).
    """

    def __init__(self, path: str, private_dir: str | os.PathLike[str] | None = None) -> None:
        self.path = path
        # the one folder besides its own file the database may touch (the snapshot's staging)
        self.private_dir = Path(private_dir) if private_dir is not None else None
        self._lock = threading.Lock()
        self._active: set[duckdb.DuckDBPyConnection] = set()
        self.con, self._readers = self._open()
        self.catalog = str(self.con.execute("SELECT current_database()").fetchall()[0][0])

    def _open(self) -> tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection]:
        """The writer's connection and the readers' one, to one database locked down first."""
        con = self._connect()
        try:
            self._lock_down(con)
        except duckdb.Error as err:
            con.close()
            raise DatabaseError(f"cannot lock down the DuckDB file {self.path}: {err}") from None
        return con, self._connect()

    def _lock_down(self, con: duckdb.DuckDBPyConnection) -> None:
        """No file but the database's own (and the private folder): external access off and
        the configuration locked, for every connection, the SQL endpoint's included."""
        locked, external = con.execute(
            "SELECT current_setting('lock_configuration'), "
            "current_setting('enable_external_access')"
        ).fetchall()[0]
        if locked and not external:
            return  # the database outlived a reopen (a cursor still held it): already done
        try:
            # ICU ships inside the duckdb wheel; without it timestamps would show in UTC
            con.execute(f"SET GLOBAL TimeZone = '{schema.TIME_ZONE}'")
        except duckdb.Error as err:
            log.warning("cannot set time zone %s (%s); times show in UTC", schema.TIME_ZONE, err)
        if self.private_dir is not None:
            folder = str(self.private_dir.resolve()).replace("'", "''")
            con.execute(f"SET GLOBAL allowed_directories = ['{folder}{os.sep}']")
        con.execute("SET GLOBAL enable_external_access = false")
        con.execute("SET GLOBAL lock_configuration = true")

    def _connect(self) -> duckdb.DuckDBPyConnection:
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            con = duckdb.connect(self.path, config={"memory_limit": MEMORY_LIMIT, "threads": 1})
        except duckdb.IOException as err:
            text = str(err)
            if "lock" in text.lower():
                holder = text.split("Conflicting lock is held in", 1)[-1].split(". See")[0]
                raise DatabaseLocked(
                    f"the DuckDB file {self.path} is locked by another process "
                    f"({holder.strip()}); only the recorder may open it for writing — "
                    "query through the recorder's endpoint or its snapshot file instead"
                ) from None
            raise DatabaseError(f"cannot open the DuckDB file {self.path}: {text}") from None
        except (OSError, duckdb.Error) as err:
            raise DatabaseError(f"cannot open the DuckDB file {self.path}: {err}") from None
        return con

    def setup(self) -> None:
        schema.create(self.con)

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A fresh cursor for one reader (query, snapshot); closed afterwards."""
        with self._lock:
            cur = self._readers.cursor()
            self._active.add(cur)
        try:
            yield cur
        finally:
            with self._lock:
                self._active.discard(cur)
            cur.close()

    def progress(self) -> dict[str, tuple[int, int]]:
        """epoch -> (last committed seq, events stored) from the `progress` table."""
        rows = self.con.execute("SELECT epoch, last_seq, events FROM progress").fetchall()
        return {str(e): (int(s), int(n)) for e, s, n in rows}

    def complete(self) -> set[str]:
        """The old epochs recorded to their end (or whose loss is in `gaps`)."""
        rows = self.con.execute("SELECT epoch FROM progress WHERE complete").fetchall()
        return {str(e) for (e,) in rows}

    def count(self, table: str) -> int:
        return int(self.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])

    def reopen(self) -> None:
        """After DuckDB invalidated the database (a fatal I/O error), start over from the file."""
        with self._lock:
            for con in (self.con, self._readers):
                with suppress(duckdb.Error):
                    con.close()
            self.con, self._readers = self._open()

    def close(self) -> None:
        """Interrupt running readers (a 60 s query must not hold up a stop), then close."""
        with self._lock:
            for cur in self._active:
                with suppress(duckdb.Error):
                    cur.interrupt()
        # an interrupted query takes a moment to end; closing under it raises ResourceInUse
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            with self._lock:
                if not self._active:
                    break
            time.sleep(0.02)
        with self._lock:
            self._readers.close()
            self.con.close()


def transient(err: Exception) -> bool:
    """True for failures of the disk or the file (retry the same batch later); False for a
    batch DuckDB refuses (split it to find the culprit)."""
    if isinstance(err, duckdb.IOException | duckdb.FatalException | duckdb.OutOfMemoryException):
        return True
    text = str(err)
    return "Failed to commit" in text or "invalidated" in text or "Could not write" in text


class Writer(threading.Thread):
    """Commits batches in order; retries a failed batch every `retry_seconds` without losing it."""

    def __init__(
        self,
        db: Database,
        committed: Committed,
        retry_seconds: float,
        retention: HeartbeatRetention | None = None,
    ) -> None:
        super().__init__(name="recorder-writer", daemon=True)
        self.db = db
        self.retention = retention
        self.committed = committed
        self.retry_seconds = retry_seconds
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=QUEUE_BATCHES)
        self._busy = threading.Event()
        self._stopping = threading.Event()
        # in memory, what DuckDB holds: guards against ever writing an (epoch, seq) twice
        self.positions: dict[str, int] = {}
        self.epoch_events: Counter[str] = Counter()
        self.complete: set[str] = set()  # old epochs marked complete in DuckDB
        self.failing = False
        self.fatal: BaseException | None = None
        self.transactions = 0
        self.write_seconds = 0.0

    def load(self, progress: dict[str, tuple[int, int]], complete: set[str] | None = None) -> None:
        for epoch, (last_seq, events) in progress.items():
            self.positions[epoch] = last_seq
            self.epoch_events[epoch] = events
        self.complete |= complete or set()

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being written: a small batch now costs no throughput."""
        return not self._busy.is_set() and self._queue.empty()

    def submit(self, batch: Batch, timeout: float) -> bool:
        """Queue `batch`; False when the queue stayed full for `timeout` (the caller keeps it)."""
        try:
            self._queue.put(batch, timeout=timeout)
        except queue.Full:
            return False
        return True

    def finish(self, timeout: float) -> bool:
        """Write everything queued, then stop; False if that did not happen within `timeout`."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        while self.is_alive():
            try:
                self._queue.put(None, timeout=0.1)
                break
            except queue.Full:
                if time.monotonic() > deadline:
                    return False
        self.join(max(0.0, deadline - time.monotonic()))
        return not self.is_alive()

    def run(self) -> None:
        try:
            self._run()
        except BaseException as err:  # a bug here must stop the process, not hang it
            log.exception("the writer thread failed")
            self.fatal = err

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._busy.set()
            batch, done = item, False
            while len(batch) < MAX_TRANSACTION_ROWS:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    done = True
                    break
                batch.merge(more)
            ok = self._commit_until_done(batch)
            if ok and self.retention is not None:
                self._prune(self.retention)
            self._busy.clear()
            if done or not ok:
                return

    def _commit_until_done(self, batch: Batch) -> bool:
        """Write `batch`, retrying while the disk or file fails; False only when asked to
        stop while still failing (the rows are then replayed at the next start)."""
        failed_at: float | None = None
        while True:
            try:
                try:
                    self.write(batch)
                except duckdb.Error as err:
                    if transient(err):
                        raise
                    log.warning("DuckDB refused %d rows (%s); writing one by one", len(batch), err)
                    self._write_one_by_one(batch)
            except duckdb.Error as err:
                self._rollback()
                if failed_at is None:
                    failed_at = time.monotonic()
                    if not self.failing:
                        self._log_failure(err, len(batch))
                self.failing = True
                if "invalidated" in str(err):
                    self._reopen()
                if self._stopping.is_set() and time.monotonic() - failed_at >= STOP_RETRY_SECONDS:
                    return False
                time.sleep(self.retry_seconds)
                continue
            if self.failing:
                log.warning("writing to %s works again; nothing was lost", self.db.path)
                self.failing = False
            return True

    def _log_failure(self, err: duckdb.Error, rows: int) -> None:
        if disk_full(err):
            log.error(
                "disk full: cannot write to %s; keeping %d rows in memory and retrying every "
                "%g s until space is freed",
                self.db.path,
                rows,
                self.retry_seconds,
            )
            return
        log.error(
            "cannot write to %s: %s; keeping %d rows in memory, retry every %g s",
            self.db.path,
            str(err).splitlines()[0],
            rows,
            self.retry_seconds,
        )

    def _prune(self, retention: HeartbeatRetention) -> None:
        # between batches, on this thread: the database's only writer stays the only one
        try:
            retention.maybe_prune(self.db.con)
        except duckdb.Error as err:
            log.warning("could not delete old heartbeats (%s); trying again later", err)

    def _rollback(self) -> None:
        # a failed COMMIT has already ended the transaction
        with suppress(duckdb.Error):
            self.db.con.execute("ROLLBACK")

    def _reopen(self) -> None:
        try:
            self.db.reopen()
        except (DatabaseLocked, DatabaseError) as err:
            log.error("%s", err)

    def write(self, batch: Batch) -> None:
        """Commit `batch` in one transaction, then publish the new position."""
        started = time.perf_counter()
        events, headers = self._fresh(batch)
        con = self.db.con
        per_epoch = Counter(epoch for epoch, _ in headers)
        last = {e: s for e, s in batch.reached.items() if s > self.positions.get(e, 0)}
        con.execute("BEGIN")
        try:
            if events:
                lines = [_json.encode(e) for e in events]
                con.execute(schema.EVENTS_INSERT, [b"\n".join(lines).decode()])
                for tag, rows in _by_type(events, lines).items():
                    con.execute(schema.TYPED[tag].insert, [b"\n".join(rows).decode()])
            if batch.bad:
                self._append(con, "bad_events", batch.bad)
            if batch.gaps:
                self._append(con, "gaps", batch.gaps)
            for epoch, seq in last.items():
                count = self.epoch_events[epoch] + per_epoch[epoch]
                # UPDATE, not INSERT OR REPLACE: measured 2 ms less per transaction
                sql = schema.PROGRESS_UPDATE if epoch in self.positions else schema.PROGRESS_INSERT
                con.execute(sql, [seq, count, epoch])
            finished = batch.finished - self.complete
            for epoch in sorted(finished):
                has_row = epoch in self.positions or epoch in last
                con.execute(
                    schema.PROGRESS_COMPLETE if has_row else schema.PROGRESS_COMPLETE_EMPTY, [epoch]
                )
            failpoint("recorder.before_commit")
            con.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        # committed: a crash from here on must cost nothing (the rows are in DuckDB)
        failpoint("recorder.batch_committed")
        self.complete |= finished
        for epoch in finished:
            self.positions.setdefault(epoch, 0)
        self.positions.update(last)
        self.epoch_events.update(per_epoch)
        self.transactions += 1
        self.write_seconds += time.perf_counter() - started
        newest = max(last.items(), default=("", 0))
        self.committed.committed(newest[0], newest[1], len(events), len(batch.bad))

    def _fresh(self, batch: Batch) -> tuple[list[Any], list[tuple[str, int]]]:
        """The events not yet in DuckDB (all of them, unless the ingest has a bug)."""
        positions = self.positions
        if all(seq > positions.get(epoch, 0) for epoch, seq in batch.headers):
            return batch.events, batch.headers
        kept = [
            (e, h)
            for e, h in zip(batch.events, batch.headers, strict=True)
            if h[1] > positions.get(h[0], 0)
        ]
        log.warning("dropped %d events already stored", len(batch.events) - len(kept))
        return [e for e, _ in kept], [h for _, h in kept]

    @staticmethod
    def _append(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple[Any, ...]]) -> None:
        appender = con.appender(table)
        appender.append_rows(rows)
        appender.flush()

    def _write_one_by_one(self, batch: Batch) -> None:
        """Find the rows DuckDB refuses: each goes to bad_events with DuckDB's reason."""
        for event, (epoch, seq) in zip(batch.events, batch.headers, strict=True):
            single = Batch(events=[event], headers=[(epoch, seq)])
            try:
                self.write(single)
            except duckdb.ConstraintException:
                log.info("event %s/%d is already stored; skipped", epoch, seq)
                self.positions[epoch] = max(seq, self.positions.get(epoch, 0))
            except duckdb.Error as err:
                if transient(err):
                    raise
                payload = _json.encode(event)
                reason = f"DuckDB refused the row: {str(err).splitlines()[0]}"
                bad = Batch(bad=[bad_row("ingest", reason, b"", payload, epoch, seq)])
                bad.reach(epoch, seq)
                self.write(bad)
        rest = Batch(bad=batch.bad, gaps=batch.gaps, reached=batch.reached, finished=batch.finished)
        self.write(rest)


def _by_type(events: list[Any], lines: list[bytes]) -> dict[str, list[bytes]]:
    """The JSON lines of each typed table."""
    groups: dict[str, list[bytes]] = {}
    for event, line in zip(events, lines, strict=True):
        if isinstance(event, dict):
            continue  # an unknown type: kept in `events` only
        tag = type(event).__struct_config__.tag
        if tag in schema.TYPED:
            groups.setdefault(tag, []).append(line)
    return groups


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def bad_row(
    source: str,
    reason: str,
    topic: bytes,
    payload: bytes,
    epoch: str | None = None,
    seq: int | None = None,
) -> tuple[Any, ...]:
    """One `bad_events` row, in the table's column order."""
    return (_now(), source, reason, epoch, seq, topic, payload)


def gap_row(epoch: str, from_seq: int, to_seq: int | None, reason: str) -> tuple[Any, ...]:
    """One `gaps` row, in the table's column order."""
    return (_now(), epoch, from_seq, to_seq, reason)
