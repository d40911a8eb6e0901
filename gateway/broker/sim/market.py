"""Simulated prices: a seeded random walk per symbol (or a recorded tick file), within daily limits.

Prices are integers in mils (1/1000 CNY) so that ticks, limits and amounts are
exact. The walk is counter-based: step n of a symbol depends only on the
seed, the code, n and the price before it, so a path is reproducible for a
seed whatever order the symbols are touched in, and after a restart.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

from qmtbus.gateway import ashare
from qmtbus.gateway.broker import Instrument
from qmtbus.gateway.broker.sim.bars import Bars

MILS = 1000
# The simulator's universe: the number ranges the exchanges issue to A-share stocks and
# to funds/ETFs (SH 600/601/603/605 main, 688/689 STAR, 5xxxxx funds; SZ 000-003 main,
# 300-302 ChiNext, 15/16/18 funds; BJ 4xxxxx, 8xxxxx, 92xxxx). Anything else (indices
# such as 000001.SH, bonds, B shares) is a code the simulator does not know.
LISTED = re.compile(
    r"^(?:(?:60[0135]|68[89]|5\d\d)\d{3}\.SH|(?:00[0-3]|30[0-2]|1[568]\d)\d{3}\.SZ"
    r"|(?:4\d\d|8\d\d|92\d)\d{3}\.BJ)$"
)
# Shares traded by the rest of the market on each step of the walk, per unit of |z|.
STEP_VOLUME = 2000
# Price levels quoted on each side of the book.
LEVELS = 5
_LEVEL_STEPS = range(LEVELS)
# Outside the sessions (nights, lunch, weekends) the walk moves at this fraction of its
# volatility: a quiet overnight, as a real market's quotes barely change then.
QUIET = 0.1
_NORMAL = NormalDist()


def to_mils(price: float) -> int:
    return round(price * MILS)


def to_yuan(mils: int) -> float:
    return mils / MILS


def is_stock_code(stock_code: str) -> bool:
    """True for a code of the simulator's universe (see LISTED)."""
    return bool(LISTED.match(stock_code))


def instrument_name(stock_code: str) -> str:
    return f"Sim {stock_code[:6]}"


def noise(seed: int, stock_code: str, n: int) -> float:
    """Standard normal draw number `n` of a symbol's walk (stateless, so it survives restarts)."""
    digest = hashlib.blake2b(f"{seed}:{stock_code}:{n}".encode(), digest_size=8).digest()
    u = (int.from_bytes(digest, "big") + 0.5) / 2**64
    return _NORMAL.inv_cdf(u)


def initial_price(seed: int, stock_code: str) -> float:
    """A symbol's first price, 5-50 CNY on its tick, from the seed and the code."""
    tick = ashare.price_tick(stock_code)
    return ashare.round_price(random.Random(f"{seed}:{stock_code}").uniform(5.0, 50.0), tick)


