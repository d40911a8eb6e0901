"""`qmtbus health` against real processes: it says what is wrong, from real signals, and exits 1.

The command runs as a real subprocess (`python -m qmtbus.cli ... health`), so
these tests also prove the CLI registers it.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import tomli_w

from qmtbus import Gateway, RecorderClient
from qmtbus import protocol as p
from qmtbus.health import Report
from tests.support import NOBODY, Proc, Stack, start_gateway, wait_for

JOBS = """\
def noop(ctx):
    return "ok"
"""


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    # a job every second, so that a scheduler that stops working is noticed at once
    job = {"name": "tick", "cron": "* * * * * *", "callable": "health_jobs:noop"}
    (tmp_path / "health_jobs.py").write_text(JOBS)  # the scheduler's cwd is importable
    return Stack(
        tmp_path,
        {
            "sim": {"volatility": 0.0},
            "scheduler": {
                "jobs": [{**job, "trading_days_only": False}],
                "pre_open_check": False,
                "after_close_snapshot": False,
            },
            "recorder": {"write_retry_seconds": 0.2},
            # these tests are about the processes: a calendar that never runs out here
            # (tests/gateway/test_calendar_e2e.py covers health past its end)
            "calendar": {"known_until": "2099-12-31"},
        },
    )


@pytest.fixture
def system(stack: Stack) -> Iterator[dict[str, Proc]]:
    """Gateway, recorder and scheduler, each working."""
    procs = {"gateway": start_gateway(stack)}
    try:
        procs["recorder"] = Proc("recorder", stack).start()
        procs["scheduler"] = Proc("scheduler", stack).start()
        # generous: on a loaded 2-core machine a first DuckDB commit can take a while
        with RecorderClient(stack.query_address, timeout=0.5, retries=0) as recorder:
            wait_for(lambda: _answers(recorder), 60, "recorder committing")
        wait_for(lambda: _last_run(stack) is not None, 60, "the scheduler's first run")
        yield procs
    finally:  # also when set-up fails: no process outlives its test
        for proc in procs.values():
            if proc.alive():
                os.kill(proc.pid, signal.SIGCONT)
                proc.stop()


def _answers(recorder: RecorderClient) -> bool:
    try:
        return recorder.status().last_seq > 0
    except TimeoutError:
        return False


def _last_run(stack: Stack) -> Any:
    path = Path(stack.config()["scheduler"]["state_file"])
    try:
        doc = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        return None
    return doc["jobs"].get("tick", {}).get("last_run")


def health(
    stack: Stack, *args: str, config: Path | None = None
) -> tuple[int, str, list[str], float]:
    """Run `qmtbus health`; (exit code, stdout, problem sentences, seconds it took)."""
    started = time.monotonic()
    config_file = str(config or stack.config_path)
    done = subprocess.run(
        [sys.executable, "-m", "qmtbus.cli", "--config", config_file, "health", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=stack.dir,
    )
    took = time.monotonic() - started
    assert "Traceback" not in done.stderr, done.stderr
    problems = [line.removeprefix("problem: ") for line in done.stderr.splitlines() if line.strip()]
    return done.returncode, done.stdout, problems, took


def report(stack: Stack, *args: str) -> tuple[int, Report]:
    code, out, _, _ = health(stack, "--json", *args)
    return code, msgspec.json.decode(out, type=Report)


def test_given_gateway_recorder_and_scheduler_working_then_health_shows_one_table_and_exits_0(
    stack: Stack, system: dict[str, Proc]
) -> None:
    code, out, problems, took = health(stack)
    assert (code, problems) == (0, []), out
    lines = out.splitlines()
    assert lines[0].split() == ["component", "health", "details"]
    rows = {line.split()[0]: line for line in lines[2:5]}
    assert set(rows) == {"gateway", "recorder", "scheduler"}
    assert all(row.split()[1] == "ok" for row in rows.values())
    assert "ready, trading active" in rows["gateway"]
    assert "last job tick " in rows["scheduler"] and "next job tick at" in rows["scheduler"]
    assert lines[-1] == "all healthy"
    assert took < 5

    code, rep = report(stack)
    assert code == 0 and rep.ok and rep.problems == []
    assert rep.gateway is not None and rep.gateway.state == "ready" and rep.gateway.heartbeat
    assert rep.gateway.last_event_age is not None and rep.gateway.last_event_age < 3
    assert rep.recorder is not None and rep.recorder.reachable
    assert rep.recorder.epoch == rep.gateway.epoch and rep.recorder.lag is not None
    assert rep.recorder.lag < 50 and rep.recorder.pid == system["recorder"].pid
    assert rep.scheduler is not None and rep.scheduler.running
    assert rep.scheduler.pid == system["scheduler"].pid
    assert rep.scheduler.last_job is not None
    assert rep.scheduler.last_job.last_outcome in ("ok", "running")  # it runs every second


def test_given_nothing_running_then_health_names_each_missing_part_and_exits_1(
    stack: Stack,
) -> None:
    stack.nobody_listens()
    code, out, problems, took = health(stack)
    assert code == 1
    assert problems[0].startswith(f"gateway: gateway not reachable at {stack.commands_address}")
    assert problems[1].startswith(f"recorder: recorder not reachable at {stack.query_address}")
    assert problems[2].startswith("scheduler: no readable state file at")
    assert len(problems) == 3
    assert out.splitlines()[-1] == "3 problem(s)"
    assert took < 5  # a connect check first: about 2 s of it is starting Python on a busy machine


def test_given_gateway_disconnected_from_broker_then_health_says_not_ready(
    stack: Stack,
) -> None:
    stack.write_config(gateway={"reconnect_initial": 30.0, "reconnect_max": 30.0})
    gateway = start_gateway(stack)
    try:
        stack.call(p.SimFault(fault="disconnect"))
        wait_for(lambda: stack.call(p.GetStatus()).state != "ready", 10, "disconnected")
        code, _, problems, _ = health(stack, "--skip", "recorder", "--skip", "scheduler")
        assert code == 1
        assert len(problems) == 1 and problems[0].startswith("gateway: state is disconnected")
        assert problems[0].endswith(", not ready")
    finally:
        gateway.stop()


def test_given_events_address_wrong_in_config_then_health_says_no_heartbeat(
    stack: Stack, tmp_path: Path
) -> None:
    gateway = start_gateway(stack)
    try:
        wrong = stack.config()
        wrong["gateway"]["events_address"] = NOBODY
        config = tmp_path / "wrong.toml"
        config.write_text(tomli_w.dumps(wrong))
        code, _, problems, took = health(
            stack, "--skip", "recorder", "--skip", "scheduler", config=config
        )
        assert code == 1
        assert problems == [
            f"gateway: no heartbeat on {wrong['gateway']['events_address']} within 3 s, "
            "although it answers commands; check events_address and the CURVE keys"
        ]
        assert 3 <= took < 8
    finally:
        gateway.stop()


def test_given_trading_halted_then_health_warns_but_exits_0(stack: Stack) -> None:
    gateway = start_gateway(stack)
    try:
        stack.call(p.Halt(reason="lunch"))
        code, out, problems, _ = health(stack, "--skip", "recorder", "--skip", "scheduler")
        assert (code, problems) == (0, [])
        assert "warning: gateway: trading is halted (lunch); `qmtbus resume` to trade again" in out
    finally:
        gateway.stop()


def test_given_recorder_cannot_write_then_health_reports_its_lag_and_stale_commits(
    stack: Stack, system: dict[str, Proc]
) -> None:
    recorder = system["recorder"]
    database = Path(stack.config()["recorder"]["database"])
    wal = database.with_name(database.name + ".wal")
    limit = max(wal.stat().st_size if wal.exists() else 0, recorder.log_path.stat().st_size)
    _, hard = resource.prlimit(recorder.pid, resource.RLIMIT_FSIZE)
    # as on a full disk: every write past the limit fails; the recorder keeps answering
    resource.prlimit(recorder.pid, resource.RLIMIT_FSIZE, (limit + 32 * 1024, hard))
    try:
        with Gateway(stack.commands_address, stack.events_address) as gw:
            for i in range(3000):
                gw.note("test.lag", {"i": i, "pad": "x" * 200})
        wait_for(lambda: "cannot write to" in recorder.log(), 20, "the write error")

        def unhealthy() -> Report | None:
            code, rep = report(stack, "--max-lag", "500", "--max-commit-age", "1")
            problems = [s for s in rep.problems if s.startswith("recorder:")]
            return rep if code == 1 and len(problems) == 2 else None

        rep = wait_for(unhealthy, 20, "health to see the lag and the stale commits")
        assert rep.recorder is not None and rep.recorder.reachable
        assert rep.recorder.lag is not None and rep.recorder.lag > 500
        lag, stale = rep.problems
        assert lag == (
            f"recorder: {rep.recorder.lag} events behind the gateway (more than 500); "
            "see logs/recorder.log"
        )
        assert stale.startswith("recorder: nothing committed for ")
    finally:
        resource.prlimit(recorder.pid, resource.RLIMIT_FSIZE, (hard, hard))
    # it catches up by itself, and health says so
    wait_for(lambda: report(stack, "--max-lag", "500")[0] == 0, 30, "healthy again")


def test_given_recorder_stopped_then_health_says_unreachable_and_quotes_its_status_file(
    stack: Stack, system: dict[str, Proc]
) -> None:
    assert system["recorder"].stop() == 0
    code, _, problems, _ = health(stack, "--skip", "scheduler")
    assert code == 1
    assert len(problems) == 1 and problems[0].startswith("recorder: recorder not reachable at")
    assert "(its status file, written " in problems[0] and " says seq " in problems[0]


def test_given_scheduler_frozen_then_health_says_its_state_is_stale(
    stack: Stack, system: dict[str, Proc]
) -> None:
    scheduler = system["scheduler"]
    os.kill(scheduler.pid, signal.SIGSTOP)  # alive, but doing nothing
    try:
        # the every-second job's next run falls into the past and stays there
        def stale() -> list[str] | None:
            code, _, problems, _ = health(stack, "--skip", "recorder", "--overdue", "2")
            return problems if code == 1 else None

        problems = wait_for(stale, 20, "health to notice")
        assert len(problems) == 1
        assert problems[0].startswith("scheduler: state is stale: job tick was due at ")
        assert problems[0].endswith(
            "and has been neither run nor skipped; is the scheduler stuck or down?"
        )
    finally:
        os.kill(scheduler.pid, signal.SIGCONT)


def test_given_scheduler_killed_then_health_says_its_process_is_gone(
    stack: Stack, system: dict[str, Proc]
) -> None:
    scheduler = system["scheduler"]
    scheduler.kill()
    code, _, problems, _ = health(stack, "--skip", "recorder", "--overdue", "3600")
    assert code == 1
    assert problems == [
        f"scheduler: its process (pid {scheduler.pid}, from "
        f"{stack.config()['scheduler']['state_file']}) is not running; see logs/scheduler.log"
    ]
