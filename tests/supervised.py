"""A real supervisord running the repo's own supervisord.conf, copied into a test folder.

The copy keeps every line of the real file (so the tests check what users run),
except what a test names: the watchdog's cool-down, and any `edit` it makes; and
the programs after the gateway start once its ports are known (it binds
`tcp://127.0.0.1:*` and reports them), not at once. `%(here)s` makes every path
relative to the copy; `.venv` in the copy links to the virtual environment running
the tests; `qmtbus.toml` in the copy is the repo's qmtbus.toml with the test's
ports and data folder merged over it.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from tests.support import ROOT, Stack, wait_for

PROGRAMS = ("gateway", "recorder", "scheduler", "notify", "dashboard")
Edit = Callable[[configparser.ConfigParser], None]


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def read_conf(path: Path) -> configparser.ConfigParser:
    conf = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=None)
    conf.optionxform = str  # type: ignore[assignment,method-assign]
    conf.read(path)
    return conf


class Supervised:
    """supervisord + the repo's supervisord.conf in `dir`, on the test's own ports."""

    def __init__(
        self,
        dir: Path,
        sections: dict[str, dict[str, Any]] | None = None,
        *,
        cooldown: float = 2.0,
        edit: Edit | None = None,
        conf_source: Path = ROOT / "supervisord.conf",
    ) -> None:
        self.dir = dir
        dir.mkdir(parents=True, exist_ok=True)
        for folder in ("logs", "run"):
            (dir / folder).mkdir(exist_ok=True)
        venv = dir / ".venv"
        if not venv.exists():
            venv.symlink_to(Path(sys.prefix))
        conf = read_conf(conf_source)
        watchdog = conf["eventlistener:watchdog"]
        command, n = re.subn(r"--cooldown \S+", f"--cooldown {cooldown:g}", watchdog["command"])
        assert n == 1, "supervisord.conf's watchdog no longer takes --cooldown"
        watchdog["command"] = command
        if edit is not None:
            edit(conf)
        repo_config = tomllib.loads((ROOT / "qmtbus.toml").read_text())
        self.stack = Stack(dir, merged(repo_config, sections or {}))
        # The gateway and the recorder bind `tcp://127.0.0.1:*`, so the programs that connect
        # to them start once their ports are known (see `start`); nothing probes for ports.
        self.later: list[str] = []
        self.in_order = "program:gateway" in conf and self.stack.unbound("gateway")
        if self.in_order:
            for section in conf.sections():
                kind, _, name = section.partition(":")
                later = kind in ("program", "eventlistener") and name != "gateway"
                if later and conf[section].get("autostart", "true") == "true":
                    conf[section]["autostart"] = "false"
                    self.later.append(name)
        self.conf_path = dir / "supervisord.conf"
        with open(self.conf_path, "w") as f:
            conf.write(f)
        self.socket = dir / "run" / "supervisor.sock"
        self.popen: subprocess.Popen[bytes] | None = None
        self.seen_pids: set[int] = set()

    # -- supervisord ---------------------------------------------------------------
    def start(self, wait: bool = True, timeout: float = 30.0) -> Supervised:
        out = open(self.dir / "supervisord.out", "ab")  # noqa: SIM115 - closed below
        self.popen = subprocess.Popen(
            [str(self.dir / ".venv" / "bin" / "supervisord"), "-c", str(self.conf_path)],
            cwd=self.dir,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("QMTBUS_")},
        )
        out.close()
        wait_for(self._answers, 10, "supervisord answering on its socket")
        self._start_in_order()
        if wait:
            self.wait_running(timeout=timeout)
        return self

    def _answers(self) -> bool:
        """supervisord listens: its socket file appears at bind(), a moment before it
        accepts (a connection then is refused)."""
        if not self.socket.exists():
            return False
        try:
            self.call("getState")
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        return True

    def _start_in_order(self) -> None:
        """The gateway first (supervisord starts it), then the recorder, then the rest, each
        once the ports of those before it are pinned into qmtbus.toml."""
        if not self.in_order:
            return
        for name in ("gateway", "recorder"):
            if name != "gateway":
                if name not in self.later:
                    continue
                self.later.remove(name)
                self.call("startProcess", name, False)
            if self.stack.unbound(name):
                pid = wait_for(lambda n=name: self.info(n)["pid"], 30, f"{name} started")
                running = lambda n=name, p=pid: self.info(n)["pid"] == p  # noqa: E731
                self.stack.pin_reported(name, pid, running)
        while self.later:
            self.call("startProcess", self.later.pop(0), False)

    def call(self, method: str, *args: Any) -> Any:
        """One XML-RPC call to supervisord (`getAllProcessInfo`, `startProcess` ...)."""
        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        try:
            proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport)
            return getattr(proxy.supervisor, method)(*args)
        finally:
            transport.close()

    def infos(self) -> dict[str, dict[str, Any]]:
        infos = {info["name"]: info for info in self.call("getAllProcessInfo")}
        self.seen_pids.update(i["pid"] for i in infos.values() if i["pid"])
        return infos

    def info(self, name: str) -> dict[str, Any]:
        return self.infos()[name]

    def pid(self, name: str) -> int:
        return int(self.info(name)["pid"])

    def wait_running(
        self, names: tuple[str, ...] = (*PROGRAMS, "watchdog"), timeout: float = 30.0
    ) -> dict[str, dict[str, Any]]:
        def running() -> dict[str, dict[str, Any]] | None:
            assert self.popen is not None and self.popen.poll() is None, self.out()
            infos = self.infos()
            return infos if all(infos[n]["statename"] == "RUNNING" for n in names) else None

        return wait_for(running, timeout, f"{', '.join(names)} RUNNING")

    def wait_state(self, name: str, state: str, timeout: float = 30.0) -> dict[str, Any]:
        return wait_for(
            lambda: (info := self.info(name))["statename"] == state and info,
            timeout,
            f"{name} {state}",
        )

    def kill9(self, name: str) -> int:
        """kill -9 the program; returns the pid it had."""
        pid = self.pid(name)
        assert pid, f"{name} is not running"
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_restarted(self, name: str, old_pid: int, timeout: float = 30.0) -> int:
        def restarted() -> int | None:
            info = self.info(name)
            ok = info["statename"] == "RUNNING" and info["pid"] not in (0, old_pid)
            return int(info["pid"]) if ok else None

        return wait_for(restarted, timeout, f"{name} restarted")

    def ctl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """`supervisorctl -c supervisord.conf ARGS` from the copy's folder."""
        return subprocess.run(
            [str(self.dir / ".venv" / "bin" / "supervisorctl"), "-c", str(self.conf_path), *args],
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def log(self, name: str) -> str:
        path = self.dir / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def fatal_before(self, name: str, moment: float) -> float:
        """The Unix time supervisord last gave up on `name` (it went FATAL) at or before
        `moment`, from supervisord's own log."""
        times = [
            time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(ms) / 1000
            for stamp, ms in re.findall(
                rf"^(\S+ \S+),(\d{{3}}) INFO gave up: {name} entered FATAL",
                self.log("supervisord"),
                re.MULTILINE,
            )
        ]
        before = [t for t in times if t <= moment]
        assert before, f"supervisord's log has no FATAL for {name} before {moment}"
        return before[-1]

    def out(self) -> str:
        path = self.dir / "supervisord.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, timeout: float = 90.0) -> int:
        """SIGTERM supervisord (it stops every program) and wait; returns its exit status.

        Whatever is left afterwards (supervisord hung, a program orphaned) is killed
        and the test fails: nothing of one test may outlive it."""
        if self.popen is None:
            return 0
        problems = []
        if self.popen.poll() is None:
            with contextlib.suppress(Exception):
                self.infos()  # note the newest pids
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
                problems.append(f"supervisord did not stop within {timeout}s")
        for pid in sorted(self.seen_pids):
            if self._ours(pid):
                os.kill(pid, signal.SIGKILL)
                problems.append(f"pid {pid} outlived supervisord")
        assert not problems, "; ".join(problems) + "\n" + self.out()
        return int(self.popen.returncode)

    def _ours(self, pid: int) -> bool:
        """Still alive and started from this test's folder (pids get reused)."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return str(self.dir).encode() in cmdline


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
