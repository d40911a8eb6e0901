"""The watchdog event listener under a real supervisord, alerting through a real gateway.

supervisord runs the real `python -m qmtbus.watchdog` next to two tiny
programs: `victim` (sleeps; the tests kill it) and `flaky` (exits at once
unless the file `ok` exists, so it goes FATAL). The gateway runs outside
supervisord, so a test can take it away.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from qmtbus import protocol as p
from qmtbus.watchdog import Watchdog
from tests.supervised import Supervised
from tests.support import Proc, Subscriber, start_gateway, wait_for

CONF = """\
[unix_http_server]
file=%(here)s/run/supervisor.sock

[supervisord]
nodaemon=true
directory=%(here)s
logfile=%(here)s/logs/supervisord.log
pidfile=%(here)s/run/supervisord.pid
childlogdir=%(here)s/logs

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%(here)s/run/supervisor.sock

[program:victim]
command=%(here)s/.venv/bin/python -c "import time; time.sleep(3600)"
directory=%(here)s
autorestart=true
startsecs=1
stopwaitsecs=5
redirect_stderr=true
stdout_logfile=%(here)s/logs/victim.log

[program:flaky]
command=%(here)s/.venv/bin/python %(here)s/flaky.py
directory=%(here)s
autorestart=true
startsecs=1
startretries=0
stopwaitsecs=5
redirect_stderr=true
stdout_logfile=%(here)s/logs/flaky.log

[eventlistener:watchdog]
command=%(here)s/.venv/bin/python -m qmtbus.watchdog --config %(here)s/qmtbus.toml --cooldown 60
directory=%(here)s
events=PROCESS_STATE_EXITED,PROCESS_STATE_BACKOFF,PROCESS_STATE_FATAL,TICK_5
autorestart=true
stdout_logfile=NONE
stderr_logfile=%(here)s/logs/watchdog.log
"""

FLAKY = """\
import os, sys, time
if not os.path.exists("ok"):
    sys.exit(3)
