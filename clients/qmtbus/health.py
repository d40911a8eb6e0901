"""`qmtbus health`: is the whole system working? One view from real signals, not process lists.

- gateway: its `status` reply (state, trading, epoch, last_seq) and a heartbeat
  heard on the events socket within `--heartbeat-timeout` seconds;
- recorder: its query endpoint's `recorder_status` (the newest committed
  (epoch, seq), the last commit), its lag behind the gateway's last_seq, and
  its status file (recorder.status_file);
- scheduler: its state file (scheduler.state_file): the last and next job, a
  next run that is overdue, a scheduler process that is gone;
- calendar: the trading calendar this config gives (qmtbus.calendar): a problem
  when today lies past its last known day (the fix named, with example lines),
  a warning in the 30 days before.

Exit 0 when nothing is wrong, 1 when something is (each problem one sentence on
stderr), 2 for a config error. Warnings (trading halted, a job that failed,
the gateway outside its connection window) are shown but do not fail.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any, Literal

import msgspec
import zmq

from qmtbus import clock, files, protocol, table
from qmtbus.calendar import TradingCalendar, example_lines, load_calendar
from qmtbus.client import CurveKeys, Gateway, RecorderClient, client_curve
from qmtbus.clock import SHANGHAI
from qmtbus.config import Config, load_config
from qmtbus.errors import GatewayError, GatewayUnreachable
from qmtbus.keys import secure_client
from qmtbus.reach import check_listening

OK, UNHEALTHY = 0, 1
Component = Literal["gateway", "recorder", "scheduler", "calendar"]
COMPONENTS: tuple[Component, ...] = ("gateway", "recorder", "scheduler", "calendar")

DEFAULT_HEARTBEAT_TIMEOUT = 3.0
DEFAULT_MAX_LAG = 1000  # events; the recorder commits about every second
DEFAULT_MAX_COMMIT_AGE = 10.0  # seconds; heartbeats alone make it commit every second
DEFAULT_OVERDUE = 120.0  # seconds a job's next_run may lie in the past


class GatewayHealth(msgspec.Struct, kw_only=True):
    address: str
    events_address: str
    reachable: bool = False
    state: str = ""
    state_reason: str = ""
    trading: str = ""
    trading_reason: str = ""
    broker: str = ""
    account_id: str = ""
    epoch: str = ""
    last_seq: int = 0
    heartbeat: bool = False
    last_event_age: float | None = None  # seconds since the newest heartbeat's ts
    calendar_last_day: str = ""  # the gateway's calendar's last known day ("" if it uses none)


class RecorderHealth(msgspec.Struct, kw_only=True):
    address: str
    reachable: bool = False
    epoch: str = ""
    last_seq: int = 0
    events: int = 0
    lag: int | None = None  # events of the gateway's epoch not yet committed
    last_commit_age: float | None = None
    status_file: str = ""
    status_file_age: float | None = None
    pid: int = 0


class JobHealth(msgspec.Struct, kw_only=True):
    name: str
    last_run: str | None = None  # scheduled_for of the last run that started
    last_outcome: str = ""
    last_error: str = ""
    next_run: str | None = None
    next_run_error: str = ""


class SchedulerHealth(msgspec.Struct, kw_only=True):
    state_file: str
    found: bool = False
    pid: int = 0
    running: bool | None = None  # None: cannot tell from here
    updated: str | None = None
    last_job: JobHealth | None = None
    next_job: JobHealth | None = None
    jobs: list[JobHealth] = []


class CalendarHealth(msgspec.Struct, kw_only=True):
    today: str
    sources: str = ""  # the layers, first that knows a date wins
    last_day: str = ""  # the last day a source vouches for
    last_day_source: str = ""
    gateway_last_day: str = ""  # what the gateway's own calendar says, when it has one
    days_left: int | None = None
    beyond: str = ""
    example: str = ""  # the config lines that would extend it, when it needs extending


class Report(msgspec.Struct, kw_only=True):
    ok: bool
    problems: list[str]
    warnings: list[str]
    gateway: GatewayHealth | None = None
    recorder: RecorderHealth | None = None
    scheduler: SchedulerHealth | None = None
    calendar: CalendarHealth | None = None


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------


def check(
    config: Config,
    *,
    heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT,
    max_lag: int = DEFAULT_MAX_LAG,
    max_commit_age: float = DEFAULT_MAX_COMMIT_AGE,
    overdue: float = DEFAULT_OVERDUE,
    skip: frozenset[str] = frozenset(),
    today: dt.date | None = None,
    calendar: TradingCalendar | None = None,
) -> Report:
    """Look at every component (but those in `skip`) and say what is wrong. `today` and
    `calendar` default to the Shanghai date and the config's calendar."""
    problems: list[str] = []
    warnings: list[str] = []
    gw = (
        None if "gateway" in skip else _check_gateway(config, heartbeat_timeout, problems, warnings)
    )
    rec = None
    if "recorder" not in skip:
        rec = _check_recorder(config, gw, heartbeat_timeout, max_lag, max_commit_age, problems)
    sched = None if "scheduler" in skip else _check_scheduler(config, overdue, problems, warnings)
    cal = None
    if "calendar" not in skip:
        day = today or clock.today()
        cal = _check_calendar(config, calendar, day, gw, problems, warnings)
    return Report(
        ok=not problems,
        problems=problems,
        warnings=warnings,
        gateway=gw,
        recorder=rec,
        scheduler=sched,
        calendar=cal,
    )


