"""The trading calendar of every process: which Shanghai dates the A-share exchanges trade.

Layered sources, first that knows the date wins:
1. miniQMT's own calendar (`xtdata.get_trading_calendar` / `get_holidays`), on
   Windows with `broker = "xtquant"`: authoritative, updated by the terminal;
2. the config's `[calendar] extra_holidays` (always closed) and `known_until`:
   weekdays minus those holidays, from the day after exchange_calendars ends
   until `known_until` (the exchanges never trade on weekends);
3. exchange_calendars XSHG (its 4.13.2 release ends 2026-12-31).
Past every source, `[calendar] beyond = "weekdays"` (the default) counts weekdays
as trading days, loudly; `beyond = "refuse"` raises CalendarExpired, which
names the fix. Nothing heavy is imported until a calendar is loaded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from qmtbus import clock
from qmtbus.clock import SHANGHAI as SHANGHAI  # re-exported: older imports use it

if TYPE_CHECKING:
    from qmtbus.config import CalendarConfig, Config

log = logging.getLogger("qmtbus.calendar")

CALENDAR_NAME = "XSHG"
XTDATA = "miniQMT (xtdata)"
EXTENSION = "config [calendar]"
XSHG = "exchange_calendars XSHG"
WARN_DAYS = 30  # how long before the last known day the warnings start

Beyond = Literal["weekdays", "refuse"]
_WEEKDAY = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def config_fix(year: int) -> str:
    """The fix for a calendar that ends before `year`, as one clause."""
    return (
        f"add {year}'s exchange holidays to the config "
        f'([calendar] extra_holidays = ["{year}-01-01", ...] and known_until = "{year}-12-31") '
        "and restart"
    )


def example_lines(year: int) -> str:
    """The config lines that extend the calendar through `year` (a template: the real
    dates come from the exchange's holiday notice, published each December)."""
    return (
        "[calendar]\n"
        f"# every weekday the exchanges are closed in {year} (the SSE's holiday notice)\n"
        f'extra_holidays = ["{year}-01-01", "{year}-MM-DD", ...]\n'
        f'known_until = "{year}-12-31"'
    )


class CalendarExpired(Exception):
    """A date lies past every calendar source and `beyond = "refuse"`: we refuse, and say
    how to extend the calendar."""

    def __init__(self, day: dt.date, last_day: dt.date, source: str = XSHG) -> None:
        self.day = day
        self.last_day = last_day
        self.source = source
        super().__init__(
            f"{day.isoformat()} is past the last day the trading calendar knows "
            f'({last_day.isoformat()}, from {source}) and [calendar] beyond = "refuse": '
            f'{config_fix(day.year)}, or set beyond = "weekdays"'
        )


@dataclass(frozen=True, slots=True)
class Layer:
    """One source: the days from `first_day` to `last_day` it vouches for (plus its
    holidays, wherever they fall). With `sessions` a day is a trading day when listed;
    without, when it is a weekday that is not in `holidays`."""

    name: str
    first_day: dt.date
    last_day: dt.date
    sessions: frozenset[dt.date] | None = None
    holidays: frozenset[dt.date] = frozenset()

    def knows(self, day: dt.date) -> bool:
        return self.first_day <= day <= self.last_day or day in self.holidays

    def is_trading_day(self, day: dt.date) -> bool:
        if self.sessions is not None:
            return day in self.sessions
        return day.weekday() < 5 and day not in self.holidays


@dataclass(frozen=True, slots=True)
class DayVerdict:
    """Whether a day trades, and who says so ("beyond" when no source knows it)."""

    day: dt.date
    trading: bool
    source: str

    @property
    def vouched(self) -> bool:
        return self.source != "beyond"


class TradingCalendar:
    """The layered calendar. Dates before every source are not trading days; dates
    after `last_day` follow `beyond`."""

    def __init__(self, layers: Sequence[Layer], beyond: Beyond = "weekdays") -> None:
        if not layers:
            raise ValueError("a trading calendar needs at least one source")
        self.layers = tuple(layers)
        self.beyond = beyond
        spans = [layer for layer in self.layers if layer.first_day <= layer.last_day]
        if not spans:
            raise ValueError("a trading calendar needs a source that covers a span of days")
        self.first_day = min(layer.first_day for layer in spans)
        last = max(spans, key=lambda layer: layer.last_day)
        self.last_day = last.last_day
        self.last_source = last.name
        self.name = " > ".join(layer.name for layer in self.layers)

    @classmethod
    def from_sessions(
        cls, sessions: Iterable[dt.date], name: str = XSHG, beyond: Beyond = "weekdays"
    ) -> TradingCalendar:
        """One source made of a list of sessions (tests; a fixed list)."""
        return cls([sessions_layer(name, sessions)], beyond)

    @classmethod
    def load(cls, beyond: Beyond = "weekdays") -> TradingCalendar:
        """exchange_calendars XSHG alone (about a second: call once)."""
        return cls([xshg_layer()], beyond)

    # -- questions -------------------------------------------------------------------
    def verdict(self, day: dt.date) -> DayVerdict:
        """Whether `day` trades and which source says so; raises CalendarExpired for a
        day past every source when beyond = "refuse"."""
        for layer in self.layers:
            if layer.knows(day):
                return DayVerdict(day, layer.is_trading_day(day), layer.name)
        if day < self.first_day:
            return DayVerdict(day, False, self.layers[-1].name)
        if self.beyond == "refuse":
            raise CalendarExpired(day, self.last_day, self.last_source)
        return DayVerdict(day, day.weekday() < 5, "beyond")

    def is_trading_day(self, day: dt.date) -> bool:
        return self.verdict(day).trading

    def is_beyond(self, day: dt.date) -> bool:
        """True when no source vouches for `day` (it lies after the last known day)."""
        return day > self.last_day and not any(layer.knows(day) for layer in self.layers)

    def next_trading_day(self, day: dt.date) -> dt.date:
        """The first trading day on or after `day` (raises CalendarExpired if refused)."""
        while not self.is_trading_day(day):
            day += dt.timedelta(days=1)
        return day

    def next_trading_days(self, start: dt.date, count: int) -> list[DayVerdict]:
        """Up to `count` trading days from `start` on; with beyond = "refuse" the list
        stops at the last known day."""
        days: list[DayVerdict] = []
        day = start
        while len(days) < count and day <= start + dt.timedelta(days=count * 7 + 30):
            try:
                verdict = self.verdict(day)
            except CalendarExpired:
                break
            if verdict.trading:
                days.append(verdict)
            day += dt.timedelta(days=1)
        return days

    # -- what to tell the user --------------------------------------------------------
    def gap(self, today: dt.date) -> str | None:
        """The sentence for a `today` no source vouches for (None when one does)."""
        if not self.is_beyond(today):
            return None
        if self.beyond == "refuse":
            return str(CalendarExpired(today, self.last_day, self.last_source))
        return (
            f"{today.isoformat()} is past the last day the trading calendar knows "
            f"({self.last_day.isoformat()}, from {self.last_source}): weekdays count as "
            f"trading days until you {config_fix(today.year)}"
        )

    def ends_soon(self, today: dt.date) -> str | None:
        """The warning for the last `WARN_DAYS` days before the calendar ends (else None)."""
        left = (self.last_day - today).days
        if not 0 <= left <= WARN_DAYS:
            return None
        after = (
            "weekdays will count as trading days"
            if self.beyond == "weekdays"
            else ("the gateway will stay outside its window and trading-day jobs will stop")
        )
        when = "today" if left == 0 else f"in {left} day{'s' if left > 1 else ''}"
        return (
            f"the trading calendar ends on {self.last_day.isoformat()}, {when} "
            f"(from {self.last_source}); after it {after}: "
            f"{config_fix(self.last_day.year + 1)}"
        )

    def alert(self, today: dt.date) -> str | None:
        """The day's calendar alert: the gap, else the warning ahead, else None."""
        return self.gap(today) or self.ends_soon(today)


# -- sources ---------------------------------------------------------------------------


def sessions_layer(name: str, sessions: Iterable[dt.date]) -> Layer:
    days = frozenset(sessions)
    if not days:
        raise ValueError(f"{name} lists no trading days")
    return Layer(name, min(days), max(days), sessions=days)


def xshg_layer() -> Layer:
    """exchange_calendars XSHG (imports pandas: about a second)."""
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
    return sessions_layer(XSHG, sessions)


class XtData(Protocol):
    """The two functions of xtquant.xtdata the calendar reads."""

    def get_trading_calendar(self, market: str) -> list[str]: ...

    def get_holidays(self) -> list[str]: ...


def _yyyymmdd(text: Any) -> dt.date:
    value = str(text)
    return dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))


