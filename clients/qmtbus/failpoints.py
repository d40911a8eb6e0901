"""Named crash points at durability boundaries (as etcd's gofail, TiKV's fail-rs).

Inert unless the environment variable QMTBUS_FAILPOINT names the point (a comma
list); then the process ends at once, as abruptly as kill -9: no flush, no
finally blocks, no goodbye. Tests crash at each point and check what survives.
"""

from __future__ import annotations

import os
import sys

ENV = "QMTBUS_FAILPOINT"
EXIT_CODE = 137  # what a shell reports for a process killed by SIGKILL


def armed() -> frozenset[str]:
    """The failpoint names QMTBUS_FAILPOINT sets in this process."""
    return frozenset(n.strip() for n in os.environ.get(ENV, "").split(",") if n.strip())


def failpoint(name: str) -> None:
    """Crash here if QMTBUS_FAILPOINT names `name`; otherwise do nothing."""
    if ENV in os.environ and name in armed():
        sys.stderr.write(f"failpoint {name}: crashing here ({ENV})\n")
        sys.stderr.flush()
        os._exit(EXIT_CODE)
