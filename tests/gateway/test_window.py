"""The connection window: XSHG trading days and configured times, never a guess."""

from __future__ import annotations

import datetime as dt

import pytest

from qmtbus.config import WindowConfig
from qmtbus.gateway.window import SHANGHAI, Window

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


def test_given_a_date_past_the_calendar_then_the_window_stays_shut_and_says_why() -> None:
    state = WINDOW.state(at("2040-01-02 10:00"))
    assert not state.open
    assert "upgrade exchange_calendars" in state.reason


def test_given_always_open_then_open_at_any_hour() -> None:
    assert Window(WindowConfig()).state(at("2026-10-05 03:00")).open
