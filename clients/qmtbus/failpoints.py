"""Named crash points at durability boundaries (etcd's gofail, TiKV's fail-rs), for tests.

`failpoint("name")` does nothing unless the environment variable QMTBUS_FAILPOINT
names it when the process starts: `QMTBUS_FAILPOINT=intent_written` crashes at its
first hit, `intent_written:3` at its third; a comma list arms several. A crash is
SIGKILL of the process itself: no flush, no atexit, no finally — what a kill -9 or
a dead machine (minus the OS's page cache) leaves behind.

Every point is declared in POINTS, with the program it belongs to and the boundary
it sits on; `python -m qmtbus.gateway --list-failpoints` prints the gateway's.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

ENV = "QMTBUS_FAILPOINT"

# name -> (program, where it sits). The one place failpoints are declared.
POINTS: dict[str, tuple[str, str]] = {
    "intent_written": (
        "gateway",
        "an order's intent (client_order sending) is in the journal; the broker is not called yet",
    ),
    "broker_called": (
        "gateway",
        "order_stock_async returned; the I/O thread has not heard of it yet",
    ),
    "events_journaled": (
        "gateway",
        "a loop turn's order or fill events are in the journal; none is published yet",
    ),
    "events_published": (
        "gateway",
        "a loop turn's order or fill events are published; its replies are not sent yet",
    ),
    "order_replied": (
        "gateway",
        "order acks of a loop turn are sent",
    ),
    "state_saved": (
        "gateway",
        "the trading state (halt/resume) is saved to its file; its note event is not journaled yet",
    ),
    "recorder.before_commit": (
        "recorder",
        "a batch is in the open DuckDB transaction, not yet committed",
    ),
    "recorder.batch_committed": (
        "recorder",
        "a batch is committed in DuckDB; nothing else knows it yet",
    ),
}

_lock = threading.Lock()
_armed: dict[str, int] | None = None  # name -> hits left before the crash


def _parse(spec: str) -> dict[str, int]:
    armed: dict[str, int] = {}
    for term in filter(None, (t.strip() for t in spec.split(","))):
        name, _, count = term.partition(":")
        if name not in POINTS:
            known = ", ".join(sorted(POINTS))
            raise ValueError(f"{ENV} names an unknown failpoint {name!r}; known: {known}")
        armed[name] = int(count) if count else 1
    return armed


def armed() -> dict[str, int]:
    """The failpoints armed by the environment (read once)."""
    global _armed
    if _armed is None:
        _armed = _parse(os.environ.get(ENV, ""))
    return _armed


def failpoint(name: str) -> None:
    """Crash here if the environment armed `name` and this is the hit it asked for."""
    points = armed()
    if not points:  # the usual case: one dict lookup on the hot path
        return
    if name not in POINTS:
        raise KeyError(f"failpoint {name!r} is not declared in qmtbus.failpoints.POINTS")
    with _lock:
        left = points.get(name)
        if left is None:
            return
        points[name] = left - 1
        if left > 1:
            return
    print(f"failpoint {name}: crashing (pid {os.getpid()})", file=sys.stderr, flush=True)
    if hasattr(signal, "SIGKILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(137)  # Windows: as abrupt as it gets there


def listing(program: str) -> str:
    """One line per failpoint of `program`: name and boundary."""
    rows = [(n, where) for n, (prog, where) in POINTS.items() if prog == program]
    width = max((len(n) for n, _ in rows), default=0)
    return "\n".join(f"{n:<{width}}  {where}" for n, where in rows)
