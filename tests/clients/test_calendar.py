"""The layered trading calendar under a controlled `today`: miniQMT, the config's extension,
exchange_calendars XSHG (which ends 2026-12-31), and what happens past all of them."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from qmtbus import clock
from qmtbus.calendar import (
    EXTENSION,
    XSHG,
    XTDATA,
    CalendarExpired,
    Layer,
    TradingCalendar,
    load_calendar,
    xshg_layer,
)
from qmtbus.config import CalendarConfig, Config, ConfigError, GatewayConfig, load_config
from qmtbus.health import GatewayHealth, Report, _check_calendar, check, render
from tests.support import ROOT

D = dt.date.fromisoformat
NEW_YEAR_EVE, NEW_YEAR, MONDAY = D("2026-12-31"), D("2027-01-01"), D("2027-01-04")


@pytest.fixture(scope="module")
def xshg() -> Layer:
    return xshg_layer()  # about a second: once for the module


def calendar(xshg: Layer, **keys: object) -> TradingCalendar:
    """The calendar of a config with these `[calendar]` keys, exchange_calendars given."""
    config = Config(calendar=CalendarConfig(**keys))  # type: ignore[arg-type]
    return load_calendar(config, xshg=lambda: xshg)


EXTENDED = {"extra_holidays": [NEW_YEAR, D("2027-02-08")], "known_until": D("2027-12-31")}


class FakeXtData:
    """xtquant.xtdata's two calendar functions, as miniQMT answers them: trading days as
    "YYYYMMDD" (past ones, then future ones derived from its holidays) and holidays."""

    def __init__(self, sessions: list[dt.date], holidays: list[dt.date]) -> None:
        self.sessions, self.holidays = sessions, holidays

    def get_trading_calendar(self, market: str) -> list[str]:
        assert market == "SH"
        return [d.strftime("%Y%m%d") for d in self.sessions]

    def get_holidays(self) -> list[str]:
        return [d.strftime("%Y%m%d") for d in self.holidays]


def weekdays(first: dt.date, last: dt.date, closed: set[dt.date]) -> list[dt.date]:
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    return [d for d in days if d.weekday() < 5 and d not in closed]


# -- exchange_calendars alone ----------------------------------------------------------


def test_given_xshg_alone_on_2026_12_31_then_a_trading_day_vouched_by_exchange_calendars(xshg):
    cal = calendar(xshg)

    verdict = cal.verdict(NEW_YEAR_EVE)

    assert verdict.trading and verdict.source == XSHG
    assert cal.last_day == NEW_YEAR_EVE and cal.gap(NEW_YEAR_EVE) is None


def test_given_xshg_alone_on_2027_01_04_then_the_weekday_trades_and_the_gap_names_the_fix(xshg):
    cal = calendar(xshg)

    verdict = cal.verdict(MONDAY)
    gap = cal.gap(MONDAY)

    assert verdict.trading and not verdict.vouched
    assert not cal.is_trading_day(D("2027-01-09"))  # a Saturday is never a trading day
    assert gap is not None
    assert "past the last day the trading calendar knows (2026-12-31" in gap
    assert "weekdays count as trading days" in gap
    assert '[calendar] extra_holidays = ["2027-01-01", ...] and known_until = "2027-12-31"' in gap


def test_given_beyond_refuse_on_2027_01_04_then_refused_with_the_calendar_and_the_fix(xshg):
    cal = calendar(xshg, beyond="refuse")

    with pytest.raises(CalendarExpired) as refused:
        cal.is_trading_day(MONDAY)

    assert cal.is_trading_day(NEW_YEAR_EVE)
    message = str(refused.value)
    assert "2027-01-04 is past the last day the trading calendar knows" in message
    assert "exchange_calendars XSHG" in message and 'beyond = "refuse"' in message
    assert "extra_holidays" in message and "known_until" in message
    assert "outside_window" not in message


# -- the config's extension ---------------------------------------------------------------


def test_given_the_extension_on_2027_01_04_then_a_trading_day_vouched_by_the_config(xshg):
    cal = calendar(xshg, **EXTENDED)

    verdict = cal.verdict(MONDAY)

    assert verdict.trading and verdict.source == EXTENSION
    assert cal.last_day == D("2027-12-31") and cal.last_source == EXTENSION
    assert cal.gap(MONDAY) is None
    assert cal.is_trading_day(NEW_YEAR_EVE)  # exchange_calendars still answers 2026


def test_given_a_holiday_in_the_extension_then_that_weekday_is_closed(xshg):
    with_it, without = calendar(xshg, **EXTENDED), calendar(xshg)

    assert not with_it.is_trading_day(NEW_YEAR)
    assert not with_it.is_trading_day(D("2027-02-08"))
    assert without.is_trading_day(NEW_YEAR)  # a Friday no source knows: counted as trading
    assert with_it.next_trading_day(NEW_YEAR) == MONDAY


def test_given_the_extension_then_exchange_calendars_holidays_of_2026_stay_closed(xshg):
    cal = calendar(xshg, known_until=D("2027-12-31"))

    assert not cal.is_trading_day(D("2026-10-05"))  # National Day week, a Monday
    assert cal.verdict(D("2026-10-05")).source == XSHG


def test_given_extension_with_refuse_then_refused_only_after_known_until(xshg):
    cal = calendar(xshg, beyond="refuse", **EXTENDED)

    assert cal.is_trading_day(D("2027-12-31"))
    with pytest.raises(CalendarExpired) as refused:
        cal.is_trading_day(D("2028-01-03"))
    assert refused.value.last_day == D("2027-12-31") and refused.value.source == EXTENSION


# -- miniQMT's calendar ------------------------------------------------------------------


def test_given_miniqmt_calendar_then_it_wins_and_knows_through_its_last_holiday_year(xshg):
    closed = {NEW_YEAR, D("2027-02-08"), D("2027-02-09")}
    xtdata = FakeXtData(weekdays(D("2026-12-01"), D("2027-12-31"), closed), sorted(closed))
    config = Config(calendar=CalendarConfig(extra_holidays=[MONDAY], known_until=MONDAY))

    cal = load_calendar(config, xtdata=xtdata, xshg=lambda: xshg)

    assert cal.layers[0].name == XTDATA and cal.last_source == XTDATA
    assert cal.last_day == D("2027-12-31")
    assert not cal.is_trading_day(D("2027-02-09"))
    # the terminal's calendar is authoritative: the user's extra holiday does not close it
    assert cal.verdict(MONDAY).trading and cal.verdict(MONDAY).source == XTDATA
    assert cal.gap(D("2027-06-01")) is None


def test_given_miniqmt_holidays_of_a_later_year_then_it_knows_until_that_december():
    xtdata = FakeXtData(weekdays(D("2027-01-04"), D("2027-01-29"), set()), [D("2028-01-03")])

    cal = load_calendar(Config(), xtdata=xtdata, xshg=None)

    assert cal.last_day == D("2028-12-31")


def test_given_miniqmt_not_answering_then_the_next_source_answers_and_it_is_logged(
    xshg, caplog: pytest.LogCaptureFixture
):
    class Down(FakeXtData):
        def get_trading_calendar(self, market: str) -> list[str]:
            raise RuntimeError("交易日列表为空")

    with caplog.at_level(logging.WARNING, "qmtbus.calendar"):
        cal = load_calendar(Config(), xtdata=Down([], []), xshg=lambda: xshg)

    assert [layer.name for layer in cal.layers] == [XSHG]
    assert "miniQMT's trading calendar is not available" in caplog.text


def test_given_no_source_at_all_then_one_sentence_says_what_to_install_or_set():
    with pytest.raises(ValueError, match="install exchange_calendars or set"):
        load_calendar(Config(), xshg=None)


# -- the warning ahead ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("today", "warned"),
    [("2026-11-30", False), ("2026-12-01", True), ("2026-12-31", True), ("2027-01-04", False)],
)
def test_given_the_last_30_days_then_a_warning_with_the_date(xshg, today: str, warned: bool):
    soon = calendar(xshg).ends_soon(D(today))

    assert (soon is not None) is warned
    if soon is not None:
        assert "ends on 2026-12-31" in soon and "2027's exchange holidays" in soon


def test_given_the_extension_then_no_warning_in_december_2026(xshg):
    assert calendar(xshg, **EXTENDED).alert(D("2026-12-06")) is None


def test_given_next_trading_days_then_listed_with_who_vouches(xshg):
    days = calendar(xshg).next_trading_days(D("2026-12-30"), 3)
    refused = calendar(xshg, beyond="refuse").next_trading_days(D("2026-12-30"), 3)

    assert [(v.day, v.source) for v in days] == [
        (D("2026-12-30"), XSHG),
        (NEW_YEAR_EVE, XSHG),
        (NEW_YEAR, "beyond"),
    ]
    assert [v.day for v in refused] == [D("2026-12-30"), NEW_YEAR_EVE]


# -- config keys -----------------------------------------------------------------------------


def test_given_dates_quoted_or_bare_then_both_read(tmp_path: Path):
    path = tmp_path / "q.toml"
    path.write_text(
        '[calendar]\nextra_holidays = ["2027-01-01", 2027-02-08]\nknown_until = "2027-12-31"\n'
    )

    keys = load_config(path).calendar

    assert keys.extra_holidays == [NEW_YEAR, D("2027-02-08")]
    assert keys.known_until == D("2027-12-31") and keys.beyond == "weekdays"


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        (
            'extra_holidays = ["2027-13-01"]',
            '`calendar.extra_holidays[0]` is not a date; write it as "2027-01-01"',
        ),
        ('known_until = "end of 2027"', "`calendar.known_until` is not a date"),
        (
            'extra_holidays = ["2028-01-03"]\nknown_until = "2027-12-31"',
            "after known_until 2027-12-31",
        ),
        ('beyond = "guess"', "calendar.beyond"),
        ('known_untill = "2027-12-31"', "unknown key `calendar.known_untill`"),
    ],
)
def test_given_a_bad_calendar_key_then_one_sentence_names_it(tmp_path: Path, toml: str, words: str):
    path = tmp_path / "q.toml"
    path.write_text(f"[calendar]\n{toml}\n")

    with pytest.raises(ConfigError) as bad:
        load_config(path)

    assert words in str(bad.value)
    assert "\n" not in str(bad.value)


# -- the clock -------------------------------------------------------------------------------


def test_given_the_test_hook_then_the_clock_starts_at_that_shanghai_time(monkeypatch):
    monkeypatch.setenv(clock.FAKE_TODAY_ENV, "2027-01-04T09:30")
    monkeypatch.setattr(clock, "_OFFSET", clock._fake_offset())
    monkeypatch.setattr(clock, "_last_day", (-1, ""))

    now = clock.now()

    assert clock.today() == MONDAY and (now.hour, now.minute) == (9, 30)
    assert now.utcoffset() == dt.timedelta(hours=8)
    assert clock.trading_day() == "2027-01-04"
    assert clock.trading_day(0.0) == "1970-01-01"  # an explicit time keeps the real clock


def test_given_a_bad_test_hook_then_one_sentence(monkeypatch):
    monkeypatch.setenv(clock.FAKE_TODAY_ENV, "next monday")

    with pytest.raises(ValueError, match="is not a date or date-time"):
        clock._fake_offset()


# -- qmtbus health's calendar check, with a fixed today -----------------------------------

PROCESSES = frozenset({"gateway", "recorder", "scheduler"})


def health_at(xshg: Layer, today: str, **keys: object) -> Report:
    config = Config(calendar=CalendarConfig(**keys))  # type: ignore[arg-type]
    return check(config, skip=PROCESSES, today=D(today), calendar=calendar(xshg, **keys))


def test_given_health_on_2027_01_04_without_extension_then_a_problem_naming_the_fix(xshg):
    report = health_at(xshg, "2027-01-04")

    assert not report.ok
    (problem,) = report.problems
    assert problem.startswith("calendar: 2027-01-04 is past the last day")
    assert "weekdays count as trading days until you add 2027's exchange holidays" in problem
    assert report.calendar is not None and 'known_until = "2027-12-31"' in report.calendar.example
    assert "to extend the calendar" in render(report)


def test_given_health_with_refuse_past_the_end_then_the_problem_says_refused(xshg):
    (problem,) = health_at(xshg, "2027-01-04", beyond="refuse").problems

    assert 'beyond = "refuse"' in problem and "extra_holidays" in problem


def test_given_health_in_the_last_30_days_then_a_warning_and_still_ok(xshg):
    report = health_at(xshg, "2026-12-06")

    assert report.ok and report.problems == []
    assert report.warnings == [
        "calendar: the trading calendar ends on 2026-12-31, in 25 days (from exchange_calendars "
        "XSHG); after it weekdays will count as trading days: add 2027's exchange holidays to "
        'the config ([calendar] extra_holidays = ["2027-01-01", ...] and known_until = '
        '"2027-12-31") and restart'
    ]


def test_given_health_with_the_extension_then_ok_and_quiet(xshg):
    report = health_at(xshg, "2027-01-04", **EXTENDED)

    assert report.ok and report.warnings == []
    assert report.calendar is not None and report.calendar.last_day == "2027-12-31"


def test_given_the_gateway_knows_further_then_health_trusts_it(xshg):
    gateway = GatewayHealth(address="", events_address="", calendar_last_day="2027-12-31")
    problems: list[str] = []
    warnings: list[str] = []

    _check_calendar(Config(), calendar(xshg), MONDAY, gateway, problems, warnings)

    assert problems == [] and warnings == []


# -- `qmtbus calendar` ------------------------------------------------------------------------


def qmtbus_calendar(tmp_path: Path, toml: str, today: str, *args: str) -> str:
    path = tmp_path / "qmtbus.toml"
    path.write_text(toml)
    done = subprocess.run(
        [sys.executable, "-m", "qmtbus.cli", "--config", str(path), "calendar", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, clock.FAKE_TODAY_ENV: today},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_given_qmtbus_calendar_json_then_sources_last_day_and_next_days(tmp_path: Path):
    toml = '[calendar]\nextra_holidays = ["2027-01-01"]\nknown_until = "2027-12-31"\n'

    info = json.loads(qmtbus_calendar(tmp_path, toml, "2026-12-31", "--json", "--days", "3"))

    assert [s["name"] for s in info["sources"]] == [EXTENSION, XSHG]
    assert info["last_day"] == "2027-12-31" and info["last_day_source"] == EXTENSION
    assert info["next_trading_days"] == [
        {"date": "2026-12-31", "source": XSHG},
        {"date": "2027-01-04", "source": EXTENSION},
        {"date": "2027-01-05", "source": EXTENSION},
    ]
    assert info["problem"] is None and info["warning"] is None


def test_given_qmtbus_calendar_past_the_end_then_it_says_so_with_the_example(tmp_path: Path):
    out = qmtbus_calendar(tmp_path, "", "2027-01-04", "--days", "2")

    assert "last known day: 2026-12-31 (from exchange_calendars XSHG)" in out
    assert "2027-01-04 Mon  (a weekday no source vouches for)" in out
    assert "problem: 2027-01-04 is past the last day" in out
    assert 'known_until = "2027-12-31"' in out


def test_given_the_readme_worked_example_then_qmtbus_calendar_prints_what_it_shows(
    tmp_path: Path,
):
    section = (ROOT / "README.md").read_text().split("**Worked example", 1)[1]
    toml = re.search(r"```toml\n(.*?)```", section, re.S)
    shown = re.search(r"```text\n\$ qmtbus calendar --days 3\n(.*?)```", section, re.S)
    assert toml and shown, "README's worked calendar example has lost its blocks"

    out = qmtbus_calendar(tmp_path, toml.group(1), "2026-12-31", "--days", "3")

    # exchange_calendars starts its sessions 20 years before the day it is loaded
    first_day = re.compile(r"XSHG: \d{4}-\d{2}-\d{2} \.\.")
    assert first_day.sub("XSHG: ..", out) == first_day.sub("XSHG: ..", shown.group(1))


def test_given_windows_and_the_xtquant_broker_then_xtdata_is_imported_lazily_and_read(
    xshg, monkeypatch: pytest.MonkeyPatch
):
    closed = [NEW_YEAR]
    fake = types.ModuleType("xtquant")
    fake.xtdata = FakeXtData(weekdays(D("2026-12-01"), D("2027-12-31"), set(closed)), closed)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "xtquant", fake)  # never the real one: its import phones home
    monkeypatch.setattr(sys, "platform", "win32")
    config = Config(gateway=GatewayConfig(broker="xtquant"))

    cal = load_calendar(config, xshg=lambda: xshg)
    on_linux = load_calendar(Config(), xshg=lambda: xshg)

    assert cal.last_source == XTDATA and not cal.is_trading_day(NEW_YEAR)
    assert [layer.name for layer in on_linux.layers] == [XSHG]  # broker = "sim": not asked


def test_given_a_process_without_a_calendar_of_its_own_then_it_warns_once_a_day(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import threading

    from qmtbus.calendar import TradingCalendar, warn_daily

    sessions = [dt.date(2026, 12, 30), dt.date(2026, 12, 31)]
    days = iter([dt.date(2026, 12, 31), dt.date(2026, 12, 31), dt.date(2027, 1, 4)])
    seen: list[dt.date] = []
    stop = threading.Event()

    def today() -> dt.date:
        day = next(days, None)
        if day is None:
            stop.set()
            return seen[-1]
        seen.append(day)
        return day

    logger = logging.getLogger("test.recorder")
    with caplog.at_level(logging.WARNING, logger="test.recorder"):
        thread = warn_daily(
            Config(),
            stop,
            logger,
            today,
            lambda _c: TradingCalendar.from_sessions(sessions),
            every=0.001,
        )
        thread.join(10)  # ends when the fake clock runs out of days
    warnings = [r.getMessage() for r in caplog.records if r.name == "test.recorder"]
    assert len(warnings) == 2, warnings  # 2026-12-31 once (not twice), then 2027-01-04
    assert "ends on 2026-12-31, today" in warnings[0]
    assert warnings[1].startswith("calendar: 2027-01-04 is past the last day")


def test_given_times_either_side_of_shanghai_midnight_then_each_has_its_own_day():
    # 2026-12-31 23:59:59 and 2027-01-01 00:00:00 in Shanghai, asked alternately: the
    # once-a-second answer never leaks into the neighbouring second.
    before = dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=clock.SHANGHAI).timestamp()
    after = before + 1
    for _ in range(3):
        assert clock.trading_day(before + 0.999) == "2026-12-31"
        assert clock.trading_day(after) == "2027-01-01"
        assert clock.trading_day(before) == "2026-12-31"
    assert clock.trading_day() == clock.today().isoformat()
