"""A-share trading rules as of 2026-11: boards, lots, ticks, price limits, fees, sessions.

Used by the simulator (to behave like the market) and by the risk gate (to
refuse what the exchange would reject). Pure functions, no state.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

Board = Literal["main", "chinext", "star", "bse", "fund"]


@functools.lru_cache(maxsize=4096)  # asked several times per order; codes are few
def board_of(stock_code: str) -> Board:
    """The board of a code like "600000.SH"; funds and ETFs are "fund"."""
    code, _, market = stock_code.partition(".")
    if market == "BJ" or code[:1] in ("4", "8") or code[:2] == "92":
        return "bse"
    if market == "SH":
        if code.startswith("688") or code.startswith("689"):
            return "star"
        if code.startswith(("5", "1")):
            return "fund"
        return "main"
    if code.startswith(("300", "301", "302")):
        return "chinext"
    if code.startswith(("15", "16", "18")):
        return "fund"
    return "main"


@functools.lru_cache(maxsize=4096)
def is_bond(stock_code: str) -> bool:
    """Bonds, convertible bonds and repos (SH 0/1/2xxxxx, SZ 10-13xxxx): they trade by their
    own rules (lots of 10, ticks of 0.001, T+0), which the risk gate leaves to the broker."""
    code, _, market = stock_code.partition(".")
    if market == "SH":
        return code.startswith(("0", "1", "2"))
    if market == "SZ":
        return code.startswith(("10", "11", "12", "13"))
    return False


def price_tick(stock_code: str) -> float:
    """0.01 for stocks, 0.001 for funds and ETFs."""
    return 0.001 if board_of(stock_code) == "fund" else 0.01


def limit_pct(stock_code: str) -> float:
    """Daily price limit: main board 10% (ST included since 2026-07-06),
    ChiNext and STAR 20%, BSE 30%, funds 10%."""
    return {"main": 0.10, "chinext": 0.20, "star": 0.20, "bse": 0.30, "fund": 0.10}[
        board_of(stock_code)
    ]


def round_price(price: float, tick: float) -> float:
    """Round half up to the tick, as the exchanges compute limit prices."""
    places = 3 if tick < 0.01 else 2
    q = Decimal(1).scaleb(-places)
    return float(Decimal(str(price)).quantize(q, rounding=ROUND_HALF_UP))


def limit_prices(stock_code: str, prev_close: float) -> tuple[float, float]:
    """(up_stop_price, down_stop_price) for the day."""
    pct = limit_pct(stock_code)
    tick = price_tick(stock_code)
    return round_price(prev_close * (1 + pct), tick), round_price(prev_close * (1 - pct), tick)


# xtconstant price types: 5 latest, 11 limit on every exchange; market types by exchange:
# 42/43 SH and BJ (best five then cancel / then limit), 44-48 SZ (counterparty best, own
# best, immediate-or-cancel, best five then cancel, fill-or-kill).
ANY_EXCHANGE_PRICE_TYPES = frozenset({5, 11})
MARKET_PRICE_TYPES = {
    "SH": frozenset({42, 43}),
    "BJ": frozenset({42, 43}),
    "SZ": frozenset({44, 45, 46, 47, 48}),
}


def price_type_error(stock_code: str, price_type: int) -> str | None:
    """Why `price_type` is not one the code's exchange takes, or None."""
    market = stock_code.rpartition(".")[2].upper()
    allowed = ANY_EXCHANGE_PRICE_TYPES | MARKET_PRICE_TYPES.get(market, frozenset())
    if price_type in allowed:
        return None
    names = ", ".join(str(t) for t in sorted(allowed))
    return (
        f"price_type {price_type} is not taken on {market or 'this exchange'} (use one of {names})"
    )


# Largest single order by board, (limit order, market order), in shares: STAR 100,000 /
# 50,000 and ChiNext 300,000 / 150,000; the main boards, BSE and funds 1,000,000.
_MAX_ORDER_VOLUME: dict[Board, tuple[int, int]] = {
    "star": (100_000, 50_000),
    "chinext": (300_000, 150_000),
    "main": (1_000_000, 1_000_000),
    "bse": (1_000_000, 1_000_000),
    "fund": (1_000_000, 1_000_000),
}


def order_volume_cap_error(stock_code: str, volume: int, price_type: int) -> str | None:
    """Why `volume` is more than the exchange takes in one order of this board, or None
    (bonds: the broker's to judge)."""
    if is_bond(stock_code):
        return None
    limit, market = _MAX_ORDER_VOLUME[board_of(stock_code)]
    is_limit = price_type == 11
    cap = limit if is_limit else market
    if volume > cap:
        kind = "limit" if is_limit else "market"
        board = board_of(stock_code)
        return f"{volume:,} shares is more than one {kind} order on {board} may hold ({cap:,})"
    return None