def _check_gateway(
    config: Config, heartbeat_timeout: float, problems: list[str], warnings: list[str]
) -> GatewayHealth:
    g = config.gateway
    curve = client_curve(config)
    health = GatewayHealth(address=g.commands_address, events_address=g.events_address)
    ctx: zmq.Context[Any] = zmq.Context.instance()
    sub = _subscriber(ctx, g.events_address, curve)  # first, so the heartbeat wait overlaps
    started = time.monotonic()
    try:
        status = None
        try:
            check_listening(g.commands_address, "gateway")  # a dead gateway is named at once
            with Gateway(
                g.commands_address, g.events_address, heartbeat_timeout, 0, curve=curve
            ) as client:
                status = client.status()
        except (GatewayUnreachable, GatewayError) as err:
            problems.append(f"gateway: {_sentence(err)}")
        if status is not None:
            health.reachable = True
            health.state, health.state_reason = status.state, status.state_reason
            health.trading, health.trading_reason = status.trading, status.trading_reason
            health.broker, health.account_id = status.broker, status.account_id
            health.epoch, health.last_seq = status.epoch, status.last_seq
            health.calendar_last_day = status.calendar_last_day
            why = f" ({status.state_reason})" if status.state_reason else ""
            if status.state == "outside_window":
                warnings.append(
                    f"gateway: outside its connection window{why}; it connects when the "
                    "window opens"
                )
            elif status.state != "ready":
                problems.append(f"gateway: state is {status.state}{why}, not ready")
            if status.trading != "active":
                reason = f" ({status.trading_reason})" if status.trading_reason else ""
                warnings.append(
                    f"gateway: trading is {status.trading}{reason}; `qmtbus resume` to trade again"
                )
        # the whole wait counts from the subscription, so a dead gateway costs one timeout
        wait = max(heartbeat_timeout - (time.monotonic() - started), 0.0)
        if not health.reachable:
            wait = min(wait, 0.5)
        heartbeat = _wait_heartbeat(sub, wait)
    finally:
        sub.close(0)
    if heartbeat is not None:
        health.heartbeat = True
        health.last_event_age = max(0.0, (protocol.now_ns() - heartbeat.ts) / 1e9)
    elif health.reachable:
        problems.append(
            f"gateway: no heartbeat on {g.events_address} within {heartbeat_timeout:g} s, "
            "although it answers commands; check events_address and the CURVE keys"
        )
    return health


def _subscriber(ctx: zmq.Context[Any], address: str, curve: CurveKeys | None) -> zmq.Socket[Any]:
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    secure_client(sock, curve)
    sock.setsockopt(zmq.SUBSCRIBE, b"heartbeat.")
    sock.connect(address)
    return sock


def _wait_heartbeat(sock: zmq.Socket[Any], timeout: float) -> protocol.HeartbeatEvent | None:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not sock.poll(int(left * 1000) + 1):
            return None
        frames = sock.recv_multipart()
        try:
            event = protocol.decode_event(frames[-1])
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        if isinstance(event, protocol.HeartbeatEvent):
            return event


