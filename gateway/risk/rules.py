"""The pre-trade rules: one small function per rule, named as the `rule` of its denial.

Each takes the order in context and returns None (pass) or the sentence that
says which numbers broke it. The order of RULES is the order of checking.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable
from typing import Protocol

from qmtbus.config import RiskConfig
from qmtbus.gateway import ashare
from qmtbus.gateway.risk.state import Totals
from qmtbus.protocol import FIX_PRICE, STOCK_BUY, PlaceOrder, TradingState

# Float noise allowance for prices and money compared with a limit: far below a tick or a fen.
EPS = 1e-6


class InstrumentLike(Protocol):
    """What the gate reads from gateway.broker.Instrument (read-only attributes)."""

    @property
    def stock_code(self) -> str: ...
    @property
    def last_price(self) -> float: ...
    @property
    def prev_close(self) -> float: ...
    @property
    def up_stop_price(self) -> float: ...
    @property
    def down_stop_price(self) -> float: ...
    @property
    def price_tick(self) -> float: ...


class BookView(Protocol):
    """What the gateway knows now about the account and the market."""

    def instrument(self, stock_code: str) -> InstrumentLike | None: ...
    def can_use_volume(self, stock_code: str) -> int: ...
    def volume(self, stock_code: str) -> int: ...
    def cash(self) -> float: ...


def order_notional(order: PlaceOrder, book: BookView) -> float | None:
    """price x volume; a market order is valued at the last price (the previous
    close before the first trade); None when there is no price to use."""
    if order.price_type == FIX_PRICE:
        return order.price * order.order_volume
    inst = book.instrument(order.stock_code)
    price = (inst.last_price or inst.prev_close) if inst else 0.0
    return price * order.order_volume if price > 0 else None


_UNSET: object = object()


class Ctx:
    """The order in context. The instrument and the notional are looked up when a rule
    first asks (a halted gateway refuses before either), then kept; a plain slot, not
    functools.cached_property, which takes a lock on every read before Python 3.12."""

    __slots__ = (
        "_instrument",
        "_notional",
        "account",
        "book",
        "config",
        "fees",
        "order",
        "refill_wait",
        "strategy",
        "tokens",
        "trading",
        "trading_reason",
    )

    def __init__(
        self,
        *,
        order: PlaceOrder,
        book: BookView,
        config: RiskConfig,
        fees: ashare.Fees,
        trading: TradingState,
        trading_reason: str,
        tokens: float,  # rate-limit tokens available now
        refill_wait: float,  # seconds until the next token
        account: Totals,  # today's totals before this order
        strategy: Totals,
    ) -> None:
        self.order, self.book, self.config, self.fees = order, book, config, fees
        self.trading, self.trading_reason = trading, trading_reason
        self.tokens, self.refill_wait = tokens, refill_wait
        self.account, self.strategy = account, strategy
        self._instrument: object = _UNSET
        self._notional: object = _UNSET

    @property
    def instrument(self) -> InstrumentLike | None:
        inst = self._instrument
        if inst is _UNSET:
            inst = self._instrument = self.book.instrument(self.order.stock_code)
        return inst  # type: ignore[return-value]

    @property
    def notional(self) -> float | None:
        value = self._notional
        if value is _UNSET:
            value = self._notional = order_notional(self.order, self.book)
        return value  # type: ignore[return-value]

    @property
    def is_buy(self) -> bool:
        return self.order.order_type == STOCK_BUY

    @property
    def side(self) -> str:
        return "buy" if self.is_buy else "sell"

    @property
    def is_limit(self) -> bool:
        return self.order.price_type == FIX_PRICE

    @property
    def tick(self) -> float:
        inst = self.instrument
        return (
            inst.price_tick
            if inst and inst.price_tick > 0
            else ashare.price_tick(self.order.stock_code)
        )

    def price(self, value: float) -> str:
        return f"{value:.{3 if self.tick < 0.01 else 2}f}"

    def no_price(self, what: str) -> str:
        note = getattr(self.book, "instrument_note", None)
        why = note(self.order.stock_code) if note is not None else ""
        because = f" ({why})" if why else ""
        return f"no market price for {self.order.stock_code}{because}, so {what} cannot be checked"


def money(value: float) -> str:
    return f"{value:,.2f}"


def trading_state(c: Ctx) -> str | None:
    why = f" ({c.trading_reason})" if c.trading_reason else ""
    if c.trading == "halted":
        return f"trading is halted{why}: no new orders until resume; cancels still pass"
    if c.trading == "reduce_only":
        if c.is_buy:
            return f"trading is reduce_only{why}: buys are refused, sells may reduce positions"
        held = c.book.volume(c.order.stock_code)
        if c.order.order_volume > held:
            return (
                f"trading is reduce_only{why}: sell volume {c.order.order_volume:,} exceeds "
                f"the position of {held:,} in {c.order.stock_code}"
            )
    return None


def deny_symbols(c: Ctx) -> str | None:
    for pattern in c.config.deny_symbols:
        if fnmatch.fnmatchcase(c.order.stock_code, pattern):
            return f"{c.order.stock_code} matches deny_symbols entry {pattern!r}"
    return None


def allow_symbols(c: Ctx) -> str | None:
    allow = c.config.allow_symbols
    if allow and not any(fnmatch.fnmatchcase(c.order.stock_code, p) for p in allow):
        return f"{c.order.stock_code} is not in allow_symbols {allow}"
    return None


def lot_size(c: Ctx) -> str | None:
    if not c.config.check_lot_and_tick or ashare.is_bond(c.order.stock_code):
        return None  # bonds trade by their own lots: the broker judges them
    code, volume = c.order.stock_code, c.order.order_volume
    if c.is_buy:
        error = ashare.buy_volume_error(code, volume)
    else:
        # beyond the sellable volume it is the `sellable` rule's refusal, not a lot problem
        can_use = c.book.can_use_volume(code)
        error = ashare.sell_volume_error(code, volume, can_use) if volume <= can_use else None
    return f"{c.side} volume {volume:,} of {code}: {error}" if error else None


def tick_size(c: Ctx) -> str | None:
    if not (c.config.check_lot_and_tick and c.is_limit):
        return None
    inst = c.instrument
    if ashare.is_bond(c.order.stock_code) and not (inst and inst.price_tick > 0):
        return None  # a bond's tick only as the broker gives it
    price = c.order.price
    if price <= 0:
        return f"limit price {c.price(price)} must be positive"
    if not ashare.on_tick(price, c.tick):
        return f"limit price {price!r} is not a multiple of the tick {c.tick:g}"
    return None


def price_type(c: Ctx) -> str | None:
    return ashare.price_type_error(c.order.stock_code, c.order.price_type)


def board_volume(c: Ctx) -> str | None:
    o = c.order
    return ashare.order_volume_cap_error(o.stock_code, o.order_volume, o.price_type)


def price_limits(c: Ctx) -> str | None:
    if not (c.config.check_price_limits and c.is_limit):
        return None
    inst = c.instrument
    if inst is None:
        return c.no_price("the day's limit prices")
    up, down = inst.up_stop_price, inst.down_stop_price
    if up <= 0 or down <= 0:
        # The broker's limits are the truth: none (e.g. the first days after an IPO) means
        # no limit today, never one invented from the previous close.
        return None
    price = c.order.price
    if price > up + EPS:
        return f"{c.side} price {c.price(price)} is above the up-stop price {c.price(up)}"
    if price < down - EPS:
        return f"{c.side} price {c.price(price)} is below the down-stop price {c.price(down)}"
    return None


def _reference_price(inst: InstrumentLike | None) -> tuple[float, str]:
    if inst is None:
        return 0.0, ""
    if inst.last_price > 0:
        return inst.last_price, "last price"
    # before the day's first trade the previous close is the best reference
    return inst.prev_close, "previous close"


def fat_finger(c: Ctx) -> str | None:
    pct = c.config.fat_finger_pct
    if not (pct > 0 and c.is_limit):
        return None
    ref, what = _reference_price(c.instrument)
    if ref <= 0:
        return c.no_price("fat_finger_pct")
    # Only the aggressive side: a buy far below the market or a sell far above it rests in
    # the book, it is not a fat finger.
    aggressive = c.order.price > ref if c.is_buy else c.order.price < ref
    off = abs(c.order.price - ref) / ref * 100
    if aggressive and off > pct + EPS:
        # the band as the prices on the tick that pass: rounding its edges to the
        # nearest tick could show a refused price as allowed
        low = math.ceil(ref * (1 - pct / 100) / c.tick - EPS) * c.tick
        high = math.floor(ref * (1 + pct / 100) / c.tick + EPS) * c.tick
        return (
            f"{c.side} price {c.price(c.order.price)} is {off:.2f}% from the {what} "
            f"{c.price(ref)}, beyond fat_finger_pct {pct:g}% ({c.price(low)}-{c.price(high)})"
        )
    return None


def sellable(c: Ctx) -> str | None:
    if c.is_buy or not c.config.check_sellable:
        return None
    can_use = c.book.can_use_volume(c.order.stock_code)
    if c.order.order_volume > can_use:
        return (
            f"sell volume {c.order.order_volume:,} exceeds can_use_volume {can_use:,} of "
            f"{c.order.stock_code} (T+1: today's buys sell tomorrow; open sells hold shares)"
        )
    return None


def max_order_volume(c: Ctx) -> str | None:
    cap = c.config.max_order_volume
    if cap and c.order.order_volume > cap:
        return f"order volume {c.order.order_volume:,} exceeds max_order_volume {cap:,}"
    return None


def max_order_notional(c: Ctx) -> str | None:
    cap = c.config.max_order_notional
    if not cap:
        return None
    if c.notional is None:
        return c.no_price("max_order_notional")
    if c.notional > cap + EPS:
        return f"order notional {money(c.notional)} exceeds max_order_notional {money(cap)}"
    return None


def cash(c: Ctx) -> str | None:
    if not (c.is_buy and c.config.check_cash):
        return None
    if c.notional is None:
        return c.no_price("free cash")
    fee = c.fees.total(c.notional, is_sell=False)
    free = c.book.cash()
    if c.notional + fee > free + EPS:
        return (
            f"buy notional {money(c.notional)} + estimated fees {money(fee)} exceeds "
            f"free cash {money(free)}"
        )
    return None


def max_orders_per_second(c: Ctx) -> str | None:
    rate = c.config.max_orders_per_second
    if rate and c.tokens < 1 - EPS:
        return (
            f"more than {rate:g} orders per second (max_orders_per_second); the next order "
            f"is allowed in {c.refill_wait:.2f} s"
        )
    return None


def _count_cap(totals: Totals, cap: int, key: str, who: str) -> str | None:
    if cap and totals.orders + 1 > cap:
        return f"{who}{totals.orders:,} orders today already reach {key} {cap:,}"
    return None


def _turnover_cap(c: Ctx, totals: Totals, cap: float, key: str, who: str) -> str | None:
    if not cap:
        return None
    if c.notional is None:
        return c.no_price(key)
    if totals.turnover + c.notional > cap + EPS:
        return (
            f"{who}turnover today {money(totals.turnover)} + this order {money(c.notional)} "
            f"exceeds {key} {money(cap)}"
        )
    return None


def _strategy(c: Ctx) -> str:
    return f"strategy {c.order.strategy_name or '(unnamed)'!r}: "


def max_orders_per_day(c: Ctx) -> str | None:
    return _count_cap(c.account, c.config.max_orders_per_day, "max_orders_per_day", "")


def max_turnover_per_day(c: Ctx) -> str | None:
    return _turnover_cap(c, c.account, c.config.max_turnover_per_day, "max_turnover_per_day", "")


def max_orders_per_day_per_strategy(c: Ctx) -> str | None:
    cap = c.config.max_orders_per_day_per_strategy
    return _count_cap(c.strategy, cap, "max_orders_per_day_per_strategy", _strategy(c))


def max_turnover_per_day_per_strategy(c: Ctx) -> str | None:
    cap = c.config.max_turnover_per_day_per_strategy
    return _turnover_cap(c, c.strategy, cap, "max_turnover_per_day_per_strategy", _strategy(c))


Rule = Callable[[Ctx], str | None]

# trading_state first: it holds even with [risk] enabled = false.
RULES: tuple[Rule, ...] = (
    trading_state,
    deny_symbols,
    allow_symbols,
    price_type,
    board_volume,
    lot_size,
    tick_size,
    price_limits,
    fat_finger,
    sellable,
    max_order_volume,
    max_order_notional,
    cash,
    max_orders_per_second,
    max_orders_per_day,
    max_turnover_per_day,
    max_orders_per_day_per_strategy,
    max_turnover_per_day_per_strategy,
)
RULE_NAMES: tuple[str, ...] = tuple(rule.__name__ for rule in RULES)

# When a rule can refuse nothing under a config (its switch off, its limit 0 = no limit),
# which then leaves it out of the checks: one call less per order for each.
_ON: dict[Rule, Callable[[RiskConfig], bool]] = {
    deny_symbols: lambda c: bool(c.deny_symbols),
    allow_symbols: lambda c: bool(c.allow_symbols),
    lot_size: lambda c: c.check_lot_and_tick,
    tick_size: lambda c: c.check_lot_and_tick,
    price_limits: lambda c: c.check_price_limits,
    fat_finger: lambda c: c.fat_finger_pct > 0,
    sellable: lambda c: c.check_sellable,
    max_order_volume: lambda c: bool(c.max_order_volume),
    max_order_notional: lambda c: bool(c.max_order_notional),
    cash: lambda c: c.check_cash,
    max_orders_per_second: lambda c: bool(c.max_orders_per_second),
    max_orders_per_day: lambda c: bool(c.max_orders_per_day),
    max_turnover_per_day: lambda c: bool(c.max_turnover_per_day),
    max_orders_per_day_per_strategy: lambda c: bool(c.max_orders_per_day_per_strategy),
    max_turnover_per_day_per_strategy: lambda c: bool(c.max_turnover_per_day_per_strategy),
}


def active_rules(config: RiskConfig) -> tuple[Rule, ...]:
    """The rules, in checking order, that can refuse an order under `config`."""
    return tuple(rule for rule in RULES if rule not in _ON or _ON[rule](config))