def t_plus_zero(stock_code: str) -> bool:
    """Funds and ETFs bought today may be sold today (T+0 in this model); stocks are T+1."""
    return board_of(stock_code) == "fund"


def stamp_duty_applies(stock_code: str) -> bool:
    """Stamp duty is on stock sells only: funds and ETFs are free of it."""
    return board_of(stock_code) != "fund"


# The exchanges take no cancels in the last minutes of each call auction.
_NO_CANCEL = ((dt.time(9, 20), dt.time(9, 25)), (dt.time(14, 57), dt.time(15, 0)))
_SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")  # no summer time since 1991


def cancel_refused(t: dt.time) -> str | None:
    """Why the exchange refuses a cancel at Shanghai wall-clock time `t`, or None."""
    for start, end in _NO_CANCEL:
        if start <= t < end:
            return (
                f"the exchange takes no cancels between {start:%H:%M} and {end:%H:%M} "
                "(call auction); cancel after the auction"
            )
    return None


def cancel_window(now: dt.datetime) -> str | None:
    """Why the exchange refuses a cancel at `now` (an aware datetime, any zone), naming the
    window, or None: 09:20-09:25 and 14:57-15:00 Shanghai time on weekdays (exchange
    holidays take no cancels either way)."""
    local = now.astimezone(_SHANGHAI)
    if local.weekday() >= 5:
        return None
    return cancel_refused(local.time())


def on_tick(price: float, tick: float) -> bool:
    steps = price / tick
    return math.isclose(steps, round(steps), abs_tol=1e-6)


def buy_volume_error(stock_code: str, volume: int) -> str | None:
    """Why a buy of `volume` shares breaks the lot rules, or None.

    Buys are in lots of 100; STAR and BSE: at least 200 (BSE 100), then any
    1-share step."""
    board = board_of(stock_code)
    if volume <= 0:
        return "volume must be positive"
    if board == "star":
        return None if volume >= 200 else "STAR buys are at least 200 shares"
    if board == "bse":
        return None if volume >= 100 else "BSE buys are at least 100 shares"
    if volume % 100:
        return "buys are in lots of 100 shares"
    return None


def sell_volume_error(stock_code: str, volume: int, can_use_volume: int) -> str | None:
    """Why a sell of `volume` breaks the lot rules, or None: an odd lot may be
    sold only whole (the entire remainder under 100 at once)."""
    if volume <= 0:
        return "volume must be positive"
    if volume > can_use_volume:
        return f"sell volume {volume} exceeds sellable volume {can_use_volume} (T+1)"
    board = board_of(stock_code)
    if board == "star":
        if volume < 200 and volume != can_use_volume:
            return "STAR sells under 200 shares must sell the whole remainder"
        return None
    if board == "bse":
        if volume < 100 and volume != can_use_volume:
            return "BSE sells under 100 shares must sell the whole remainder"
        return None
    if volume % 100 and volume != can_use_volume:
        odd = can_use_volume % 100
        if not odd:
            return f"sell in lots of 100 shares: {volume} is not a multiple of 100"
        if volume % 100 != odd:
            return f"odd lots sell only whole: sell a multiple of 100 plus all {odd} odd shares"
    return None


@dataclass(frozen=True, slots=True)
class Fees:
    commission_rate: float = 0.00025
    commission_min: float = 5.0
    stamp_duty_rate: float = 0.0005
    transfer_fee_rate: float = 0.00001

    def commission(self, amount: float) -> float:
        return round(max(amount * self.commission_rate, self.commission_min), 2)

    def total(self, amount: float, is_sell: bool, stock_code: str = "") -> float:
        """Commission + transfer fee (both sides) + stamp duty (stock sells only), in CNY."""
        fee = self.commission(amount) + amount * self.transfer_fee_rate
        if is_sell and (not stock_code or stamp_duty_applies(stock_code)):
            fee += amount * self.stamp_duty_rate
        return round(fee, 2)


Phase = Literal["closed", "call_auction", "continuous", "closing_auction"]

_SESSIONS: tuple[tuple[dt.time, dt.time, Phase], ...] = (
    (dt.time(9, 15), dt.time(9, 25), "call_auction"),
    (dt.time(9, 30), dt.time(11, 30), "continuous"),
    (dt.time(13, 0), dt.time(14, 57), "continuous"),
    (dt.time(14, 57), dt.time(15, 0), "closing_auction"),
)


def phase_at(t: dt.time) -> Phase:
    """The market phase at a Shanghai wall-clock time (trading day assumed)."""
    for start, end, phase in _SESSIONS:
        if start <= t < end:
            return phase
    return "closed"
