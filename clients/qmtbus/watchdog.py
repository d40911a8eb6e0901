"""supervisord event listener: alert on the bus when a program dies, and revive FATAL programs.

Run by supervisord.conf's [eventlistener:watchdog]. On an unexpected
PROCESS_STATE_EXITED, on BACKOFF and on FATAL it logs a line and publishes a
`note` event with topic "alert.process" through the gateway; while the gateway
itself is down the alerts wait in memory and go out, in order, once it is back.
A program that went FATAL (it kept failing to start) is started again after
`--cooldown` seconds instead of staying dead through the trading day.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, TextIO

from qmtbus.client import Gateway, client_curve
from qmtbus.config import ConfigError, config_path, load_config
from qmtbus.extras import require

log = logging.getLogger("qmtbus.watchdog")

ALERT_TOPIC = "alert.process"
MAX_QUEUED_ALERTS = 1000
DEFAULT_COOLDOWN = 60.0

Notify = Callable[[str, dict[str, Any]], object]  # raises when the gateway cannot be reached


def parse_event(header_line: str, stdin: TextIO) -> tuple[dict[str, str], dict[str, str]]:
    """One event from supervisord: (headers, payload fields of its first line)."""
    headers = dict(token.split(":", 1) for token in header_line.split())
    body = stdin.read(int(headers["len"]))
    first, _, _data = body.partition("\n")
    fields = dict(token.split(":", 1) for token in first.split() if ":" in token)
    return headers, fields


def describe(name: str, state: str, exitstatus: int | None, wait: float) -> str:
    """The alert's one sentence, in an operator's words; `wait`: seconds until a FATAL revival."""
    how = ""
    if exitstatus is not None:
        how = " (killed by a signal)" if exitstatus < 0 else f" (exit status {exitstatus})"
    if state == "EXITED":
        return f"{name} exited unexpectedly{how}; supervisord is starting it again"
    if state == "BACKOFF":
        return f"{name} failed to start{how}; supervisord retries it after a back-off"
    if state == "FATAL":
        return (
            f"{name} kept failing to start{how} and is FATAL; the watchdog starts it again "
            f"in {wait:.3g} s (see logs/{name}.log)"
        )
    return f"{name} is {state}{how}"


class Watchdog:
    """The listener's decisions, apart from the supervisor protocol (so tests can drive it).

    `notify(topic, data)` publishes a note (raises while the gateway is down);
    `rpc` is supervisord's XML-RPC proxy (`rpc.supervisor.startProcess` ...).
    """

    def __init__(
        self,
        notify: Notify,
        rpc: Any,
        cooldown: float = DEFAULT_COOLDOWN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notify = notify
        self.rpc = rpc
        self.cooldown = cooldown
        self.clock = clock
        self.fatal_since: dict[str, float] = {}
        self.queue: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_QUEUED_ALERTS)

    def start(self) -> None:
        """Programs already FATAL when the watchdog (re)starts get their cool-down too.

        No alert here: supervisord hands a new listener the events it buffered, and
        the FATAL alert comes with those (or was sent by the watchdog before this one).
        """
        try:
            infos = self.rpc.supervisor.getAllProcessInfo()
        except Exception as err:
            log.error("cannot ask supervisord for its programs: %s", err)
            return
        for info in infos:
            if info.get("statename") == "FATAL":
                name = self._full_name(info)
                log.warning("%s is FATAL; starting it again in %g s", name, self.cooldown)
                self.fatal_since.setdefault(name, self.clock())

    def handle(self, event: str, fields: dict[str, str]) -> None:
        if event.startswith("TICK"):
            self._revive_fatal()
            self._send_queued()
            return
        if not event.startswith("PROCESS_STATE_"):
            return
        state = event.removeprefix("PROCESS_STATE_")
        if state == "EXITED" and fields.get("expected") == "1":
            return
        group, name = fields.get("groupname", ""), fields.get("processname", "?")
        full = name if group in ("", name) else f"{group}:{name}"
        info = self._info(full)
        # By now supervisord has usually started the program again, which clears its
        # exit status and changes its pid: trust the event's pid, and the exit status
        # only while the program still sits in the EXITED state the event reports.
        exitstatus = None
        if state == "EXITED" and info.get("statename") == "EXITED":
            exitstatus = int(info.get("exitstatus", 0))
        pid = int(fields.get("pid", 0) or 0)
        spawnerr = str(info.get("spawnerr") or "")
        self._alert(full, state, fields.get("from_state", ""), pid, exitstatus, spawnerr)

    def _alert(
        self,
        name: str,
        state: str,
        from_state: str,
        pid: int,
        exitstatus: int | None,
        spawnerr: str,
    ) -> None:
        wait = self.cooldown
        if state == "FATAL":
            # the watchdog may have known since it started (start() saw it FATAL)
            now = self.clock()
            wait = max(0.0, self.cooldown - (now - self.fatal_since.setdefault(name, now)))
        message = describe(name, state, exitstatus, wait)
        if spawnerr:
            message += f" ({spawnerr})"
        log.warning("%s", message)
        alert = {
            "process": name,
            "state": state,
            "from_state": from_state,
            "pid": pid,
            "exitstatus": exitstatus,
            "message": message,
            "time": time.time(),
        }
        self.queue.append(alert)
        self._send_queued()

    def _info(self, name: str) -> dict[str, Any]:
        try:
            return dict(self.rpc.supervisor.getProcessInfo(name))
        except Exception as err:
            log.info("no process info for %s: %s", name, err)
            return {}

    @staticmethod
    def _full_name(info: dict[str, Any]) -> str:
        group, name = str(info.get("group", "")), str(info.get("name", "?"))
        return name if group in ("", name) else f"{group}:{name}"

    def _send_queued(self) -> None:
        while self.queue:
            try:
                self.notify(ALERT_TOPIC, self.queue[0])
            except Exception as err:  # the gateway may be the one that is down
                log.info("alert waits for the gateway (%d queued): %s", len(self.queue), err)
                return
            self.queue.popleft()

    def _revive_fatal(self) -> None:
        now = self.clock()
        for name, since in list(self.fatal_since.items()):
            if now - since < self.cooldown:
                continue
            del self.fatal_since[name]
            if self._info(name).get("statename", "FATAL") != "FATAL":
                continue  # someone started (or stopped) it meanwhile
            try:
                self.rpc.supervisor.startProcess(name, False)
            except Exception as err:
                log.error("could not start %s again: %s", name, err)
                self.fatal_since[name] = now
                continue
            message = f"{name} was FATAL; the watchdog started it again after {self.cooldown:g} s"
            log.warning("%s", message)
            self.queue.append(
                {
                    "process": name,
                    "state": "STARTING",
                    "from_state": "FATAL",
                    "pid": 0,
                    "exitstatus": None,
                    "message": message,
                    "time": time.time(),
                }
            )


def serve(dog: Watchdog, stdin: TextIO, stdout: TextIO) -> int:
    """The supervisor event listener protocol: READY, read one event, RESULT; until EOF."""
    while True:
        stdout.write("READY\n")
        stdout.flush()
        line = stdin.readline()
        if not line:
            return 0
        headers, fields = parse_event(line, stdin)
        try:
            dog.handle(headers.get("eventname", ""), fields)
        except Exception:  # a bug here must not stop the alerts that follow
            log.exception("handling %s failed", headers.get("eventname"))
        finally:
            stdout.write("RESULT 2\nOK")
            stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qmtbus-watchdog", description=__doc__)
    parser.add_argument("--config", metavar="FILE", help="the qmtbus TOML file")
    parser.add_argument(
        "--cooldown",
        type=float,
        default=DEFAULT_COOLDOWN,
        help=f"seconds a FATAL program stays down before it is started again "
        f"(default {DEFAULT_COOLDOWN:g})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    require("watchdog")
    from supervisor import childutils

    try:
        config = load_config(config_path(args.config))
        curve = client_curve(config)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if "SUPERVISOR_SERVER_URL" not in os.environ:
        print("error: the watchdog runs under supervisord (as an [eventlistener])", file=sys.stderr)
        return 2

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    if hasattr(signal, "SIGBREAK"):  # supervisor-win stops with CTRL_BREAK_EVENT
        signal.signal(signal.SIGBREAK, stop)
    # a short timeout and no retries: the listener must answer supervisord quickly,
    # and a note is not safe to resend (the queue resends only what never left)
    gateway = Gateway(
        config.gateway.commands_address,
        config.gateway.events_address,
        timeout=1.0,
        retries=0,
        curve=curve,
    )
    dog = Watchdog(gateway.note, childutils.getRPCInterface(os.environ), args.cooldown)
    log.info(
        "watching supervisord's programs; alerts go to %s as %r notes; FATAL cool-down %g s",
        config.gateway.commands_address,
        ALERT_TOPIC,
        args.cooldown,
    )
    try:
        dog.start()
        return serve(dog, sys.stdin, sys.stdout)
    finally:
        gateway.close()


if __name__ == "__main__":
    sys.exit(main())