def xtdata_layer(xtdata: XtData) -> Layer:
    """miniQMT's calendar: its trading days (past ones, then future ones it derives from
    its holiday list), known through 31 December of the last year it has holidays for."""
    sessions = frozenset(_yyyymmdd(d) for d in xtdata.get_trading_calendar("SH"))
    holidays = [_yyyymmdd(d) for d in xtdata.get_holidays()]
    if not sessions:
        raise ValueError("miniQMT's trading calendar is empty")
    last = max(sessions)
    if holidays:
        last = max(last, dt.date(max(holidays).year, 12, 31))
    return Layer(XTDATA, min(sessions), last, sessions=sessions)


def extension_layer(config: CalendarConfig, after: dt.date | None) -> Layer | None:
    """The config's extension: its holidays always, and the weekdays from the day after
    `after` (where the sources below it end) through `known_until`."""
    holidays = frozenset(config.extra_holidays)
    if not holidays and config.known_until is None:
        return None
    first = after + dt.timedelta(days=1) if after is not None else dt.date.min
    last = config.known_until if config.known_until is not None else dt.date.min
    if last < first:  # it vouches for its holidays alone
        first, last = dt.date.max, dt.date.min
    return Layer(EXTENSION, first, last, holidays=holidays)


def _default_xtdata(config: Config) -> XtData | None:
    if config.gateway.broker != "xtquant" or sys.platform != "win32":
        return None
    from xtquant import xtdata  # the terminal's data service; runs xtquant's update check

    return xtdata


