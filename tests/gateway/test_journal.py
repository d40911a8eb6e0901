"""The event journal: seq continuity, segments, replay after restart and after kill -9, trim."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from qmtbus.gateway import journal as journal_module
from qmtbus.gateway.journal import EpochInfo, Journal, NotHeld, new_epoch_name
from tests.support import ROOT

BIG = 1 << 40


def open_journal(directory: Path, **overrides: Any) -> Journal:
    options: dict[str, Any] = dict(
        fsync_interval=1.0, max_age_days=7.0, max_bytes=BIG, segment_bytes=1 << 20
    )
    options.update(overrides)
    return Journal(directory, **options)


def payload(seq: int, size: int = 300) -> bytes:
    head = f"event-{seq}:".encode()
    return head + b"x" * (size - len(head))


def write(journal: Journal, first: int, last: int, batch: int = 100, size: int = 300) -> None:
    for start in range(first, last + 1, batch):
        for seq in range(start, min(start + batch, last + 1)):
            journal.append(seq, payload(seq, size))
        journal.flush()


def segment_files(directory: Path, epoch: str) -> list[Path]:
    return sorted((directory / epoch).glob("*.seg"))


# ---------------------------------------------------------------- appending


def test_given_a_gap_in_seq_then_append_refuses_it(tmp_path: Path) -> None:
    j = open_journal(tmp_path)
    j.append(1, b"a")
    with pytest.raises(ValueError, match="must be 2, got 3"):
        j.append(3, b"c")
    with pytest.raises(ValueError, match="must be 2, got 1"):
        j.append(1, b"again")
    j.append(2, b"b")
    j.flush()
    assert j.last_seq == 2
    assert j.read(j.epoch, 1, 10) == ([b"a", b"b"], 2, False)


def test_given_first_append_then_seq_must_start_at_one(tmp_path: Path) -> None:
    j = open_journal(tmp_path)
    assert j.last_seq == 0
    with pytest.raises(ValueError, match="must be 1"):
        j.append(2, b"x")


def test_buffered_events_are_not_readable_until_flushed(tmp_path: Path) -> None:
    j = open_journal(tmp_path)
    j.append(1, b"one")
    assert j.read(j.epoch, 1, 10) == ([], 0, False)
    j.flush()
    assert j.read(j.epoch, 1, 10) == ([b"one"], 1, False)


def test_given_a_failed_write_then_events_stay_buffered_and_no_junk_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    j = open_journal(tmp_path)
    write(j, 1, 10)
    real_write = os.write

    def half_then_disk_full(fd: int, data: Any) -> int:
        real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(28, "No space left on device")

    j.append(11, payload(11))
    j.append(12, payload(12))
    monkeypatch.setattr(os, "write", half_then_disk_full)
    with pytest.raises(OSError, match="No space"):
        j.flush()
    monkeypatch.setattr(os, "write", real_write)
    j.flush()
    events, last, more = j.read(j.epoch, 1, 100)
    assert events == [payload(s) for s in range(1, 13)]
    assert (last, more) == (12, False)


# ---------------------------------------------------------------- epochs


def test_each_open_starts_a_new_epoch_that_sorts_after_the_old_ones(tmp_path: Path) -> None:
    names = []
    for _ in range(5):
        j = open_journal(tmp_path)
        names.append(j.epoch)
        j.close()
    assert len(set(names)) == 5
    assert names == sorted(names)
    assert [info.epoch for info in open_journal(tmp_path).epochs()][:5] == names


def test_new_epoch_name_in_the_same_second_or_after_a_clock_step_back_still_sorts_last() -> None:
    now = dt.datetime(2026, 11, 24, 4, 17, 32, tzinfo=dt.UTC)
    first = new_epoch_name([], now)
    assert first.startswith("20261124T041732Z-")
    same_second = new_epoch_name([first], now)
    earlier_clock = new_epoch_name([first, same_second], now - dt.timedelta(hours=1))
    assert first < same_second < earlier_clock
    full = new_epoch_name(["20261124T041732Z-ffffff"], now)
    assert full.startswith("20261124T041733Z-")


def test_given_reopened_directory_then_old_epoch_is_still_readable(tmp_path: Path) -> None:
    old = open_journal(tmp_path, segment_bytes=8 * 1024)
    write(old, 1, 500)
    old.close()
    new = open_journal(tmp_path, segment_bytes=8 * 1024)
    assert new.epoch != old.epoch
    assert new.last_seq == 0
    assert new.epochs() == [EpochInfo(old.epoch, 1, 500), EpochInfo(new.epoch, 1, 0)]
    events, last, more = new.read(old.epoch, 250, 20)
    assert events == [payload(s) for s in range(250, 270)]
    assert (last, more) == (500, True)
    assert new.read(old.epoch, 481, 100) == ([payload(s) for s in range(481, 501)], 500, False)


def test_given_kill_9_after_flush_then_flushed_events_survive(tmp_path: Path) -> None:
    script = f"""
