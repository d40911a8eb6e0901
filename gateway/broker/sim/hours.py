"""Shanghai wall-clock facts for the simulator: the trading day and the market phase.

China has kept UTC+8 without daylight saving since 1991, so a fixed offset is
exact and needs no tz database (which Windows lacks without `tzdata`).
"""

from __future__ import annotations

import datetime as dt

from qmtbus.gateway import ashare

SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")


def shanghai(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, SHANGHAI)


def trading_day(ts: float) -> str:
    """The Shanghai date "YYYYMMDD" at epoch seconds `ts`; T+1 and day orders turn over with it."""
    return shanghai(ts).strftime("%Y%m%d")


def phase(ts: float, market_hours: bool) -> ashare.Phase:
    """The market phase at `ts`: always continuous unless `market_hours` applies the timetable.

    Weekends are closed; exchange holidays are not known here (the simulator
    trades on them when market_hours is on).
    """
    if not market_hours:
        return "continuous"
    now = shanghai(ts)
    if now.weekday() >= 5:
        return "closed"
    return ashare.phase_at(now.time())