@dataclass
class Quote:
    stock_code: str
    tick_m: int
    prev_close_m: int
    up_m: int
    down_m: int
    last_m: int
    step: int = 0
    # Ticks between bid1 and ask1 (0: both are the last price, one level of volume).
    spread_ticks: int = 0
    # Volume left at each ask (for buys) and bid (for sells) level this tick; larger
    # orders walk the levels and fill in parts when the book runs out.
    asks_left: list[int] = field(default_factory=lambda: [0] * LEVELS)
    bids_left: list[int] = field(default_factory=lambda: [0] * LEVELS)
    # The day so far (0 before the day's first trade): what a tick reports.
    open_m: int = 0
    high_m: int = 0
    low_m: int = 0
    volume: int = 0  # shares
    amount_m: int = 0
    # The walk's own price, in mils but not on the tick: moves smaller than a tick add up
    # instead of being rounded away, so a 5 CNY stock walks like a 50 CNY one. 0: last_m.
    fair_m: float = 0.0

    def clamp(self, price_m: int) -> int:
        return min(self.up_m, max(self.down_m, price_m))

    def traded(self, price_m: int, volume: int) -> None:
        """The market traded `volume` shares at `price_m`: the day's open, high, low, totals."""
        if self.open_m == 0:
            self.open_m = self.high_m = self.low_m = price_m
        else:
            self.high_m = max(self.high_m, price_m)
            self.low_m = min(self.low_m, price_m)
        self.volume += volume
        self.amount_m += volume * price_m

    def new_day(self) -> None:
        self.open_m = self.high_m = self.low_m = self.volume = self.amount_m = 0

    def on_tick(self, price_m: int) -> int:
        return round(price_m / self.tick_m) * self.tick_m

    def ask_prices(self) -> list[int]:
        """The five ask prices, ask1 first; 0 for a level beyond the up limit."""
        tick, up = self.tick_m, self.up_m
        ask1 = self.last_m - (self.spread_ticks // 2) * tick + self.spread_ticks * tick
        return [p if (p := ask1 + k * tick) <= up else 0 for k in _LEVEL_STEPS]

    def bid_prices(self) -> list[int]:
        """The five bid prices, bid1 first; 0 for a level beyond the down limit."""
        tick, down = self.tick_m, self.down_m
        bid1 = self.last_m - (self.spread_ticks // 2) * tick
        return [p if (p := bid1 - k * tick) >= down else 0 for k in _LEVEL_STEPS]

    def refill(self, depth: int) -> None:
        """A new tick: the book's volumes come back (one level at the last price without spread)."""
        levels = LEVELS if self.spread_ticks else 1
        self.asks_left = [depth if k < levels else 0 for k in range(LEVELS)]
        self.bids_left = list(self.asks_left)

    def levels(self, is_buy: bool, limit_m: int) -> list[tuple[int, int]]:
        """(index, price) of the levels a buy (asks) or sell (bids) at `limit_m` reaches."""
        prices = self.ask_prices() if is_buy else self.bid_prices()
        return [
            (k, p) for k, p in enumerate(prices) if p and (p <= limit_m if is_buy else p >= limit_m)
        ]

    def available(self, is_buy: bool, limit_m: int) -> int:
        """Volume an order at `limit_m` could take now."""
        left = self.asks_left if is_buy else self.bids_left
        return sum(left[k] for k, _ in self.levels(is_buy, limit_m))


def _limits_m(stock_code: str, prev_close_m: int) -> tuple[int, int]:
    up, down = ashare.limit_prices(stock_code, to_yuan(prev_close_m))
    return to_mils(up), to_mils(down)


class Market:
    """Last prices of every symbol the simulator has seen; not thread-safe (the terminal locks)."""

    def __init__(
        self,
        *,
        seed: int,
        volatility: float,
        depth_volume: int,
        tick_file: str,
        state_file: Path,
        day: str,
        spread_ticks: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._seed = seed
        self._spread = spread_ticks
        self._clock = clock
        self.bars = Bars()  # every trade below lands in its minute's bar
        self._volatility = volatility
        self._depth = depth_volume
        self._state_file = state_file
        self._quotes: dict[str, Quote] = {}
        self._ticks = _read_tick_file(tick_file) if tick_file else None
        self._first_tick: dict[str, int] = {}
        for code, price_m in self._ticks or ():
            self._first_tick.setdefault(code, price_m)
        self._tick_pos = 0
        self.day = day
        self.saved_at: float | None = None
        self._load()

    # -- prices -------------------------------------------------------------

    def quote(self, stock_code: str) -> Quote:
        """The symbol's quote, created from the seed (or the tick file) on first sight."""
        quote = self._quotes.get(stock_code)
        if quote is None:
            tick_m = to_mils(ashare.price_tick(stock_code))
            first = self._first_tick.get(stock_code)
            start_m = first if first is not None else to_mils(initial_price(self._seed, stock_code))
            start_m = round(start_m / tick_m) * tick_m
            up_m, down_m = _limits_m(stock_code, start_m)
            quote = Quote(stock_code, tick_m, start_m, up_m, down_m, start_m)
            quote.spread_ticks = self._spread
            quote.refill(self._depth)
            quote.open_m = quote.high_m = quote.low_m = start_m
            self._quotes[stock_code] = quote
        return quote

    def _traded(self, quote: Quote, price_m: int, volume: int) -> None:
        quote.traded(price_m, volume)
        self.bars.add(quote.stock_code, price_m, volume, self._clock(), quote.prev_close_m)

    def bars_of(
        self, stock_code: str, period: str, count: int, start_ms: int = 0, end_ms: int = 0
    ) -> list[dict[str, Any]]:
        """The symbol's last `count` bars; one that has not traded yet has this minute's bar
        at its price."""
        quote = self.quote(stock_code)
        if not self.bars.holds(stock_code):
            self.bars.add(stock_code, quote.last_m, 0, self._clock(), quote.prev_close_m)
        return self.bars.bars(stock_code, period, count, start_ms, end_ms)

    def known(self) -> list[str]:
        return list(self._quotes)

    def step(self, in_session: bool = True) -> list[str]:
        """One market tick: move prices, refill depth; returns the codes that may now cross.
        Outside the sessions the walk is quiet (QUIET of its volatility)."""
        for quote in self._quotes.values():
            quote.refill(self._depth)
        volatility = self._volatility if in_session else self._volatility * QUIET
        if self._ticks is not None:
            if self._tick_pos >= len(self._ticks):
                return list(self._quotes)  # the recording is over: prices hold
            code, price_m = self._ticks[self._tick_pos]
            self._tick_pos += 1
            quote = self.quote(code)
            quote.last_m = quote.clamp(quote.on_tick(price_m))
            self._traded(quote, quote.last_m, 0)
            return list(self._quotes)
        for quote in self._quotes.values():
            z = noise(self._seed, quote.stock_code, quote.step)
            quote.step += 1
            fair = (quote.fair_m or quote.last_m) * math.exp(volatility * z)
            quote.fair_m = min(float(quote.up_m), max(float(quote.down_m), fair))
            quote.last_m = quote.clamp(quote.on_tick(round(quote.fair_m)))
            # The rest of the market trades at the new price, more on bigger moves.
            self._traded(quote, quote.last_m, 100 * round(STEP_VOLUME * abs(z) / 100))
        return list(self._quotes)

    def set_price(self, stock_code: str, price: float) -> tuple[Quote, bool]:
        """Move the last price now (on tick, within limits); True when it had to be clamped."""
        quote = self.quote(stock_code)
        wanted = quote.on_tick(to_mils(price))
        quote.last_m = quote.clamp(wanted)
        quote.fair_m = float(quote.last_m)
        quote.refill(self._depth)
        self._traded(quote, quote.last_m, 0)
        return quote, quote.last_m != wanted

    def take(self, stock_code: str, is_buy: bool, want: int, limit_m: int) -> list[tuple[int, int]]:
        """Fills, as (price, volume), of an order at `limit_m` wanting `want` against the book
        side (asks for a buy, best first); consumes the volume it takes."""
        quote = self.quote(stock_code)
        left = quote.asks_left if is_buy else quote.bids_left
        fills: list[tuple[int, int]] = []
        for k, price_m in quote.levels(is_buy, limit_m):
            got = min(want, left[k])
            if got:
                left[k] -= got
                want -= got
                self._traded(quote, price_m, got)
                fills.append((price_m, got))
            if not want:
                break
        return fills

    def roll_day(self, day: str) -> None:
        """A new trading day: yesterday's last price becomes prev_close and sets the limits."""
        if day <= self.day:
            return  # days only advance
        self.day = day
        for quote in self._quotes.values():
            quote.prev_close_m = quote.last_m
            quote.up_m, quote.down_m = _limits_m(quote.stock_code, quote.last_m)
            quote.new_day()

    def instrument(self, stock_code: str) -> Instrument:
        quote = self.quote(stock_code)
        return Instrument(
            stock_code=stock_code,
            instrument_name=instrument_name(stock_code),
            last_price=to_yuan(quote.last_m),
            prev_close=to_yuan(quote.prev_close_m),
            up_stop_price=to_yuan(quote.up_m),
            down_stop_price=to_yuan(quote.down_m),
            price_tick=to_yuan(quote.tick_m),
        )

    # -- persistence --------------------------------------------------------

    def save(self, now: float) -> None:
        """Write the prices atomically; losing the last second of a walk to a kill is harmless
        because the walk replays identically from the saved point."""
        state = {
            "saved_at": now,
            "day": self.day,
            "tick_pos": self._tick_pos,
            "quotes": {
                code: [
                    q.prev_close_m,
                    q.last_m,
                    q.step,
                    *(q.open_m, q.high_m, q.low_m, q.volume, q.amount_m),
                    q.fair_m,
                ]
                for code, q in self._quotes.items()
            },
        }
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, separators=(",", ":")))
        os.replace(tmp, self._state_file)
        self.saved_at = now

    def _load(self) -> None:
        try:
            state = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return  # first start, or a torn file: prices start again from the seed
        saved_day = str(state.get("day", self.day))
        for code, values in state.get("quotes", {}).items():
            prev_close_m, last_m, step, *day = values
            quote = self.quote(code)
            quote.prev_close_m = int(prev_close_m)
            quote.up_m, quote.down_m = _limits_m(code, quote.prev_close_m)
            quote.last_m, quote.step = int(last_m), int(step)
            if len(day) >= 5:  # files written before ticks existed lack the day's totals
                quote.open_m, quote.high_m, quote.low_m, quote.volume, quote.amount_m = map(
                    int, day[:5]
                )
            if len(day) >= 6:  # and older ones the walk's own price
                quote.fair_m = float(day[5])
        self._tick_pos = int(state.get("tick_pos", 0))
        self.saved_at = float(state["saved_at"]) if "saved_at" in state else None
        wanted_day, self.day = self.day, saved_day
        self.roll_day(wanted_day)


def _read_tick_file(path: str) -> list[tuple[str, int]]:
    """`stock_code,price` lines in replay order; a header, blank or `#` lines are skipped."""
    ticks: list[tuple[str, int]] = []
    with open(path, newline="") as file:
        for row in csv.reader(file):
            if len(row) < 2 or row[0].startswith("#"):
                continue
            code = row[0].strip()
            price = None
            with contextlib.suppress(ValueError):
                price = float(row[1])
            if is_stock_code(code) and price is not None and price > 0:
                ticks.append((code, to_mils(price)))
    return ticks
