"""Shanghai time for every process: the time zone, today's date, and the per-day record key.

Stdlib only, so any process may import it. China has kept UTC+8 without daylight
saving since 1991, so a fixed offset is exact and needs no tz database (which a
bare Windows Python lacks).

`QMTBUS_FAKE_TODAY` is a hook for tests ONLY: set to "2027-01-04T10:00" (or a
date, read as 10:00 that day), this process's Shanghai clock starts there and
runs on in real time, so a real gateway or scheduler can be started on a fixed
date. Event stamps (`ts`) and timeouts keep the real clock.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time

SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
TIME_ZONE_NAME = "Asia/Shanghai"  # for tools that want the IANA name (DuckDB, APScheduler docs)
FAKE_TODAY_ENV = "QMTBUS_FAKE_TODAY"

log = logging.getLogger("qmtbus.clock")


def _fake_offset() -> float:
    """Seconds to add to the real clock (0 unless the test hook is set)."""
    text = os.environ.get(FAKE_TODAY_ENV, "").strip()
    if not text:
        return 0.0
    try:
        start = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{FAKE_TODAY_ENV}={text!r} is not a date or date-time; write e.g. 2027-01-04T10:00 "
            "(a test hook: unset it to use the real clock)"
        ) from None
    if len(text) == 10:  # a bare date: 10:00, inside the default connection window
        start = start.replace(hour=10)
    if start.tzinfo is None:
        start = start.replace(tzinfo=SHANGHAI)
    log.warning(
        "%s is set: this process's Shanghai clock reads %s (tests only)", FAKE_TODAY_ENV, start
    )
    return start.timestamp() - time.time()


_OFFSET = _fake_offset()


def now() -> dt.datetime:
    """The time now in Shanghai (aware)."""
    return dt.datetime.fromtimestamp(time.time() + _OFFSET, SHANGHAI)


def today() -> dt.date:
    """Today's date in Shanghai."""
    return now().date()


def shanghai(ts: float) -> dt.datetime:
    """A Unix time as an aware Shanghai datetime."""
    return dt.datetime.fromtimestamp(ts, SHANGHAI)


# (second, day) of the last answer, one tuple so that a reader on another thread sees a
# matching pair: the day is asked several times per order (risk gate, ledger, simulator).
_last_day: tuple[int, str] = (-1, "")


def trading_day(ts: float | None = None) -> str:
    """The Shanghai date "YYYY-MM-DD" of a Unix time (default: now): the key for per-day
    records (client order ids, seen fills, daily risk caps).

    A-share stocks have no night session, so on every trading day this is the
    trading day itself; whether the exchange is open that day is the calendar's
    question (qmtbus.calendar), not this key's. Worked out once per second (Shanghai
    keeps no summer time, so the date changes only on a whole second).
    """
    global _last_day
    second = int(time.time() + _OFFSET if ts is None else ts)
    last = _last_day
    if last[0] == second:
        return last[1]
    day = shanghai(second).date().isoformat()
    _last_day = (second, day)
    return day
