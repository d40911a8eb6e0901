"""Runs the jobs: arms each job's next cron time in APScheduler, applies the misfire policy,
runs at most once per cron time, and reports every outcome on the bus.

Each job always has exactly one armed APScheduler date job, for its next cron
time, carrying that time as an argument: APScheduler's cron jobs don't tell the
function which time it fires for, and its in-memory job store forgets
everything at restart, so the cron arithmetic is ours (scheduler.schedule) and
APScheduler supplies the timer thread and the thread pool.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from qmtbus import Gateway, clock
from qmtbus.calendar import CalendarExpired, TradingCalendar
from qmtbus.clock import SHANGHAI
from qmtbus.config import Config
from qmtbus.scheduler.context import JobContext
from qmtbus.scheduler.jobs import Job
from qmtbus.scheduler.report import Reporter
from qmtbus.scheduler.state import Outcome, StateFile

log = logging.getLogger("scheduler")

MAX_ERROR_CHARS = 2000
MAX_RESULT_CHARS = 1000


def now_shanghai() -> dt.datetime:
    return clock.now()


def iso(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


class Runner:
    """The scheduler's engine: start(), then stop() on SIGTERM."""

    def __init__(
        self,
        config: Config,
        jobs: list[Job],
        calendar: TradingCalendar,
        state: StateFile,
        reporter: Reporter,
        connect: Callable[[], Gateway],
        clock: Callable[[], dt.datetime] = now_shanghai,
        reload_calendar: Callable[[], TradingCalendar] | None = None,
    ) -> None:
        """`reload_calendar`, when given, is called once a day for a fresh calendar
        (miniQMT's, which the terminal updates and which may come up after us)."""
        self.config = config
        self.reload_calendar = reload_calendar
        self.jobs = jobs
        self.calendar = calendar
        self.state = state
        self.reporter = reporter
        self.connect = connect
        self.clock = clock
        self.stopping = threading.Event()
        # a slow job holds one worker; an overlapping cron time only needs a moment
        # of another to be reported skipped
        self.scheduler = BackgroundScheduler(
            timezone=SHANGHAI,
            executors={"default": ThreadPoolExecutor(max_workers=len(jobs) + 4)},
        )
        self._running: dict[str, dt.datetime] = {}
        self._calendar_told: dt.date | None = None  # the last day the calendar was logged
        self._running_changed = threading.Condition()

    # ---- start and stop -------------------------------------------------

    def start(self) -> None:
        now = self.clock()
        names = [job.name for job in self.jobs]
        begun = self.state.begin(names, now, self.calendar.last_day, self.calendar.last_source)
        for name, run in begun:
            log.error(
                "job %s: the run for %s was cut short (the scheduler stopped mid-run); "
                "not running it again",
                name,
                run.scheduled_for.isoformat(),
            )
            self._report(
                name, run.scheduled_for, "interrupted", started=run.started, error=run.error
            )
        self._tell_about_calendar()
        self.scheduler.start()
        # the calendar's gap or coming end is logged once a Shanghai day
        self.scheduler.add_job(
            self._tell_about_calendar, "interval", minutes=10, id="calendar check"
        )
        for job in self.jobs:
            if self._catch_up(job, now):
                self._arm(job, after=now)
        self.reporter.note(
            "scheduler.started",
            {
                "pid": os.getpid(),
                "calendar": self.calendar.name,
                "calendar_last_day": iso(self.calendar.last_day),
                "jobs": {job.name: iso(self.state.next_run(job.name)) for job in self.jobs},
            },
        )
        log.info("scheduler started with %d jobs: %s", len(self.jobs), ", ".join(names) or "(none)")
        for job in self.jobs:  # `qmtbus jobs` shows the same, and the last outcomes
            log.info("job %s: next run %s", job.name, iso(self.state.next_run(job.name)) or "none")

    def stop(self, timeout: float) -> list[str]:
        """Stop scheduling, give running jobs `timeout` seconds, report; returns the names
        of jobs still running (the caller exits anyway: they count as interrupted)."""
        self.stopping.set()
        self.scheduler.shutdown(wait=False)
        deadline = time.monotonic() + timeout
        with self._running_changed:
            while self._running and time.monotonic() < deadline:
                self._running_changed.wait(max(0.0, deadline - time.monotonic()))
            still = sorted(self._running)
        if still:
            log.warning(
                "jobs still running after %.0fs: %s; exiting anyway (they will be "
                "reported interrupted at the next start, not run again)",
                timeout,
                ", ".join(still),
            )
        self.reporter.note("scheduler.stopped", {"pid": os.getpid(), "still_running": still})
        self.reporter.close(timeout=3.0)
        return still

    # ---- arming ---------------------------------------------------------

    def _arm(self, job: Job, after: dt.datetime) -> None:
        """Put the job's next cron time after `after` into APScheduler."""
        try:
            fire = job.schedule.next_after(after)
        except CalendarExpired as err:
            self._calendar_expired(job, err)
            return
        if (
            fire is not None
            and job.schedule.trading_days_only
            and self.calendar.is_beyond(fire.date())
        ):  # logged before the state file shows it
            log.warning(
                "job %s runs at %s: a weekday no calendar source knows (the calendar ends "
                '%s), counted as a trading day (beyond = "weekdays")',
                job.name,
                fire.isoformat(),
                self.calendar.last_day.isoformat(),
            )
        self.state.set_next_run(job.name, fire, self.clock())
        if fire is None or self.stopping.is_set():
            return
        self.scheduler.add_job(
            self._fire,
            trigger=DateTrigger(run_date=fire, timezone=SHANGHAI),
            args=(job, fire, True),
            id=f"{job.name}@{fire.isoformat()}",
            name=job.name,
            # lateness is judged in _fire by the job's own misfire policy
            misfire_grace_time=None,
            replace_existing=True,
        )

    def _catch_up(self, job: Job, now: dt.datetime) -> bool:
        """Cron times that fell while the scheduler was down: run the latest one late if
        the misfire policy allows, skip (and report) the rest. False when the calendar
        ran out (reported; the job cannot be armed either)."""
        try:
            missed = job.schedule.missed(self.state.handled_until(job.name), now)
        except CalendarExpired as err:
            self._calendar_expired(job, err)
            return False
        if missed is None:
            return True
        first, latest = missed
        late = (now - latest).total_seconds()
        if late <= job.allowed_lateness:
            if first < latest:
                self._skip(
                    job,
                    first,
                    now,
                    f"the scheduler was not running; the runs from "
                    f"{first.isoformat()} until before {latest.isoformat()} were missed "
                    "and only the latest runs",
                )
            log.info(
                "job %s: the %s run fell while the scheduler was down; running it %.0fs late "
                "(misfire = %s allows %.0fs)",
                job.name,
                latest.isoformat(),
                late,
                job.config.misfire,
                job.allowed_lateness,
            )
            self.scheduler.add_job(
                self._fire,
                trigger=DateTrigger(run_date=now, timezone=SHANGHAI),
                args=(job, latest, False),
                id=f"{job.name}@{latest.isoformat()}:late",
                name=job.name,
                misfire_grace_time=None,
            )
            return True
        since = f" (missed since {first.isoformat()})" if first < latest else ""
        self._skip(
            job,
            latest,
            now,
            f"the scheduler was not running at its time{since}; "
            f"it is {late:.0f}s late and misfire = {job.config.misfire} allows "
            f"{job.allowed_lateness:.0f}s",
        )
        return True

    def _calendar_expired(self, job: Job, err: CalendarExpired) -> None:
        # Loud on purpose: a trading-days-only job stops running until the calendar
        # is upgraded, and guessing the holidays would trade on a closed day.
        log.error("job %s is not scheduled: %s", job.name, err)
        self.state.set_next_run(job.name, None, self.clock(), error=str(err))
        self.reporter.note(
            "qmtbus.calendar_expired",
            {
                "job": job.name,
                "calendar": self.calendar.name,
                "last_day": iso(err.last_day),
                "date": iso(err.day),
                "message": str(err),
            },
        )

    def _tell_about_calendar(self) -> None:
        """Once a Shanghai day: a WARNING when today lies past the calendar (weekdays
        count as trading days, or trading-day jobs are refused) or within 30 days of its end."""
        today = self.clock().date()
        if self._calendar_told == today:
            return
        if self._calendar_told is not None and self.reload_calendar is not None:
            self._reload_calendar()
        self._calendar_told = today
        message = self.calendar.alert(today)
        if message is not None:
            log.warning("calendar: %s", message)

    def _reload_calendar(self) -> None:
        assert self.reload_calendar is not None
        try:
            calendar = self.reload_calendar()
        except Exception as err:  # keep the one we have: it still answers
            log.warning("reloading the trading calendar failed (%s); keeping the last one", err)
            return
        self.calendar = calendar
        for job in self.jobs:
            job.schedule.calendar = calendar
        log.info(
            "trading calendar reloaded: %s; last known day %s (from %s)",
            calendar.name,
            calendar.last_day.isoformat(),
            calendar.last_source,
        )

    def _no_longer_a_trading_day(self, day: dt.date) -> str:
        """Why an armed run's day is not a trading day after all ("" when it is): the
        calendar may have learnt more since the run was armed."""
        try:
            if self.calendar.is_trading_day(day):
                return ""
        except CalendarExpired as err:
            return str(err)
        return f"the trading calendar now says {day.isoformat()} is not a trading day"

    # ---- running --------------------------------------------------------

    def _fire(self, job: Job, scheduled_for: dt.datetime, arm_next: bool) -> None:
        """APScheduler calls this (in its pool) at the cron time."""
        if self.stopping.is_set():
            return
        if arm_next:  # first, so the chain goes on whatever this run does
            self._arm(job, after=scheduled_for)
        now = self.clock()
        late = (now - scheduled_for).total_seconds()
        if job.schedule.trading_days_only:
            closed = self._no_longer_a_trading_day(scheduled_for.date())
            if closed:
                self._skip(job, scheduled_for, now, closed)
                return
        with self._running_changed:
            busy = self._running.get(job.name)
            if busy is not None:
                self._skip(
                    job, scheduled_for, now, f"the run for {busy.isoformat()} is still going"
                )
                return
            if late > job.allowed_lateness:
                self._skip(
                    job,
                    scheduled_for,
                    now,
                    f"it could not start until {late:.0f}s "
                    f"after its time; misfire = {job.config.misfire} allows "
                    f"{job.allowed_lateness:.0f}s",
                )
                return
            if not self.state.claim(job.name, scheduled_for, now):
                log.info(
                    "job %s: the %s run was already dealt with; not running it again",
                    job.name,
                    scheduled_for.isoformat(),
                )
                return
            self._running[job.name] = scheduled_for
        try:
            self._run(job, scheduled_for, started=now)
        finally:
            with self._running_changed:
                self._running.pop(job.name, None)
                self._running_changed.notify_all()

    def _run(self, job: Job, scheduled_for: dt.datetime, started: dt.datetime) -> None:
        job_log = logging.getLogger(f"scheduler.job.{job.name}")
        job_log.info("running (scheduled for %s)", scheduled_for.isoformat())
        result: Any = None
        error = ""
        client: Gateway | None = None
        try:
            client = self.connect()
            context = JobContext(
                name=job.name,
                gateway=client,
                log=job_log,
                trading_day=scheduled_for.date(),
                scheduled_for=scheduled_for,
                args=job.config.args,
                config=self.config,
                stopping=self.stopping,
            )
            result = job.function(context)
        except BaseException as err:  # a job's failure (even SystemExit) is reported, never fatal
            error = f"{type(err).__name__}: {err}"[:MAX_ERROR_CHARS]
            job_log.exception("failed")
        finally:
            if client is not None:
                try:
                    client.close()
                except Exception:
                    job_log.debug("closing the client failed", exc_info=True)
        finished = self.clock()
        outcome: Outcome = "error" if error else "ok"
        if not error:
            job_log.info("ok in %.1fs", (finished - started).total_seconds())
        self.state.finish(job.name, scheduled_for, finished, outcome, error)
        self._report(
            job.name,
            scheduled_for,
            outcome,
            started=started,
            finished=finished,
            error=error,
            result=result,
        )

    def _skip(self, job: Job, scheduled_for: dt.datetime, now: dt.datetime, reason: str) -> None:
        if not self.state.skip(job.name, scheduled_for, now, reason):
            return
        log.warning("job %s: skipped the %s run: %s", job.name, scheduled_for.isoformat(), reason)
        self._report(job.name, scheduled_for, "skipped", reason=reason)

    def _report(
        self,
        name: str,
        scheduled_for: dt.datetime,
        outcome: str,
        *,
        started: dt.datetime | None = None,
        finished: dt.datetime | None = None,
        error: str = "",
        reason: str = "",
        result: Any = None,
    ) -> None:
        data: dict[str, Any] = {
            "job": name,
            "scheduled_for": iso(scheduled_for),
            "trading_day": iso(scheduled_for.date()),
            "started": iso(started),
            "finished": iso(finished),
            "outcome": outcome,
            "error": error,
            "reason": reason,
        }
        if started is not None and finished is not None:
            data["duration"] = round((finished - started).total_seconds(), 3)
        if result is not None:
            data["result"] = str(result)[:MAX_RESULT_CHARS]
        self.reporter.note(f"job.{name}", data)