import os, signal
from pathlib import Path
from qmtbus.gateway.journal import Journal
j = Journal(Path({str(tmp_path)!r}), fsync_interval=3600, max_age_days=7,
            max_bytes={BIG}, segment_bytes=1 << 20)
for seq in range(1, 1001):
    j.append(seq, b"e%d" % seq)
    if seq % 100 == 0:
        j.flush()
j.append(1001, b"never flushed")
print(j.epoch, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    epoch = proc.stdout.strip()
    j = open_journal(tmp_path)
    assert j.epochs()[0] == EpochInfo(epoch, 1, 1000)
    events, last, _ = j.read(epoch, 995, 100)
    assert events == [b"e%d" % s for s in range(995, 1001)]
    assert last == 1000


@pytest.mark.parametrize("cut", [1, 10, 200], ids=["in-header", "after-header", "in-payload"])
def test_given_torn_last_record_then_it_is_ignored_on_read(tmp_path: Path, cut: int) -> None:
    old = open_journal(tmp_path)
    write(old, 1, 50)
    old.close()
    (segment,) = segment_files(tmp_path, old.epoch)
    frame = 16 + 300
    with open(segment, "r+b") as f:
        f.truncate(segment.stat().st_size - frame + cut)
    j = open_journal(tmp_path)
    assert j.epochs()[0] == EpochInfo(old.epoch, 1, 49)
    assert j.read(old.epoch, 45, 100) == ([payload(s) for s in range(45, 50)], 49, False)
    assert j.read(old.epoch, 50, 100) == ([], 49, False)


def test_given_zero_filled_tail_then_it_is_ignored_on_read(tmp_path: Path) -> None:
    # What a power cut can leave behind: the file grew but its last block is zeros.
    old = open_journal(tmp_path)
    write(old, 1, 20)
    old.close()
    (segment,) = segment_files(tmp_path, old.epoch)
    with open(segment, "ab") as f:
        f.write(b"\0" * 4096)
    j = open_journal(tmp_path)
    assert j.read(old.epoch, 1, 100) == ([payload(s) for s in range(1, 21)], 20, False)


# ---------------------------------------------------------------- reading


def test_read_spans_segments_in_order(tmp_path: Path) -> None:
    j = open_journal(tmp_path, segment_bytes=4 * 1024)
    write(j, 1, 300, batch=37)
    assert len(segment_files(tmp_path, j.epoch)) > 10
    for path in segment_files(tmp_path, j.epoch):
        assert path.stat().st_size <= 4 * 1024
    events, last, more = j.read(j.epoch, 1, 1000)
    assert events == [payload(s) for s in range(1, 301)]
    assert (last, more) == (300, False)


def test_a_record_bigger_than_a_segment_gets_a_segment_of_its_own(tmp_path: Path) -> None:
    j = open_journal(tmp_path, segment_bytes=1024)
    j.append(1, b"small")
    j.append(2, b"B" * 5000)
    j.append(3, b"small again")
    j.flush()
    assert len(segment_files(tmp_path, j.epoch)) == 3
    assert j.read(j.epoch, 1, 10) == ([b"small", b"B" * 5000, b"small again"], 3, False)


def test_read_honours_limit_and_says_when_there_is_more(tmp_path: Path) -> None:
    j = open_journal(tmp_path)
    write(j, 1, 30)
    assert j.read(j.epoch, 1, 10) == ([payload(s) for s in range(1, 11)], 30, True)
    assert j.read(j.epoch, 21, 10) == ([payload(s) for s in range(21, 31)], 30, False)
    assert j.read(j.epoch, 30, 1) == ([payload(30)], 30, False)


def test_given_from_seq_beyond_the_last_then_read_returns_nothing_with_last_seq(
    tmp_path: Path,
) -> None:
    j = open_journal(tmp_path)
    write(j, 1, 5)
    assert j.read(j.epoch, 6, 10) == ([], 5, False)
    assert j.read(j.epoch, 1_000, 10) == ([], 5, False)


def test_given_unknown_epoch_then_read_raises_not_held_naming_the_epoch(tmp_path: Path) -> None:
    j = open_journal(tmp_path)
    with pytest.raises(NotHeld, match="epoch 20200101T000000Z-000000 is not held") as err:
        j.read("20200101T000000Z-000000", 1, 10)
    assert err.value.epoch == "20200101T000000Z-000000"
    assert j.epoch not in str(err.value)  # only the epoch asked for (issue 16)


def test_replay_from_the_middle_reads_a_small_part_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = open_journal(tmp_path, segment_bytes=1 << 20)
    write(old, 1, 20_000)
    old.close()
    j = open_journal(tmp_path, segment_bytes=1 << 20)
    write(j, 1, 20_000)
    bytes_read = 0
    real_open = open

    class Counting:
        def __init__(self, f: Any) -> None:
            self.f = f

        def read(self, n: int = -1) -> bytes:
            nonlocal bytes_read
            data: bytes = self.f.read(n)
            bytes_read += len(data)
            return data

        def __getattr__(self, name: str) -> Any:
            return getattr(self.f, name)

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

    monkeypatch.setattr(journal_module, "open", lambda *a: Counting(real_open(*a)), raising=False)
    total = sum(p.stat().st_size for p in segment_files(tmp_path, j.epoch))
    events, _, _ = j.read(j.epoch, 10_000, 100)
    assert events == [payload(s) for s in range(10_000, 10_100)]
    assert bytes_read < 400 * 1024 < total / 10
    # An old epoch: the first read indexes one segment, not the epoch; later reads are small.
    bytes_read = 0
    assert old.epoch != j.epoch
    events, _, _ = j.read(old.epoch, 10_000, 100)
    assert events == [payload(s) for s in range(10_000, 10_100)]
    assert bytes_read < 2 * (1 << 20)
    bytes_read = 0
    events, _, _ = j.read(old.epoch, 10_500, 100)
    assert events == [payload(s) for s in range(10_500, 10_600)]
    assert bytes_read < 400 * 1024


# ---------------------------------------------------------------- trimming


def test_trim_by_size_deletes_oldest_segments_first_and_keeps_the_current_epoch(
    tmp_path: Path,
) -> None:
    old = open_journal(tmp_path, segment_bytes=16 * 1024)
    write(old, 1, 1000)
    old.close()
    j = open_journal(tmp_path, segment_bytes=16 * 1024, max_bytes=100 * 1024)
    write(j, 1, 200)
    j.trim()
    on_disk = sum(p.stat().st_size for p in tmp_path.rglob("*.seg"))
    assert on_disk <= 100 * 1024
    (old_info, current) = j.epochs()
    assert old_info.epoch == old.epoch and old_info.last_seq == 1000 and old_info.first_seq > 1
    assert current == EpochInfo(j.epoch, 1, 200)
    assert j.read(j.epoch, 1, 1000)[0] == [payload(s) for s in range(1, 201)]
    with pytest.raises(NotHeld, match=f"seq 1 of epoch {old.epoch} is no longer held"):
        j.read(old.epoch, 1, 10)
    events, last, _ = j.read(old.epoch, old_info.first_seq, 10)
    assert events[0] == payload(old_info.first_seq) and last == 1000


def test_given_tiny_max_bytes_then_trim_keeps_only_the_active_segment(tmp_path: Path) -> None:
    old = open_journal(tmp_path, segment_bytes=8 * 1024)
    write(old, 1, 100)
    old.close()
    j = open_journal(tmp_path, segment_bytes=8 * 1024, max_bytes=1)
    write(j, 1, 100)
    j.trim()
    assert not (tmp_path / old.epoch).exists()
    assert len(segment_files(tmp_path, j.epoch)) == 1
    (info,) = j.epochs()
    assert info.epoch == j.epoch and info.last_seq == 100
    assert j.read(j.epoch, info.first_seq, 1000)[0][-1] == payload(100)
    with pytest.raises(NotHeld, match="is not held"):
        j.read(old.epoch, 1, 10)
    write(j, 101, 150)
    assert j.read(j.epoch, 150, 10) == ([payload(150)], 150, False)


def test_trim_by_age_deletes_old_epochs_but_never_the_current_one(tmp_path: Path) -> None:
    old = open_journal(tmp_path)
    write(old, 1, 10)
    old.close()
    week_ago = time.time() - 8 * 86400
    for path in segment_files(tmp_path, old.epoch):
        os.utime(path, (week_ago, week_ago))
    j = open_journal(tmp_path, max_age_days=7.0)
    write(j, 1, 10)
    for path in segment_files(tmp_path, j.epoch):
        os.utime(path, (week_ago, week_ago))  # even an old-looking active segment stays
    j.trim()
    assert [info.epoch for info in j.epochs()] == [j.epoch]
    assert not (tmp_path / old.epoch).exists()
    assert j.read(j.epoch, 1, 100)[0] == [payload(s) for s in range(1, 11)]


def test_trim_keeps_young_epochs_under_the_size_limit(tmp_path: Path) -> None:
    old = open_journal(tmp_path)
    write(old, 1, 10)
    old.close()
    j = open_journal(tmp_path)
    j.trim()
    assert [info.epoch for info in j.epochs()] == [old.epoch, j.epoch]


# ---------------------------------------------------------------- fsync


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


def test_given_fsync_interval_zero_then_every_flush_fsyncs(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    j = open_journal(tmp_path, fsync_interval=0)
    write(j, 1, 100, batch=10)  # the first flush also syncs the new file's directory
    assert len(fsyncs) == 10 + 1


def test_given_fsync_interval_then_flush_fsyncs_only_when_it_has_passed(
    tmp_path: Path, fsyncs: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(journal_module.time, "monotonic", clock)
    j = open_journal(tmp_path, fsync_interval=1.0)
    write(j, 1, 100, batch=10)
    assert fsyncs == []
    clock.now += 1.0
    j.flush()  # nothing new buffered, but written data is due for a sync
    synced = len(fsyncs)
    assert synced >= 1
    write(j, 101, 200, batch=10)
    clock.now += 0.5
    j.flush()
    assert len(fsyncs) == synced
    clock.now += 0.5
    j.flush()
    assert len(fsyncs) == synced + 1
    clock.now += 5
    j.flush()  # nothing written since: nothing to sync
    assert len(fsyncs) == synced + 1


def test_close_flushes_and_fsyncs(tmp_path: Path, fsyncs: list[int]) -> None:
    j = open_journal(tmp_path, fsync_interval=3600)
    j.append(1, b"last words")
    j.close()
    assert fsyncs
    with pytest.raises(ValueError, match="closed"):
        j.append(2, b"too late")
    assert open_journal(tmp_path).read(j.epoch, 1, 10) == ([b"last words"], 1, False)
