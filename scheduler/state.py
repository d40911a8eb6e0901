"""The scheduler's memory (a small JSON file): which cron times are dealt with, last and next runs.

At most once: before a job runs, its cron time is written here as handled
(atomically: temp file, fsync, rename). A scheduler killed in the middle of a
job finds the run marked "running" at restart, reports it "interrupted" and
does not run it again. `qmtbus health` reads `jobs.<name>.last_run` and
`jobs.<name>.next_run` (see docs/scheduler.md for every key).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from pathlib import Path
from typing import IO

import msgspec

from qmtbus import files
from qmtbus.files import JobRecord, Outcome, RunRecord, SchedulerState, SkipRecord

log = logging.getLogger("scheduler.state")


class StateLocked(Exception):
    """The state file cannot be had (another scheduler holds it, or the disk refuses);
    str(err) says what to do."""


class StateFile:
    """The state file, loaded once and rewritten on every change (a few writes per run)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._lock_file: IO[bytes] | None = None
        self.doc = self._load()

    def _load(self) -> SchedulerState:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return SchedulerState()
        try:
            return files.decode(SchedulerState, raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            # Starting afresh keeps at-most-once: every job counts as first seen
            # now, so nothing before now can run again.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{os.getpid()}")
            os.replace(self.path, aside)
            log.error(
                "state file %s is unreadable (%s); moved it to %s, starting afresh",
                self.path,
                err,
                aside,
            )
            return SchedulerState()

    def lock(self) -> None:
        """Hold an exclusive lock for the life of the process: two schedulers on one
        state file would each run every job."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        handle = open(lock_path, "a+b")  # noqa: SIM115 - held until the process exits
        try:
            import fcntl
        except ImportError:  # Windows: supervisor-win runs one instance; no flock there
            self._lock_file = handle
            return
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise StateLocked(
                f"another scheduler is running with state file {self.path}; stop it first, or "
                "give this one its own scheduler.state_file"
            ) from None
        self._lock_file = handle

    def close(self) -> None:
        """Release the lock (the process exiting releases it too)."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def begin(
        self,
        names: list[str],
        now: dt.datetime,
        calendar_last_day: dt.date,
        calendar: str = "XSHG",
    ) -> list[tuple[str, RunRecord]]:
        """Start-up: forget jobs no longer configured, meet new ones (nothing before
        `now` is theirs to run), and return the runs a killed scheduler left running,
        now marked interrupted."""
        interrupted = []
        with self._lock:
            doc = self.doc
            doc.jobs = {name: record for name, record in doc.jobs.items() if name in names}
            for name in names:
                record = doc.jobs.setdefault(name, JobRecord(handled_until=now))
                run = record.last_run
                if run is not None and run.outcome == "running":
                    run.outcome = "interrupted"
                    run.error = (
                        "the scheduler stopped while the job ran; not run again (at most once)"
                    )
                    interrupted.append((name, run))
            doc.pid = os.getpid()
            doc.started = now
            doc.calendar_last_day = calendar_last_day
            doc.calendar = calendar
            self._save(now)
        return interrupted

    def next_run(self, name: str) -> dt.datetime | None:
        with self._lock:
            return self.doc.jobs[name].next_run

    def handled_until(self, name: str) -> dt.datetime:
        with self._lock:
            return self.doc.jobs[name].handled_until

    def claim(self, name: str, scheduled_for: dt.datetime, now: dt.datetime) -> bool:
        """Mark the run started, durably, before it runs; False if that cron time was
        already dealt with (it must not run again)."""
        with self._lock:
            record = self.doc.jobs[name]
            if scheduled_for <= record.handled_until:
                return False
            record.handled_until = scheduled_for
            record.last_run = RunRecord(scheduled_for=scheduled_for, started=now)
            self._save(now)
            return True

    def finish(
        self,
        name: str,
        scheduled_for: dt.datetime,
        now: dt.datetime,
        outcome: Outcome,
        error: str = "",
    ) -> None:
        with self._lock:
            run = self.doc.jobs[name].last_run
            if run is None or run.scheduled_for != scheduled_for:
                return
            run.finished, run.outcome, run.error = now, outcome, error
            self._save(now)

    def skip(self, name: str, scheduled_for: dt.datetime, now: dt.datetime, reason: str) -> bool:
        """Mark a cron time dealt with, without running it; False if it already was."""
        with self._lock:
            record = self.doc.jobs[name]
            if scheduled_for <= record.handled_until:
                return False
            record.handled_until = scheduled_for
            record.last_skipped = SkipRecord(scheduled_for=scheduled_for, at=now, reason=reason)
            self._save(now)
            return True

    def set_next_run(
        self, name: str, next_run: dt.datetime | None, now: dt.datetime, error: str = ""
    ) -> None:
        with self._lock:
            record = self.doc.jobs[name]
            record.next_run, record.next_run_error = next_run, error
            self._save(now)

    def _save(self, now: dt.datetime) -> None:
        self.doc.updated = now
        write_atomic(self.path, files.encode(self.doc))


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a reader or a crash sees the old file or the
    new one, never half of either."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    if os.name == "posix":  # the rename itself is durable once the folder is synced
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