def _check_recorder(
    config: Config,
    gw: GatewayHealth | None,
    timeout: float,
    max_lag: int,
    max_commit_age: float,
    problems: list[str],
) -> RecorderHealth:
    rc = config.recorder
    health = RecorderHealth(address=rc.query_address, status_file=rc.status_file)
    file_status = files.read(files.RecorderStatusFile, Path(rc.status_file))
    if file_status is not None:
        health.status_file_age = _file_age(Path(rc.status_file))
        health.pid = file_status.pid
    try:
        check_listening(rc.query_address, "recorder")  # a dead recorder is named at once
        with RecorderClient(rc.query_address, timeout, 0, curve=client_curve(config)) as client:
            status = client.status()
    except (GatewayUnreachable, GatewayError) as err:
        if file_status is not None:
            written = f"{health.status_file_age:.0f} s ago" if health.status_file_age else "?"
            problems.append(
                f"recorder: {_sentence(err)} (its status file, written {written}, says "
                f"seq {file_status.last_seq} of epoch {file_status.epoch or '-'})"
            )
        else:
            problems.append(f"recorder: {_sentence(err)}")
        return health
    health.reachable = True
    health.epoch, health.last_seq, health.events = status.epoch, status.last_seq, status.events
    if status.last_commit_ts:
        health.last_commit_age = max(0.0, (protocol.now_ns() - status.last_commit_ts) / 1e9)
    if gw is not None and gw.reachable:
        if status.epoch == gw.epoch:
            health.lag = max(0, gw.last_seq - status.last_seq)
        elif status.epoch > gw.epoch:  # the gateway restarted between the two questions
            health.lag = 0
        else:  # nothing of the gateway's current epoch is committed yet
            health.lag = gw.last_seq
    elif status.gateway_last_seq:
        health.lag = max(0, status.gateway_last_seq - status.last_seq)
    if health.lag is not None and health.lag > max_lag:
        problems.append(
            f"recorder: {health.lag} events behind the gateway (more than {max_lag}); see "
            "logs/recorder.log"
        )
    gateway_alive = gw is not None and gw.heartbeat
    age = health.last_commit_age
    if gateway_alive and age is not None and age > max_commit_age:
        problems.append(
            f"recorder: nothing committed for {age:.0f} s while the gateway publishes "
            f"(more than {max_commit_age:g} s); is it stuck? see logs/recorder.log"
        )
    return health


def _check_scheduler(
    config: Config, overdue: float, problems: list[str], warnings: list[str]
) -> SchedulerHealth:
    path = Path(config.scheduler.state_file)
    health = SchedulerHealth(state_file=str(path))
    doc = files.read(files.SchedulerState, path)
    if doc is None:
        problems.append(
            f"scheduler: no readable state file at {path}; is the scheduler running with "
            "this config? (give --skip scheduler where it does not run)"
        )
        return health
    health.found = True
    health.pid = doc.pid
    health.updated = _iso(doc.updated)
    health.running = _scheduler_running(health.pid)
    if health.running is False:
        problems.append(
            f"scheduler: its process (pid {health.pid}, from {path}) is not running; "
            "see logs/scheduler.log"
        )
    now = clock.now()
    for name, record in sorted(doc.jobs.items()):
        last = record.last_run
        job = JobHealth(
            name=name,
            last_run=_iso(last.scheduled_for) if last else None,
            last_outcome=last.outcome if last else "",
            last_error=last.error if last else "",
            next_run=_iso(record.next_run),
            next_run_error=record.next_run_error,
        )
        health.jobs.append(job)
        if job.next_run is None and job.next_run_error:
            problems.append(f"scheduler: job {name} has no next run: {job.next_run_error}")
        due = _parse_time(job.next_run)
        if due is not None and (now - due).total_seconds() > overdue:
            late = (now - due).total_seconds()
            problems.append(
                f"scheduler: state is stale: job {name} was due at {_clock(due)}, {late:.0f} s "
                "ago, and has been neither run nor skipped; is the scheduler stuck or down?"
            )
        if job.last_outcome in ("error", "interrupted"):
            why = f": {job.last_error}" if job.last_error else ""
            warnings.append(
                f"scheduler: the last run of job {name} ({job.last_run}) ended "
                f"{job.last_outcome}{why}"
            )
    started = [j for j in health.jobs if _parse_time(j.last_run) is not None]
    if started:
        health.last_job = max(started, key=lambda j: _parse_time(j.last_run) or now)
    upcoming = [j for j in health.jobs if _parse_time(j.next_run) is not None]
    if upcoming:
        health.next_job = min(upcoming, key=lambda j: _parse_time(j.next_run) or now)
    return health


