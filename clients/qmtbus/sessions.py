"""A-share trading hours (Asia/Shanghai): when marks are taken and when alerts matter."""

from __future__ import annotations

import datetime as dt

from qmtbus.calendar import SHANGHAI, TradingCalendar
from qmtbus.config import Config

# continuous trading; the morning call auction starts at 09:15
SESSIONS = ((dt.time(9, 30), dt.time(11, 30)), (dt.time(13, 0), dt.time(15, 0)))
TRADING_HOURS = ((dt.time(9, 15), dt.time(11, 30)), (dt.time(13, 0), dt.time(15, 0)))


def hours_apply(config: Config) -> bool:
    """The exchange's hours hold unless the simulator trades around the clock."""
    return config.gateway.broker == "xtquant" or config.sim.market_hours


def within(
    now: dt.datetime,
    calendar: TradingCalendar | None,
    hours: tuple[tuple[dt.time, dt.time], ...] = SESSIONS,
) -> bool:
    """True inside `hours` on a trading day (weekdays when no calendar is at hand).
    Raises CalendarExpired past the calendar's last known day."""
    local = now.astimezone(SHANGHAI)
    if calendar is not None and not calendar.is_trading_day(local.date()):
        return False
    if calendar is None and local.weekday() >= 5:
        return False
    clock = local.time()
    return any(start <= clock <= end for start, end in hours)
