"""Test support: real qmtbus processes on loopback ports, and a raw ZeroMQ requester.

Nothing here stands in for our own components: `Proc` starts the real
`python -m qmtbus.gateway|recorder|scheduler` with a real config file.
"""

from __future__ import annotations

import os
import signal
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

from qmtbus import endpoints, protocol
from qmtbus.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent


ANY_PORT = "tcp://127.0.0.1:*"  # the kernel picks the port at bind; the process reports it
# Nothing answers here: a privileged port that no test binds and the kernel never picks.
NOBODY = "tcp://127.0.0.1:1"  # and :11 ... :14 for a whole stack


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
    """Addresses, paths and the config file of one test system under `dir`.

    Every listening address starts as `tcp://127.0.0.1:*`: the process that binds it gets a
    free port from the kernel and writes it into its endpoints file (qmtbus.endpoints);
    `Proc.start` reads that back and pins the real address into the config, so a restart
    rebinds the same port and every process started later connects to it. No port is
    chosen by probing."""

    dir: Path
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.events_address = ANY_PORT
        self.commands_address = ANY_PORT
        self.query_address = ANY_PORT
        self.quotes_address = ANY_PORT
        self.data_dir = self.dir / "data"
        self.config_path = self.dir / "qmtbus.toml"
        self.write_config()

    def unbound(self, module: str) -> bool:
        """True while `module` (gateway or recorder) has not yet reported its ports."""
        if module == "gateway":
            addresses = (self.events_address, self.commands_address, self.quotes_address)
        elif module == "recorder":
            addresses = (self.query_address,)
        else:
            return False
        return any(endpoints.is_wildcard(a) for a in addresses)

    def pin_reported(
        self, module: str, pid: int, alive: Callable[[], bool], timeout: float = 30.0
    ) -> None:
        """Wait until process `pid` has written its endpoints file (or has exited: a test of
        a failed start reads its log), then pin the addresses it reports."""
        try:
            config = load_config(self.config_path)
        except ConfigError:
            return  # the process says so and exits; the test reads its log
        # a relative data_dir is relative to the process's folder, the stack's
        path = self.dir / endpoints.endpoints_file(config, module)  # type: ignore[arg-type]

        def reported() -> endpoints.Endpoints | bool:
            found = endpoints.read(path)
            if found is not None and found.pid == pid:
                return found
            return not alive()

        found = wait_for(reported, timeout, f"{module} to report its endpoints")
        if isinstance(found, endpoints.Endpoints):
            self.pin(module, found.addresses)

    def nobody_listens(self, *modules: str) -> None:
        """Point the addresses of `modules` (default: gateway and recorder) at privileged
        ports nobody listens on: for tests of what a client says when nothing runs (a `:*`
        address names no port to connect to)."""
        if "gateway" in modules or not modules:
            ports = {"events": f"{NOBODY}1", "commands": f"{NOBODY}2", "quotes": f"{NOBODY}3"}
            self.pin("gateway", ports)
        if "recorder" in modules or not modules:
            self.pin("recorder", {"query": f"{NOBODY}4"})

    def pin(self, module: str, reported: dict[str, str]) -> None:
        """Take the addresses `module` reported as the stack's own, in the config file too."""
        for name, address in reported.items():
            setattr(self, f"{name}_address", address)
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
            # no spread: fills at the last price, which tests can pin (volatility 0)
            "sim": {"tick_interval": 0.1, "spread_ticks": 0},
            "recorder": {
                "database": str(self.data_dir / "qmtbus.duckdb"),
                "query_address": self.query_address,
                "snapshot_path": str(self.data_dir / "snapshot.duckdb"),
                "status_file": str(self.data_dir / "recorder-status.json"),
            },
            "scheduler": {"state_file": str(self.data_dir / "scheduler-state.json")},
            "dashboard": {"port": 0},
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
        if self.stack.unbound(self.module):
            self._pin_reported_ports()
        return self

    def _pin_reported_ports(self, timeout: float = 30.0) -> None:
        """Wait until this process has written its endpoints file (or has exited: a test
        of a failed start reads its log), then pin the reported addresses into the stack."""
        self.stack.pin_reported(self.module, self.pid, self.alive, timeout)

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

    def __init__(
        self,
        address: str | Callable[[], str],
        prefix: bytes = b"",
        secure: Callable[[zmq.Socket[bytes]], None] | None = None,
    ):
        self.sock: zmq.Socket[bytes] = _ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        if secure is not None:
            secure(self.sock)  # CURVE keys, before the connect
        self.sock.setsockopt(zmq.SUBSCRIBE, prefix)
        # An address not yet known (`:*`, the gateway has not bound yet) is asked for again
        # at each drain, and connected to as soon as it is known.
        self._address = address
        self.connected = False
        self._connect()
        self.events: list[protocol.Event] = []

    def _connect(self) -> None:
        address = self._address() if callable(self._address) else self._address
        if not self.connected and not endpoints.is_wildcard(address):
            self.sock.connect(address)
            self.connected = True

    def drain(self, timeout: float = 0.05) -> list[protocol.Event]:
        self._connect()
        if not self.connected:
            time.sleep(timeout)
            return self.events
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
