"""Test support: real qmtbus processes on loopback ports, and a raw ZeroMQ requester.

Nothing here stands in for our own components: `Proc` starts the real
`python -m qmtbus.gateway|recorder|scheduler` with a real config file.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import tomli_w
import zmq

from qmtbus import protocol

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@dataclass
class Stack:
    """Ports, paths and the config file of one test system under `dir`."""

    dir: Path
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.events_address = f"tcp://127.0.0.1:{free_port()}"
        self.commands_address = f"tcp://127.0.0.1:{free_port()}"
        self.query_address = f"tcp://127.0.0.1:{free_port()}"
        self.quotes_address = f"tcp://127.0.0.1:{free_port()}"
        self.dashboard_port = free_port()
        self.data_dir = self.dir / "data"
        self.config_path = self.dir / "qmtbus.toml"
        self.write_config()

    def config(self) -> dict[str, dict[str, Any]]:
        base: dict[str, dict[str, Any]] = {
            "gateway": {
                "events_address": self.events_address,
                "commands_address": self.commands_address,
                "quotes_address": self.quotes_address,
                "data_dir": str(self.data_dir),
                "journal_fsync_interval": 0.2,
            },
            "sim": {"tick_interval": 0.1},
            "recorder": {
                "database": str(self.data_dir / "qmtbus.duckdb"),
                "query_address": self.query_address,
                "snapshot_path": str(self.data_dir / "snapshot.duckdb"),
                "status_file": str(self.data_dir / "recorder-status.json"),
            },
            "scheduler": {"state_file": str(self.data_dir / "scheduler-state.json")},
            "dashboard": {"port": self.dashboard_port},
        }
        for name, values in self.sections.items():
            base.setdefault(name, {}).update(values)
        return base

    def write_config(self, **sections: dict[str, Any]) -> None:
        """Rewrite the config file, merging `sections` over what was set before."""
        for name, values in sections.items():
            self.sections.setdefault(name, {}).update(values)
        self.config_path.write_text(tomli_w.dumps(self.config()))

    def call(self, command: Any, timeout: float = 5.0, json: bool = False) -> Any:
        return call(self.commands_address, command, timeout=timeout, json=json)


class Proc:
    """One real qmtbus process (`python -m <module> --config <file>`), logging to a file."""

    def __init__(self, module: str, stack: Stack, *extra: str, env: dict[str, str] | None = None):
        self.module = module
        self.stack = stack
        self.extra = extra
        self.env = env or {}
        self.log_path = stack.dir / f"{module}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.popen = subprocess.Popen(
            [
                sys.executable,
                "-m",
                f"qmtbus.{self.module}",
                "--config",
                str(self.stack.config_path),
                *self.extra,
            ],
            cwd=self.stack.dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """kill -9: no chance to flush or say goodbye."""
        if self.alive():
            assert self.popen is not None
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.popen is not None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
                raise AssertionError(f"{self.module} did not stop within {timeout}s") from None
        return int(self.popen.returncode)

    def wait_exit(self, timeout: float = 15.0) -> int:
        assert self.popen is not None
        return int(self.popen.wait(timeout))


def start_gateway(stack: Stack, ready: bool = True, timeout: float = 20.0) -> Proc:
    """Start a real gateway; with `ready`, wait until its status says ready."""
    proc = Proc("gateway", stack).start()
    if ready:
        wait_ready(stack, proc, timeout)
    return proc


def wait_ready(stack: Stack, proc: Proc | None = None, timeout: float = 20.0) -> protocol.Status:
    def ready() -> protocol.Status | None:
        if proc is not None and not proc.alive():
            raise AssertionError(f"gateway exited early:\n{proc.log()}")
        try:
            reply = call(stack.commands_address, protocol.GetStatus(), timeout=0.5)
        except TimeoutError:
            return None
        return reply if isinstance(reply, protocol.Status) and reply.state == "ready" else None

    return wait_for(ready, timeout, "gateway ready")  # type: ignore[no-any-return]


_ctx = zmq.Context.instance()


def call(address: str, command: Any, timeout: float = 5.0, json: bool = False) -> Any:
    """One request on a fresh REQ socket. `command` is a protocol Struct, a dict
    (encoded as JSON if `json`, else MessagePack) or raw bytes. Returns the
    decoded reply Struct (raw bytes are answered in whatever the gateway chose)."""
    if isinstance(command, bytes):
        payload = command
    elif json:
        payload = msgspec.json.encode(command)
    else:
        payload = msgspec.msgpack.encode(command)
    sock = _ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    try:
        sock.send(payload)
        if not sock.poll(int(timeout * 1000)):
            raise TimeoutError(f"no reply from {address} within {timeout}s")
        return protocol.decode_reply(sock.recv())
    finally:
        sock.close()


class Subscriber:
    """A raw SUB socket collecting decoded events (for tests that check the bus itself)."""

    def __init__(self, address: str, prefix: bytes = b""):
        self.sock = _ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, prefix)
        self.sock.connect(address)
        self.events: list[protocol.Event] = []

    def drain(self, timeout: float = 0.05) -> list[protocol.Event]:
        while self.sock.poll(int(timeout * 1000)):
            _topic, payload = self.sock.recv_multipart()
            self.events.append(protocol.decode_event(payload))
            timeout = 0
        return self.events

    def wait(
        self,
        predicate: Callable[[protocol.Event], bool],
        timeout: float = 10.0,
        what: str = "event",
    ) -> protocol.Event:
        def found() -> protocol.Event | None:
            self.drain()
            return next((e for e in self.events if predicate(e)), None)

        return wait_for(found, timeout, what)  # type: ignore[no-any-return]

    def of_type(self, cls: type[Any]) -> Iterator[Any]:
        return (e for e in self.events if isinstance(e, cls))

    def close(self) -> None:
        self.sock.close()
