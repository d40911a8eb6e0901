"""When a job fires: a cron expression in Shanghai time, filtered by the trading calendar.

Fire times come from APScheduler's CronTrigger; this module adds the calendar
filter and the arithmetic the runner needs (next run, latest missed run), all
pure functions of their arguments so tests can check them without waiting.
"""

from __future__ import annotations

import datetime as dt
import re

from apscheduler.triggers.cron import CronTrigger

from qmtbus.calendar import TradingCalendar
from qmtbus.clock import SHANGHAI

_ONE_SECOND = dt.timedelta(seconds=1)
_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # classic cron: 0 = Sunday
_WEEKDAY_NUMBER = {name: i for i, name in enumerate(_WEEKDAY_NAMES)}
_DOW_ITEM = re.compile(r"^(?P<range>\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/(?P<step>[0-9]+))?$")


class CronError(ValueError):
    """A cron expression we cannot read; str(err) says what is wrong."""


def parse_cron(expr: str) -> CronTrigger:
    """A CronTrigger in Asia/Shanghai from 5 fields (minute hour day month weekday)
    or 6 (a leading seconds field).

    Weekdays follow classic cron (0 or 7 = Sunday, 1-5 = Monday to Friday), not
    APScheduler 3's own numbering (0 = Monday), which would silently shift a
    user's "1-5" to Tuesday-Saturday.
    """
    fields = expr.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise CronError(f"it has {len(fields)} fields, not 5 or 6")
    second, minute, hour, day, month, day_of_week = fields
    try:
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_classic_day_of_week(day_of_week),
            timezone=SHANGHAI,
        )
    except ValueError as err:
        raise CronError(_culprit(fields) or str(err)) from None


def _culprit(fields: list[str]) -> str:
    """Name the field APScheduler refused (its own message quotes only the value)."""
    names = ("second", "minute", "hour", "day", "month")
    for name, value in zip(names, fields, strict=False):
        try:
            CronTrigger(**{name: value}, timezone=SHANGHAI)
        except ValueError as err:
            return f"{name} field {value!r}: {str(err).rpartition(': ')[2]}"
    return ""


def _classic_day_of_week(field: str) -> str:
    """Rewrite a classic-cron weekday field as an explicit list of names for APScheduler."""
    text = field.lower()
    if text in ("*", "?"):
        return "*"
    days: set[int] = set()
    for item in text.split(","):
        match = _DOW_ITEM.match(item)
        if match is None:
            raise CronError(f"weekday field {field!r} is not understood")
        span, step = match["range"], int(match["step"] or 1)
        if step < 1:
            raise CronError(f"weekday field {field!r} has a step of 0")
        if span == "*":
            first, last = 0, 6
        else:
            low, _, high = span.partition("-")
            first = _weekday(low, field)
            last = _weekday(high, field) if high else first
            # "5-7" and "fri-sun" run Friday to Sunday: Sunday closes a range as 7
            if high and last == 0 and first > 0:
                last = 7
            if last < first:
                raise CronError(f"weekday range {span!r} runs backwards; split it, e.g. 5-6,0")
            if not high and match["step"]:
                last = 6
        days.update(d % 7 for d in range(first, last + 1, step))
    return ",".join(_WEEKDAY_NAMES[d] for d in sorted(days))


def _weekday(token: str, field: str) -> int:
    if token.isdigit():
        number = int(token)
        if number > 7:
            raise CronError(f"weekday {number} in {field!r} is out of range 0-7")
        return number % 7
    if token in _WEEKDAY_NUMBER:
        return _WEEKDAY_NUMBER[token]
    raise CronError(f"weekday {token!r} in {field!r} is not a number 0-7 or a name like mon")


class Schedule:
    """The fire times of one job: its cron, and the calendar's trading days when
    `trading_days_only` (past the calendar, weekdays or a refusal: `[calendar] beyond`)."""

    def __init__(
        self, trigger: CronTrigger, calendar: TradingCalendar, trading_days_only: bool
    ) -> None:
        self.trigger = trigger
        self.calendar = calendar
        self.trading_days_only = trading_days_only

    def next_after(self, after: dt.datetime) -> dt.datetime | None:
        """The first fire time strictly after `after` (aware datetime), in Shanghai time.

        Raises CalendarExpired when a trading-days-only job's next cron time falls
        past the calendar's last known day and `[calendar] beyond = "refuse"`: the
        caller reports it. With "weekdays" such a day fires on a weekday (the
        runner logs it).
        """
        start = after.astimezone(SHANGHAI).replace(microsecond=0) + _ONE_SECOND
        while True:
            fire = self.trigger.get_next_fire_time(None, start)
            if fire is None:
                return None
            fire = fire.astimezone(SHANGHAI)
            if not self.trading_days_only or self.calendar.is_trading_day(fire.date()):
                return fire
            # jump to the next day at once: a per-second cron must not walk a holiday
            # week second by second
            next_day = fire.date() + dt.timedelta(days=1)
            start = dt.datetime.combine(next_day, dt.time(0), SHANGHAI)

    def between(self, after: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
        """Every fire time in (after, until], in order (for tests and small spans)."""
        fires: list[dt.datetime] = []
        fire = self.next_after(after)
        while fire is not None and fire <= until:
            fires.append(fire)
            fire = self.next_after(fire)
        return fires

    def missed(
        self, since: dt.datetime, now: dt.datetime
    ) -> tuple[dt.datetime, dt.datetime] | None:
        """(first, latest) fire times in (since, now], or None when none fell there.

        Used at start-up for the runs that fell while the scheduler was down. The
        latest is found by widening a window back from `now`, so a per-second job
        down for a week costs a few dozen trigger calls, not 600,000.
        """
        first = self.next_after(since)
        if first is None or first > now:
            return None
        window = dt.timedelta(minutes=1)
        while True:
            start = max(since, now - window)
            latest = self.next_after(start)
            if latest is not None and latest <= now:
                break
            window *= 2
        while (following := self.next_after(latest)) is not None and following <= now:
            latest = following
        return first, latest
