"""RiskGate: decides whether an order may reach the broker, and counts the ones that do."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from qmtbus.config import RiskConfig
from qmtbus.gateway import ashare
from qmtbus.gateway.risk.rules import BookView, Ctx, active_rules, order_notional, trading_state
from qmtbus.gateway.risk.state import RiskState, Totals, load_state, save_state, trading_day
from qmtbus.protocol import PlaceOrder, TradingState

log = logging.getLogger(__name__)

TRADING_STATES: tuple[str, ...] = get_args(TradingState)


@dataclass(frozen=True, slots=True)
class Denial:
    """Why an order was refused: `rule` names the rule (and its [risk] key),
    `message` the numbers that broke it."""

    rule: str
    message: str


class TokenBucket:
    """`rate` tokens per second, holding at most max(1, rate): a burst of that
    many orders passes, the next is denied (never queued) until a token refills."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._at = now

    def available(self, now: float) -> float:
        # a wall clock stepped backwards must not mint or burn tokens
        elapsed = max(0.0, now - self._at)
        return min(self.capacity, self._tokens + elapsed * self.rate)

    def wait(self, now: float) -> float:
        """Seconds until one token is available."""
        missing = 1.0 - self.available(now)
        return max(0.0, missing / self.rate) if self.rate else 0.0

    def take(self, now: float) -> None:
        self._tokens = self.available(now) - 1.0
        self._at = max(now, self._at)


class RiskGate:
    """The pre-trade checks of [risk] plus the kill switch (trading state).

    `check` decides and changes nothing; `record` counts an order that passed
    and is being sent. Both run on the gateway's command thread; a lock keeps
    `status` readers on other threads consistent. The trading state lives in
    `state_file` and survives a restart; today's counters are the gateway's
    journal's (each order's intent carries its notional) and `restore` puts them
    back at start, so they are never ahead of or behind the orders they count.
    """

    def __init__(
        self,
        config: RiskConfig,
        state_file: Path,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.state_file = Path(state_file)
        self._now = now
        self._lock = threading.Lock()
        self._fees = ashare.Fees(
            commission_rate=config.commission_rate, commission_min=config.commission_min
        )
        self._state = load_state(self.state_file)
        # counters in files written by older versions are not a source of truth
        self._state.trading_day, self._state.account, self._state.strategies = "", Totals(), {}
        self._bucket = TokenBucket(config.max_orders_per_second, now())
        self._rules = active_rules(config) if config.enabled else (trading_state,)
        self._passed: tuple[PlaceOrder, float | None] | None = None
        self._day_at, self._day = -1, ""  # the trading day of the second _day_at

    def _trading_day(self, now: float) -> str:
        """trading_day(now), worked out once a second: check and record ask it per order."""
        second = int(now)
        if second != self._day_at:
            # with the real clock, the process's trading day (the ledger's: it follows the
            # QMTBUS_FAKE_TODAY test hook); with a clock of its own (tests), that clock's
            day = trading_day() if self._now is time.time else trading_day(now)
            self._day_at, self._day = second, day
        return self._day

    @property
    def trading(self) -> TradingState:
        return self._state.trading

    @property
    def trading_reason(self) -> str:
        return self._state.trading_reason

    def set_trading(self, state: TradingState, reason: str = "") -> None:
        """The kill switch (halt / reduce_only / resume → active). Takes effect at
        once; then saved, so an OSError here means it will not survive a restart."""
        if state not in TRADING_STATES:
            raise ValueError(f"trading state must be one of {TRADING_STATES}, not {state!r}")
        with self._lock:
            self._state.trading = state
            self._state.trading_reason = reason
            self._state.trading_changed_at = dt.datetime.fromtimestamp(
                self._now(), dt.UTC
            ).isoformat(timespec="seconds")
            log.warning("trading is now %s%s", state, f" ({reason})" if reason else "")
            # only the kill switch is saved: the counters come from the journal
            save_state(
                self.state_file,
                RiskState(
                    trading=state,
                    trading_reason=reason,
                    trading_changed_at=self._state.trading_changed_at,
                ),
            )

    def check(self, order: PlaceOrder, book: BookView) -> Denial | None:
        """The first rule the order breaks, or None when it may go to the broker."""
        now = self._now()
        day = self._trading_day(now)
        with self._lock:
            ctx = Ctx(
                order=order,
                book=book,
                config=self.config,
                fees=self._fees,
                trading=self._state.trading,
                trading_reason=self._state.trading_reason,
                tokens=self._bucket.available(now),
                refill_wait=self._bucket.wait(now),
                account=self._state.account_on(day),
                strategy=self._state.strategy_on(day, order.strategy_name),
            )
            for rule in self._rules:
                message = rule(ctx)
                if message is not None:
                    return Denial(rule.__name__, message)
            # remembered so that record(order) values a market order the same way
            self._passed = (order, ctx.notional)
        return None

    def record(self, order: PlaceOrder, book: BookView | None = None) -> float:
        """Count an order that passed `check` and is going to the broker (rate
        limit and daily caps); returns the notional it counted. Without `book`, a
        market order is valued as in the `check` that just passed it."""
        now = self._now()
        if book is not None:
            notional = order_notional(order, book)
        elif self._passed is not None and self._passed[0] is order:
            notional = self._passed[1]
        else:
            notional = order.price * order.order_volume
        with self._lock:
            self._passed = None
            self._bucket.take(now)
            self._state.add(self._trading_day(now), order.strategy_name, notional or 0.0)
        return notional or 0.0

    def restore(self, day: str, orders: Iterable[tuple[str, float]]) -> None:
        """Count again the orders of `day` (strategy_name, notional) that the journal
        holds, after a restart; the rate limit starts fresh."""
        with self._lock:
            for strategy_name, notional in orders:
                self._state.add(day, strategy_name, notional)
