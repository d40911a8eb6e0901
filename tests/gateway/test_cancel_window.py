"""The exchange's no-cancel windows as a pure function of the time: 09:20-09:25 and
14:57-15:00 Shanghai on weekdays, each refusal naming its window."""

from __future__ import annotations

import datetime as dt

import pytest

from qmtbus.gateway import ashare
from qmtbus.gateway.broker.sim.hours import SHANGHAI

TUESDAY = dt.date(2026, 11, 24)


def at(hh: int, mm: int, ss: int = 0, day: dt.date = TUESDAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hh, mm, ss), SHANGHAI)


@pytest.mark.parametrize(
    ("hh", "mm", "ss", "window"),
    [
        (9, 19, 59, None),
        (9, 20, 0, "09:20 and 09:25"),
        (9, 24, 59, "09:20 and 09:25"),
        (9, 25, 0, None),
        (14, 56, 59, None),
        (14, 57, 0, "14:57 and 15:00"),
        (14, 59, 59, "14:57 and 15:00"),
        (15, 0, 0, None),
    ],
)
def test_given_a_shanghai_time_then_a_cancel_is_refused_only_inside_a_window_named(
    hh: int, mm: int, ss: int, window: str | None
) -> None:
    why = ashare.cancel_window(at(hh, mm, ss))
    if window is None:
        assert why is None
    else:
        assert why is not None and window in why and "no cancels" in why


def test_given_utc_time_then_it_is_read_as_shanghai_time() -> None:
    utc = at(14, 58).astimezone(dt.UTC)
    assert utc.hour == 6
    assert ashare.cancel_window(utc) is not None


def test_given_a_saturday_then_no_window_applies() -> None:
    assert ashare.cancel_window(at(14, 58, day=dt.date(2026, 11, 28))) is None
