"""Heartbeats stay for recorder.heartbeat_days, every other event for ever (a real recorder)."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from qmtbus import protocol
from qmtbus.recorder.retention import HeartbeatRetention
from tests.support import Proc, Stack, start_gateway, wait_for


def _count(con: duckdb.DuckDBPyConnection, where: str) -> int:
    row = con.execute(f"SELECT count(*) FROM events WHERE {where}").fetchone()
    return int(row[0]) if row else 0


def test_given_old_heartbeats_and_notes_then_only_the_old_heartbeats_are_deleted(
    tmp_path: Path,
) -> None:
    con = duckdb.connect(str(tmp_path / "r.duckdb"))
    con.execute("CREATE TABLE events (epoch VARCHAR, seq BIGINT, type VARCHAR, ts BIGINT)")
    now = 1_800_000_000.0
    day_ns = 86_400 * 10**9
    old, recent = int(now * 1e9) - 3 * day_ns, int(now * 1e9) - day_ns
    con.execute(
        "INSERT INTO events VALUES ('e', 1, 'heartbeat', ?), ('e', 2, 'note', ?),"
        " ('e', 3, 'heartbeat', ?), ('e', 4, 'trade', ?)",
        [old, old, recent, recent],
    )
    retention = HeartbeatRetention(2.0, clock=lambda: now)
    assert retention.maybe_prune(con) == 1
    left = con.execute("SELECT seq FROM events ORDER BY seq").fetchall()
    assert [seq for (seq,) in left] == [2, 3, 4]
    assert retention.maybe_prune(con) == 0  # not again within the minute
    assert HeartbeatRetention(0.0, clock=lambda: now).maybe_prune(con) == 0  # 0: for ever


def test_given_a_running_recorder_with_a_short_period_then_heartbeats_go_and_notes_stay(
    tmp_path: Path,
) -> None:
    # 0.00003 days = 2.6 s, pruned about every 0.26 s (after a batch): by the time the
    # recorder stops, no heartbeat older than 5 s is left, and the first note still is.
    stack = Stack(tmp_path, {"recorder": {"heartbeat_days": 0.00003}})
    gateway = start_gateway(stack)
    recorder = Proc("recorder", stack).start()
    try:
        note = stack.call(protocol.PublishNote(topic="kept", data={}))
        assert isinstance(note, protocol.NoteAck)
        wait_for(lambda: "heartbeats older than" in recorder.log(), 60, "a prune")
        stopped_ns = time.time_ns()
        recorder.stop()
        with duckdb.connect(str(stack.data_dir / "qmtbus.duckdb"), read_only=True) as con:
            assert _count(con, f"type = 'heartbeat' AND ts < {stopped_ns - 5 * 10**9}") == 0
            assert _count(con, "type = 'heartbeat'") >= 1  # the recent ones stay
            assert _count(con, f"type = 'note' AND seq = {note.seq}") == 1
            assert _count(con, "type = 'gateway'") >= 1  # every other event for ever
    finally:
        if recorder.alive():
            recorder.stop()
        gateway.stop()
