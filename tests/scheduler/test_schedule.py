"""Fire times: cron in Shanghai time, gated by the trading calendar, computed without waiting."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from qmtbus.calendar import SHANGHAI, CalendarExpired, TradingCalendar, load_calendar
from qmtbus.config import CalendarConfig, Config
from qmtbus.scheduler.schedule import CronError, Schedule, parse_cron


@pytest.fixture(scope="module")
def xshg() -> TradingCalendar:
    return TradingCalendar.load()


def at(day: str, clock: str = "00:00:00") -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=SHANGHAI)


def schedule(cron: str, calendar: TradingCalendar, trading_days_only: bool = True) -> Schedule:
    return Schedule(parse_cron(cron), calendar, trading_days_only)


def days(fires: list[dt.datetime]) -> list[str]:
    return [f.date().isoformat() for f in fires]


def test_given_weekday_job_over_national_day_2026_then_fires_only_on_xshg_sessions(xshg):
    job = schedule("30 9 * * 1-5", xshg)

    fires = job.between(at("2026-09-27"), at("2026-10-13", "23:59:59"))

    # Mid-Autumn Festival Friday 09-25 and National Day 10-01..10-07 are closed;
    # trading resumes on Thursday 10-08.
    assert days(fires) == [
        "2026-09-28",
        "2026-09-29",
        "2026-09-30",
        "2026-10-08",
        "2026-10-09",
        "2026-10-12",
        "2026-10-13",
    ]
    assert all(f.time() == dt.time(9, 30) and f.tzinfo is not None for f in fires)
    assert fires[0].utcoffset() == dt.timedelta(hours=8)


def test_given_daily_job_on_make_up_working_saturday_then_it_does_not_run(xshg):
    # Saturday 2026-10-10 and Sunday 2026-09-20 are official make-up working days
    # in China, but the exchanges stay closed on them: XSHG has no session.
    job = schedule("0 9 * * *", xshg)

    assert days(job.between(at("2026-09-18"), at("2026-09-22", "23:59:59"))) == [
        "2026-09-18",
        "2026-09-21",
        "2026-09-22",
    ]
    assert days(job.between(at("2026-10-09", "12:00:00"), at("2026-10-13", "12:00:00"))) == [
        "2026-10-12",
        "2026-10-13",
    ]
    assert not xshg.is_trading_day(dt.date(2026, 10, 10))


def test_given_job_not_limited_to_trading_days_then_it_runs_through_holidays(xshg):
    job = schedule("0 9 * * *", xshg, trading_days_only=False)

    fires = job.between(at("2026-09-30"), at("2026-10-11"))

    assert len(fires) == 11  # 10-01 .. 10-11, holiday and make-up Saturday alike


def test_given_classic_cron_weekdays_then_1_to_5_is_monday_to_friday_and_0_is_sunday(xshg):
    weekdays = schedule("0 12 * * 1-5", xshg, trading_days_only=False)
    sundays = schedule("0 12 * * 0", xshg, trading_days_only=False)
    weekend = schedule("0 12 * * 6,7", xshg, trading_days_only=False)
    week = (at("2026-11-22"), at("2026-11-28", "23:00:00"))  # Sunday .. Saturday

    assert [f.strftime("%a") for f in weekdays.between(*week)] == [
        "Mon",
        "Tue",
        "Wed",
        "Thu",
        "Fri",
    ]
    assert [f.strftime("%a") for f in sundays.between(at("2026-11-21"), at("2026-11-28"))] == [
        "Sun"
    ]
    assert [f.strftime("%a") for f in weekend.between(*week)] == ["Sun", "Sat"]


def test_given_six_fields_then_the_first_is_seconds(xshg):
    job = schedule("15,45 30 9 * * *", xshg)

    fires = job.between(at("2026-11-24", "09:30:00"), at("2026-11-24", "09:31:00"))

    assert [f.time() for f in fires] == [dt.time(9, 30, 15), dt.time(9, 30, 45)]


def test_given_next_after_a_fire_time_then_it_is_strictly_later(xshg):
    job = schedule("0 9 * * *", xshg)

    assert job.next_after(at("2026-11-24", "09:00:00")) == at("2026-11-25", "09:00:00")
    assert job.next_after(at("2026-11-24", "08:59:59.5")) == at("2026-11-24", "09:00:00")


def test_given_per_second_job_then_a_holiday_week_is_skipped_day_by_day_not_second_by_second(
    xshg,
):
    job = schedule("* * * * * *", xshg)

    began = time.monotonic()
    fire = job.next_after(at("2026-10-01"))

    assert fire == at("2026-10-08")
    assert time.monotonic() - began < 0.5


def test_given_beyond_refuse_and_a_date_past_the_calendar_then_trading_day_job_is_refused(xshg):
    refusing = TradingCalendar(xshg.layers, beyond="refuse")
    job = schedule("0 9 * * *", refusing)
    last = xshg.last_day
    late_evening = dt.datetime.combine(last, dt.time(23, 0), SHANGHAI)

    with pytest.raises(CalendarExpired) as refused:
        job.next_after(late_evening)

    assert refused.value.last_day == last
    assert refused.value.day > last
    assert "extra_holidays" in str(refused.value) and "known_until" in str(refused.value)
    with pytest.raises(CalendarExpired):
        refusing.is_trading_day(last + dt.timedelta(days=1))


def test_given_2026_12_31_evening_without_extension_then_the_job_fires_on_new_years_day(xshg):
    job = schedule("0 9 * * *", xshg)

    # no source knows 2027: a weekday counts as a trading day (loudly, elsewhere)
    assert job.next_after(at("2026-12-31", "23:00:00")) == at("2027-01-01", "09:00:00")


def test_given_a_holiday_from_the_extension_then_the_job_skips_it_to_2027_01_04(xshg):
    extended = load_calendar(
        Config(
            calendar=CalendarConfig(
                extra_holidays=[dt.date(2027, 1, 1)], known_until=dt.date(2027, 12, 31)
            )
        ),
        xshg=lambda: xshg.layers[0],
    )
    job = schedule("0 9 * * *", extended)

    assert days(job.between(at("2026-12-30"), at("2027-01-05", "23:00:00"))) == [
        "2026-12-30",
        "2026-12-31",
        "2027-01-04",
        "2027-01-05",
    ]


def test_given_date_past_the_calendar_then_every_day_job_still_runs(xshg):
    job = schedule("0 9 * * *", xshg, trading_days_only=False)
    after_last = dt.datetime.combine(xshg.last_day, dt.time(23, 0), SHANGHAI)

    assert job.next_after(after_last) == dt.datetime.combine(
        xshg.last_day + dt.timedelta(days=1), dt.time(9, 0), SHANGHAI
    )


def test_given_scheduler_down_over_a_weekend_then_missed_spans_first_to_latest(xshg):
    every_minute = schedule("* 9-14 * * *", xshg)
    daily = schedule("30 9 * * *", xshg)
    friday, monday = at("2026-11-20", "10:00:00"), at("2026-11-23", "09:31:30")

    assert every_minute.missed(friday, monday) == (
        at("2026-11-20", "10:01:00"),
        at("2026-11-23", "09:31:00"),
    )
    assert daily.missed(friday, monday) == (at("2026-11-23", "09:30:00"),) * 2
    assert daily.missed(at("2026-11-23", "09:30:00"), monday) is None


def test_given_per_second_job_down_a_week_then_missed_is_found_quickly(xshg):
    job = schedule("* * * * * *", xshg, trading_days_only=False)

    began = time.monotonic()
    missed = job.missed(at("2026-11-16"), at("2026-11-23", "09:00:00.5"))

    assert missed == (at("2026-11-16", "00:00:01"), at("2026-11-23", "09:00:00"))
    assert time.monotonic() - began < 0.5


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("0 9 * *", "4 fields"),
        ("61 9 * * *", "minute field '61'"),
        ("0 25 * * *", "hour field '25'"),
        ("0 9 * * 8", "out of range 0-7"),
        ("0 9 * * 5-1", "runs backwards"),
        ("0 9 * * funday", "not a number 0-7"),
    ],
)
def test_given_bad_cron_then_the_error_names_the_field(cron, says):
    with pytest.raises(CronError, match=says):
        parse_cron(cron)
