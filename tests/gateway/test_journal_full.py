"""The journal's writer on a full disk: a failed flush keeps every event, in order, for the next.

The disk is made full by a fault injected at the OS call (os.write / os.open raising
ENOSPC), the way a full disk answers; the journal's own code runs unchanged.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qmtbus.gateway import journal as journal_module
from qmtbus.gateway.journal import Journal


def _journal(folder: Path, segment_bytes: int = 1 << 20) -> Journal:
    return Journal(
        folder, fsync_interval=0, max_age_days=30, max_bytes=1 << 30, segment_bytes=segment_bytes
    )


def _full(real: Callable[..., Any], failures: list[int]) -> Callable[..., Any]:
    """`real`, except that the calls numbered in `failures` (1-based) raise ENOSPC."""
    calls = [0]

    def call(*args: Any) -> Any:
        calls[0] += 1
        if calls[0] in failures:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*args)

    return call


def _payloads(j: Journal) -> list[bytes]:
    out, _, _ = j.read(j.epoch, 1, 10_000)
    return out


def test_given_enospc_on_write_then_nothing_is_readable_and_the_next_flush_writes_all_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    j = _journal(tmp_path)
    for seq in range(1, 4):
        j.append(seq, b"event-%d" % seq)
    monkeypatch.setattr(journal_module.os, "write", _full(os.write, [1]))
    with pytest.raises(OSError) as err:
        j.flush()
    assert err.value.errno == errno.ENOSPC
    assert j.epochs()[-1].last_seq == 0  # nothing was taken as written
    j.append(4, b"event-4")  # the gateway goes on emitting while the disk is full
    j.flush()  # space is back
    assert _payloads(j) == [b"event-1", b"event-2", b"event-3", b"event-4"]
    j.close()
    assert _payloads(_journal(tmp_path)) == []  # a new epoch; the old one reads back whole
    again = _journal(tmp_path)
    old = again.epochs()[0]
    assert again.read(old.epoch, 1, 100)[0] == [b"event-1", b"event-2", b"event-3", b"event-4"]


def test_given_no_room_for_a_new_segment_then_the_next_flush_rolls_without_losing_or_doubling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    j = _journal(tmp_path, segment_bytes=64)  # one event per segment
    j.append(1, b"x" * 40)
    j.flush()
    j.append(2, b"y" * 40)
    j.append(3, b"z" * 40)
    real_open = os.open
    segments = [0]

    def open_segment(path: Any, *args: Any) -> int:
        if str(path).endswith(".seg"):
            segments[0] += 1
            if segments[0] == 2:  # the segment for seq 3: no room for it
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_open(path, *args)

    monkeypatch.setattr(journal_module.os, "open", open_segment)
    with pytest.raises(OSError):
        j.flush()
    j.flush()
    assert _payloads(j) == [b"x" * 40, b"y" * 40, b"z" * 40]
    j.close()