time.sleep(3600)
"""

COOLDOWN = 1.0


def supervised(
    tmp_path: Path, *, flaky_fails: bool = False, watchdog_autostart: bool = True
) -> Supervised:
    template = tmp_path / "template.conf"
    template.write_text(CONF)

    def edit(conf: Any) -> None:
        conf["eventlistener:watchdog"]["autostart"] = str(watchdog_autostart).lower()

    sv = Supervised(tmp_path / "sv", cooldown=COOLDOWN, edit=edit, conf_source=template)
    (sv.dir / "flaky.py").write_text(FLAKY)
    if not flaky_fails:
        (sv.dir / "ok").touch()
    return sv


@pytest.fixture
def flaky_fails() -> bool:
    return False


@pytest.fixture
def sv(tmp_path: Path, flaky_fails: bool) -> Iterator[Supervised]:
    sv = supervised(tmp_path, flaky_fails=flaky_fails)
    yield sv
    sv.stop()


@pytest.fixture
def gateway(sv: Supervised) -> Iterator[Proc]:
    proc = start_gateway(sv.stack)
    yield proc
    if proc.alive():
        proc.stop()


@pytest.fixture
def notes(sv: Supervised, gateway: Proc) -> Iterator[Subscriber]:
    sub = Subscriber(sv.stack.events_address, b"note.")
    sub.sock.setsockopt(zmq.SUBSCRIBE, b"heartbeat.")
    sub.wait(lambda e: isinstance(e, p.HeartbeatEvent), 10, "subscriber live")
    yield sub
    sub.close()


def alert_for(name: str, state: str) -> Any:
    return lambda e: (
        isinstance(e, p.NoteEvent)
        and e.topic == "alert.process"
        and e.data["process"] == name
        and e.data["state"] == state
    )


def alerts(sub: Subscriber) -> list[dict[str, Any]]:
    events = sub.drain()
    return [e.data for e in events if isinstance(e, p.NoteEvent) and e.topic == "alert.process"]


def test_given_a_program_is_killed_then_the_alert_note_names_it_its_old_pid_and_what_happened(
    sv: Supervised, notes: Subscriber
) -> None:
    sv.start(wait=False)
    sv.wait_running(("victim", "watchdog"))
    old_pid = sv.kill9("victim")
    alert = notes.wait(alert_for("victim", "EXITED"), 10, "alert for victim")
    assert isinstance(alert, p.NoteEvent)
    assert alert.data["pid"] == old_pid and alert.data["from_state"] == "RUNNING"
    assert alert.data["message"].startswith("victim exited unexpectedly")
    sv.wait_restarted("victim", old_pid)
    assert "victim exited unexpectedly" in sv.log("watchdog")


def test_given_the_gateway_is_down_when_a_program_dies_then_the_alert_is_published_once_it_is_back(
    sv: Supervised,
) -> None:
    # The gateway's ports are the ones it binds: it runs once, then is down.
    assert start_gateway(sv.stack).stop() == 0
    sv.start(wait=False)
    sv.wait_running(("victim", "watchdog"))
    old_pid = sv.kill9("victim")  # nobody to tell yet: the watchdog holds the alert
    wait_for(lambda: "alert waits for the gateway" in sv.log("watchdog"), 10, "alert held")

    gateway = start_gateway(sv.stack)
    try:
        epoch = sv.stack.call(p.GetStatus()).epoch

        def published() -> list[p.NoteEvent]:
            reply = sv.stack.call(p.Replay(epoch=epoch, from_seq=1, limit=10_000))
            return [e for e in reply.events if isinstance(e, p.NoteEvent)]

        held = wait_for(published, 15, "the held alert on the bus")
        assert [(n.data["process"], n.data["pid"]) for n in held] == [("victim", old_pid)]
        # a later alert follows it, and the first is not sent twice
        newer_pid = sv.kill9("victim")
        wait_for(lambda: len(published()) == 2, 10, "the second alert")
        assert [n.data["pid"] for n in published()] == [old_pid, newer_pid]
    finally:
        gateway.stop()


@pytest.mark.parametrize("flaky_fails", [True], ids=["flaky_fails"])
def test_given_a_program_goes_fatal_then_the_watchdog_starts_it_again_after_the_cooldown(
    sv: Supervised, notes: Subscriber
) -> None:
    sv.start(wait=False)
    fatal = notes.wait(alert_for("flaky", "FATAL"), 20, "FATAL alert for flaky")
    assert "kept failing to start" in fatal.data["message"]  # type: ignore[union-attr]

    (sv.dir / "ok").touch()  # the cause is fixed; the watchdog does the rest
    revived = notes.wait(
        lambda e: alert_for("flaky", "STARTING")(e) and e.seq > fatal.seq,
        20,
        "the watchdog restarting flaky",
    )
    # If the watchdog's cool-down began at its own start, it may revive flaky before "ok"
    # exists: flaky fails again, and the next revival waits for a TICK_5 (up to ~8 s later).
    sv.wait_state("flaky", "RUNNING", 30)
    # Measured from when supervisord gave up on flaky, not from the FATAL alert: the
    # watchdog may have seen flaky FATAL when it started, before that alert went out.
    revived_at = revived.data["time"]  # type: ignore[union-attr]
    assert revived_at - sv.fatal_before("flaky", revived_at) >= COOLDOWN
    assert "started it again" in sv.log("watchdog")


def test_given_a_program_already_fatal_when_the_watchdog_starts_then_it_is_revived_too(
    tmp_path: Path,
) -> None:
    sv = supervised(tmp_path, flaky_fails=True, watchdog_autostart=False)
    gateway = start_gateway(sv.stack)
    try:
        sv.start(wait=False)
        sv.wait_state("flaky", "FATAL", 20)
        (sv.dir / "ok").touch()
        sv.call("startProcess", "watchdog", True)
        sv.wait_state("flaky", "RUNNING", 20)
        epoch = sv.stack.call(p.GetStatus()).epoch

        def alert_states() -> list[str] | None:
            reply = sv.stack.call(p.Replay(epoch=epoch, from_seq=1, limit=10_000))
            states = [e.data["state"] for e in reply.events if isinstance(e, p.NoteEvent)]
            return states if states and states[-1] == "STARTING" else None

        # the revival's alert may reach the bus a moment after the program runs
        states = wait_for(alert_states, 20, "the revival's STARTING alert")
        # what happened before the watchdog ran is told by supervisord's buffered events
        assert "FATAL" in states and states.count("STARTING") == 1
    finally:
        gateway.stop()
        sv.stop()


def test_given_supervisorctl_stops_a_program_then_no_alert_is_sent(
    sv: Supervised, notes: Subscriber
) -> None:
    sv.start(wait=False)
    sv.wait_running(("victim", "flaky", "watchdog"))
    done = sv.ctl("stop", "victim")
    assert "victim: stopped" in done.stdout, done.stdout + done.stderr
    sv.kill9("flaky")  # a death that does alert, after the stop
    notes.wait(alert_for("flaky", "EXITED"), 10, "alert for flaky")
    assert [a["process"] for a in alerts(notes)] == ["flaky"]


def test_given_supervisorctl_stops_the_watchdog_then_it_exits_0(sv: Supervised) -> None:
    sv.start(wait=False)
    sv.wait_running(("watchdog",))
    done = sv.ctl("stop", "watchdog")
    assert "watchdog: stopped" in done.stdout, done.stdout + done.stderr
    info = sv.info("watchdog")
    assert info["statename"] == "STOPPED" and info["exitstatus"] == 0


class FakeSupervisor:
    """supervisord's XML-RPC as the Watchdog class sees it: flaky is FATAL."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def getAllProcessInfo(self) -> list[dict[str, Any]]:
        return [{"group": "flaky", "name": "flaky", "statename": "FATAL"}]

    def getProcessInfo(self, name: str) -> dict[str, Any]:
        return {"statename": "FATAL", "exitstatus": 3}

    def startProcess(self, name: str, wait: bool) -> bool:
        self.started.append(name)
        return True


def test_given_fatal_seen_at_start_when_its_event_comes_later_then_the_alert_says_time_left() -> (
    None
):
    now = [100.0]
    sent: list[dict[str, Any]] = []
    rpc = type("Rpc", (), {"supervisor": FakeSupervisor()})()
    dog = Watchdog(lambda _topic, data: sent.append(data), rpc, cooldown=60, clock=lambda: now[0])
    dog.start()  # flaky is already FATAL: its cool-down starts now
    now[0] = 145.0
    dog.handle("PROCESS_STATE_FATAL", {"groupname": "flaky", "processname": "flaky", "pid": "0"})
    assert "starts it again in 15 s" in sent[-1]["message"]
    now[0] = 159.0
    dog.handle("TICK_5", {})
    assert rpc.supervisor.started == []
    now[0] = 160.0
    dog.handle("TICK_5", {})
    assert rpc.supervisor.started == ["flaky"] and sent[-1]["state"] == "STARTING"
