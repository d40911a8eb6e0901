"""What the recorder has committed, shared by its threads; the status file `qmtbus health` reads."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from pathlib import Path

from qmtbus import files, protocol
from qmtbus.recorder.disk import disk_full

log = logging.getLogger(__name__)

# A status file per commit would be 50 writes a second under load; this is plenty for health.
STATUS_FILE_MIN_INTERVAL = 0.2


class Committed:
    """The newest committed position and counters; updated by the writer, read by anyone."""

    def __init__(self, status_file: str | os.PathLike[str]) -> None:
        self._lock = threading.Lock()
        self._path = Path(status_file)
        self._written_at = 0.0
        self._file_failing = False
        self.epoch = ""
        self.last_seq = 0
        self.events = 0
        self.bad_events = 0
        self.last_commit_ts = 0
        self.gateway_last_seq = 0

    def load(self, epoch: str, last_seq: int, events: int, bad_events: int) -> None:
        """The position found in DuckDB at start-up."""
        with self._lock:
            self.epoch, self.last_seq = epoch, last_seq
            self.events, self.bad_events = events, bad_events

    def committed(self, epoch: str, last_seq: int, events: int, bad_events: int) -> None:
        """A transaction committed: `epoch`/`last_seq` is its newest event, counts are added."""
        with self._lock:
            if epoch and (epoch, last_seq) > (self.epoch, self.last_seq):
                self.epoch, self.last_seq = epoch, last_seq
            self.events += events
            self.bad_events += bad_events
            self.last_commit_ts = time.time_ns()
        self.write_file()

    def gateway_seq(self, last_seq: int) -> None:
        """The newest seq the gateway announced (heartbeat or status)."""
        with self._lock:
            self.gateway_last_seq = last_seq

    def status(self) -> protocol.RecorderStatus:
        with self._lock:
            return protocol.RecorderStatus(
                epoch=self.epoch,
                last_seq=self.last_seq,
                events=self.events,
                last_commit_ts=self.last_commit_ts,
                gateway_last_seq=self.gateway_last_seq,
                bad_events=self.bad_events,
            )

    def write_file(self, force: bool = False) -> None:
        """Write the status file atomically (temp file + rename); at most 5 times a second."""
        now = time.monotonic()
        if not force and now - self._written_at < STATUS_FILE_MIN_INTERVAL:
            return
        self._written_at = now
        s = self.status()
        body = files.RecorderStatusFile(
            epoch=s.epoch,
            last_seq=s.last_seq,
            events=s.events,
            last_commit_ts=s.last_commit_ts,
            gateway_last_seq=s.gateway_last_seq,
            bad_events=s.bad_events,
            pid=os.getpid(),
        )
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".status-", dir=self._path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(files.encode(body))
                os.replace(tmp, self._path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as err:
            # the status file is a convenience: a full disk must not stop the recorder
            if not self._file_failing:
                if disk_full(err):
                    log.warning("disk full: the status file %s is not updated", self._path)
                else:
                    log.warning("cannot write status file %s: %s", self._path, err)
            self._file_failing = True
            return
        self._file_failing = False
