"""The real scheduler process started at 2026-12-31 23:00 (QMTBUS_FAKE_TODAY): past the end
of exchange_calendars, a trading-days job is armed for the next weekday, loudly, unless the
config's [calendar] extension says that weekday is a holiday."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qmtbus.calendar import Layer, TradingCalendar, xshg_layer
from qmtbus.clock import FAKE_TODAY_ENV, SHANGHAI
from qmtbus.config import Config, JobConfig
from qmtbus.scheduler.jobs import Job
from qmtbus.scheduler.report import Reporter
from qmtbus.scheduler.runner import Runner
from qmtbus.scheduler.schedule import Schedule, parse_cron
from qmtbus.scheduler.state import StateFile
from tests.support import ROOT, Proc, Stack, wait_for

NEW_YEARS_EVE_LATE = "2026-12-31T23:00"
DAILY = {"name": "daily", "cron": "0 9 * * *", "callable": "tests.scheduler.jobs_for_tests:mark"}


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        if proc.alive():
            proc.stop()


def next_run(stack: Stack, procs: list[Proc], **calendar: Any) -> tuple[str, Proc]:
    """Start the scheduler on New Year's Eve, late; the daily job's next run from its state."""
    stack.write_config(scheduler={"jobs": [DAILY]}, calendar=calendar)
    env = {"PYTHONPATH": str(ROOT), FAKE_TODAY_ENV: NEW_YEARS_EVE_LATE}
    proc = Proc("scheduler", stack, env=env).start()
    procs.append(proc)
    path = stack.data_dir / "scheduler-state.json"

    def armed() -> str | None:
        try:
            return json.loads(path.read_text())["jobs"]["daily"]["next_run"]  # type: ignore[no-any-return]
        except (OSError, ValueError, KeyError):
            return None

    return wait_for(armed, 30, "the daily job armed"), proc


def test_given_no_extension_then_the_job_is_armed_for_new_years_day_with_a_warning(
    stack: Stack, procs: list[Proc]
) -> None:
    run, proc = next_run(stack, procs)

    assert run == "2027-01-01T09:00:00+08:00"
    wait_for(lambda: "a weekday no calendar source knows" in proc.log(), what="the warning")
    assert "WARNING" in proc.log() and "ends on 2026-12-31, today" in proc.log()


def test_given_a_holiday_from_the_extension_then_the_job_skips_it_to_monday(
    stack: Stack, procs: list[Proc]
) -> None:
    run, proc = next_run(stack, procs, extra_holidays=["2027-01-01"], known_until="2027-12-31")

    assert run == "2027-01-04T09:00:00+08:00"
    assert "a weekday no calendar source knows" not in proc.log()


# -- the runner's day gating, under a controlled clock (no processes) ------------------------


class Clock:
    def __init__(self, text: str) -> None:
        self.now = dt.datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)

    def __call__(self) -> dt.datetime:
        return self.now


def test_given_miniqmt_learns_a_holiday_then_the_armed_run_is_skipped_not_run(
    tmp_path: Path,
) -> None:
    xshg = xshg_layer()
    guessing = TradingCalendar([xshg])  # knows nothing of 2027: Friday 2027-01-01 counts
    closed = Layer(
        "miniQMT (xtdata)",
        dt.date(2027, 1, 1),
        dt.date(2027, 12, 31),
        holidays=frozenset({dt.date(2027, 1, 1)}),
    )
    knowing = TradingCalendar([closed, xshg])
    ran: list[str] = []
    config = JobConfig(name="daily", cron="0 9 * * *", callable="x:y")
    job = Job(
        config, lambda ctx: ran.append("ran"), Schedule(parse_cron("0 9 * * *"), guessing, True)
    )
    clock = Clock("2026-12-31T23:00:00")
    state = StateFile(tmp_path / "state.json")
    reloads: list[int] = []

    def reload() -> TradingCalendar:
        reloads.append(1)
        return knowing

    runner = Runner(
        Config(), [job], guessing, state, Reporter(_no_gateway), _no_gateway, clock, reload
    )
    state.begin(["daily"], clock(), guessing.last_day)
    armed_for = job.schedule.next_after(clock())
    runner._tell_about_calendar()  # 2026-12-31: the first look, no reload
    clock.now = armed_for
    runner._tell_about_calendar()  # a new day: miniQMT's calendar is read again
    runner._fire(job, armed_for, False)

    assert armed_for.date() == dt.date(2027, 1, 1)
    assert len(reloads) == 1 and job.schedule.calendar is knowing
    assert ran == []
    skipped = state.doc.jobs["daily"].last_skipped
    assert skipped is not None and skipped.scheduled_for == armed_for
    assert "now says 2027-01-01 is not a trading day" in skipped.reason


def _no_gateway() -> Any:
    raise AssertionError("no gateway in this test")
