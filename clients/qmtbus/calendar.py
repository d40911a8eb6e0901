"""The trading calendar: which Shanghai dates are XSHG sessions, and the day it stops knowing."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterable
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
CALENDAR_NAME = "XSHG"


class CalendarExpired(Exception):
    """A date lies past the calendar's last known day: we refuse rather than guess."""

    def __init__(self, day: dt.date, last_day: dt.date) -> None:
        self.day = day
        self.last_day = last_day
        super().__init__(
            f"{day.isoformat()} is past the last day the {CALENDAR_NAME} calendar knows "
            f"({last_day.isoformat()}); upgrade exchange_calendars "
            "(pip install -U exchange-calendars) and restart"
        )


class TradingCalendar:
    """XSHG sessions as plain dates, so that nothing after start-up touches pandas.

    China's weekend make-up working days are not sessions: the exchanges stay
    closed on them, and XSHG says so. Dates after `last_day` raise
    CalendarExpired; dates before `first_day` are simply not sessions.
    """

    def __init__(self, sessions: Iterable[dt.date], name: str = CALENDAR_NAME) -> None:
        self.name = name
        self.sessions = frozenset(sessions)
        if not self.sessions:
            raise ValueError("a trading calendar needs at least one session")
        self.first_day = min(self.sessions)
        self.last_day = max(self.sessions)

    @classmethod
    def load(cls) -> TradingCalendar:
        """Read XSHG from exchange_calendars (takes about a second: call once)."""
        import exchange_calendars

        with warnings.catch_warnings():
            # exchange_calendars 4.x builds its schedule with Series.values, which
            # pandas >= 3.1 deprecates; harmless for us (we keep only dates), and
            # without this filter the warnings-as-errors test run would fail.
            warnings.filterwarnings(
                "ignore",
                message="Series.values returning an ndarray that drops timezone",
                category=DeprecationWarning,
            )
            calendar = exchange_calendars.get_calendar(CALENDAR_NAME)
            sessions = [ts.date() for ts in calendar.sessions]
        return cls(sessions)

    def is_trading_day(self, day: dt.date) -> bool:
        """True on an XSHG session; raises CalendarExpired past the last known day."""
        if day > self.last_day:
            raise CalendarExpired(day, self.last_day)
        return day in self.sessions

    def next_trading_day(self, day: dt.date) -> dt.date:
        """The first session on or after `day` (raises CalendarExpired if unknown)."""
        while not self.is_trading_day(day):
            day += dt.timedelta(days=1)
        return day
