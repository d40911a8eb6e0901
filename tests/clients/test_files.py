"""The shared file formats (qmtbus.files): what the writer writes, every reader decodes."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from qmtbus import files
from qmtbus.calendar import SHANGHAI
from qmtbus.recorder.state import Committed
from qmtbus.scheduler.state import StateFile

T0 = dt.datetime(2026, 11, 24, 9, 0, tzinfo=SHANGHAI)


def test_given_the_recorder_wrote_its_status_file_then_the_struct_reads_every_field(
    tmp_path: Path,
) -> None:
    path = tmp_path / "recorder-status.json"
    committed = Committed(path)
    committed.load("e1", 7, 7, 1)
    committed.gateway_seq(9)
    committed.write_file(force=True)

    status = files.read(files.RecorderStatusFile, path)
    assert status is not None
    assert (status.epoch, status.last_seq, status.events, status.bad_events) == ("e1", 7, 7, 1)
    assert (status.gateway_last_seq, status.pid) == (9, os.getpid())


def test_given_the_scheduler_wrote_its_state_then_the_struct_reads_the_same_document(
    tmp_path: Path,
) -> None:
    path = tmp_path / "scheduler-state.json"
    state = StateFile(path)
    state.begin(["buy"], T0, dt.date(2026, 12, 31))
    assert state.claim("buy", T0 + dt.timedelta(minutes=1), T0 + dt.timedelta(minutes=1))

    doc = files.read(files.SchedulerState, path)
    assert doc == state.doc
    assert doc is not None and doc.jobs["buy"].last_run is not None
    assert doc.jobs["buy"].last_run.outcome == "running"


def test_given_a_missing_or_garbled_file_then_read_says_none(tmp_path: Path) -> None:
    assert files.read(files.SchedulerState, tmp_path / "absent.json") is None
    garbled = tmp_path / "garbled.json"
    garbled.write_text('{"pid": "not a number"')
    assert files.read(files.RecorderStatusFile, garbled) is None
    garbled.write_text('{"pid": "not a number"}')
    assert files.read(files.RecorderStatusFile, garbled) is None


def test_given_a_field_added_by_a_newer_writer_then_an_older_reader_still_reads_the_file(
    tmp_path: Path,
) -> None:
    newer = tmp_path / "recorder-status.json"
    newer.write_text('{"epoch": "e2", "last_seq": 3, "pid": 5, "added_later": [1, 2]}')
    status = files.read(files.RecorderStatusFile, newer)
    assert status is not None and (status.epoch, status.last_seq, status.pid) == ("e2", 3, 5)
