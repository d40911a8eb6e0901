"""The journal's reading side: a damaged frame is skipped, and the seqs it held are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from qmtbus.gateway.journal import HEADER_SIZE, MAGIC, Journal, NotHeld
from tests.gateway.test_journal import open_journal, payload, segment_files, write

FRAME = HEADER_SIZE + 300  # every frame `write` makes


def damage(segment: Path, at: int, size: int = 1) -> None:
    data = bytearray(segment.read_bytes())
    for i in range(at, at + size):
        data[i] ^= 0xFF
    segment.write_bytes(bytes(data))


def old_epoch(tmp_path: Path, last: int, **options: object) -> tuple[str, Journal]:
    """An epoch of `last` events written and closed, and a new journal on the same folder."""
    old = open_journal(tmp_path, **options)
    write(old, 1, last)
    old.close()
    return old.epoch, open_journal(tmp_path, **options)


def test_given_a_damaged_frame_mid_epoch_then_later_frames_are_still_replayed(
    tmp_path: Path,
) -> None:
    epoch, _ = old_epoch(tmp_path, 400)
    (segment,) = segment_files(tmp_path, epoch)
    damage(segment, len(MAGIC) + 10 * FRAME + HEADER_SIZE + 5)  # inside seq 11's payload
    j = open_journal(tmp_path)
    # a read stops before the hole, with more to come
    assert j.read(epoch, 1, 1000) == ([payload(s) for s in range(1, 11)], 400, True)
    with pytest.raises(NotHeld) as lost:
        j.read(epoch, 11, 1000)
    assert (lost.value.reason, lost.value.seq, lost.value.lost_to) == ("damaged", 11, 11)
    assert (lost.value.first_seq, lost.value.last_seq) == (1, 400)
    assert "seqs 11..11" in str(lost.value)
    events, last, more = j.read(epoch, 12, 1000)
    assert events == [payload(s) for s in range(12, 401)]
    assert (last, more) == (400, False)


def test_given_damaged_headers_of_several_frames_then_the_whole_stretch_is_named(
    tmp_path: Path,
) -> None:
    epoch, j = old_epoch(tmp_path, 100)
    (segment,) = segment_files(tmp_path, epoch)
    damage(segment, len(MAGIC) + 20 * FRAME, 3 * FRAME)  # seqs 21, 22, 23 scrambled
    j = open_journal(tmp_path)
    with pytest.raises(NotHeld) as lost:
        j.read(epoch, 21, 10)
    assert (lost.value.seq, lost.value.lost_to) == (21, 23)
    assert j.read(epoch, 24, 1000)[0] == [payload(s) for s in range(24, 101)]
    assert [e.last_seq for e in j.epochs() if e.epoch == epoch] == [100]


def test_given_a_damaged_tail_of_a_segment_then_the_hole_ends_at_the_next_segment(
    tmp_path: Path,
) -> None:
    epoch, _ = old_epoch(tmp_path, 60, segment_bytes=4 * 1024)
    first, second, *_ = segment_files(tmp_path, epoch)
    in_first = (first.stat().st_size - len(MAGIC)) // FRAME
    damage(first, first.stat().st_size - FRAME + HEADER_SIZE)  # its last frame
    j = open_journal(tmp_path, segment_bytes=4 * 1024)
    assert j.read(epoch, 1, 1000) == ([payload(s) for s in range(1, in_first)], 60, True)
    with pytest.raises(NotHeld) as lost:
        j.read(epoch, in_first, 1000)
    assert lost.value.lost_to == in_first
    assert int(second.name.split(".")[0]) == in_first + 1
    assert j.read(epoch, in_first + 1, 1000)[0] == [payload(s) for s in range(in_first + 1, 61)]


def test_given_a_trimmed_start_then_not_held_says_which_seqs_are_gone(tmp_path: Path) -> None:
    epoch, j = old_epoch(tmp_path, 60, segment_bytes=4 * 1024)
    first = segment_files(tmp_path, epoch)[0]
    first.unlink()
    j = open_journal(tmp_path, segment_bytes=4 * 1024)
    with pytest.raises(NotHeld) as lost:
        j.read(epoch, 1, 10)
    held_from = lost.value.first_seq
    assert held_from > 1
    assert (lost.value.reason, lost.value.lost_to, lost.value.last_seq) == (
        "trimmed",
        held_from - 1,
        60,
    )


def test_given_an_unknown_epoch_then_not_held_has_no_end(tmp_path: Path) -> None:
    j = open_journal(tmp_path)
    with pytest.raises(NotHeld) as lost:
        j.read("20200101T000000Z-000000", 5, 10)
    assert (lost.value.reason, lost.value.lost_to, lost.value.seq) == ("not_held", None, 5)


def test_given_a_payload_that_looks_like_a_frame_then_only_a_verified_checksum_resyncs(
    tmp_path: Path,
) -> None:
    epoch, _ = old_epoch(tmp_path, 30)
    (segment,) = segment_files(tmp_path, epoch)
    # junk over seqs 5..6 whose bytes parse as headers with wrong checksums
    data = bytearray(segment.read_bytes())
    at = len(MAGIC) + 4 * FRAME
    data[at : at + 2 * FRAME] = (b"\x10\x00\x00\x00\x01\x02\x03\x04\x06" + b"\0" * 7) * (
        2 * FRAME // 16
    ) + b"\0" * (2 * FRAME % 16)
    segment.write_bytes(bytes(data))
    j = open_journal(tmp_path)
    assert j.read(epoch, 1, 100) == ([payload(s) for s in range(1, 5)], 30, True)
    with pytest.raises(NotHeld) as lost:
        j.read(epoch, 5, 100)
    assert lost.value.lost_to == 6
    assert j.read(epoch, 7, 100)[0] == [payload(s) for s in range(7, 31)]


@pytest.mark.parametrize("junk", [bytes(1 << 20), bytes(range(256)) * 4096], ids=["zeros", "noise"])
def test_given_a_megabyte_of_junk_between_frames_then_nothing_is_lost(
    tmp_path: Path, junk: bytes
) -> None:
    epoch, _ = old_epoch(tmp_path, 200)
    (segment,) = segment_files(tmp_path, epoch)
    data = segment.read_bytes()
    cut = len(MAGIC) + 100 * FRAME  # between seq 100 and seq 101
    segment.write_bytes(data[:cut] + junk + data[cut:])
    j = open_journal(tmp_path)
    events, last, more = j.read(epoch, 1, 1000)
    assert events == [payload(s) for s in range(1, 201)]
    assert (last, more) == (200, False)
