"""Session ids for XtQuantTrader: random in a large range, never reused by this process.

Ids derived from the clock or from hashes collide between processes started
together (a known pitfall of other bridges), so they are drawn at random.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Collection

# miniQMT passes the session id as a C int.
_INT_MAX = 2**31 - 1


class SessionIds:
    def __init__(self, base: int) -> None:
        if not 0 < base < _INT_MAX // 2:
            raise ValueError(f"session_base {base} leaves no room below 2**31; use e.g. 100000")
        self._base = base
        self._span = min(2**30, _INT_MAX - base)
        self._rng = random.SystemRandom()
        self._used: set[int] = set()
        self._lock = threading.Lock()

    def next(self, live: Collection[int] = ()) -> int:
        """A fresh id >= base, not used before by this process and not in `live`."""
        with self._lock:
            while True:
                session_id = self._base + self._rng.randrange(self._span)
                if session_id not in self._used and session_id not in live:
                    self._used.add(session_id)
                    return session_id
