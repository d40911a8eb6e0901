"""Each pre-trade rule at its boundary: just inside passes, just outside is denied by name."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from qmtbus.config import RiskConfig
from qmtbus.gateway.risk import RULE_NAMES, Denial, RiskGate
from qmtbus.gateway.risk.state import SHANGHAI, Totals
from qmtbus.protocol import FIX_PRICE, LATEST_PRICE, STOCK_BUY, STOCK_SELL, PlaceOrder

# Tuesday 2026-11-24, 10:00 in Shanghai: continuous trading.
MORNING = dt.datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI).timestamp()


class Clock:
    """A settable wall clock, so no test sleeps."""

    def __init__(self, t: float = MORNING) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass(frozen=True)
class Instrument:
    """Same attributes as gateway.broker.Instrument."""

    stock_code: str
    instrument_name: str = ""
    last_price: float = 10.0
    prev_close: float = 10.0
    up_stop_price: float = 11.0
    down_stop_price: float = 9.0
    price_tick: float = 0.01


@dataclass
class Book:
    """What the gateway knows: instruments, positions (volume, can_use_volume), free cash."""

    instruments: dict[str, Instrument] = field(
        default_factory=lambda: {"600000.SH": Instrument("600000.SH")}
    )
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    free_cash: float = 1_000_000.0

    def instrument(self, stock_code: str) -> Instrument | None:
        return self.instruments.get(stock_code)

    def can_use_volume(self, stock_code: str) -> int:
        return self.positions.get(stock_code, (0, 0))[1]

    def volume(self, stock_code: str) -> int:
        return self.positions.get(stock_code, (0, 0))[0]

    def cash(self) -> float:
        return self.free_cash


_ids = iter(range(1, 1_000_000))


def buy(volume: int = 100, price: float = 10.0, **kw: Any) -> PlaceOrder:
    return _order(STOCK_BUY, volume, price, **kw)


def sell(volume: int = 100, price: float = 10.0, **kw: Any) -> PlaceOrder:
    return _order(STOCK_SELL, volume, price, **kw)


def _order(side: int, volume: int, price: float, **kw: Any) -> PlaceOrder:
    fields: dict[str, Any] = {
        "client_order_id": f"t{next(_ids)}",
        "stock_code": "600000.SH",
        "order_type": side,
        "order_volume": volume,
        "price_type": FIX_PRICE,
        "price": price,
    }
    fields.update(kw)
    return PlaceOrder(**fields)


def make_gate(tmp_path: Path, clock: Clock | None = None, **risk: Any) -> RiskGate:
    return RiskGate(RiskConfig(**risk), tmp_path / "risk-state.json", now=clock or Clock())


def denied(gate: RiskGate, order: PlaceOrder, book: Book, rule: str) -> Denial:
    denial = gate.check(order, book)
    assert denial is not None, f"expected {rule} to deny {order}"
    assert denial.rule == rule, denial
    return denial


def passes(gate: RiskGate, order: PlaceOrder, book: Book) -> None:
    denial = gate.check(order, book)
    assert denial is None, denial


# -- trading state (the kill switch) ---------------------------------------------------


def test_given_active_trading_then_a_plain_buy_passes(tmp_path: Path) -> None:
    passes(make_gate(tmp_path), buy(), Book())


def test_given_halted_then_buys_and_sells_are_denied_with_the_reason(tmp_path: Path) -> None:
    gate = make_gate(tmp_path)
    gate.set_trading("halted", "broker incident")
    book = Book(positions={"600000.SH": (1000, 1000)})
    assert "broker incident" in denied(gate, buy(), book, "trading_state").message
    assert "halted" in denied(gate, sell(), book, "trading_state").message


def test_given_reduce_only_then_buys_are_denied_and_sells_up_to_the_position_pass(
    tmp_path: Path,
) -> None:
    gate = make_gate(tmp_path)
    gate.set_trading("reduce_only", "end of month")
    book = Book(positions={"600000.SH": (300, 300)})
    denied(gate, buy(), book, "trading_state")
    passes(gate, sell(300), book)
    denial = denied(gate, sell(400), book, "trading_state")
    assert "400" in denial.message and "300" in denial.message


def test_given_resume_then_buys_pass_again(tmp_path: Path) -> None:
    gate = make_gate(tmp_path)
    gate.set_trading("halted", "x")
    gate.set_trading("active", "")
    assert gate.trading == "active"
    passes(gate, buy(), Book())


def test_given_an_unknown_trading_state_then_set_trading_refuses(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="trading state"):
        make_gate(tmp_path).set_trading("paused", "")  # type: ignore[arg-type]


def test_given_risk_disabled_then_rules_are_skipped_but_halt_holds(tmp_path: Path) -> None:
    gate = make_gate(tmp_path, enabled=False, deny_symbols=["600000.SH"])
    passes(gate, buy(150, 99.0), Book(free_cash=0.0))
    gate.set_trading("halted", "")
    denied(gate, buy(), Book(), "trading_state")


# -- symbol lists ---------------------------------------------------------------------


def test_given_deny_symbols_then_matching_codes_are_denied(tmp_path: Path) -> None:
    gate = make_gate(tmp_path, deny_symbols=["600000.SH", "688*"])
    book = Book(instruments={c: Instrument(c) for c in ("600000.SH", "600001.SH", "688001.SH")})
    assert "600000.SH" in denied(gate, buy(), book, "deny_symbols").message
    denied(gate, buy(200, stock_code="688001.SH"), book, "deny_symbols")
    passes(gate, buy(stock_code="600001.SH"), book)


def test_given_allow_symbols_then_only_listed_codes_pass(tmp_path: Path) -> None:
    gate = make_gate(tmp_path, allow_symbols=["600000.SH"])
    book = Book(instruments={c: Instrument(c) for c in ("600000.SH", "600001.SH")})
    passes(gate, buy(), book)
    assert "600001.SH" in denied(gate, buy(stock_code="600001.SH"), book, "allow_symbols").message


# -- lots and ticks -------------------------------------------------------------------


def test_given_main_board_buy_then_lots_of_100_pass_and_odd_volumes_are_denied(
    tmp_path: Path,
) -> None:
    gate = make_gate(tmp_path)
    passes(gate, buy(200), Book())
    assert "150" in denied(gate, buy(150), Book(), "lot_size").message


def test_given_star_buy_then_200_passes_and_199_is_denied(tmp_path: Path) -> None:
    gate = make_gate(tmp_path)
    book = Book(instruments={"688001.SH": Instrument("688001.SH")})
    passes(gate, buy(200, stock_code="688001.SH"), book)
    passes(gate, buy(201, stock_code="688001.SH"), book)
    denied(gate, buy(199, stock_code="688001.SH"), book, "lot_size")


def test_given_an_odd_lot_position_then_it_sells_only_whole(tmp_path: Path) -> None:
    gate = make_gate(tmp_path)
    book = Book(positions={"600000.SH": (150, 150)})
    passes(gate, sell(150), book)
    passes(gate, sell(100), book)
    passes(gate, sell(50), book)
    assert "all 50 odd shares" in denied(gate, sell(30), book, "lot_size").message


def test_given_a_limit_price_then_it_must_sit_on_the_tick(tmp_path: Path) -> None:
    gate = make_gate(tmp_path)
    passes(gate, buy(price=10.01), Book())
    assert "0.01" in denied(gate, buy(price=10.005), Book(), "tick_size").message
    denied(gate, buy(price=0.0), Book(), "tick_size")


def test_given_a_fund_then_the_tick_is_a_tenth_of_a_fen(tmp_path: Path) -> None:
    gate = make_gate(tmp_path)
    fund = Instrument(
        "510300.SH",
        last_price=3.0,
        prev_close=3.0,
        up_stop_price=3.3,
        down_stop_price=2.7,
        price_tick=0.001,
    )
    book = Book(instruments={"510300.SH": fund})
    passes(gate, buy(price=3.001, stock_code="510300.SH"), book)
    denied(gate, buy(price=3.0005, stock_code="510300.SH"), book, "tick_size")


def test_given_lot_and_tick_checks_off_then_odd_lots_pass(tmp_path: Path) -> None:
    passes(make_gate(tmp_path, check_lot_and_tick=False), buy(150, 10.005), Book())


# -- price limits and fat finger ------------------------------------------------------


def test_given_the_day_limits_then_prices_at_them_pass_and_beyond_are_denied(
    tmp_path: Path,
) -> None:
    gate = make_gate(tmp_path, fat_finger_pct=0)
    passes(gate, buy(price=11.00), Book())
    passes(gate, sell(price=9.00), Book(positions={"600000.SH": (100, 100)}))
    up = denied(gate, buy(price=11.01), Book(), "price_limits")
    assert "11.01" in up.message and "11.00" in up.message
    assert "9.00" in denied(gate, buy(price=8.99), Book(), "price_limits").message


def test_given_the_broker_gives_no_stop_prices_then_none_are_invented(tmp_path: Path) -> None:
    # The first days after an IPO have no price limit: trust the broker, never guess 10%.
    gate = make_gate(tmp_path, fat_finger_pct=0)
    inst = Instrument("301999.SZ", up_stop_price=0.0, down_stop_price=0.0)
    book = Book(instruments={"301999.SZ": inst})
    passes(gate, buy(price=30.00, stock_code="301999.SZ"), book)


def test_given_no_market_data_then_price_limits_deny_rather_than_guess(tmp_path: Path) -> None:
    denial = denied(make_gate(tmp_path), buy(), Book(instruments={}), "price_limits")
    assert "no market price for 600000.SH" in denial.message


def test_given_fat_finger_5pct_then_5pct_from_last_passes_and_more_is_denied(
    tmp_path: Path,
) -> None:
    gate = make_gate(tmp_path, fat_finger_pct=5.0)
    passes(gate, buy(price=10.50), Book())
    high = denied(gate, buy(price=10.51), Book(), "fat_finger")
    assert "10.51" in high.message and "5.10%" in high.message and "10.00" in high.message


def test_given_a_buy_far_below_or_a_sell_far_above_the_market_then_it_rests_not_a_fat_finger(
    tmp_path: Path,
) -> None:
    gate = make_gate(tmp_path, fat_finger_pct=5.0)
    held = Book(positions={"600000.SH": (1000, 1000)})
    passes(gate, buy(price=9.49), held)
    passes(gate, sell(price=10.51), held)
    low = denied(gate, sell(price=9.49), held, "fat_finger")
    assert "sell price 9.49 is 5.10% from the last price 10.00" in low.message


def test_given_a_price_type_the_exchange_does_not_take_then_price_type_denies_it(
    tmp_path: Path,
) -> None:
    gate = make_gate(tmp_path)
    denial = denied(gate, buy(price_type=99), Book(), "price_type")
    assert denial.message == "price_type 99 is not taken on SH (use one of 5, 11, 42, 43)"
    denied(gate, buy(price_type=46, price=0.0), Book(), "price_type")  # SZ-only type on SH
    passes(gate, buy(1000, 0.0, price_type=42), Book())
    passes(gate, buy(1000, 0.0, price_type=46, stock_code="000001.SZ"),
           Book(instruments={"000001.SZ": Instrument("000001.SZ")}))  # fmt: skip


def test_given_fat_finger_off_then_any_price_inside_limits_passes(tmp_path: Path) -> None:
    passes(make_gate(tmp_path, fat_finger_pct=0), buy(price=10.99), Book())


# -- sellable volume and cash ---------------------------------------------------------


def test_given_t_plus_1_then_sells_within_can_use_volume_pass(tmp_path: Path) -> None:
    gate = make_gate(tmp_path)
    book = Book(positions={"600000.SH": (1000, 300)})  # 700 bought today
    passes(gate, sell(300), book)
    denial = denied(gate, sell(400), book, "sellable")
    assert "400" in denial.message and "300" in denial.message


def test_given_buy_then_notional_plus_fees_must_fit_free_cash(tmp_path: Path) -> None:
    gate = make_gate(tmp_path)
    # 1,000 x 10.00 = 10,000.00; fees: commission minimum 5.00 + transfer fee 0.10
    passes(gate, buy(1000), Book(free_cash=10_005.10))
    denial = denied(gate, buy(1000), Book(free_cash=10_005.09), "cash")
    assert denial.message == (
        "buy notional 10,000.00 + estimated fees 5.10 exceeds free cash 10,005.09"
    )


def test_given_a_sell_then_cash_is_not_checked(tmp_path: Path) -> None:
    book = Book(positions={"600000.SH": (100, 100)}, free_cash=0.0)
    passes(make_gate(tmp_path), sell(100), book)


# -- per-order caps -------------------------------------------------------------------


def test_given_max_order_volume_then_more_is_denied(tmp_path: Path) -> None:
    gate = make_gate(tmp_path, max_order_volume=1000)
    passes(gate, buy(1000), Book())
    assert "1,100" in denied(gate, buy(1100), Book(), "max_order_volume").message


def test_given_max_order_notional_then_one_tick_more_is_denied(tmp_path: Path) -> None:
    gate = make_gate(tmp_path, max_order_notional=10_000)
    passes(gate, buy(1000, 10.00), Book())
    denial = denied(gate, buy(1000, 10.01), Book(), "max_order_notional")
    assert denial.message == "order notional 10,010.00 exceeds max_order_notional 10,000.00"


def test_given_a_market_order_then_it_is_valued_at_the_last_price(tmp_path: Path) -> None:
    gate = make_gate(tmp_path, max_order_notional=10_000)
    market = buy(1000, 0.0, price_type=LATEST_PRICE)
    passes(gate, market, Book())
    pricier = Book(instruments={"600000.SH": Instrument("600000.SH", last_price=10.01)})
    assert "10,010.00" in denied(gate, market, pricier, "max_order_notional").message
    assert (
        "no market price"
        in denied(gate, market, Book(instruments={}), "max_order_notional").message
    )


def test_given_no_trade_yet_then_fat_finger_measures_from_the_previous_close(
    tmp_path: Path,
) -> None:
    gate = make_gate(tmp_path, fat_finger_pct=5.0)
    book = Book(instruments={"600000.SH": Instrument("600000.SH", last_price=0.0)})
    passes(gate, buy(price=10.50), book)
    assert "previous close 10.00" in denied(gate, buy(price=10.51), book, "fat_finger").message


# -- the user's reference -------------------------------------------------------------


def test_docs_list_every_rule_and_every_risk_key() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "risk-and-security.md").read_text()
    for name in (*RULE_NAMES, *RiskConfig.__struct_fields__):
        assert f"`{name}`" in doc, f"docs/risk-and-security.md does not mention `{name}`"


def test_given_an_order_larger_than_its_board_takes_then_board_volume_denies_it(
    tmp_path: Path,
) -> None:
    gate = make_gate(tmp_path)
    star = Book(instruments={"688001.SH": Instrument("688001.SH")}, free_cash=1e7)
    passes(gate, buy(100_000, stock_code="688001.SH"), star)
    denial = denied(gate, buy(100_001, stock_code="688001.SH"), star, "board_volume")
    assert (
        denial.message == "100,001 shares is more than one limit order on star may hold (100,000)"
    )


def test_given_a_bse_odd_lot_then_it_sells_only_whole(tmp_path: Path) -> None:
    gate = make_gate(tmp_path, fat_finger_pct=0)
    code = "920001.BJ"
    book = Book(instruments={code: Instrument(code)}, positions={code: (150, 150)})
    denial = denied(gate, sell(50, stock_code=code), book, "lot_size")
    assert "BSE sells under 100 shares must sell the whole remainder" in denial.message
    passes(gate, sell(150, stock_code=code), book)
    passes(gate, sell(120, stock_code=code), book)


def test_given_a_convertible_bond_then_stock_lots_and_board_caps_leave_it_to_the_broker(
    tmp_path: Path,
) -> None:
    gate = make_gate(tmp_path, fat_finger_pct=0)
    code = "113050.SH"  # a convertible bond: lots of 10
    book = Book(instruments={code: Instrument(code, price_tick=0.001)})
    passes(gate, buy(10, price=10.005, stock_code=code), book)
    denied(gate, buy(10, price=10.0005, stock_code=code), book, "tick_size")


# -- rules a config switches off are not run ---------------------------------------------

# Orders each rule would refuse if it were on, against a book with no cash and no shares.
_BAD_ORDERS = (
    buy(150, 10.0),  # not a lot
    buy(100, 10.005),  # off the tick
    buy(100, 11.5),  # above the up-stop, and far from the last price
    buy(10_000, 10.0, stock_code="688001.SH"),  # more than cash
    sell(100, 10.0),  # nothing to sell
    buy(100, 10.0, price_type=LATEST_PRICE),
)


def test_given_a_config_that_switches_a_rule_off_then_the_rule_could_refuse_nothing(
    tmp_path: Path,
) -> None:
    from qmtbus.gateway.risk.rules import _ON, RULES, Ctx, active_rules

    off = RiskConfig(
        check_lot_and_tick=False,
        check_price_limits=False,
        fat_finger_pct=0.0,
        check_sellable=False,
        check_cash=False,
    )
    assert set(active_rules(off)) == set(RULES) - set(_ON)
    book = Book(free_cash=0.0)
    for rule in _ON:
        for order in _BAD_ORDERS:
            ctx = Ctx(
                order=order, book=book, config=off, fees=make_gate(tmp_path)._fees,
                trading="active", trading_reason="", tokens=0.0, refill_wait=1.0,
                account=Totals(orders=10**9, turnover=1e18),
                strategy=Totals(orders=10**9, turnover=1e18),
            )  # fmt: skip
            assert rule(ctx) is None, (rule.__name__, order)


def test_given_every_limit_set_then_every_rule_is_checked() -> None:
    from qmtbus.gateway.risk.rules import RULES, active_rules

    on = RiskConfig(
        max_order_notional=1.0, max_order_volume=1, max_orders_per_second=1.0,
        max_orders_per_day=1, max_turnover_per_day=1.0, max_orders_per_day_per_strategy=1,
        max_turnover_per_day_per_strategy=1.0, allow_symbols=["6*"], deny_symbols=["3*"],
    )  # fmt: skip
    assert active_rules(on) == RULES


def test_given_the_default_config_then_the_switched_on_checks_run_and_no_limit_is_checked():
    from qmtbus.gateway.risk.rules import active_rules

    names = {rule.__name__ for rule in active_rules(RiskConfig())}
    on = {"lot_size", "tick_size", "price_limits", "fat_finger", "sellable", "cash"}
    assert on <= names
    assert not names & {"deny_symbols", "allow_symbols", "max_order_volume", "max_orders_per_day"}


def test_given_the_fake_today_hook_then_the_daily_caps_count_the_ledgers_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qmtbus import clock

    # QMTBUS_FAKE_TODAY moves the process's Shanghai clock ten days on: the ledger's day,
    # whose orders restore() counts, is that day, and so must be the gate's
    monkeypatch.setattr(clock, "_OFFSET", 10 * 86400.0)
    monkeypatch.setattr(clock, "_last_day", (-1, ""))
    gate = RiskGate(RiskConfig(max_orders_per_day=1), tmp_path / "risk-state.json")
    gate.restore(clock.trading_day(), [("", 1000.0)])
    denied(gate, buy(), Book(), "max_orders_per_day")
