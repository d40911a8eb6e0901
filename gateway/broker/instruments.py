"""Instrument data (limits, previous close, last price, name, tick) for the risk gate, from a
per-trading-day cache filled on a thread of its own.

The risk gate runs on the gateway's I/O thread, which must never wait on the broker
(xtdata calls take seconds when miniQMT is busy). `get` answers from the cache; a
code not loaded yet is loaded by the cache's thread, and `get` waits for it at most
`wait` seconds per load (a fast broker answers in milliseconds; with a slow one the
orders that come within `wait` of the first ask wait with it, those after get a clear
refusal, see `note`, and a later order finds the data). The day's limits never
change; the last price is refreshed in the background when older than `fresh_for`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable

from qmtbus.gateway.broker import Instrument

log = logging.getLogger("gateway.instruments")

# Longest the I/O thread waits for a load of a code, counted from the first ask for it
# (orders within that time wait with it; later ones, while it still loads, are refused).
WAIT = 1.0
# A failed load is tried again after this long (not on every order).
RETRY_AFTER = 2.0


class InstrumentCache:
    def __init__(
        self,
        load: Callable[[str], Instrument | None],
        day: Callable[[], str],
        *,
        wait: float = WAIT,
        fresh_for: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._day = day
        self._wait = wait
        self._fresh_for = fresh_for
        self._clock = clock
        self._cond = threading.Condition()
        self._today = ""
        self._entries: dict[str, tuple[Instrument | None, float]] = {}
        self._errors: dict[str, tuple[str, float]] = {}
        self._pending: set[str] = set()
        self._asked: dict[str, float] = {}  # code loading → until when orders wait for it
        self._jobs: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="instruments", daemon=True)
        self._thread.start()

    def get(self, stock_code: str) -> Instrument | None:
        """Today's data of `stock_code` from the cache (None: unknown, or not loaded yet:
        `note` says which). Never calls the broker; waits at most `wait` seconds."""
        now = self._clock()
        # The common case without the lock: loaded today and fresh (a dict read is atomic;
        # the day is checked here as in _roll_day, so no entry outlives its day).
        today = self._today  # before the entry: _roll_day clears the entries, then sets it
        entry = self._entries.get(stock_code)
        if entry is not None and now - entry[1] <= self._fresh_for and self._day() == today:
            return entry[0]
        with self._cond:
            self._roll_day()
            entry = self._entries.get(stock_code)
            if entry is not None:
                if now - entry[1] > self._fresh_for:
                    self._schedule(stock_code)
                return entry[0]
            failed = self._errors.get(stock_code)
            if failed is not None and now - failed[1] < RETRY_AFTER:
                return None
            self._schedule(stock_code)  # unless a load is under way (a prefetch, an order)
            # Orders wait for a load within `wait` of the first that asked for it, together:
            # the I/O thread waits at most `wait` per load, and an order that comes while a
            # prefetch loads (the first orders after a restart) is not refused for it.
            left = self._asked.setdefault(stock_code, now + self._wait) - now
            if left > 0:
                self._cond.wait_for(lambda: stock_code not in self._pending, left)
            entry = self._entries.get(stock_code)
            return entry[0] if entry is not None else None

    def note(self, stock_code: str) -> str:
        """Why `get` gave None for `stock_code`, in one phrase ("" when it did not)."""
        with self._cond:
            entry = self._entries.get(stock_code)
            if entry is not None:
                return "" if entry[0] is not None else "the broker does not know it"
            if stock_code in self._errors:
                return f"market data failed ({self._errors[stock_code][0]})"
            if stock_code in self._pending:
                return "its market data is still loading; send the order again in a moment"
            return ""

    def prefetch(self, codes: Iterable[str]) -> None:
        """Load these codes in the background (those the account holds or trades)."""
        with self._cond:
            self._roll_day()
            for code in codes:
                if code not in self._entries:
                    self._schedule(code)

    def close(self) -> None:
        self._jobs.put(None)

    # -- internals ---------------------------------------------------------------------

    def _roll_day(self) -> None:
        today = self._day()
        if today != self._today:  # limits and previous close are the day's
            # emptied before the new day is set: get's lock-free read never pairs
            # yesterday's entry with today's date
            self._entries.clear()
            self._errors.clear()
            self._today = today

    def _schedule(self, code: str) -> None:
        if code not in self._pending:
            self._pending.add(code)
            self._jobs.put(code)

    def _run(self) -> None:
        while (code := self._jobs.get()) is not None:
            try:
                found = self._load(code)
            except Exception as err:
                log.warning("instrument data for %s failed: %s", code, err)
                with self._cond:
                    self._errors[code] = (str(err) or type(err).__name__, self._clock())
                    self._pending.discard(code)
                    self._asked.pop(code, None)
                    self._cond.notify_all()
                continue
            with self._cond:
                self._entries[code] = (found, self._clock())
                self._errors.pop(code, None)
                self._pending.discard(code)
                self._asked.pop(code, None)
                self._cond.notify_all()
