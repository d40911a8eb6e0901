"""The read-only snapshot file: a copy of the database, refreshed every snapshot_interval.

DuckDB lets no other process open the recorder's file while it runs, not even
read-only. The snapshot is a separate file anyone may open (duckdb CLI,
Python, DBeaver). A private staging file (in its own folder, the one the
database may write besides its own file) is kept up to date (in full with
ATTACH + COPY FROM DATABASE at start, then only the rows committed since, by
each epoch's progress), closed, copied to a temporary file and renamed over
the snapshot, so a reader sees either the old or the new copy, whole. Each
refresh is one read transaction of the recorder's database: it never blocks
the writer, and its cost grows with what is new, not with the whole history.

The snapshot never takes the disk's last free space: before each refresh the
free space is checked (shutil.disk_usage), and a refresh that would leave less
than `min_free_bytes` is skipped (the staging file is dropped too, giving its
space back) and logged once as "disk full"; the gateway's journal needs that room.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import duckdb

from qmtbus.recorder import marks, schema
from qmtbus.recorder.disk import disk_full, free_bytes
from qmtbus.recorder.retention import HeartbeatRetention
from qmtbus.recorder.state import Committed
from qmtbus.recorder.writer import Database

log = logging.getLogger(__name__)

ALIAS = "qmtbus_staging"
# Small tables without a seq: copied whole each time.
REPLACED = ("progress", "bad_events", "gaps", "order_status_names")
MARKS = (marks.EQUITY_MARKS, marks.POSITION_MARKS)
# A copy must not take more than about a tenth of the time: on a big file the
# interval stretches rather than the snapshot eating the writer's CPU.
MAX_SHARE = 0.1
MB = 1024 * 1024


def private_dir(snapshot_path: str | os.PathLike[str]) -> Path:
    """The folder of the staging file: the only place, besides its own file, the recorder's
    database may write (external access is otherwise off; recorder/writer.py)."""
    path = Path(snapshot_path)
    return path.with_name(f".{path.name}.private")


class Snapshotter:
    """Refreshes the snapshot file on its own thread while anything new was committed."""

    def __init__(
        self,
        path: str,
        interval: float,
        db: Database,
        committed: Committed,
        retention: HeartbeatRetention | None = None,
        min_free_bytes: int = 0,
        free_space: Callable[[Path], int] = free_bytes,
    ) -> None:
        self.retention = retention
        self.path = Path(path)
        self.interval = interval
        self.db = db
        self.committed = committed
        self.min_free_bytes = min_free_bytes
        self.free_space = free_space
        self.staging = private_dir(self.path) / "staging.duckdb"
        self.taken = 0  # snapshots written, for tests and the log
        self.skipped = 0  # refreshes skipped to leave the disk's last space to the gateway
        self._staged = False  # the staging file matches the schema and holds a known position
        self._last: tuple[str, int, int, int] | None = None
        self._failing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recorder-snapshot", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30.0)

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            started = time.monotonic()
            self.refresh()
            took = time.monotonic() - started
            delay = max(self.interval - took, took / MAX_SHARE - took, 0.1)

    def refresh(self) -> bool:
        """Write a new snapshot if anything changed since the last one; True when written."""
        s = self.committed.status()
        position = (s.epoch, s.last_seq, s.events, s.bad_events)
        if position == self._last and self.path.exists():
            return False
        short = self._short_of_space()
        if short is not None:
            self.skipped += 1
            self._drop_staging()
            if not self._failing:
                log.error("%s", short)
            self._failing = True
            return False
        try:
            self._copy()
        except (duckdb.Error, OSError) as err:
            if not self._failing:
                if disk_full(err):
                    log.error(
                        "disk full: the snapshot %s could not be written; retried every %g s "
                        "while the recorder goes on recording",
                        self.path,
                        self.interval,
                    )
                else:
                    log.error("cannot write the snapshot %s: %s; retrying", self.path, err)
            self._failing = True
            return False
        if self._failing:
            log.info("snapshot %s written again", self.path)
        self._failing = False
        self._last = position
        self.taken += 1
        return True

    def _short_of_space(self) -> str | None:
        """One sentence when a refresh now would leave less than min_free_bytes free."""
        staged = _size(self.staging) if self._staged else 0
        database = _size(Path(self.db.path)) + _size(Path(self.db.path + ".wal"))
        whole = max(database, staged)
        # the staging file grows to about the database's size, then is copied once more
        need = 2 * whole - staged
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            free = self.free_space(self.path.parent)
        except OSError:
            return None  # cannot tell: the copy itself reports a full disk
        if free - need >= self.min_free_bytes:
            return None
        return (
            f"disk full: snapshot {self.path} skipped ({free / MB:.0f} MB free, it needs about "
            f"{need / MB:.0f} MB and {self.min_free_bytes / MB:.0f} MB stay free for the "
            f"gateway); retried every {self.interval:g} s while recording goes on"
        )

    def _drop_staging(self) -> None:
        """Give the staging file's space back; the next refresh starts from a full copy."""
        self._staged = False
        for old in (self.staging, self.staging.with_name(self.staging.name + ".wal")):
            with suppress(OSError):
                old.unlink(missing_ok=True)

    def _copy(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.staging.parent.mkdir(mode=0o700, exist_ok=True)
        if not self._staged:
            legacy = self.path.with_name(f".{self.path.name}.staging")  # before the private folder
            for old in (self.staging, self.staging.with_name(self.staging.name + ".wal"), legacy):
                old.unlink(missing_ok=True)
        staging = str(self.staging).replace("'", "''")
        source = '"' + self.db.catalog.replace('"', '""') + '"'
        with self.db.cursor() as cur:
            cur.execute(f"ATTACH '{staging}' AS {ALIAS}")
            try:
                if self._staged:
                    self._add_new_rows(cur, source)
                else:
                    # one transaction: the rows and `progress` agree
                    cur.execute("BEGIN")
                    cur.execute(f"COPY FROM DATABASE {source} TO {ALIAS}")
                    cur.execute("COMMIT")
                    self._staged = True
                cur.execute(f"CHECKPOINT {ALIAS}")
            except BaseException:
                self._staged = False  # start over from a full copy next time
                raise
            finally:
                cur.execute(f"DETACH {ALIAS}")
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            shutil.copyfile(self.staging, tmp)
            # readers holding the old file keep it (POSIX); new opens see the new copy
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def _add_new_rows(self, cur: duckdb.DuckDBPyConnection, source: str) -> None:
        """Append what was committed since the last refresh, in one transaction."""
        cur.execute("BEGIN")
        try:
            staged = dict(cur.execute(f"SELECT epoch, last_seq FROM {ALIAS}.progress").fetchall())
            now = cur.execute(f"SELECT epoch, last_seq FROM {source}.progress").fetchall()
            newer = [
                (epoch, staged.get(epoch, 0)) for epoch, seq in now if seq != staged.get(epoch)
            ]
            if newer:
                where = " OR ".join("(epoch = ? AND seq > ?)" for _ in newer)
                params = [x for pair in newer for x in pair]
                for table in ("events", *(t.name for t in schema.TYPED.values())):
                    cur.execute(
                        f"INSERT INTO {ALIAS}.{table} SELECT * FROM {source}.{table} WHERE {where}",
                        params,
                    )
            if self.retention is not None:
                self.retention.prune_copy(cur, f"{ALIAS}.events")
            # the recorder's marks have no seq; a mark's rows share one time, written at once
            for table in MARKS:
                cur.execute(
                    f"INSERT INTO {ALIAS}.{table} SELECT * FROM {source}.{table} WHERE time > "
                    f"(SELECT coalesce(max(time), '-infinity') FROM {ALIAS}.{table})"
                )
            for table in REPLACED:
                cur.execute(f"DELETE FROM {ALIAS}.{table}")
                cur.execute(f"INSERT INTO {ALIAS}.{table} SELECT * FROM {source}.{table}")
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
