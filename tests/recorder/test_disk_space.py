"""A full disk: the snapshot steps aside for the gateway, and DuckDB's failure is one sentence.

The snapshot's free-space check goes through a small port (`free_space`), faked here;
tests/recorder/test_trust.py shows the same through a real recorder process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import duckdb
import pytest

from qmtbus import protocol
from qmtbus.recorder.snapshot import MB, Snapshotter, private_dir
from qmtbus.recorder.state import Committed
from qmtbus.recorder.writer import Batch, Database, Writer

E = "20261124T010000Z-disk00"


@pytest.fixture
def db(tmp_path: Path) -> Any:
    database = Database(str(tmp_path / "r.duckdb"), private_dir(tmp_path / "snap.duckdb"))
    database.setup()
    yield database
    database.close()


def commit_notes(writer: Writer, first: int, last: int) -> None:
    batch = Batch()
    for seq in range(first, last + 1):
        batch.add(protocol.NoteEvent(epoch=E, seq=seq, topic="t"), E, seq)
    writer.write(batch)


def test_given_little_free_space_then_the_snapshot_is_skipped_until_there_is_room(
    tmp_path: Path, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    committed = Committed(tmp_path / "status.json")
    commit_notes(Writer(db, committed, 0.1), 1, 50)
    free = {"bytes": 10 * MB}
    snap = Snapshotter(
        str(tmp_path / "snap.duckdb"),
        5.0,
        db,
        committed,
        min_free_bytes=256 * MB,
        free_space=lambda _folder: free["bytes"],
    )
    with caplog.at_level(logging.ERROR):
        assert not snap.refresh()
        assert not snap.refresh()
    assert snap.skipped == 2 and snap.taken == 0
    assert not snap.path.exists() and not snap.staging.exists()
    full = [r.getMessage() for r in caplog.records if "disk full" in r.getMessage()]
    assert len(full) == 1, full  # once per spell, not once per refresh
    assert full[0].startswith(f"disk full: snapshot {snap.path} skipped (10 MB free")
    free["bytes"] = 10_000 * MB  # space came back
    assert snap.refresh()
    assert snap.path.exists() and snap.taken == 1


class _FullDisk:
    """DuckDB's connection, except that COMMIT fails as on a full disk `failures` times."""

    def __init__(self, con: duckdb.DuckDBPyConnection, failures: int) -> None:
        self._con = con
        self.failures = failures

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT" and self.failures:
            self.failures -= 1
            raise duckdb.IOException(
                'IO Error: Could not write file "r.duckdb.wal": No space left on device'
            )
        return self._con.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def test_given_a_full_disk_then_the_writer_says_disk_full_once_and_loses_nothing(
    tmp_path: Path, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    real = db.con
    db.con = _FullDisk(real, failures=3)  # type: ignore[assignment]
    writer = Writer(db, Committed(tmp_path / "status.json"), retry_seconds=0.01)
    batch = Batch()
    for seq in range(1, 21):
        batch.add(protocol.NoteEvent(epoch=E, seq=seq, topic="t"), E, seq)
    with caplog.at_level(logging.WARNING):
        writer.start()
        assert writer.submit(batch, timeout=5)
        assert writer.finish(30)
    db.con = real
    messages = [r.getMessage() for r in caplog.records]
    full = [m for m in messages if "disk full" in m]
    assert len(full) == 1, messages
    assert full[0].startswith(f"disk full: cannot write to {db.path}; keeping 20 rows")
    assert any("works again; nothing was lost" in m for m in messages)
    assert real.execute("SELECT count(*) FROM events").fetchall() == [(20,)]
