"""The gateway's connection to the broker as an explicit state machine.

States and the transitions allowed between them are one table; the broker
thread (gateway/lifecycle.py) moves the machine, and a `gateway` event goes out
only when the state really changes. An illegal transition is a logged error
(the move is still made: the machine follows what happened, and the log says
which assumption broke).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

log = logging.getLogger("gateway.connection")


class State(enum.Enum):
    STARTING = "starting"
    OUTSIDE_WINDOW = "outside_window"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONCILING = "reconciling"
    READY = "ready"
    DISCONNECTED = "disconnected"
    STOPPING = "stopping"


S = State
TRANSITIONS: dict[State, frozenset[State]] = {
    S.STARTING: frozenset({S.OUTSIDE_WINDOW, S.CONNECTING, S.STOPPING}),
    S.OUTSIDE_WINDOW: frozenset({S.CONNECTING, S.STOPPING}),
    S.CONNECTING: frozenset({S.CONNECTED, S.DISCONNECTED, S.STOPPING}),
    S.CONNECTED: frozenset({S.RECONCILING, S.DISCONNECTED, S.STOPPING}),
    S.RECONCILING: frozenset({S.READY, S.DISCONNECTED, S.STOPPING}),
    S.READY: frozenset({S.DISCONNECTED, S.STOPPING}),
    S.DISCONNECTED: frozenset({S.CONNECTING, S.OUTSIDE_WINDOW, S.STOPPING}),
    S.STOPPING: frozenset(),
}

# Told of every real change: (new state, reason).
Publish = Callable[[State, str], None]


class Connection:
    def __init__(self, publish: Publish) -> None:
        self._publish = publish
        self.state: State | None = None  # nothing published yet
        self.illegal = 0

    def move(self, new: State, reason: str = "") -> bool:
        """Go to `new`; publish and return True when that is a change."""
        old = self.state
        if new is old:
            return False
        if old is not None and new not in TRANSITIONS[old]:
            self.illegal += 1
            log.error("illegal transition %s -> %s (%s)", old.value, new.value, reason)
        elif old is None and new is not S.STARTING:
            self.illegal += 1
            log.error("first state %s, not starting (%s)", new.value, reason)
        self.state = new
        self._publish(new, reason)
        return True
