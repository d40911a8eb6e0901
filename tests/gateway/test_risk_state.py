"""The gate's memory: the kill switch across restarts, the submit rate limit, and daily caps."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from qmtbus.config import RiskConfig
from qmtbus.gateway.risk import RiskGate, trading_day
from qmtbus.gateway.risk.state import SHANGHAI
from qmtbus.protocol import LATEST_PRICE, PlaceOrder
from tests.gateway.test_risk import Book, Clock, buy, denied, make_gate, passes, sell


def _send(gate: RiskGate, order: PlaceOrder, book: Book) -> None:
    """What the gateway does with an order that passes: check, then record."""
    passes(gate, order, book)
    gate.record(order, book)


# -- kill switch across a restart ---------------------------------------------------------


def test_given_halt_then_a_new_gate_on_the_same_file_is_still_halted(tmp_path: Path) -> None:
    make_gate(tmp_path).set_trading("halted", "fat finger at 10:02")
    again = make_gate(tmp_path)
    assert (again.trading, again.trading_reason) == ("halted", "fat finger at 10:02")
    assert "fat finger at 10:02" in denied(again, buy(), Book(), "trading_state").message


def test_given_reduce_only_then_resume_then_a_restart_trades(tmp_path: Path) -> None:
    gate = make_gate(tmp_path)
    gate.set_trading("reduce_only", "")
    assert make_gate(tmp_path).trading == "reduce_only"
    gate.set_trading("active", "checked")
    passes(make_gate(tmp_path), buy(), Book())


def test_given_an_unreadable_state_file_then_the_gate_starts_halted(tmp_path: Path) -> None:
    (tmp_path / "risk-state.json").write_text("{not json")
    gate = make_gate(tmp_path)
    assert gate.trading == "halted"
    assert "unreadable" in denied(gate, buy(), Book(), "trading_state").message


def test_given_no_state_file_then_trading_is_active_and_the_file_is_written_atomically(
    tmp_path: Path,
) -> None:
    gate = make_gate(tmp_path)
    assert gate.trading == "active"
    gate.set_trading("halted", "x")
    saved = json.loads((tmp_path / "risk-state.json").read_text())
    assert saved["trading"] == "halted"
    assert [p.name for p in tmp_path.iterdir()] == ["risk-state.json"]  # no temp file left


# -- rate limit -----------------------------------------------------------------------


def test_given_2_orders_per_second_then_the_third_in_that_second_is_denied(
    tmp_path: Path,
) -> None:
    clock = Clock()
    gate = make_gate(tmp_path, clock, max_orders_per_second=2)
    _send(gate, buy(), Book())
    _send(gate, buy(), Book())
    denial = denied(gate, buy(), Book(), "max_orders_per_second")
    assert "2 orders per second" in denial.message and "0.50 s" in denial.message
    clock.advance(0.49)
    denied(gate, buy(), Book(), "max_orders_per_second")
    clock.advance(0.01)
    _send(gate, buy(), Book())


def test_given_a_denied_order_then_it_uses_no_rate_limit_token(tmp_path: Path) -> None:
    gate = make_gate(tmp_path, Clock(), max_orders_per_second=1)
    denied(gate, buy(150), Book(), "lot_size")
    _send(gate, buy(), Book())


def test_given_a_quiet_minute_then_the_burst_is_still_capped(tmp_path: Path) -> None:
    clock = Clock()
    gate = make_gate(tmp_path, clock, max_orders_per_second=3)
    clock.advance(60)
    for _ in range(3):
        _send(gate, buy(), Book())
    denied(gate, buy(), Book(), "max_orders_per_second")


# -- daily caps -----------------------------------------------------------------------


def test_given_max_orders_per_day_then_the_next_is_denied_until_the_next_day(
    tmp_path: Path,
) -> None:
    clock = Clock()
    gate = make_gate(tmp_path, clock, max_orders_per_day=2)
    _send(gate, buy(), Book())
    _send(gate, buy(), Book())
    assert "2 orders today" in denied(gate, buy(), Book(), "max_orders_per_day").message
    clock.advance(24 * 3600)
    _send(gate, buy(), Book())


def test_given_daily_counts_then_a_restart_restores_them_from_the_journal_not_the_file(
    tmp_path: Path,
) -> None:
    clock = Clock()
    gate = make_gate(tmp_path, clock, max_orders_per_day=1)
    order = buy()
    notional = gate.record(order, Book()) if gate.check(order, Book()) is None else 0.0
    assert notional > 0
    again = make_gate(tmp_path, clock, max_orders_per_day=1)
    passes(again, buy(), Book())  # the file holds no counters
    again.restore(trading_day(clock()), [("", notional)])  # what the journal's intents hold
    denied(again, buy(), Book(), "max_orders_per_day")


def test_given_counts_before_shanghai_midnight_then_they_reset_at_it(tmp_path: Path) -> None:
    clock = Clock(dt.datetime(2026, 11, 24, 23, 59, 59, tzinfo=SHANGHAI).timestamp())
    gate = make_gate(tmp_path, clock, max_orders_per_day=1)
    _send(gate, buy(), Book())
    denied(gate, buy(), Book(), "max_orders_per_day")
    clock.advance(1)  # 00:00:00 in Shanghai, still the 24th in UTC
    _send(gate, buy(), Book())


def test_trading_day_is_the_shanghai_date() -> None:
    late_utc = dt.datetime(2026, 11, 24, 16, 30, tzinfo=dt.UTC).timestamp()
    assert trading_day(late_utc) == "2026-11-25"


def test_given_max_turnover_per_day_then_the_order_that_would_pass_it_is_denied(
    tmp_path: Path,
) -> None:
    gate = make_gate(tmp_path, Clock(), max_turnover_per_day=20_000)
    book = Book(positions={"600000.SH": (1000, 1000)})
    _send(gate, buy(1000, 10.00), book)  # 10,000.00
    passes(gate, sell(1000, 10.00), book)  # exactly 20,000.00 in all
    denial = denied(gate, sell(1000, 10.01), book, "max_turnover_per_day")
    assert denial.message == (
        "turnover today 10,000.00 + this order 10,010.00 exceeds max_turnover_per_day 20,000.00"
    )


def test_given_per_strategy_order_cap_then_each_strategy_counts_alone(tmp_path: Path) -> None:
    gate = make_gate(tmp_path, Clock(), max_orders_per_day_per_strategy=1)
    _send(gate, buy(strategy_name="alpha"), Book())
    denial = denied(gate, buy(strategy_name="alpha"), Book(), "max_orders_per_day_per_strategy")
    assert "'alpha'" in denial.message
    _send(gate, buy(strategy_name="beta"), Book())
    _send(gate, buy(), Book())
    denied(gate, buy(), Book(), "max_orders_per_day_per_strategy")


def test_given_per_strategy_turnover_cap_then_one_fen_over_is_denied(tmp_path: Path) -> None:
    gate = make_gate(tmp_path, Clock(), max_turnover_per_day_per_strategy=10_000)
    _send(gate, buy(500, 10.00, strategy_name="alpha"), Book())
    passes(gate, buy(500, 10.00, strategy_name="alpha"), Book())
    denied(
        gate, buy(500, 10.01, strategy_name="alpha"), Book(), "max_turnover_per_day_per_strategy"
    )
    passes(gate, buy(1000, 10.00, strategy_name="beta"), Book())


def test_given_record_without_book_then_a_market_order_counts_at_its_checked_value(
    tmp_path: Path,
) -> None:
    gate = make_gate(tmp_path, Clock(), max_turnover_per_day=15_000)
    market = buy(1000, 0.0, price_type=LATEST_PRICE)  # 1,000 x last 10.00
    passes(gate, market, Book())
    gate.record(market)  # the gateway's call: the value comes from the check above
    assert "10,000.00" in denied(gate, buy(1000), Book(), "max_turnover_per_day").message


def test_given_risk_disabled_then_daily_caps_and_rate_are_off(tmp_path: Path) -> None:
    gate = RiskGate(
        RiskConfig(enabled=False, max_orders_per_day=1, max_orders_per_second=1),
        tmp_path / "risk-state.json",
        now=Clock(),
    )
    for _ in range(3):
        _send(gate, buy(), Book())
