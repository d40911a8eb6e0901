"""The files one process writes and another reads, as msgspec Structs: the scheduler's state
file and the recorder's status file. Every reader decodes them here (health, CLI, the
processes themselves); nothing happens at import, so any room may use this module.

Schema evolution as for the protocol: a new field gets a default and goes at the end.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import msgspec

# -- the scheduler's state file (scheduler.state_file) -------------------------------------

STATE_VERSION = 1
Outcome = Literal["running", "ok", "error", "interrupted"]


class RunRecord(msgspec.Struct, kw_only=True):
    """One run that started (it may be running still)."""

    scheduled_for: dt.datetime
    started: dt.datetime
    finished: dt.datetime | None = None
    outcome: Outcome = "running"
    error: str = ""


class SkipRecord(msgspec.Struct, kw_only=True):
    """One cron time that did not run, and why."""

    scheduled_for: dt.datetime
    at: dt.datetime
    reason: str


class JobRecord(msgspec.Struct, kw_only=True):
    # every cron time up to and including this one has been dealt with: started,
    # skipped, or before the job was first seen
    handled_until: dt.datetime
    last_run: RunRecord | None = None
    last_skipped: SkipRecord | None = None
    next_run: dt.datetime | None = None
    # why there is no next run (the calendar ran out), "" otherwise
    next_run_error: str = ""


class SchedulerState(msgspec.Struct, kw_only=True):
    """The whole state file: written by the scheduler, read by `qmtbus health`."""

    version: int = STATE_VERSION
    pid: int = 0
    started: dt.datetime | None = None
    updated: dt.datetime | None = None
    calendar: str = "XSHG"
    calendar_last_day: dt.date | None = None
    jobs: dict[str, JobRecord] = {}


# -- the recorder's status file (recorder.status_file) -------------------------------------


class RecorderStatusFile(msgspec.Struct, kw_only=True):
    """What the recorder has committed, rewritten at most 5 times a second; read by
    `qmtbus health` when the recorder does not answer."""

    epoch: str = ""
    last_seq: int = 0
    events: int = 0
    last_commit_ts: int = 0  # ns since the Unix epoch
    gateway_last_seq: int = 0
    bad_events: int = 0
    pid: int = 0


# -- reading and writing -------------------------------------------------------------------

T = TypeVar("T", SchedulerState, RecorderStatusFile)
_decoders: dict[type, msgspec.json.Decoder[Any]] = {
    SchedulerState: msgspec.json.Decoder(SchedulerState),
    RecorderStatusFile: msgspec.json.Decoder(RecorderStatusFile),
}
_encoder = msgspec.json.Encoder()


def decode(kind: type[T], raw: bytes) -> T:
    """Decode a file's bytes; raises msgspec.DecodeError (or ValidationError) when bad."""
    return cast(T, _decoders[kind].decode(raw))


def encode(doc: SchedulerState | RecorderStatusFile) -> bytes:
    return _encoder.encode(doc)


def read(kind: type[T], path: Path) -> T | None:
    """The file at `path` decoded as `kind`, or None when it is missing or unreadable."""
    try:
        return decode(kind, path.read_bytes())
    except (OSError, msgspec.DecodeError):
        return None