def _check_calendar(
    config: Config,
    calendar: TradingCalendar | None,
    today: dt.date,
    gw: GatewayHealth | None,
    problems: list[str],
    warnings: list[str],
) -> CalendarHealth:
    health = CalendarHealth(today=today.isoformat(), beyond=config.calendar.beyond)
    if gw is not None:
        health.gateway_last_day = gw.calendar_last_day
    if calendar is None:
        try:
            calendar = load_calendar(config)
        except ValueError as err:
            problems.append(f"calendar: {err}")
            return health
    health.sources = calendar.name
    health.last_day = calendar.last_day.isoformat()
    health.last_day_source = calendar.last_source
    last_day = calendar.last_day
    if health.gateway_last_day > health.last_day:  # e.g. miniQMT's calendar on the gateway's host
        last_day = dt.date.fromisoformat(health.gateway_last_day)
    health.days_left = (last_day - today).days
    gap = calendar.gap(today) if today > last_day else None
    soon = calendar.ends_soon(today) if last_day == calendar.last_day else None
    if gap is not None:
        problems.append(f"calendar: {gap}")
        health.example = example_lines(today.year)
    elif soon is not None:
        warnings.append(f"calendar: {soon}")
        health.example = example_lines(calendar.last_day.year + 1)
    return health


def _scheduler_running(pid: int) -> bool | None:
    """Whether the scheduler that wrote the state file still runs (this machine only)."""
    if pid <= 0:
        return None
    try:
        import psutil
    except ImportError:  # pragma: no cover - a dependency, but health must not need it
        return None
    try:
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return None  # exists, not ours to look at
    return "scheduler" in cmdline


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _file_age(path: Path) -> float | None:
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except OSError:
        return None


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=SHANGHAI)


def _clock(when: dt.datetime) -> str:
    return when.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def _sentence(err: Exception) -> str:
    if isinstance(err, GatewayError):
        return f"answered with an error: {err.message} ({err.code})"
    return str(err)


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def render(report: Report) -> str:
    """The readable view: one row per component, then warnings and problems."""
    rows = []
    if report.gateway is not None:
        rows.append(("gateway", *_gateway_cells(report.gateway, report.problems)))
    if report.recorder is not None:
        rows.append(("recorder", *_recorder_cells(report.recorder, report.problems)))
    if report.scheduler is not None:
        rows.append(("scheduler", *_scheduler_cells(report.scheduler, report.problems)))
    if report.calendar is not None:
        rows.append(("calendar", *_calendar_cells(report.calendar, report.problems)))
    lines = [table.table(["component", "health", "details"], rows)]
    lines += [f"warning: {w}" for w in report.warnings]
    if report.calendar is not None and report.calendar.example:
        lines.append("to extend the calendar, add to the config, for example:")
        lines += [f"  {line}" for line in report.calendar.example.splitlines()]
    lines.append("all healthy" if report.ok else f"{len(report.problems)} problem(s)")
    return "\n".join(lines)


def _verdict(name: str, problems: list[str]) -> str:
    return "PROBLEM" if any(p.startswith(f"{name}:") for p in problems) else "ok"


def _calendar_cells(c: CalendarHealth, problems: list[str]) -> tuple[str, str]:
    if not c.last_day:
        return "PROBLEM", "no calendar source could be loaded"
    left = f", {c.days_left} days left" if c.days_left is not None and c.days_left >= 0 else ""
    gateway = ""
    if c.gateway_last_day and c.gateway_last_day != c.last_day:
        gateway = f" (the gateway's: {c.gateway_last_day})"
    details = (
        f'known until {c.last_day}{gateway} from {c.last_day_source}{left}; beyond = "{c.beyond}"'
    )
    return _verdict("calendar", problems), details


