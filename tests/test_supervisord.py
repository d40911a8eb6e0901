"""The repo's supervisord.conf for real: all starts, what dies comes back, stops are clean.

Each test runs supervisord on a copy of supervisord.conf + qmtbus.toml in its
own folder (tests/supervised.py), on free loopback ports.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import zmq

from qmtbus import Gateway, RecorderClient
from qmtbus import protocol as p
from qmtbus.config import load_config
from qmtbus.gateway.broker.sim.ledger import read_ledger
from tests.supervised import PROGRAMS, Supervised, read_conf
from tests.support import ROOT, Subscriber, call, wait_for, wait_ready

CODE = "600000.SH"


@pytest.fixture
def system(tmp_path: Path) -> Iterator[Supervised]:
    # a space in the folder's name: the conf must not care where the repo lives
    sv = Supervised(tmp_path / "qmt bus", {"sim": {"volatility": 0.0}}).start()
    wait_ready(sv.stack)
    yield sv
    sv.stop()


def alerts(sub: Subscriber) -> list[dict[str, Any]]:
    return [
        e.data for e in sub.drain() if isinstance(e, p.NoteEvent) and e.topic == "alert.process"
    ]


def listening(sv: Supervised, prefix: bytes) -> Subscriber:
    """A subscriber to `prefix` events, live once a heartbeat came through."""
    sub = Subscriber(sv.stack.events_address, prefix)
    sub.sock.setsockopt(zmq.SUBSCRIBE, b"heartbeat.")
    sub.wait(lambda e: isinstance(e, p.HeartbeatEvent), 10, "subscriber live")
    return sub


def test_given_repo_supervisord_conf_when_started_then_supervisorctl_shows_every_program_running(
    system: Supervised,
) -> None:
    done = system.ctl("status")
    assert done.returncode == 0, done.stdout + done.stderr
    states = dict(line.split()[:2] for line in done.stdout.splitlines())
    assert states == {name: "RUNNING" for name in (*PROGRAMS, "watchdog")}

    # every program runs in the copy's folder, on its config, in Shanghai time
    for name in PROGRAMS:
        pid = system.pid(name)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert Path(f"/proc/{pid}/cwd").resolve() == system.dir.resolve()
        assert cmdline[-3:-1] == [b"--config", str(system.dir / "qmtbus.toml").encode()]
        assert b"TZ=Asia/Shanghai" in environ
        assert (system.dir / "logs" / f"{name}.log").exists()
    assert (system.dir / "logs" / "watchdog.log").exists()
    assert (system.dir / "data" / "journal").is_dir()

    # ... and they work together: the recorder has the gateway's events
    status = system.stack.call(p.GetStatus())
    with RecorderClient(system.stack.query_address, timeout=2.0) as recorder:
        wait_for(
            lambda: (r := recorder.status()).epoch == status.epoch and r.last_seq > 0,
            15,
            "recorder committing the gateway's epoch",
        )


def test_given_recorder_killed_9_then_supervisord_restarts_it_and_watchdog_publishes_an_alert(
    system: Supervised,
) -> None:
    notes = listening(system, b"note.")
    try:
        old_pid = system.kill9("recorder")
        alert = notes.wait(
            lambda e: isinstance(e, p.NoteEvent) and e.data.get("process") == "recorder",
            15,
            "alert note for the recorder",
        )
        assert isinstance(alert, p.NoteEvent) and alert.topic == "alert.process"
        assert alert.data["state"] == "EXITED" and alert.data["pid"] == old_pid
        assert "recorder exited unexpectedly" in alert.data["message"]
        system.wait_restarted("recorder", old_pid)
        # the restarted recorder records the alert about its own death
        with RecorderClient(system.stack.query_address, timeout=2.0) as recorder:
            rows = wait_for(
                lambda: (
                    recorder.sql(
                        "SELECT seq FROM notes WHERE topic = 'alert.process' "
                        "AND data->>'process' = 'recorder'"
                    ).rows
                ),
                20,
                "the alert in the recorder's notes table",
            )
        assert rows == [[alert.seq]]
    finally:
        notes.close()
    assert "recorder exited unexpectedly" in system.log("watchdog")


def test_given_gateway_killed_9_then_it_returns_in_a_new_epoch_and_the_held_alert_is_published(
    system: Supervised,
) -> None:
    before = system.stack.call(p.GetStatus())
    old_pid = system.kill9("gateway")
    system.wait_restarted("gateway", old_pid)
    after = wait_ready(system.stack)
    assert after.epoch != before.epoch

    def alert_in_new_epoch() -> list[p.NoteEvent]:
        reply = system.stack.call(p.Replay(epoch=after.epoch, from_seq=1, limit=10_000))
        # only the watchdog's: a program still starting (the scheduler) may note its start here
        return [
            e for e in reply.events if isinstance(e, p.NoteEvent) and e.topic == "alert.process"
        ]

    notes = wait_for(alert_in_new_epoch, 20, "the watchdog's alert, sent once the gateway is back")
    assert [n.data["process"] for n in notes] == ["gateway"]
    assert notes[0].data["pid"] == old_pid and notes[0].data["state"] == "EXITED"


def _fast_fatal(conf: Any) -> None:
    conf["program:scheduler"]["startretries"] = "1"


def test_given_scheduler_keeps_failing_then_it_goes_fatal_and_watchdog_starts_it_after_cooldown(
    tmp_path: Path,
) -> None:
    sv = Supervised(tmp_path, cooldown=2.0, edit=_fast_fatal).start()
    try:
        wait_ready(sv.stack)
        notes = listening(sv, b"note.")
        # a job module that does not exist: the scheduler refuses to start (exit 2)
        broken = {"name": "broken", "cron": "0 9 * * *", "callable": "no_such_module:job"}
        sv.stack.write_config(scheduler={"jobs": [broken]})
        sv.kill9("scheduler")
        sv.wait_state("scheduler", "FATAL", 60)
        fatal = notes.wait(
            lambda e: isinstance(e, p.NoteEvent) and e.data.get("state") == "FATAL",
            15,
            "FATAL alert",
        )
        assert fatal.data["process"] == "scheduler"  # type: ignore[union-attr]
        assert 'cannot import module "no_such_module"' in sv.log("scheduler")

        sv.stack.write_config(scheduler={"jobs": []})  # the operator fixes the config
        sv.wait_state("scheduler", "RUNNING", 40)
        revived = notes.wait(
            lambda e: isinstance(e, p.NoteEvent) and e.data.get("from_state") == "FATAL",
            15,
            "the watchdog's note that it started the scheduler again",
        )
        assert revived.data["process"] == "scheduler"  # type: ignore[union-attr]
        # from supervisord's own FATAL time: when the test saw FATAL is later than that
        revived_at = revived.data["time"]  # type: ignore[union-attr]
        assert revived_at - sv.fatal_before("scheduler", revived_at) >= 2.0, "before the cool-down"
        states = [a["state"] for a in alerts(notes) if a["process"] == "scheduler"]
        assert states[0] == "EXITED" and "BACKOFF" in states and states[-1] == "STARTING"
        notes.close()
    finally:
        sv.stop()


def test_given_order_in_flight_when_supervisorctl_stops_gateway_then_it_answers_publishes_stopping_and_exits_0(  # noqa: E501
    tmp_path: Path,
) -> None:
    # the simulated broker answers after 2 s, so the order is still in flight at SIGTERM
    sections = {"sim": {"volatility": 0.0, "callback_delay": 2.0}}
    sv = Supervised(tmp_path, {**sections, "gateway": {"order_reply_timeout": 3.0}}).start()
    try:
        wait_ready(sv.stack)
        states = listening(sv, b"gateway.")
        answer: list[Any] = []
        gw = Gateway(sv.stack.commands_address, sv.stack.events_address, timeout=10, retries=0)

        def send() -> None:
            try:
                answer.append(gw.buy(CODE, 100, 0, price_type=p.LATEST_PRICE, client_order_id="s1"))
            except Exception as err:
                answer.append(err)

        sender = threading.Thread(target=send)
        sender.start()
        # the order is at the broker, whose answer is 2 s away (a fixed sleep raced under load:
        # a SIGTERM before the order arrives is rightly refused with "the gateway is stopping")
        wait_for(
            lambda: any(
                o["order_remark"] == "s1" for o in read_ledger(sv.stack.data_dir).orders_received
            ),
            10,
            "the order at the simulated broker",
        )
        started = time.monotonic()
        done = sv.ctl("stop", "gateway")
        took = time.monotonic() - started
        sender.join(10)
        gw.close()

        assert done.returncode == 0 and "gateway: stopped" in done.stdout, done.stdout
        stopwaitsecs = int(read_conf(sv.conf_path)["program:gateway"]["stopwaitsecs"])
        assert took < stopwaitsecs
        assert isinstance(answer[0], p.OrderAck) and answer[0].status == "accepted", answer
        stopping = states.wait(
            lambda e: isinstance(e, p.GatewayEvent) and e.state == "stopping", 5, "stopping"
        )
        states.close()
        info = sv.info("gateway")
        assert info["statename"] == "STOPPED" and info["exitstatus"] == 0
        assert "stopped: gateway (exit status 0)" in (sv.dir / "logs/supervisord.log").read_text()

        # the journal was flushed: the next gateway replays the old epoch up to `stopping`
        sv.ctl("start", "gateway")
        wait_ready(sv.stack)
        reply = call(
            sv.stack.commands_address, p.Replay(epoch=stopping.epoch, from_seq=1, limit=10_000)
        )
        seqs = [e.seq for e in reply.events]
        assert seqs == list(range(1, len(seqs) + 1)) and stopping.seq in seqs
        # the broker's answer that made the ack is journaled with it
        assert any(
            isinstance(e, p.OrderResponseEvent) and e.client_order_id == "s1" for e in reply.events
        )
    finally:
        sv.stop()


def test_given_events_just_published_when_supervisorctl_stops_recorder_then_it_commits_them_and_exits_0(  # noqa: E501
    system: Supervised,
) -> None:
    with Gateway(system.stack.commands_address, system.stack.events_address) as gw:
        seqs = [gw.note("test.flush", {"i": i}) for i in range(300)]
    epoch = system.stack.call(p.GetStatus()).epoch
    started = time.monotonic()
    done = system.ctl("stop", "recorder")
    took = time.monotonic() - started
    assert done.returncode == 0 and "recorder: stopped" in done.stdout, done.stdout
    stopwaitsecs = int(read_conf(system.conf_path)["program:recorder"]["stopwaitsecs"])
    assert took < stopwaitsecs
    info = system.info("recorder")
    assert info["statename"] == "STOPPED" and info["exitstatus"] == 0
    assert "stopped; committed up to" in system.log("recorder")

    # the recorder is stopped: its DuckDB file can be opened directly
    db = duckdb.connect(str(system.stack.data_dir / "qmtbus.duckdb"), read_only=True)
    try:
        stored = [
            seq
            for (seq,) in db.execute(
                "SELECT seq FROM events WHERE epoch = ? ORDER BY seq", [epoch]
            ).fetchall()
        ]
        noted = db.execute(
            "SELECT count(*) FROM notes WHERE epoch = ? AND topic = 'test.flush'", [epoch]
        ).fetchone()
    finally:
        db.close()
    assert stored == list(range(1, len(stored) + 1)), "a hole in seq"
    assert stored[-1] >= seqs[-1] and noted == (300,)


def test_given_supervisord_sigterm_then_programs_stop_in_reverse_priority_each_with_exit_status_0(
    system: Supervised,
) -> None:
    assert system.stop() == 0
    lines = (system.dir / "logs" / "supervisord.log").read_text().splitlines()
    stopped = [line.split("stopped: ", 1)[1] for line in lines if "stopped: " in line]
    assert stopped == [
        "dashboard (exit status 0)",
        "notify (exit status 0)",
        "scheduler (exit status 0)",
        "recorder (exit status 0)",
        "gateway (exit status 0)",
        "watchdog (exit status 0)",
    ]


def test_given_supervisor_win_then_windows_conf_uses_http_password_and_xtquant_gateway() -> None:
    # No Windows here: check what supervisor-win needs, line by line.
    win = read_conf(ROOT / "supervisord.windows.conf")
    unix = read_conf(ROOT / "supervisord.conf")
    assert "unix_http_server" not in win
    http = win["inet_http_server"]
    assert http["port"].startswith("127.0.0.1:")
    assert http["username"] and http["password"] == "%(ENV_QMTBUS_SUPERVISOR_PASSWORD)s"
    ctl = win["supervisorctl"]
    assert ctl["serverurl"] == f"http://{http['port']}"
    assert (ctl["username"], ctl["password"]) == (http["username"], http["password"])
    # the watchdog's XML-RPC calls need the same credentials
    assert http["password"] in win["eventlistener:watchdog"]["environment"]

    programs = [name for name in win.sections() if name.startswith(("program:", "eventlistener:"))]
    assert programs == [name for name in unix.sections() if name in programs] and len(programs) == 6
    python = "'%(here)s\\.venv\\Scripts\\python.exe'"
    for name in programs:
        section = win[name]
        command = section["command"]
        assert command.startswith(python + " -m "), command
        assert "--config '%(here)s\\qmtbus.windows.toml'" in command
        # graceful stop on Windows: CTRL_BREAK, never "as group" (taskkill /F /T)
        assert section["stopsignal"] == "CTRL_BREAK_EVENT"
        assert section["stopasgroup"] == "false" and section["killasgroup"] == "true"
        for key in ("priority", "startsecs", "startretries", "stopwaitsecs", "events"):
            assert section.get(key) == unix[name].get(key), f"{name}.{key} differs from Linux"

    config = load_config(ROOT / "qmtbus.windows.toml")
    assert config.gateway.broker == "xtquant" and config.xtquant.userdata_mini
    assert not config.gateway.window.always_open
