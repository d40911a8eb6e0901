"""What the recorder promises, shown through real processes (gateway, recorder, DuckDB file):
every seq of every epoch the gateway's journal holds is in DuckDB exactly once, or a `gaps`
row names it; across restarts, a damaged journal frame, crashes at each failpoint, a full disk.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from qmtbus import protocol
from qmtbus.failpoints import POINTS
from tests.recorder.helpers import (
    STARTED,
    send_notes,
    sql,
    start_recorder,
    wait_caught_up,
    wait_endpoint,
)
from tests.support import Proc, Stack, start_gateway, wait_for


def held_epochs(stack: Stack) -> dict[str, tuple[int, int]]:
    reply = stack.call(protocol.ListEpochs())
    assert isinstance(reply, protocol.EpochsReply), reply
    return {e.epoch: (e.first_seq, e.last_seq) for e in reply.epochs}


def assert_each_seq_once_or_a_gap(stack: Stack, epoch: str, last: int) -> list[list[object]]:
    """Seqs 1..last of `epoch`: each in `events` exactly once, or inside one `gaps` row.
    Returns the epoch's gaps rows (from_seq, to_seq, reason)."""
    rows = sql(stack, f"SELECT seq FROM events WHERE epoch = '{epoch}' ORDER BY seq", limit=10**6)
    stored = [int(r[0]) for r in rows]
    assert len(stored) == len(set(stored)), f"epoch {epoch}: a seq is stored twice"
    gaps = sql(
        stack,
        f"SELECT from_seq, to_seq, reason FROM gaps WHERE epoch = '{epoch}' ORDER BY from_seq",
    )
    named = {s for g in gaps for s in range(int(g[0]), int(g[1] if g[1] else last) + 1)}
    assert not named & set(stored), f"epoch {epoch}: a gap covers stored seqs"
    missing = set(range(1, last + 1)) - set(stored) - named
    assert not missing, f"epoch {epoch}: seqs {sorted(missing)[:10]}... neither stored nor a gap"
    return gaps


def notes_of(stack: Stack, run: str) -> int:
    rows = sql(stack, f"SELECT count(DISTINCT data->>'i') FROM notes WHERE data->>'run' = '{run}'")
    return int(rows[0][0])


def test_given_recorder_down_across_two_gateway_restarts_then_all_three_epochs_are_recorded(
    stack: Stack,
) -> None:
    gateway = start_gateway(stack)
    recorder = start_recorder(stack)
    send_notes(stack, 300, run="one-seen")
    wait_caught_up(stack)
    recorder.kill()
    send_notes(stack, 200, run="one-missed")
    assert gateway.stop() == 0
    gateway = start_gateway(stack)
    send_notes(stack, 400, run="two")  # an epoch the recorder never sees live
    assert gateway.stop() == 0
    gateway = start_gateway(stack)
    send_notes(stack, 100, run="three")
    held = held_epochs(stack)
    assert len(held) == 3
    recorder = start_recorder(stack)
    wait_caught_up(stack)
    for epoch, (_, last) in held.items():
        if epoch != max(held):
            assert assert_each_seq_once_or_a_gap(stack, epoch, last) == []
    assert [notes_of(stack, r) for r in ("one-seen", "one-missed", "two", "three")] == [
        300,
        200,
        400,
        100,
    ]
    complete = sql(stack, "SELECT epoch FROM progress WHERE complete ORDER BY epoch")
    assert [r[0] for r in complete] == sorted(held)[:2], "the old epochs are marked complete"
    assert recorder.stop() == 0
    gateway.stop()