def load_calendar(
    config: Config,
    *,
    xtdata: XtData | None = None,
    xshg: Callable[[], Layer] | None = xshg_layer,
) -> TradingCalendar:
    """The calendar the config asks for (about a second: call once per process).

    `xtdata` stands in for xtquant.xtdata (tests); by default it is used on
    Windows with broker = "xtquant". `xshg=None` leaves exchange_calendars out.
    A source that fails is logged and skipped; the next one answers.
    """
    layers: list[Layer] = []
    try:
        source = xtdata if xtdata is not None else _default_xtdata(config)
        if source is not None:
            layers.append(xtdata_layer(source))
    except Exception as err:  # miniQMT not running, no holiday data: the next source answers
        log.warning("miniQMT's trading calendar is not available (%s); using the next source", err)
    lower: Layer | None = None
    if xshg is not None:
        try:
            lower = xshg()
        except Exception as err:
            log.warning("exchange_calendars XSHG could not be loaded (%s)", err)
    extension = extension_layer(config.calendar, lower.last_day if lower else None)
    if extension is not None:
        layers.append(extension)
    if lower is not None:
        layers.append(lower)
    if not any(layer.first_day <= layer.last_day for layer in layers):
        raise ValueError(
            "no trading calendar source could be loaded; install exchange_calendars or set "
            '[calendar] known_until = "YYYY-12-31" with that year\'s extra_holidays'
        )
    return TradingCalendar(layers, config.calendar.beyond)


# -- `qmtbus calendar` -----------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--days", type=int, default=10, metavar="N", help="how many trading days to list"
    )


