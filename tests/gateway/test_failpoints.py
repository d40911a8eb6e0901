"""Crash the real gateway at each durability boundary in turn, restart, check the money invariants.

Every traded_id at the broker exactly once across all epochs of the journal; no
order_remark twice at the broker; every order's outcome an event. Also after the
gateway's data folder is deleted mid-day (the simulator's folder, the broker, kept).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

import pytest

from qmtbus import protocol as p
from qmtbus.failpoints import POINTS
from qmtbus.gateway.broker.sim.ledger import read_ledger
from tests.gateway.conftest import order
from tests.gateway.trust import (
    check_invariants,
    journal_events,
    outcomes,
    place_until_dead,
    resend_all,
    wipe_gateway_data,
)
from tests.support import Proc, Stack, start_gateway, wait_for, wait_ready

ORDERS = [f"fp-{i}" for i in range(1, 13)]

# failpoint -> the hit to crash at: late enough that some orders went through first
ORDER_PATH = {
    "intent_written": 4,
    "broker_called": 4,
    "events_journaled": 5,
    "events_published": 5,
    "order_replied": 4,
}


def test_every_gateway_failpoint_is_listed_and_crashed_at_by_a_test() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "qmtbus.gateway", "--list-failpoints"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    listed = [line.split()[0] for line in out.splitlines() if line.strip()]
    gateway_points = [n for n, (prog, _) in POINTS.items() if prog == "gateway"]
    assert listed == gateway_points
    assert set(gateway_points) == {*ORDER_PATH, "state_saved"}


def test_given_an_unknown_failpoint_then_the_gateway_says_so_in_one_sentence(stack: Stack) -> None:
    proc = Proc("gateway", stack, env={"QMTBUS_FAILPOINT": "no_such_point"}).start()
    assert proc.wait_exit(20) == 2
    assert "unknown failpoint 'no_such_point'" in proc.log()
    assert "Traceback" not in proc.log()


def _crashed_at(proc: Proc, name: str) -> None:
    try:
        wait_for(lambda: not proc.alive(), 20, f"the gateway to crash at {name}")
    finally:
        proc.kill()  # a gateway that did not crash must not outlive the test
    assert f"failpoint {name}: crashing" in proc.log()


@pytest.mark.parametrize("name", sorted(ORDER_PATH))
def test_given_a_crash_at_each_order_failpoint_then_restart_and_resend_lose_and_double_nothing(
    stack: Stack, name: str
) -> None:
    armed = Proc("gateway", stack, env={"QMTBUS_FAILPOINT": f"{name}:{ORDER_PATH[name]}"}).start()
    wait_ready(stack, armed)
    first = place_until_dead(stack, armed, ORDERS)
    _crashed_at(armed, name)
    restarted = start_gateway(stack)
    try:
        acks = resend_all(stack, ORDERS)
        for coid, ack in first.items():  # what was answered before the crash stands
            if ack.status == "accepted":
                assert acks[coid].duplicate and acks[coid].order_id == ack.order_id
        check_invariants(stack, ORDERS)
        stories = outcomes(journal_events(stack))
        if name == "intent_written":
            # the order in flight at the crash: its lost answer is an event
            assert any("unknown" in s for s in stories.values()), "none left unknown"
        if name == "broker_called":
            # the call that went out before the crash (the armed process's last at the
            # broker): accepted, either before the crash (the broker's pushes race the
            # crash, as miniQMT's own thread does) or, its answer lost, after an `unknown`,
            # found by its remark at the restart
            called = read_ledger(stack.data_dir).orders_received[ORDER_PATH[name] - 1]
            story = stories[called["order_remark"]]
            assert story in (["sending", "accepted"], ["sending", "unknown", "accepted"]), story
    finally:
        restarted.stop()


def test_given_a_crash_after_the_halt_was_saved_then_the_restart_announces_it(
    stack: Stack,
) -> None:
    armed = Proc("gateway", stack, env={"QMTBUS_FAILPOINT": "state_saved"}).start()
    wait_ready(stack, armed)
    with contextlib.suppress(TimeoutError):
        stack.call(p.Halt(reason="fat finger"), timeout=3.0)
    _crashed_at(armed, "state_saved")
    restarted = start_gateway(stack)
    try:
        assert stack.call(p.GetStatus()).trading == "halted"
        notes = [
            e.data
            for e in journal_events(stack)
            if isinstance(e, p.NoteEvent) and e.topic == "trading"
        ]
        assert notes and notes[-1]["trading"] == "halted" and notes[-1]["restored"]
    finally:
        restarted.stop()


def test_given_the_gateway_data_folder_deleted_mid_day_then_no_resent_order_is_placed_twice(
    stack: Stack,
) -> None:
    gateway = start_gateway(stack)
    first = {c: stack.call(order(c)) for c in ORDERS[:4]}
    assert all(a.status == "accepted" for a in first.values()), first
    check_invariants(stack, ORDERS[:4])
    gateway.kill()
    wipe_gateway_data(stack.data_dir)
    restarted = start_gateway(stack)
    try:
        acks = resend_all(stack, ORDERS)
        for coid in ORDERS[:4]:
            assert acks[coid].duplicate and acks[coid].order_id == first[coid].order_id
        assert not any(acks[c].duplicate for c in ORDERS[4:])
        check_invariants(stack, ORDERS)
        recovered = outcomes(journal_events(stack))
        assert all(recovered[c] == ["accepted"] for c in ORDERS[:4]), recovered
    finally:
        restarted.stop()


def test_given_a_power_cut_that_loses_the_journal_tail_then_the_broker_remarks_cover_the_orders(
    stack: Stack,
) -> None:
    gateway = start_gateway(stack)
    first = {c: stack.call(order(c)) for c in ORDERS[:6]}
    assert all(a.status == "accepted" for a in first.values()), first
    check_invariants(stack, ORDERS[:6])
    gateway.kill()
    # what an fsync interval lost to a power cut looks like: the tail of the last segment
    epoch = max(e for e in (stack.data_dir / "journal").iterdir() if e.is_dir())
    segment = max(epoch.glob("*.seg"))
    segment.write_bytes(segment.read_bytes()[: segment.stat().st_size // 3])
    restarted = start_gateway(stack)
    try:
        acks = resend_all(stack, ORDERS)
        for coid in ORDERS[:6]:
            assert acks[coid].duplicate and acks[coid].order_id == first[coid].order_id
        check_invariants(stack, ORDERS)
    finally:
        restarted.stop()