def test_given_a_damaged_frame_mid_epoch_then_later_frames_are_recorded_and_the_hole_is_a_gap(
    stack: Stack,
) -> None:
    gateway = start_gateway(stack)
    send_notes(stack, 600, run="damaged")
    old = stack.call(protocol.GetStatus()).epoch
    assert gateway.stop() == 0
    (segment,) = sorted((stack.data_dir / "journal" / old).glob("*.seg"))
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in some frame mid-epoch
    segment.write_bytes(bytes(data))
    gateway = start_gateway(stack)
    last = held_epochs(stack)[old][1]
    recorder = start_recorder(stack)
    wait_caught_up(stack)
    wait_for(lambda: sql(stack, f"SELECT 1 FROM progress WHERE epoch = '{old}' AND complete"), 30)
    gaps = assert_each_seq_once_or_a_gap(stack, old, last)
    assert len(gaps) == 1, gaps
    from_seq, to_seq, reason = gaps[0]
    assert str(reason).startswith("damaged")
    assert 1 < int(from_seq) <= int(to_seq) < last
    after = sql(stack, f"SELECT count(*) FROM events WHERE epoch = '{old}' AND seq > {to_seq}")
    assert int(after[0][0]) == last - int(to_seq), "every frame after the hole is recorded"
    assert "damaged" in recorder.log()
    assert recorder.stop() == 0
    gateway.stop()


@pytest.mark.parametrize(
    "point", sorted(n for n, (prog, _) in POINTS.items() if prog == "recorder")
)
def test_given_a_crash_at_each_recorder_failpoint_then_a_restart_stores_every_seq_once(
    stack: Stack, point: str
) -> None:
    stack.write_config(recorder={"batch_rows": 200})
    gateway = start_gateway(stack)
    send_notes(stack, 800, run="before")
    assert gateway.stop() == 0
    gateway = start_gateway(stack)  # two epochs to fetch: the crash comes mid catch-up
    send_notes(stack, 700, run="before-two")
    crashing = Proc("recorder", stack, env={"QMTBUS_FAILPOINT": point}).start()
    STARTED.append(crashing)
    assert crashing.wait_exit(60) == -signal.SIGKILL
    assert f"failpoint {point}" in crashing.log()
    stored = rows_in_file(stack)
    if point == "recorder.batch_committed":
        assert stored > 0, "the crash came after a commit: the file keeps that batch"
    else:
        assert stored == 0, "the crash came before the first commit"
    recorder = start_recorder(stack)
    send_notes(stack, 500, run="after")
    live, caught = wait_caught_up(stack)
    for epoch, (_, last) in held_epochs(stack).items():
        # the live epoch only as far as the recorder was seen to hold: a heartbeat since
        # is on its way
        last = min(last, caught) if epoch == live else last
        assert assert_each_seq_once_or_a_gap(stack, epoch, last) == []
    counts = [notes_of(stack, r) for r in ("before", "before-two", "after")]
    assert counts == [800, 700, 500]
    assert recorder.stop() == 0
    gateway.stop()


def rows_in_file(stack: Stack) -> int:
    """Rows in the DuckDB file the crashed recorder left, read straight from the file."""
    database = stack.config()["recorder"]["database"]
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True);"
            " print(c.execute('SELECT count(*) FROM events').fetchall()[0][0])",
            database,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(out.stdout.strip())


def test_given_the_disk_nearly_full_then_the_snapshot_is_skipped_and_recording_goes_on(
    stack: Stack, gateway: Proc
) -> None:
    # more free space wanted than any disk has: every refresh must be skipped
    stack.write_config(recorder={"snapshot_interval": 0.2, "snapshot_min_free_mb": 1e12})
    snapshot = Path(stack.config()["recorder"]["snapshot_path"])
    recorder = start_recorder(stack)
    send_notes(stack, 300, run="full")
    wait_caught_up(stack)
    wait_for(lambda: "disk full: snapshot" in recorder.log(), 20, "the disk-full sentence")
    assert not snapshot.exists()
    assert not snapshot.with_name(f".{snapshot.name}.staging").exists()
    assert notes_of(stack, "full") == 300, "recording goes on"
    lines = [line for line in recorder.log().splitlines() if "disk full" in line]
    assert len(lines) == 1, lines  # one sentence, not one per refresh
    assert recorder.stop() == 0
    # space comes back: the next recorder writes its snapshot
    stack.write_config(recorder={"snapshot_min_free_mb": 0})
    recorder = start_recorder(stack)
    wait_endpoint(stack, recorder)
    wait_for(snapshot.exists, 30, "the snapshot file")
    assert recorder.stop() == 0


def test_list_failpoints_names_each_crash_point_and_exits_0() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "qmtbus.recorder", "--list-failpoints"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    names = [line.split()[0] for line in out.stdout.splitlines()]
    assert names == ["recorder.before_commit", "recorder.batch_committed"]
