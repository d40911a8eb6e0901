"""The real gateway process started on fixed dates around the end of exchange_calendars XSHG
(2026-12-31), with the shipped Windows window (`always_open = false`): it trades past the
calendar and says so, refuses with the fix when told to, and keeps an extension's holidays.

The clock is set with QMTBUS_FAKE_TODAY (qmtbus.clock's test hook) in the gateway's and
the health command's environment only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from qmtbus import protocol as p
from qmtbus.clock import FAKE_TODAY_ENV
from tests.gateway.conftest import order
from tests.support import Proc, Stack, wait_for, wait_ready

EXTENSION = {"extra_holidays": ["2027-01-01"], "known_until": "2027-12-31"}


@pytest.fixture
def started() -> Iterator[list[Proc]]:
    procs: list[Proc] = []
    yield procs
    for proc in procs:
        if proc.alive():
            proc.stop()


def start_at(stack: Stack, started: list[Proc], when: str, **calendar: Any) -> Proc:
    stack.write_config(gateway={"window": {"always_open": False}}, calendar=calendar)
    proc = Proc("gateway", stack, env={FAKE_TODAY_ENV: when}).start()
    started.append(proc)
    return proc


def status(stack: Stack) -> p.Status:
    reply = stack.call(p.GetStatus())
    assert isinstance(reply, p.Status)
    return reply


def calendar_alerts(stack: Stack) -> list[p.NoteEvent]:
    """Every alert.calendar note this gateway process published (from its journal)."""
    epoch = status(stack).epoch
    reply = stack.call(p.Replay(epoch=epoch, from_seq=1))
    assert isinstance(reply, p.ReplayReply)
    return [e for e in reply.events if isinstance(e, p.NoteEvent) and e.topic == "alert.calendar"]


def health(stack: Stack, when: str, *skip: str) -> tuple[int, str, str]:
    args = [arg for name in skip for arg in ("--skip", name)]
    done = subprocess.run(
        [sys.executable, "-m", "qmtbus.cli", "--config", str(stack.config_path), "health", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=stack.dir,
        env={**os.environ, FAKE_TODAY_ENV: when},
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


def test_given_2027_01_04_without_extension_then_it_trades_alerts_and_health_names_the_fix(
    stack: Stack, started: list[Proc]
) -> None:
    proc = start_at(stack, started, "2027-01-04T10:00")

    ready = wait_ready(stack, proc)
    ack = stack.call(order("cal-2027-1"))
    alerts = wait_for(lambda: calendar_alerts(stack), what="an alert.calendar note")
    code, out, err = health(stack, "2027-01-04T10:00", "recorder", "scheduler")

    assert ready.calendar_last_day == "2026-12-31"
    assert isinstance(ack, p.OrderAck) and ack.status == "accepted"
    assert len(alerts) == 1
    assert alerts[0].data["date"] == "2027-01-04" and alerts[0].data["beyond"] == "weekdays"
    assert "WARNING" in proc.log() and "past the last day the trading calendar knows" in proc.log()
    assert code == 1
    assert "problem: calendar: 2027-01-04 is past the last day" in err
    assert 'known_until = "2027-12-31"' in err
    assert 'extra_holidays = ["2027-01-01",' in out  # the example lines


def test_given_2027_01_04_with_extension_then_ready_quiet_and_healthy(
    stack: Stack, started: list[Proc]
) -> None:
    proc = start_at(stack, started, "2027-01-04T10:00", **EXTENSION)

    ready = wait_ready(stack, proc)
    code, out, err = health(stack, "2027-01-04T10:00", "recorder", "scheduler")

    assert ready.calendar_last_day == "2027-12-31"
    assert calendar_alerts(stack) == []
    assert code == 0 and "problem" not in err, out + err
    assert out.splitlines()[-1] == "all healthy"


def test_given_2026_12_31_then_ready_and_health_warns_ahead_with_exit_0(
    stack: Stack, started: list[Proc]
) -> None:
    proc = start_at(stack, started, "2026-12-31T10:00")

    ready = wait_ready(stack, proc)
    code, out, err = health(stack, "2026-12-31T10:00", "recorder", "scheduler")

    assert ready.calendar_last_day == "2026-12-31"
    assert calendar_alerts(stack) == []
    assert "the trading calendar ends on 2026-12-31, today" in proc.log()
    assert code == 0, err
    assert "warning: calendar: the trading calendar ends on 2026-12-31, today" in out


def test_given_a_holiday_from_the_extension_then_the_window_stays_shut(
    stack: Stack, started: list[Proc]
) -> None:
    start_at(stack, started, "2027-01-01T10:00", **EXTENSION)

    shut = wait_for(
        lambda: (s := status(stack)).state == "outside_window" and s.state_reason and s,
        what="outside_window with a reason",
    )
    refused = stack.call(order("cal-holiday-1"))

    assert "2027-01-01 is not a trading day" in shut.state_reason
    assert isinstance(refused, p.ErrorReply) and refused.code == p.NOT_CONNECTED
    assert "2027-01-01 is not a trading day" in refused.message


def test_given_beyond_refuse_then_every_refusal_names_the_calendar_and_the_fix(
    stack: Stack, started: list[Proc]
) -> None:
    start_at(stack, started, "2027-01-04T10:00", beyond="refuse")

    shut = wait_for(
        lambda: (s := status(stack)).state == "outside_window" and s.state_reason and s,
        what="outside_window with a reason",
    )
    refused_order = stack.call(order("cal-refuse-1"))
    refused_query = stack.call(p.QueryAsset())
    code, _, err = health(stack, "2027-01-04T10:00", "recorder", "scheduler")

    for message in (shut.state_reason, refused_order.message, refused_query.message):
        assert "past the last day the trading calendar knows (2026-12-31" in message
        assert 'beyond = "refuse"' in message and "extra_holidays" in message
    assert refused_order.code == refused_query.code == p.NOT_CONNECTED
    assert code == 1 and 'beyond = "refuse"' in err