def describe(calendar: TradingCalendar, today: dt.date, days: int) -> dict[str, Any]:
    """What `qmtbus calendar` shows, as plain data."""
    try:
        verdict: DayVerdict | None = calendar.verdict(today)
    except CalendarExpired:
        verdict = None
    return {
        "sources": [
            {
                "name": layer.name,
                "first_day": _iso(layer.first_day),
                "last_day": _iso(layer.last_day),
            }
            for layer in calendar.layers
        ],
        "last_day": calendar.last_day.isoformat(),
        "last_day_source": calendar.last_source,
        "beyond": calendar.beyond,
        "today": today.isoformat(),
        "today_trading": None if verdict is None else verdict.trading,
        "today_source": None if verdict is None else verdict.source,
        "next_trading_days": [
            {"date": v.day.isoformat(), "source": v.source}
            for v in calendar.next_trading_days(today, days)
        ],
        "problem": calendar.gap(today),
        "warning": calendar.ends_soon(today),
    }


def _iso(day: dt.date) -> str | None:
    return None if day in (dt.date.min, dt.date.max) else day.isoformat()


def render(info: dict[str, Any]) -> str:
    lines = ["sources (first that knows a date wins):"]
    for source in info["sources"]:
        span = f"{source['first_day'] or '-'} .. {source['last_day'] or '-'}"
        lines.append(f"  {source['name']}: {span}")
    lines.append(f"last known day: {info['last_day']} (from {info['last_day_source']})")
    past = {
        "weekdays": "weekdays count as trading days, with a warning",
        "refuse": "refused: the gateway stays outside its window, trading-day jobs stop",
    }[info["beyond"]]
    lines.append(f'past it (beyond = "{info["beyond"]}"): {past}')
    today = dt.date.fromisoformat(info["today"])
    if info["today_trading"] is None:
        lines.append(f"today: {info['today']} ({_WEEKDAY[today.weekday()]}), refused")
    else:
        trades = "a trading day" if info["today_trading"] else "not a trading day"
        lines.append(f"today: {info['today']} ({_WEEKDAY[today.weekday()]}), {trades}")
    lines.append("next trading days:")
    for item in info["next_trading_days"]:
        day = dt.date.fromisoformat(item["date"])
        guess = "  (a weekday no source vouches for)" if item["source"] == "beyond" else ""
        lines.append(f"  {item['date']} {_WEEKDAY[day.weekday()]}{guess}")
    for key in ("problem", "warning"):
        if info[key]:
            lines.append(f"{key}: {info[key]}")
    if info["problem"] or info["warning"]:
        year = today.year if info["problem"] else dt.date.fromisoformat(info["last_day"]).year + 1
        lines += ["for example:", *("  " + line for line in example_lines(year).splitlines())]
    return "\n".join(lines)


def command(args: argparse.Namespace, config: Config) -> int:
    """`qmtbus calendar`: where the calendar comes from, its last day, the next trading days."""
    import json

    info = describe(load_calendar(config), clock.today(), max(1, args.days))
    if getattr(args, "json", False):
        print(json.dumps(info, ensure_ascii=False))
    else:
        print(render(info))
    return 0


def warn_daily(
    config: Config,
    stop: threading.Event,
    logger: logging.Logger,
    today: Callable[[], dt.date] = clock.today,
    load: Callable[[Config], TradingCalendar] = load_calendar,
    every: float = 60.0,
) -> threading.Thread:
    """For a process that does not use the calendar itself (the recorder): a daemon thread
    that logs the calendar's alert (past its end, or within WARN_DAYS of it) as a WARNING
    once a Shanghai day, as the gateway and scheduler do. The calendar is loaded on that
    thread, so start-up never waits for it."""

    def run() -> None:
        calendar: TradingCalendar | None = None
        told: dt.date | None = None
        while not stop.is_set():
            day = today()
            if day != told:
                try:
                    if calendar is None or told is not None:  # reload daily: sources change
                        calendar = load(config)
                except Exception as err:  # a broken source must not stop the process
                    logger.warning("calendar: cannot load the trading calendar: %s", err)
                else:
                    told = day
                    message = calendar.alert(day)
                    if message is not None:
                        logger.warning("calendar: %s", message)
            stop.wait(every)

    thread = threading.Thread(target=run, name="calendar-warning", daemon=True)
    thread.start()
    return thread
