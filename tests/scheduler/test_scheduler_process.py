"""A real `python -m qmtbus.scheduler` next to a real gateway: jobs run at their second, trade
through the client, report every outcome on the bus, and run at most once across kill -9."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qmtbus import protocol
from qmtbus.calendar import SHANGHAI
from tests.scheduler.conftest import CODE, price
from tests.support import ROOT, Proc, Stack, Subscriber, wait_for

JOBS = "tests.scheduler.jobs_for_tests"


def seconds_ahead(n: float) -> dt.datetime:
    """A whole second at least `n` seconds from now, in Shanghai time."""
    return (dt.datetime.now(SHANGHAI) + dt.timedelta(seconds=n + 1)).replace(microsecond=0)


def cron_at(*times: dt.datetime) -> str:
    """A 6-field cron for the given seconds of one minute (and that day only)."""
    first = times[0]
    seconds = ",".join(str(t.second) for t in times)
    assert all(t.replace(second=0) == first.replace(second=0) for t in times)
    return f"{seconds} {first.minute} {first.hour} {first.day} {first.month} *"


def same_minute_seconds_ahead(n: float, count: int = 1, gap: int = 2) -> list[dt.datetime]:
    """`count` whole seconds `gap` apart, the first at least `n` seconds ahead, all within
    one minute (waits for the next minute if they would straddle it)."""
    first = seconds_ahead(n)
    if first.second + gap * (count - 1) > 59:
        first = first.replace(second=0) + dt.timedelta(minutes=1)
    return [first + dt.timedelta(seconds=gap * i) for i in range(count)]


def job(name: str, function: str, when: str, **values: Any) -> dict[str, Any]:
    return {
        "name": name,
        "cron": when,
        "callable": f"{JOBS}:{function}",
        "trading_days_only": False,  # these jobs run "now", whatever the day
        **values,
    }


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        if proc.alive():
            proc.kill()


def start_scheduler(stack: Stack, procs: list[Proc], *jobs: dict[str, Any]) -> Proc:
    if jobs:
        stack.write_config(scheduler={"jobs": list(jobs)})
    proc = Proc("scheduler", stack, env={"PYTHONPATH": str(ROOT)}).start()
    procs.append(proc)
    return proc


def is_note(topic: str, **data: Any) -> Any:
    def match(event: protocol.Event) -> bool:
        return (
            isinstance(event, protocol.NoteEvent)
            and event.topic == topic
            and all(event.data.get(k) == v for k, v in data.items())
        )

    return match


def notes(events: Subscriber, topic: str) -> list[dict[str, Any]]:
    events.drain()
    return [e.data for e in events.of_type(protocol.NoteEvent) if e.topic == topic]


def marks(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def state(stack: Stack) -> dict[str, Any]:
    return json.loads((stack.data_dir / "scheduler-state.json").read_text())


def test_given_job_a_few_seconds_ahead_then_its_order_is_on_the_bus_and_its_run_noted(
    stack, gateway, events, procs
):
    (when,) = same_minute_seconds_ahead(4)
    args = {
        "stock_code": CODE,
        "price": price(),
        "client_order_id": "sched-e2e-1",
        "marker": str(stack.dir / "buy.marks"),
    }
    proc = start_scheduler(stack, procs, job("open_buy", "buy_one_lot", cron_at(when), args=args))

    order = events.wait(
        lambda e: isinstance(e, protocol.OrderEvent) and e.client_order_id == "sched-e2e-1",
        timeout=20,
        what="the job's order on the bus",
    )
    run = events.wait(is_note("job.open_buy", outcome="ok"), timeout=20, what="the run's note")

    assert order.stock_code == CODE and order.order_volume == 100
    assert order.strategy_name == "open_buy"
    assert run.data["scheduled_for"] == when.isoformat()
    assert dt.datetime.fromisoformat(run.data["started"]) >= when
    assert run.data["error"] == "" and "sched-e2e-1" in run.data["result"]
    assert state(stack)["jobs"]["open_buy"]["last_run"]["outcome"] == "ok"
    assert proc.stop() == 0
    events.wait(is_note("scheduler.stopped"), what="the scheduler's goodbye note")


def test_given_kill_9_in_the_middle_of_a_job_then_restart_does_not_run_it_again(
    stack, gateway, events, procs
):
    marker = stack.dir / "slow.marks"
    (when,) = same_minute_seconds_ahead(4)
    # run_late with a long grace: the most tempting case to run it a second time
    slow = job(
        "slow",
        "sleep_then_mark",
        cron_at(when),
        args={"seconds": 8, "marker": str(marker)},
        misfire="run_late",
        grace_seconds=300,
    )
    first = start_scheduler(stack, procs, slow)
    wait_for(lambda: marks(marker), timeout=20, what="the slow job to start")

    first.kill()
    events.drain()
    started_notes = len(notes(events, "scheduler.started"))
    second = start_scheduler(stack, procs)

    interrupted = events.wait(
        is_note("job.slow", outcome="interrupted"), timeout=20, what="the interrupted note"
    )
    wait_for(
        lambda: len(notes(events, "scheduler.started")) > started_notes,
        timeout=20,
        what="the restarted scheduler's start note",
    )
    # The restarted scheduler decides about missed runs before it says it started;
    # a wrong second run would have begun at once. Give it a moment to show itself.
    time.sleep(1.0)
    assert marks(marker) == [f"started {when.isoformat()}"]
    assert interrupted.data["scheduled_for"] == when.isoformat()
    assert "not run again" in interrupted.data["error"]
    assert [n["outcome"] for n in notes(events, "job.slow")] == ["interrupted"]
    job_state = state(stack)["jobs"]["slow"]
    assert job_state["last_run"]["outcome"] == "interrupted"
    assert dt.datetime.fromisoformat(job_state["next_run"]) > when
    assert second.alive()


def test_given_failing_job_then_each_failure_is_reported_and_other_jobs_keep_running(
    stack, gateway, events, procs
):
    times = same_minute_seconds_ahead(4, count=2, gap=2)
    cron = cron_at(*times)
    broken = job("broken", "fail", cron, args={"marker": str(stack.dir / "broken.marks")})
    steady = job("steady", "mark", cron, args={"marker": str(stack.dir / "steady.marks")})
    proc = start_scheduler(stack, procs, broken, steady)

    wait_for(
        lambda: len(notes(events, "job.broken")) == 2 and len(notes(events, "job.steady")) == 2,
        timeout=30,
        what="two runs of each job",
    )

    failures = notes(events, "job.broken")
    assert [f["outcome"] for f in failures] == ["error", "error"]
    assert {f["error"] for f in failures} == {"RuntimeError: the strategy found no prices"}
    assert [n["outcome"] for n in notes(events, "job.steady")] == ["ok", "ok"]
    assert [n["scheduled_for"] for n in notes(events, "job.steady")] == [
        t.isoformat() for t in times
    ]
    assert proc.alive()


def test_given_scheduler_down_at_cron_time_then_run_late_job_runs_and_skip_job_is_skipped(
    stack, gateway, events, procs
):
    # 20 s ago: past the 5 s a "skip" job may be late, well within the other's grace
    missed = (dt.datetime.now(SHANGHAI) - dt.timedelta(seconds=20)).replace(microsecond=0)
    cron = cron_at(missed)
    # the state a scheduler that died a minute before `missed` would have left
    down_since = (missed - dt.timedelta(minutes=1)).isoformat()
    stack.data_dir.mkdir(parents=True, exist_ok=True)
    (stack.data_dir / "scheduler-state.json").write_text(
        json.dumps({"jobs": {name: {"handled_until": down_since} for name in ("late", "punctual")}})
    )
    late = job(
        "late",
        "mark",
        cron,
        args={"marker": str(stack.dir / "late.marks")},
        misfire="run_late",
        grace_seconds=300,
    )
    punctual = job(
        "punctual", "mark", cron, args={"marker": str(stack.dir / "punctual.marks")}, misfire="skip"
    )
    start_scheduler(stack, procs, late, punctual)

    ran = events.wait(is_note("job.late", outcome="ok"), timeout=20, what="the late run")
    skipped = events.wait(is_note("job.punctual", outcome="skipped"), timeout=20)

    assert ran.data["scheduled_for"] == skipped.data["scheduled_for"] == missed.isoformat()
    assert "not running" in skipped.data["reason"] and "misfire = skip" in skipped.data["reason"]
    assert marks(stack.dir / "late.marks") == [f"ran {missed.isoformat()}"]
    assert not (stack.dir / "punctual.marks").exists()


def test_given_beyond_refuse_and_the_next_trading_day_run_past_the_calendar_then_refused_loudly(
    stack, gateway, events, procs
):
    # New Year's Day is never a session: the next run lies past the calendar's end
    stack.write_config(calendar={"beyond": "refuse"})
    new_year = {
        "name": "new_year",
        "cron": "0 9 1 1 *",
        "callable": f"{JOBS}:mark",
        "args": {"marker": str(stack.dir / "ny.marks")},
    }
    proc = start_scheduler(stack, procs, new_year)

    expired = events.wait(is_note("qmtbus.calendar_expired", job="new_year"), timeout=20)

    assert expired.data["calendar"] == "exchange_calendars XSHG"
    assert expired.data["date"] > expired.data["last_day"]
    assert "extra_holidays" in expired.data["message"] and "known_until" in expired.data["message"]
    job_state = state(stack)["jobs"]["new_year"]
    assert job_state["next_run"] is None and "past the last day" in job_state["next_run_error"]
    wait_for(lambda: "new_year is not scheduled" in proc.log(), what="an error line in the log")
    assert proc.alive()


def test_given_sigterm_during_a_long_job_then_it_exits_0_after_stop_timeout_and_says_so(
    stack, gateway, events, procs
):
    marker = stack.dir / "long.marks"
    (when,) = same_minute_seconds_ahead(4)
    stack.write_config(scheduler={"stop_timeout": 1.0})
    long = job(
        "long", "sleep_then_mark", cron_at(when), args={"seconds": 60, "marker": str(marker)}
    )
    proc = start_scheduler(stack, procs, long)
    wait_for(lambda: marks(marker), timeout=20, what="the long job to start")

    began = time.monotonic()
    code = proc.stop(timeout=15)

    assert code == 0
    assert time.monotonic() - began < 10
    goodbye = events.wait(is_note("scheduler.stopped"), what="the scheduler's goodbye note")
    assert goodbye.data["still_running"] == ["long"]
    assert state(stack)["jobs"]["long"]["last_run"]["outcome"] == "running"
    assert marks(marker) == [f"started {when.isoformat()}"]  # never finished, never re-run
