"""Start-up: defaults, config errors in one sentence, states on the bus, status, graceful stop."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from qmtbus import protocol as p
from tests.support import Proc, Stack, Subscriber, start_gateway, wait_for


def _run_gateway(
    args: list[str], cwd: Path, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qmtbus.gateway", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ('[gateway]\nacount_id = "x"\n', "unknown key `gateway.acount_id`"),
        ("[gateway]\nheartbeat_interval = -1\n", "gateway.heartbeat_interval"),
        ('[gateway]\nbroker = "ib"\n', "gateway.broker"),
        ("[gateway\n", "not valid TOML"),
        ('[gateway]\nbroker = "xtquant"\n', "xtquant.userdata_mini"),
        (
            '[gateway]\ncommands_address = "tcp://0.0.0.0:7102"\n',
            "loopback",
        ),
    ],
)
def test_given_bad_config_then_one_sentence_and_exit_2(
    tmp_path: Path, toml: str, words: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    result = _run_gateway(["--config", str(config)], tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert words in lines[0]


def test_given_xtquant_broker_on_linux_then_says_why_it_cannot_run(tmp_path: Path) -> None:
    config = tmp_path / "xt.toml"
    config.write_text('[gateway]\nbroker = "xtquant"\n[xtquant]\nuserdata_mini = "/nowhere"\n')
    result = _run_gateway(["--config", str(config)], tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "Windows" in result.stderr


def test_given_missing_config_file_then_says_which_path(tmp_path: Path) -> None:
    result = _run_gateway(["--config", str(tmp_path / "nope.toml")], tmp_path)
    assert result.returncode == 2
    assert "nope.toml" in result.stderr


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.skipif(
    not (_port_free(7101) and _port_free(7102)), reason="default ports 7101/7102 are in use"
)
def test_given_no_config_then_runs_on_sim_with_defaults_and_state_under_data(
    tmp_path: Path,
) -> None:
    stack = Stack(tmp_path / "defaults")
    stack.events_address, stack.commands_address = "tcp://127.0.0.1:7101", "tcp://127.0.0.1:7102"
    stack.config_path.unlink()
    proc = subprocess.Popen([sys.executable, "-m", "qmtbus.gateway"], cwd=stack.dir)
    try:
        status = wait_for(lambda: _status_or_none(stack), 20, "default gateway ready")
        assert status.broker == "sim"
        assert (stack.dir / "data" / "journal").is_dir()
    finally:
        proc.terminate()
        assert proc.wait(15) == 0


def _status_or_none(stack: Stack) -> p.Status | None:
    try:
        reply = stack.call(p.GetStatus(), timeout=0.5)
    except TimeoutError:
        return None
    return reply if isinstance(reply, p.Status) and reply.state == "ready" else None


def test_given_start_then_states_are_journaled_in_order_and_status_says_ready(
    stack: Stack,
) -> None:
    # The first states go out within a millisecond of binding, before any
    # subscriber can have joined: replay is how a late subscriber gets them.
    proc = start_gateway(stack)
    try:
        status = stack.call(p.GetStatus())
        assert isinstance(status, p.Status)
        assert status.protocol == 1
        assert status.session_id > 0
        assert status.trading == "active"
        assert status.account_id == "SIM0001"
        reply = stack.call(p.Replay(epoch=status.epoch, from_seq=1))
        assert isinstance(reply, p.ReplayReply)
        states = [e.state for e in reply.events if isinstance(e, p.GatewayEvent)]
        assert states[:5] == ["starting", "connecting", "connected", "reconciling", "ready"]
        seqs = [e.seq for e in reply.events]
        assert seqs == list(range(1, len(seqs) + 1))
    finally:
        assert proc.stop() == 0


def test_given_heartbeats_then_last_seq_tracks_the_stream(
    stack: Stack, gateway: Proc, events: Subscriber
) -> None:
    beat = events.wait(lambda e: isinstance(e, p.HeartbeatEvent), 5, "heartbeat")
    assert isinstance(beat, p.HeartbeatEvent)
    assert beat.last_seq == beat.seq - 1


def test_given_sigterm_then_publishes_stopping_and_exits_0(
    stack: Stack, events: Subscriber
) -> None:
    proc = start_gateway(stack)
    events.wait(lambda e: isinstance(e, p.HeartbeatEvent), 5, "subscribed")
    assert proc.stop() == 0
    events.drain(0.5)
    states = [e.state for e in events.events if isinstance(e, p.GatewayEvent)]
    assert states[-1] == "stopping"
