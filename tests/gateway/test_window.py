"""The connection window: XSHG trading days and configured times, never a guess."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from qmtbus import protocol as p
from qmtbus.calendar import Layer, TradingCalendar, load_calendar, xshg_layer
from qmtbus.config import CalendarConfig, Config, GatewayConfig, WindowConfig
from qmtbus.gateway.window import SHANGHAI, Window, refusal

WINDOW = Window(WindowConfig(always_open=False))


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("when", "is_open", "words"),
    [
        ("2026-11-24 10:00", True, "open until 15:10"),
        ("2026-11-24 09:09", False, "opens at 09:10"),
        ("2026-11-24 15:10", False, "closed at 15:10"),
        ("2026-10-05 10:00", False, "not a trading day"),  # National Day week
        ("2026-10-10 10:00", False, "not a trading day"),  # make-up working Saturday: closed
        ("2026-11-28 10:00", False, "not a trading day"),  # an ordinary Saturday
    ],
)
def test_given_a_time_then_the_window_follows_xshg_and_the_configured_hours(
    when: str, is_open: bool, words: str
) -> None:
    state = WINDOW.state(at(when))
    assert state.open is is_open
    assert words in state.reason
    assert state.next_check > 0


def test_given_a_date_past_the_calendar_then_a_weekday_opens_and_says_so() -> None:
    state = WINDOW.state(at("2040-01-02 10:00"))
    assert state.open
    assert not WINDOW.state(at("2040-01-07 10:00")).open  # a Saturday


def test_given_always_open_then_open_at_any_hour() -> None:
    assert Window(WindowConfig()).state(at("2026-10-05 03:00")).open


# -- past the end of exchange_calendars (2026-12-31), under a fixed clock --------------------


@pytest.fixture(scope="module")
def xshg() -> Layer:
    return xshg_layer()


def window(xshg: Layer, **calendar_keys: object) -> tuple[Window, list[p.NoteEvent]]:
    """A trading-days window over XSHG plus these [calendar] keys; and the notes it sends."""
    config = Config(
        gateway=GatewayConfig(window=WindowConfig(always_open=False)),
        calendar=CalendarConfig(**calendar_keys),  # type: ignore[arg-type]
    )
    notes: list[p.NoteEvent] = []
    calendar = load_calendar(config, xshg=lambda: xshg)
    return Window(config, calendar=calendar, alert=notes.append), notes


EXTENDED = {
    "extra_holidays": [dt.date(2027, 1, 1)],
    "known_until": dt.date(2027, 12, 31),
}


def test_given_2026_12_31_then_open_and_no_alert(xshg) -> None:
    win, notes = window(xshg)

    assert win.state(at("2026-12-31 10:00")).open
    assert notes == []
    assert win.calendar_last_day == "2026-12-31"


def test_given_2027_01_04_without_extension_then_open_and_one_alert_a_day(xshg) -> None:
    win, notes = window(xshg)

    first = win.state(at("2027-01-04 09:00"))
    second = win.state(at("2027-01-04 10:00"))
    win.state(at("2027-01-05 10:00"))

    assert not first.open and "opens at 09:10" in first.reason
    assert second.open and "no calendar source knows it" in second.reason
    assert [n.topic for n in notes] == ["alert.calendar", "alert.calendar"]
    data = notes[0].data
    assert data["date"] == "2027-01-04" and data["last_day"] == "2026-12-31"
    assert data["beyond"] == "weekdays" and "extra_holidays" in data["message"]


def test_given_2027_01_04_with_extension_then_open_without_alert(xshg) -> None:
    win, notes = window(xshg, **EXTENDED)

    state = win.state(at("2027-01-04 10:00"))

    assert state.open and state.reason == "window open until 15:10"
    assert notes == []
    assert win.calendar_last_day == "2027-12-31"


def test_given_a_holiday_from_the_extension_then_the_window_stays_shut(xshg) -> None:
    win, notes = window(xshg, **EXTENDED)

    state = win.state(at("2027-01-01 10:00"))

    assert not state.open and "2027-01-01 is not a trading day" in state.reason
    assert notes == []


def test_given_beyond_refuse_then_shut_and_the_refusal_names_the_calendar_and_fix(xshg) -> None:
    win, notes = window(xshg, beyond="refuse")

    state = win.state(at("2027-01-04 10:00"))
    refused = refusal("outside_window", state.reason)

    assert not state.open
    assert "past the last day the trading calendar knows (2026-12-31" in refused
    assert 'beyond = "refuse"' in refused and "extra_holidays" in refused
    assert [n.data["beyond"] for n in notes] == ["refuse"]
    assert win.state(at("2026-12-31 10:00")).open


def test_given_the_last_30_days_then_a_warning_once_a_day_and_no_note(
    xshg, caplog: pytest.LogCaptureFixture
) -> None:
    win, notes = window(xshg)

    with caplog.at_level(logging.WARNING, "gateway.window"):
        win.state(at("2026-12-07 10:00"))
        win.state(at("2026-12-07 11:00"))
        win.state(at("2026-12-08 10:00"))

    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert "the trading calendar ends on 2026-12-31, in 24 days" in warnings[0]
    assert notes == []


@pytest.mark.parametrize(("broker", "loads"), [("xtquant", 2), ("sim", 1)])
def test_given_miniqmt_as_a_source_then_the_calendar_is_reloaded_once_a_day(
    xshg, broker: str, loads: int
) -> None:
    config = Config(gateway=GatewayConfig(broker=broker, window=WindowConfig(always_open=False)))  # type: ignore[arg-type]
    loaded: list[int] = []

    def load() -> TradingCalendar:
        loaded.append(1)
        return load_calendar(config, xshg=lambda: xshg)

    win = Window(config, calendar=load)
    win.state(at("2026-12-01 10:00"))
    win.state(at("2026-12-01 11:00"))
    win.state(at("2026-12-02 10:00"))

    assert len(loaded) == loads
