"""When the gateway holds the broker connection: trading days (XSHG) and configured times.

The simulator's default is always open. Otherwise the window is
[open_time, close_time) Asia/Shanghai on XSHG sessions. A date the calendar
does not cover is reported, never guessed: the window stays shut and says why.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from functools import cache

from qmtbus.calendar import SHANGHAI, CalendarExpired, TradingCalendar
from qmtbus.config import WindowConfig

log = logging.getLogger("gateway.window")


def trading_day(now: dt.datetime | None = None) -> str:
    """The Shanghai calendar date, "YYYY-MM-DD": the key for per-day records."""
    if now is not None:
        return now.astimezone(SHANGHAI).date().isoformat()
    second = int(time.time())  # asked several times per order: work it out once a second
    if second != _today[0]:
        _today[:] = [second, dt.datetime.now(SHANGHAI).date().isoformat()]
    return str(_today[1])


_today: list[int | str] = [0, ""]


@cache
def _calendar() -> TradingCalendar:
    return TradingCalendar.load()  # about a second: only when the window needs it


def is_session(day: dt.date) -> bool:
    """True on an XSHG trading day; raises CalendarExpired past the calendar's range."""
    return _calendar().is_trading_day(day)


@dataclass(frozen=True, slots=True)
class WindowState:
    open: bool
    reason: str
    next_check: float  # seconds until it is worth looking again


class Window:
    def __init__(self, config: WindowConfig):
        self.config = config

    def state(self, now: dt.datetime | None = None) -> WindowState:
        if self.config.always_open:
            return WindowState(True, "always open", 3600.0)
        now = (now or dt.datetime.now(SHANGHAI)).astimezone(SHANGHAI)
        if self.config.trading_days_only:
            try:
                session = is_session(now.date())
            except CalendarExpired as err:
                log.error("%s", err)
                return WindowState(False, str(err), 300.0)
            if not session:
                return WindowState(
                    False, f"{now.date()} is not a trading day", self._to_midnight(now)
                )
        opens = now.replace(
            hour=self.config.open_time.hour,
            minute=self.config.open_time.minute,
            second=0,
            microsecond=0,
        )
        closes = now.replace(
            hour=self.config.close_time.hour,
            minute=self.config.close_time.minute,
            second=0,
            microsecond=0,
        )
        if now < opens:
            return WindowState(
                False, f"window opens at {opens:%H:%M}", (opens - now).total_seconds()
            )
        if now >= closes:
            return WindowState(False, f"window closed at {closes:%H:%M}", self._to_midnight(now))
        return WindowState(
            True, f"window open until {closes:%H:%M}", (closes - now).total_seconds()
        )

    @staticmethod
    def _to_midnight(now: dt.datetime) -> float:
        tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=1, microsecond=0)
        return (tomorrow - now).total_seconds()
