"""P&L views by average cost: the worked example of docs/recorder.md, through the real writer.

Two buys and a partial sell of 600000.SH at the simulator's default fees
(commission 0.025 % min 5 CNY, transfer 0.001 %, stamp duty 0.05 % on sells):

    buy  1000 @ 10.00 yesterday  amount 10000.00 fees 5.10  cost 10005.10
    buy   500 @ 10.40 today      amount  5200.00 fees 5.05  cost 15210.15 (1500 sh)
    sell  600 @ 10.80 today      amount  6480.00 fees 8.30  out 15210.15 x 600/1500 = 6084.06
    realized 6480.00 - 8.30 - 6084.06 = 387.64; left 900 sh, cost 9126.09
    last 10.50: market value 9450.00, unrealized 323.91
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qmtbus import protocol
from qmtbus.recorder.state import Committed
from qmtbus.recorder.writer import Batch, Database, Writer

E = "20261124T010000Z-pnl000"
CODE = "600000.SH"
DAY_NS = 86_400 * 10**9
_accounts = itertools.count()


@pytest.fixture
def writer(tmp_path: Path) -> Writer:
    db = Database(str(tmp_path / "r.duckdb"))
    db.setup()
    return Writer(db, Committed(tmp_path / "status.json"), retry_seconds=0.1)


def write(writer: Writer, *events: protocol.Event) -> None:
    batch = Batch()
    for ev in events:
        batch.add(ev, ev.epoch, ev.seq)
    writer.write(batch)


def rows(writer: Writer, query: str) -> list[tuple[Any, ...]]:
    return writer.db.con.execute(query).fetchall()


def fill(
    seq: int, ts: int, side: int, volume: int, price: float, fees: float, strategy: str
) -> protocol.TradeEvent:
    return protocol.TradeEvent(
        account_id="A1",
        epoch=E,
        seq=seq,
        ts=ts,
        stock_code=CODE,
        order_type=side,
        traded_id=f"T{seq}",
        order_id=seq,
        traded_price=price,
        traded_volume=volume,
        traded_amount=round(volume * price, 2),
        commission=fees,
        strategy_name=strategy,
    )


def worked_example(writer: Writer) -> None:
    now = protocol.now_ns()
    yesterday = now - DAY_NS
    write(
        writer,
        fill(1, yesterday, protocol.STOCK_BUY, 1000, 10.00, 5.10, "alpha"),
        protocol.AssetEvent(
            account_id="A1",
            epoch=E,
            seq=2,
            ts=yesterday + 1,
            cash=989994.90,
            market_value=10000.0,
            total_asset=999994.90,
        ),
        fill(3, now - 3_000, protocol.STOCK_BUY, 500, 10.40, 5.05, "beta"),
        fill(4, now - 2_000, protocol.STOCK_SELL, 600, 10.80, 8.30, "alpha"),
        protocol.PositionEvent(
            account_id="A1",
            epoch=E,
            seq=5,
            ts=now - 1_000,
            stock_code=CODE,
            volume=900,
            avg_price=10.1401,
            last_price=10.80,
        ),
    )
    # the recorder's own mark a moment later: the price is now 10.50
    writer.db.con.execute(
        "INSERT INTO position_marks VALUES (now(), 'A1', ?, 900, 0, 10.1401, 10.50, 9450.0)",
        [CODE],
    )
    writer.db.con.execute(
        "INSERT INTO equity_marks VALUES (now(), 'A1', 981256.45, 0, 9450.0, 990706.45, 1)"
    )


def test_given_two_buys_and_a_partial_sell_then_realized_and_unrealized_match_the_hand_sums(
    writer: Writer,
) -> None:
    worked_example(writer)
    ledger = rows(
        writer,
        "SELECT side, volume_after, round(cost_after, 2), round(realized, 2) FROM pnl_ledger",
    )
    assert ledger == [
        ("buy", 1000, 10005.10, 0.0),
        ("buy", 1500, 15210.15, 0.0),
        ("sell", 900, 9126.09, 387.64),
    ]
    today = rows(
        writer,
        "SELECT stock_code, volume, avg_cost, cost, last_price, market_value, unrealized, "
        "realized_today, fees_today, fills_today, realized_total FROM pnl_today",
    )
    assert today == [(CODE, 900, 10.1401, 9126.09, 10.50, 9450.0, 323.91, 387.64, 13.35, 2, 387.64)]


def test_given_fills_over_two_days_then_pnl_daily_has_realized_and_the_asset_change(
    writer: Writer,
) -> None:
    worked_example(writer)
    daily = rows(
        writer,
        "SELECT trading_day, fills, bought, sold, fees, realized, cash_flow, "
        "closing_total_asset, asset_change FROM pnl_daily",
    )
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    assert daily == [
        (today - dt.timedelta(days=1), 1, 10000.0, 0.0, 5.10, 0.0, -10005.10, 999994.90, None),
        (today, 2, 5200.0, 6480.0, 13.35, 387.64, 1266.65, 990706.45, -9288.45),
    ]


def test_given_two_strategies_then_each_has_its_share_and_they_add_up_to_the_account(
    writer: Writer,
) -> None:
    worked_example(writer)
    by_strategy = rows(
        writer,
        "SELECT strategy_name, fills, fees, realized, market_value, unrealized "
        "FROM pnl_by_strategy WHERE trading_day = CAST(timezone('Asia/Shanghai', now()) AS DATE)",
    )
    # alpha bought 1000 and sold 600 (holds 400), beta bought 500; one average cost
    assert by_strategy == [
        ("alpha", 1, 8.30, 387.64, 4200.0, 143.96),
        ("beta", 1, 5.05, 0.0, 5250.0, 179.95),
    ]
    unrealized = sum(r[5] for r in by_strategy)
    assert unrealized == pytest.approx(323.91, abs=0.005)


def test_given_shares_held_before_the_record_then_the_book_opens_at_the_brokers_cost(
    writer: Writer,
) -> None:
    now = protocol.now_ns()
    write(
        writer,
        protocol.PositionEvent(
            account_id="A1",
            epoch=E,
            seq=1,
            ts=now - 5_000,
            stock_code=CODE,
            volume=1000,
            can_use_volume=1000,
            avg_price=10.0051,
            last_price=10.0,
        ),
        fill(2, now - 4_000, protocol.STOCK_SELL, 400, 10.80, 7.24, ""),
    )
    (realized, left, uncovered), *_ = rows(
        writer, "SELECT round(realized, 2), volume_after, uncovered_volume FROM pnl_ledger"
    )
    # 4320.00 - 7.24 - 400 x 10.0051
    assert (realized, left, uncovered) == (310.72, 600, 0)


def test_given_a_sell_beyond_what_the_record_knows_then_it_is_marked_uncovered(
    writer: Writer,
) -> None:
    now = protocol.now_ns()
    write(writer, fill(1, now, protocol.STOCK_SELL, 300, 10.0, 6.53, "x"))
    assert rows(writer, "SELECT volume_after, uncovered_volume FROM pnl_ledger") == [(0, 300)]


def test_given_a_holding_never_traded_then_it_shows_at_the_brokers_cost_under_no_strategy(
    writer: Writer,
) -> None:
    now = protocol.now_ns()
    write(
        writer,
        protocol.PositionEvent(
            account_id="A1", epoch=E, seq=1, ts=now - 5_000, stock_code="000001.SZ",
            volume=2000, avg_price=11.0, last_price=11.5,
        ),
        fill(2, now - 4_000, protocol.STOCK_BUY, 1000, 10.00, 5.10, "alpha"),
    )  # fmt: skip
    held = rows(writer, "SELECT stock_code, volume, cost, unrealized FROM pnl_today")
    assert held == [("000001.SZ", 2000, 22000.0, 1000.0), (CODE, 1000, 10005.10, None)]
    by_strategy = rows(
        writer,
        "SELECT strategy_name, market_value, unrealized FROM pnl_by_strategy "
        "WHERE market_value IS NOT NULL",
    )
    assert by_strategy == [("", 23000.0, 1000.0), ("alpha", 0.0, 0.0)]


def reference_book(fills: list[tuple[bool, int, float, float]]) -> list[tuple[int, float, float]]:
    """Average cost by hand, one fill at a time: (volume, cost, realized) after each."""
    volume, cost, out = 0, 0.0, []
    for buy, shares, amount, fees in fills:
        if buy:
            volume, cost, realized = volume + shares, cost + amount + fees, 0.0
        else:
            taken = min(shares, volume)
            out_cost = cost * taken / volume if volume else 0.0
            realized = amount - fees - out_cost
            volume, cost = volume - taken, (cost - out_cost if volume > taken else 0.0)
        out.append((volume, cost, realized))
    return out


_fill = st.tuples(
    st.booleans(),
    st.integers(1, 50).map(lambda lots: lots * 100),
    st.floats(1.0, 200.0).map(lambda p: round(p, 2)),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(_fill, min_size=1, max_size=30))
def test_given_any_fills_then_the_ledger_is_the_hand_computed_average_cost_book(
    writer: Writer, steps: list[tuple[bool, int, float]]
) -> None:
    account = f"H{next(_accounts)}"
    now = protocol.now_ns()
    fills, events = [], []
    for i, (buy, shares, price) in enumerate(steps):
        amount = round(shares * price, 2)
        fees = round(
            max(amount * 0.00025, 5.0) + amount * 0.00001 + (0 if buy else amount * 0.0005), 2
        )
        fills.append((buy, shares, amount, fees))
        side = protocol.STOCK_BUY if buy else protocol.STOCK_SELL
        event = fill(i + 1, now + i * 1000, side, shares, price, fees, "")
        events.append(msgspec.structs.replace(event, account_id=account, epoch=f"E{account}"))
    write(writer, *events)
    got = rows(
        writer,
        f"SELECT volume_after, cost_after, realized FROM pnl_ledger WHERE account_id = '{account}' "
        "ORDER BY n",
    )
    for (volume, cost, realized), (want_v, want_c, want_r) in zip(
        got, reference_book(fills), strict=True
    ):
        assert volume == want_v
        assert cost == pytest.approx(want_c, abs=1e-6)
        assert realized == pytest.approx(want_r, abs=1e-6)
