"""The mark-to-market curve: the recorder values the account every mark_interval seconds
(a real gateway and recorder), in the exchange's sessions only where they apply."""

from __future__ import annotations

import datetime as dt
import itertools

import duckdb
import pytest

from qmtbus.calendar import SHANGHAI, TradingCalendar
from qmtbus.config import Config, GatewayConfig, SimConfig
from qmtbus.sessions import TRADING_HOURS, hours_apply, within
from tests.recorder.helpers import sql, start_recorder
from tests.support import Proc, Stack, wait_for


def test_given_a_mark_interval_then_equity_marks_come_steadily_with_the_brokers_asset(
    stack: Stack, gateway: Proc
) -> None:
    stack.write_config(recorder={"mark_interval": 0.5})
    recorder = start_recorder(stack)
    wait_for(lambda: sql(stack, "SELECT count(*) FROM equity_marks")[0][0] >= 6, 30, "6 marks")
    rows = sql(
        stack,
        "SELECT epoch_ms(time), account_id, cash, total_asset, positions FROM equity_marks "
        "ORDER BY time",
    )
    assert recorder.stop() == 0
    times = [r[0] for r in rows]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # one mark per interval (on its boundary; a busy machine may be late, never early)
    assert all(g >= 400 for g in gaps), gaps
    assert {r[1] for r in rows} == {"SIM0001"}
    assert rows[-1][2] == rows[-1][3] == 1_000_000.0 and rows[-1][4] == 0  # no position yet


def test_given_mark_interval_zero_then_no_marks_are_taken(stack: Stack, gateway: Proc) -> None:
    stack.write_config(recorder={"mark_interval": 0})
    recorder = start_recorder(stack)
    assert "marking the account" not in recorder.log()
    assert sql(stack, "SELECT count(*) FROM equity_marks") == [[0]]
    assert recorder.stop() == 0


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        (dt.datetime(2026, 11, 24, 9, 29), False),  # Tuesday, before the open
        (dt.datetime(2026, 11, 24, 9, 30), True),
        (dt.datetime(2026, 11, 24, 11, 31), False),  # lunch
        (dt.datetime(2026, 11, 24, 14, 59), True),
        (dt.datetime(2026, 11, 24, 15, 1), False),
        (dt.datetime(2026, 11, 28, 10, 0), False),  # Saturday
        (dt.datetime(2026, 10, 1, 10, 0), False),  # National Day: a weekday, no session
    ],
)
def test_given_the_exchange_hours_then_marks_fall_in_sessions_on_trading_days_only(
    when: dt.datetime, inside: bool
) -> None:
    calendar = TradingCalendar.load()
    assert within(when.replace(tzinfo=SHANGHAI), calendar) is inside


def test_given_the_call_auction_then_it_counts_as_trading_hours_for_alerts() -> None:
    auction = dt.datetime(2026, 11, 24, 9, 20, tzinfo=SHANGHAI)
    assert within(auction, None, TRADING_HOURS) and not within(auction, None)


def test_given_the_simulator_without_market_hours_then_hours_do_not_apply() -> None:
    assert not hours_apply(Config())
    assert hours_apply(Config(sim=SimConfig(market_hours=True)))
    assert hours_apply(
        Config(gateway=GatewayConfig(broker="xtquant"))  # config checks are load_config's
    )


def test_given_marks_then_the_snapshot_file_keeps_up_with_them(stack: Stack, gateway: Proc) -> None:
    stack.write_config(recorder={"mark_interval": 0.5, "snapshot_interval": 0.5})
    recorder = start_recorder(stack)
    snapshot = stack.data_dir / "snapshot.duckdb"

    def in_snapshot() -> int:
        if not snapshot.exists():
            return 0
        with duckdb.connect(str(snapshot), read_only=True) as con:
            return int(con.execute("SELECT count(*) FROM equity_marks").fetchall()[0][0])

    first = wait_for(in_snapshot, 30, "marks in the snapshot")
    wait_for(lambda: in_snapshot() >= first + 3, 30, "newer marks in the snapshot")
    assert recorder.stop() == 0
