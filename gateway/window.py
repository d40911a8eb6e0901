"""When the gateway holds the broker connection: trading days and configured times.

The simulator's default is always open. Otherwise the window is
[open_time, close_time) Asia/Shanghai on the trading days of the layered
calendar (qmtbus.calendar), loaded on first use. A day no calendar source knows
follows `[calendar] beyond`: a weekday opens the window and raises a daily alert
("weekdays"), or the window stays shut and says how to extend the calendar
("refuse"). Thirty days before the calendar ends, a daily warning.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from qmtbus import clock
from qmtbus import protocol as p
from qmtbus.calendar import CalendarExpired, TradingCalendar, load_calendar
from qmtbus.clock import SHANGHAI, trading_day
from qmtbus.config import Config, WindowConfig

__all__ = ["SHANGHAI", "Window", "WindowState", "refusal", "trading_day"]

log = logging.getLogger("gateway.window")

ALERT_TOPIC = "alert.calendar"


def refusal(state: str, reason: str) -> str:
    """Why the gateway refuses broker work now: its state, and outside the window the
    reason (the hours, the holiday, or the calendar and its fix)."""
    if state == "outside_window" and reason:
        return f"the gateway is {state} ({reason})"
    return f"the gateway is {state}"


@dataclass(frozen=True, slots=True)
class WindowState:
    open: bool
    reason: str
    next_check: float  # seconds until it is worth looking again


class Window:
    """The connection window. `alert` receives the daily `alert.calendar` note (the
    lifecycle hands it to the I/O thread); `calendar` is loaded on first use unless given."""

    def __init__(
        self,
        config: WindowConfig | Config,
        *,
        calendar: TradingCalendar | Callable[[], TradingCalendar] | None = None,
        alert: Callable[[p.NoteEvent], None] | None = None,
    ) -> None:
        # miniQMT's calendar (broker = "xtquant") may come later than the gateway, and its
        # holidays are updated by the terminal: reload it once a day
        self._daily_reload = False
        if isinstance(config, Config):
            self.config = config.gateway.window
            full = config
            self._load: Callable[[], TradingCalendar] = lambda: load_calendar(full)
            self._daily_reload = config.gateway.broker == "xtquant"
        else:
            self.config = config
            self._load = lambda: load_calendar(Config())
        if isinstance(calendar, TradingCalendar):
            self._calendar: TradingCalendar | None = calendar
            self._daily_reload = False
        else:
            self._calendar = None
            if calendar is not None:
                self._load = calendar
        self.alert = alert
        self._told: dt.date | None = None  # the last day the calendar alert went out

    @property
    def uses_calendar(self) -> bool:
        return not self.config.always_open and self.config.trading_days_only

    @property
    def calendar(self) -> TradingCalendar:
        if self._calendar is None:
            self._calendar = self._load()  # about a second: only when the window needs it
            log.info(
                "trading calendar: %s; last known day %s (from %s); beyond it: %s",
                self._calendar.name,
                self._calendar.last_day,
                self._calendar.last_source,
                self._calendar.beyond,
            )
        return self._calendar

    @property
    def calendar_last_day(self) -> str:
        """The calendar's last known day, "" while the window has no use for a calendar."""
        calendar = self._calendar
        return calendar.last_day.isoformat() if calendar is not None else ""

    def state(self, now: dt.datetime | None = None) -> WindowState:
        if self.config.always_open:
            return WindowState(True, "always open", 3600.0)
        now = (now or clock.now()).astimezone(SHANGHAI)
        guess = ""  # said with every reason on a weekday no calendar source knows
        if self.config.trading_days_only:
            if self._daily_reload and self._told not in (None, now.date()):
                self._calendar = None
            try:
                calendar = self.calendar
            except ValueError as err:  # no source at all: the sentence says what to install
                return WindowState(False, str(err), 300.0)
            self._tell_once_a_day(calendar, now.date())
            try:
                verdict = calendar.verdict(now.date())
            except CalendarExpired as err:
                return WindowState(False, str(err), 300.0)
            if not verdict.trading:
                return WindowState(
                    False, f"{now.date()} is not a trading day", self._to_midnight(now)
                )
            if not verdict.vouched:
                guess = (
                    f"; {now.date()} counts as a trading day because it is a weekday: no "
                    f"calendar source knows it (qmtbus calendar)"
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
                False, f"window opens at {opens:%H:%M}{guess}", (opens - now).total_seconds()
            )
        if now >= closes:
            return WindowState(
                False, f"window closed at {closes:%H:%M}{guess}", self._to_midnight(now)
            )
        return WindowState(
            True, f"window open until {closes:%H:%M}{guess}", (closes - now).total_seconds()
        )

    def _tell_once_a_day(self, calendar: TradingCalendar, today: dt.date) -> None:
        """Past the calendar: a WARNING line and an `alert.calendar` note; in the 30 days
        before its end: a WARNING line. Once per Shanghai day."""
        if self._told == today:
            return
        self._told = today
        gap = calendar.gap(today)
        if gap is not None:
            log.warning("calendar: %s", gap)
            if self.alert is not None:
                data = {
                    "date": today.isoformat(),
                    "last_day": calendar.last_day.isoformat(),
                    "source": calendar.last_source,
                    "beyond": calendar.beyond,
                    "message": gap,
                }
                self.alert(p.NoteEvent(topic=ALERT_TOPIC, data=data))
            return
        soon = calendar.ends_soon(today)
        if soon is not None:
            log.warning("calendar: %s", soon)

    @staticmethod
    def _to_midnight(now: dt.datetime) -> float:
        tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=1, microsecond=0)
        return (tomorrow - now).total_seconds()
