"""The real scheduler process started at 2026-12-31 23:00 (QMTBUS_FAKE_TODAY): past the end
of exchange_calendars, a trading-days job is armed for the next weekday, loudly, unless the
config's [calendar] extension says that weekday is a holiday."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from qmtbus.clock import FAKE_TODAY_ENV
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
