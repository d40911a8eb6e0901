"""A full disk under the journal: the gateway keeps serving, refuses new orders, recovers alone.

The journal lives on a small tmpfs (needs root's `mount`; skipped where it is not
permitted), filled up by a file beside it while the gateway runs.
"""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from qmtbus import protocol as p
from tests.gateway.conftest import order
from tests.gateway.trust import check_invariants, journal_events, outcomes
from tests.support import Proc, Stack, start_gateway, wait_for


@pytest.fixture
def small_journal(stack: Stack) -> Iterator[Path]:
    folder = stack.data_dir / "journal"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"cannot mount a small tmpfs here: {err}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


def _fill(folder: Path) -> Path:
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 4096)
    with pytest.raises(OSError) as err, open(folder / "probe", "wb", buffering=0) as probe:
        probe.write(b"\0" * 4096)
    assert err.value.errno == errno.ENOSPC
    (folder / "probe").unlink(missing_ok=True)
    return filler


def _refused(reply: object) -> bool:
    return isinstance(reply, p.ErrorReply) and reply.code == p.DISK_FULL


def test_given_a_full_disk_then_serving_goes_on_new_orders_are_refused_and_it_recovers_alone(
    stack: Stack, small_journal: Path
) -> None:
    gateway: Proc = start_gateway(stack)
    try:
        assert stack.call(order("ok-1")).status == "accepted"
        resting = stack.call(order("rest-1", factor=0.98))
        assert resting.status == "accepted"
        filler = _fill(small_journal)
        # tmpfs counts pages: the journal's last page still takes a few kilobytes of events
        wait_for(
            lambda: _refused(stack.call(p.PublishNote(topic="fill", data={"x": "y" * 2000}))),
            30,
            "the journal to hit the full disk",
        )

        refused = stack.call(order("full-1"))
        assert _refused(refused), refused
        assert "disk full" in refused.message and "order not sent" in refused.message
        # everything but new orders still works
        assert isinstance(stack.call(p.Ping()), p.Pong)
        status = stack.call(p.GetStatus())
        assert status.state == "ready" and "No space left" in status.disk_full
        remarks = [o.order_remark for o in stack.call(p.QueryOrders()).orders]
        assert "full-1" not in remarks and "ok-1" in remarks
        replay = stack.call(p.Replay(epoch=status.epoch, from_seq=1))
        assert isinstance(replay, p.ReplayReply) and replay.events
        cancel = stack.call(p.CancelOrder(client_order_id="rest-1"))
        assert isinstance(cancel, p.CancelAck) and cancel.cancel_result == 0
        assert _refused(stack.call(p.PublishNote(topic="x", data={})))
        assert gateway.alive()

        filler.unlink()  # space comes back: the gateway notices by itself
        note = wait_for(
            lambda: (r := stack.call(p.PublishNote(topic="x", data={}))) and not _refused(r) and r,
            15,
            "the journal to take writes again",
        )
        assert isinstance(note, p.NoteAck)
        assert stack.call(order("after-1")).status == "accepted"
        assert stack.call(p.GetStatus()).disk_full == ""
        again = stack.call(order("full-1"))  # its intent may have been journaled: not placed
        assert again.status == "accepted" or again.error_msg.startswith("not placed")
        check_invariants(stack, ["ok-1", "rest-1", "after-1"])
        events = journal_events(stack)
        seqs = [e.seq for e in events if e.epoch == status.epoch]
        assert seqs == list(range(1, len(seqs) + 1)), "a hole in the journal"
        cancelled = [
            e for e in events if isinstance(e, p.OrderEvent) and e.client_order_id == "rest-1"
        ]
        assert cancelled and cancelled[-1].order_status == p.ORDER_CANCELED
        assert outcomes(events).get("full-1", ["not_placed"])[-1] in ("not_placed", "accepted")
        log = gateway.log()
        assert "disk full: the gateway cannot write its journal" in log
        assert "Traceback" not in log
    finally:
        gateway.stop()


def test_given_a_full_disk_at_start_then_the_gateway_comes_up_and_refuses_orders_until_space(
    stack: Stack, small_journal: Path
) -> None:
    filler = _fill(small_journal)
    gateway = start_gateway(stack)  # ready: status and queries never needed the disk
    try:
        refused = wait_for(
            lambda: _refused(r := stack.call(order("early-1"))) and r, 15, "DISK_FULL"
        )
        assert "order not sent" in refused.message
        assert stack.call(p.QueryOrders()).orders == []
        filler.unlink()
        wait_for(
            lambda: not _refused(stack.call(p.PublishNote(topic="x", data={}))),
            15,
            "the journal to take writes again",
        )
        assert stack.call(order("later-1")).status == "accepted"
        check_invariants(stack, ["later-1"])
        seqs = [e.seq for e in journal_events(stack)]
        assert seqs == list(range(1, len(seqs) + 1)), "a hole in the journal"
    finally:
        gateway.stop()
