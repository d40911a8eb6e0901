"""The jobs to run: [[scheduler.jobs]] entries and the built-ins, checked before anything runs."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qmtbus.calendar import TradingCalendar
from qmtbus.config import JobConfig, SchedulerConfig
from qmtbus.scheduler.schedule import CronError, Schedule, parse_cron

# A run is "on time" when it starts within this many seconds of its cron time;
# misfire = "skip" skips anything later (see docs/scheduler.md).
ON_TIME_SECONDS = 5.0

PRE_OPEN_CHECK = "pre_open_check"
AFTER_CLOSE_SNAPSHOT = "after_close_snapshot"
# Built-ins run late rather than not at all: a check at 09:24 beats none.
_BUILTIN_GRACE_SECONDS = 600.0

JobFunction = Callable[[Any], Any]


class JobError(Exception):
    """A job entry the user must fix; str(err) is one sentence naming the job and the fix."""


@dataclass(frozen=True)
class Job:
    config: JobConfig
    function: JobFunction
    schedule: Schedule

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def allowed_lateness(self) -> float:
        """Seconds after its cron time a run may still start."""
        if self.config.misfire == "run_late":
            return max(ON_TIME_SECONDS, self.config.grace_seconds)
        return ON_TIME_SECONDS


def builtin_job_configs(config: SchedulerConfig) -> list[JobConfig]:
    """The built-in jobs as ordinary job entries (switched off ones with enabled = false,
    so that their cron is still checked)."""
    return [
        JobConfig(
            name=PRE_OPEN_CHECK,
            cron=config.pre_open_cron,
            callable="qmtbus.scheduler.builtin:pre_open_check",
            misfire="run_late",
            grace_seconds=_BUILTIN_GRACE_SECONDS,
            enabled=config.pre_open_check,
        ),
        JobConfig(
            name=AFTER_CLOSE_SNAPSHOT,
            cron=config.after_close_cron,
            callable="qmtbus.scheduler.builtin:after_close_snapshot",
            misfire="run_late",
            grace_seconds=_BUILTIN_GRACE_SECONDS,
            enabled=config.after_close_snapshot,
        ),
    ]


def load_jobs(config: SchedulerConfig, calendar: TradingCalendar) -> list[Job]:
    """Every enabled job, its callable imported and its cron parsed; raises JobError."""
    builtins = builtin_job_configs(config)
    reserved = {PRE_OPEN_CHECK, AFTER_CLOSE_SNAPSHOT}
    seen: set[str] = set()
    jobs = []
    entries = [(entry, True) for entry in builtins] + [(entry, False) for entry in config.jobs]
    for entry, is_builtin in entries:
        if not is_builtin and entry.name in reserved:
            raise JobError(
                f'scheduler job name "{entry.name}" belongs to a built-in job; give your job '
                "another name (switch the built-in off with scheduler."
                f"{'pre_open_check' if entry.name == PRE_OPEN_CHECK else 'after_close_snapshot'}"
                " = false)"
            )
        if entry.name in seen:
            raise JobError(
                f'scheduler job name "{entry.name}" is used twice; give each '
                "[[scheduler.jobs]] entry its own name"
            )
        seen.add(entry.name)
        # a disabled job's cron is checked too (switching it on must not reveal a
        # typo), but its module is not imported: it may not be installed yet
        schedule = Schedule(_cron(entry, is_builtin), calendar, entry.trading_days_only)
        if entry.enabled:
            jobs.append(Job(entry, resolve_callable(entry), schedule))
    return jobs


def _cron(entry: JobConfig, is_builtin: bool) -> Any:
    try:
        return parse_cron(entry.cron)
    except CronError as err:
        where = (
            f"scheduler.{'pre_open_cron' if entry.name == PRE_OPEN_CHECK else 'after_close_cron'}"
            if is_builtin
            else f'scheduler job "{entry.name}"'
        )
        raise JobError(
            f'{where}: bad cron "{entry.cron}" ({err}); write 5 fields "minute hour day month '
            'weekday" or 6 with a leading seconds field, in Asia/Shanghai time'
        ) from None


def resolve_callable(entry: JobConfig) -> JobFunction:
    """Import "package.module:function" and check it takes one argument (the context)."""
    job = f'scheduler job "{entry.name}"'
    module_name, colon, attribute = entry.callable.partition(":")
    if not colon or not module_name or not attribute:
        raise JobError(
            f'{job}: callable "{entry.callable}" is not of the form "package.module:function"; '
            "write it that way"
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise JobError(
            f'{job}: cannot import module "{module_name}" ({err}); fix callable or make the '
            "module importable (install it, or add its folder to PYTHONPATH)"
        ) from None
    except Exception as err:  # the user's module may raise anything while importing
        raise JobError(
            f'{job}: importing module "{module_name}" failed ({type(err).__name__}: {err}); '
            "fix the module"
        ) from None
    function: Any = module
    for part in attribute.split("."):
        if not hasattr(function, part):
            raise JobError(
                f'{job}: module "{module_name}" has no attribute "{attribute}"; fix the name '
                "after the colon in callable"
            )
        function = getattr(function, part)
    if not callable(function):
        raise JobError(
            f'{job}: "{entry.callable}" is not callable (its type is {type(function).__name__}); '
            "point callable at a function that takes the job context"
        )
    _check_signature(job, entry.callable, function)
    return function


def _check_signature(job: str, name: str, function: Callable[..., Any]) -> None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # builtins and some C callables have no signature: let the run tell
    try:
        signature.bind(object())
    except TypeError:
        raise JobError(
            f'{job}: "{name}" must take exactly one argument, the job context '
            f"(it is {name.partition(':')[2]}{signature}); change its parameters"
        ) from None
