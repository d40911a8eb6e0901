"""What each process needs beyond the client: `pip install qmtbus` is the client alone
(msgspec, pyzmq); the processes need the `server` extra. A process started without it says
so in one sentence instead of an ImportError traceback."""

from __future__ import annotations

import importlib.util
import sys

# the modules each process imports that the client does not need
NEEDS = {
    "gateway": ("exchange_calendars",),
    "recorder": ("duckdb",),
    "scheduler": ("apscheduler", "exchange_calendars"),
    "watchdog": ("supervisor",),
}
INSTALL = "pip install 'qmtbus[server]'"


def missing(process: str) -> list[str]:
    """The modules `process` needs that are not installed."""
    return [name for name in NEEDS[process] if importlib.util.find_spec(name) is None]


def require(process: str) -> None:
    """Stop the start of `process` with one sentence when its extra is not installed."""
    absent = missing(process)
    if absent:
        print(
            f"error: the qmtbus {process} needs {', '.join(absent)}, which the server extra "
            f"installs: {INSTALL}",
            file=sys.stderr,
        )
        raise SystemExit(2)