def _gateway_cells(g: GatewayHealth, problems: list[str]) -> tuple[str, str]:
    if not g.reachable:
        return "PROBLEM", f"no answer at {g.address}"
    age = f"{g.last_event_age:.1f} s ago" if g.last_event_age is not None else "none heard"
    details = (
        f"{g.state}, trading {g.trading}, broker {g.broker} account {g.account_id}; "
        f"epoch {g.epoch} seq {g.last_seq}; last event {age}"
    )
    return _verdict("gateway", problems), details


def _recorder_cells(r: RecorderHealth, problems: list[str]) -> tuple[str, str]:
    if not r.reachable:
        return "PROBLEM", f"no answer at {r.address}"
    lag = "?" if r.lag is None else str(r.lag)
    commit = f"{r.last_commit_age:.1f} s ago" if r.last_commit_age is not None else "-"
    details = (
        f"committed seq {r.last_seq} of epoch {r.epoch or '-'} ({r.events} events); "
        f"{lag} behind; last commit {commit}"
    )
    return _verdict("recorder", problems), details


def _scheduler_cells(s: SchedulerHealth, problems: list[str]) -> tuple[str, str]:
    if not s.found:
        return "PROBLEM", f"no state file at {s.state_file}"
    last = "none yet"
    if s.last_job is not None:
        last = f"{s.last_job.name} {s.last_job.last_outcome} ({_short(s.last_job.last_run)})"
    upcoming = "none"
    if s.next_job is not None:
        upcoming = f"{s.next_job.name} at {_short(s.next_job.next_run)}"
    pid = f"pid {s.pid}" + ("" if s.running is not False else " (gone)")
    return _verdict("scheduler", problems), f"{pid}; last job {last}; next job {upcoming}"


def _short(value: str | None) -> str:
    when = _parse_time(value)
    return "-" if when is None else _clock(when)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `qmtbus health` (the CLI registers the subcommand)."""
    parser.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=DEFAULT_HEARTBEAT_TIMEOUT,
        metavar="S",
        help=f"seconds to wait for the gateway's answer and a heartbeat "
        f"(default {DEFAULT_HEARTBEAT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--max-lag",
        type=int,
        default=DEFAULT_MAX_LAG,
        metavar="N",
        help=f"events the recorder may be behind the gateway (default {DEFAULT_MAX_LAG})",
    )
    parser.add_argument(
        "--max-commit-age",
        type=float,
        default=DEFAULT_MAX_COMMIT_AGE,
        metavar="S",
        help=f"seconds the recorder may go without a commit while the gateway publishes "
        f"(default {DEFAULT_MAX_COMMIT_AGE:g})",
    )
    parser.add_argument(
        "--overdue",
        type=float,
        default=DEFAULT_OVERDUE,
        metavar="S",
        help=f"seconds a job's next run may lie in the past (default {DEFAULT_OVERDUE:g})",
    )
    parser.add_argument(
        "--skip",
        action="append",
        choices=COMPONENTS,
        default=[],
        help="do not check this component here (repeatable), e.g. on a gateway-only host",
    )


def health(args: argparse.Namespace) -> int:
    """`qmtbus health`: print the report; 0 healthy, 1 something is wrong."""
    config = load_config(getattr(args, "config", None))
    report = check(
        config,
        heartbeat_timeout=getattr(args, "heartbeat_timeout", DEFAULT_HEARTBEAT_TIMEOUT),
        max_lag=getattr(args, "max_lag", DEFAULT_MAX_LAG),
        max_commit_age=getattr(args, "max_commit_age", DEFAULT_MAX_COMMIT_AGE),
        overdue=getattr(args, "overdue", DEFAULT_OVERDUE),
        skip=frozenset(getattr(args, "skip", None) or ()),
    )
    if getattr(args, "json", False):
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    else:
        sys.stdout.write(render(report) + "\n")
    sys.stdout.flush()
    for problem in report.problems:
        sys.stderr.write(f"problem: {problem}\n")
    return OK if report.ok else UNHEALTHY


def main(argv: list[str] | None = None) -> int:
    """`python -m qmtbus.health`, the same as `qmtbus health`."""
    from qmtbus.config import ConfigError, config_path

    parser = argparse.ArgumentParser(prog="qmtbus health", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="the qmtbus TOML file (default: $QMTBUS_CONFIG)")
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.config = config_path(args.config)
    try:
        return health(args)
    except (ConfigError, ValueError) as err:
        sys.stderr.write(f"error: {err}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
