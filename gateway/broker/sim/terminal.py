"""The simulated miniQMT terminal: one book, one market thread, the live sessions, and faults.

SimBroker opens a terminal for `<data_dir>/sim` and registers it under that
path; the simulated native client (gateway/broker/sim/native.py) beneath an
XtQuantTrader built with the same path finds it at connect(), as the real one
finds the miniQMT of its userdata_mini. One lock serialises the
book: caller threads, the market thread and callbacks all go through it. The
market thread also hands the ticks of subscribed symbols to the tick sink,
every `quote_interval`, outside the lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qmtbus.gateway import ashare
from qmtbus.gateway.broker import BrokerUnavailable, Instrument
from qmtbus.gateway.broker.sim import hours, ticks
from qmtbus.gateway.broker.sim import objects as xt
from qmtbus.gateway.broker.sim.book import Book, Fault, Push
from qmtbus.gateway.broker.sim.market import Market, is_stock_code, to_yuan
from qmtbus.gateway.broker.sim.store import Store

if TYPE_CHECKING:
    from qmtbus.config import SimConfig
    from qmtbus.gateway.broker.sim.native import XtQuantAsyncClient as Session

log = logging.getLogger(__name__)

# Catching up after downtime replays at most this many ticks (bounded start-up time).
MAX_CATCH_UP_STEPS = 7200
# How often the market thread saves prices; a kill loses at most this much of the walk.
SAVE_INTERVAL = 1.0

_registry: dict[str, SimTerminal] = {}
_registry_lock = threading.Lock()


def terminal_key(path: str | Path) -> str:
    return str(Path(path).resolve())


_any_path: SimTerminal | None = None  # set only by `xtrun`: its one terminal answers any path


def lookup(path: str | Path) -> SimTerminal | None:
    """The running terminal for `path`, as a trader's connect() finds it (else the terminal
    that answers any path, if one was set by serve_any_path)."""
    with _registry_lock:
        return _registry.get(terminal_key(path), _any_path)


def serve_any_path(terminal: SimTerminal | None) -> None:
    """Let `terminal` answer a trader built with any path (None: no longer). For
    `python -m qmtbus.gateway.broker.sim.xtrun`, whose script names miniQMT's own folder."""
    global _any_path
    with _registry_lock:
        _any_path = terminal


class SimTerminal:
    def __init__(
        self,
        directory: Path,
        config: SimConfig,
        account_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.account_id = account_id
        self._config = config
        self._clock = clock
        self._lock = threading.RLock()
        self._sessions: dict[int, Session] = {}
        self._subscribed: set[int] = set()
        self._rejects: list[Fault] = []
        self._mute_next = 0
        self._mute_queries = False
        self._raise_in_queries = False
        self._skip_asset_pushes = False
        self._xtdata_delay = 0.0
        self._xtdata_fails = False
        self._fault_delay = 0.0
        self._reorder = False
        self._closed = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._quote_codes: set[str] = set()
        self._tick_sink: Callable[[list[dict[str, Any]]], None] | None = None

        key = terminal_key(directory)
        with _registry_lock:
            if key in _registry:
                raise BrokerUnavailable(
                    f"a simulator already runs on {directory} in this process; close it first"
                )
            self._file_lock = _lock_directory(directory)
            try:
                self._open(clock())
            except BaseException:
                if hasattr(self, "_store"):
                    self._store.close()
                _unlock_directory(self._file_lock)
                raise
            _registry[key] = self

    def _open(self, now: float) -> None:
        today = hours.trading_day(now)
        self._store = Store(self.directory)
        self._market = Market(
            seed=self._config.seed,
            volatility=self._config.volatility,
            depth_volume=self._config.depth_volume,
            spread_ticks=self._config.spread_ticks,
            tick_file=self._config.tick_file,
            state_file=self.directory / "market.json",
            day=today,
            clock=self._clock,
        )
        fees = ashare.Fees(
            commission_rate=self._config.commission_rate,
            commission_min=self._config.commission_min,
            stamp_duty_rate=self._config.stamp_duty_rate,
            transfer_fee_rate=self._config.transfer_fee_rate,
        )
        self._book = Book(
            account_id=self.account_id,
            fees=fees,
            initial_cash=self._config.initial_cash,
            market=self._market,
            store=self._store,
        )
        self._book.load(today)  # pushes of a rollover at load reach nobody
        self._catch_up(now)
        self._market.save(now)

    def _catch_up(self, now: float) -> None:
        """The market went on while the gateway was down: replay the ticks of the gap (today's,
        capped), so resting orders fill as they would have and reconciliation finds them."""
        saved_at = self._market.saved_at
        if saved_at is None or hours.trading_day(saved_at) != hours.trading_day(now):
            return
        # Prices of symbols first seen after the last save start from the seed, like they did.
        for code in [*self._book.resting_codes(), *self._book.positions]:
            self._market.quote(code)
        interval = self._config.tick_interval
        steps = min(int((now - saved_at) / interval), MAX_CATCH_UP_STEPS)
        for k in range(steps - 1, -1, -1):  # the most recent `steps` ticks, the last one now
            at = now - k * interval
            if hours.phase(at, self._config.market_hours) == "continuous":
                self._book.match(self._market.step(hours.in_session(at)), at)
        if steps:
            log.info("simulator replayed %d market ticks of downtime", steps)

    # -- the market thread ---------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_market, name="sim-market", daemon=True)
        self._thread.start()

    def _run_market(self) -> None:
        interval = self._config.tick_interval
        quote_interval = self._config.quote_interval
        next_tick = time.monotonic() + interval
        next_save = time.monotonic() + SAVE_INTERVAL
        next_quote = time.monotonic() + quote_interval
        while not self._stopping.wait(
            max(0.0, min(next_tick, next_save, next_quote) - time.monotonic())
        ):
            now = time.monotonic()
            # Each next time is set before its work: one that fails (its folder deleted, a
            # full disk) is tried again at its next time, not in a spin of tracebacks.
            try:
                if now >= next_tick:
                    # A stalled process does not make up for lost ticks in a burst.
                    next_tick = max(next_tick + interval, now)
                    self.tick()
                if now >= next_quote:
                    next_quote = max(next_quote + quote_interval, now)
                    self.publish_ticks()
                if now >= next_save:
                    next_save = now + SAVE_INTERVAL
                    with self._lock:
                        if not self._closed:
                            self._market.save(self._clock())
            except Exception:
                log.exception("simulator market tick failed")

    def tick(self) -> None:
        """One market tick (the market thread calls this; tests may too): a new trading day
        rolls over, prices move, resting orders that now cross fill."""
        with self._lock:
            if self._closed:
                return
            now = self._clock()
            today = hours.trading_day(now)
            if today > self._book.trading_day:
                self._market.roll_day(today)
                self._dispatch(self._book.roll_day(today))
            if hours.phase(now, self._config.market_hours) == "continuous":
                self._dispatch(self._book.match(self._market.step(hours.in_session(now)), now))

    # -- quotes (called by SimBroker; ticks by the market thread) ------------------

    def set_tick_sink(self, sink: Callable[[list[dict[str, Any]]], None] | None) -> None:
        self._tick_sink = sink

    def subscribe_quotes(self, codes: list[str]) -> list[str]:
        """Tick these codes from now on; returns those outside the universe (not subscribed)."""
        unknown = [code for code in codes if not is_stock_code(code)]
        with self._lock:
            for code in codes:
                if code not in unknown:
                    self._market.quote(code)  # walks from now on, like a traded symbol
                    self._quote_codes.add(code)
        return unknown

    def unsubscribe_quotes(self, codes: list[str]) -> None:
        with self._lock:
            self._quote_codes.difference_update(codes)

    def full_tick(self, stock_code: str) -> dict[str, Any] | None:
        """The latest tick of `stock_code`; None outside the universe."""
        self._xtdata_call("get_full_tick")
        if not is_stock_code(stock_code):
            return None
        with self._lock:
            return ticks.full_tick(self._market.quote(stock_code), self._clock())

    def publish_ticks(self) -> None:
        """Hand the ticks of every subscribed symbol to the sink (none while the market is
        closed). Built under the lock, handed over outside it."""
        sink = self._tick_sink
        if sink is None:
            return
        with self._lock:
            if self._closed or not self._quote_codes:
                return
            now = self._clock()
            if hours.phase(now, self._config.market_hours) == "closed":
                return
            codes = list(self._quote_codes)
        batch = []
        for code in codes:  # the lock a tick at a time: an order placed meanwhile waits for one
            with self._lock:
                if self._closed:
                    return
                batch.append(ticks.full_tick(self._market.quote(code), now))
        sink(batch)

    # -- sessions (called by the native clients) ---------------------------------------

    def connect(self, trader: Session) -> int:
        with self._lock:
            if self._closed or trader.session in self._sessions:
                return -1
            self._sessions[trader.session] = trader
            return 0

    def leave(self, trader: Session) -> None:
        with self._lock:
            if self._sessions.get(trader.session) is trader:
                del self._sessions[trader.session]
                self._subscribed.discard(trader.session)

    def live_sessions(self) -> set[int]:
        with self._lock:
            return set(self._sessions)

    def subscribe(self, trader: Session, account_id: str, on: bool) -> int:
        with self._lock:
            if self._sessions.get(trader.session) is not trader or account_id != self.account_id:
                return -1
            if not on:
                self._subscribed.discard(trader.session)
                return 0
            self._subscribed.add(trader.session)
            status = xt.XtAccountStatus(self.account_id, xt.SECURITY_ACCOUNT, xt.ACCOUNT_STATUS_OK)
            self._dispatch([Push("on_account_status", status)])
            return 0

    def place(self, trader: Session, seq: int, respond: bool, **request: Any) -> int:
        """An order from a session: (order_id, pushes dispatched); -1 when the session is gone."""
        with self._lock:
            if self._sessions.get(trader.session) is not trader:
                return -1
            now = self._clock()
            fault: Fault = self._rejects.pop(0) if self._rejects else None
            muted = self._mute_next > 0
            self._mute_next -= int(muted)
            order_id, pushes = self._book.place(
                **request,
                session_id=trader.session,
                seq=seq,
                respond=respond,
                phase=hours.phase(now, self._config.market_hours),
                fault=fault,
                now=now,
            )
            if not muted:  # mute_next_order: placed, and nobody is told
                self._dispatch(pushes, trader)
            return order_id

    def cancel(
        self, trader: Session, seq: int, respond: bool, account_id: str, **target: Any
    ) -> int:
        with self._lock:
            if self._sessions.get(trader.session) is not trader:
                return -1
            if account_id != self.account_id:
                target = {"order_id": -1}  # not found for this account
            refused = None
            if self._config.market_hours:
                refused = ashare.cancel_refused(hours.shanghai(self._clock()).time())
            result, pushes = self._book.cancel(seq=seq, respond=respond, refused=refused, **target)
            self._dispatch(pushes, trader)
            return result

    def query(self, account_id: str, what: Callable[[Book], Any], empty: Any) -> Any:
        """Run a read of the book under the lock; `empty` for another account."""
        with self._lock:
            return what(self._book) if account_id == self.account_id else empty

    def account_status(self) -> list[xt.XtAccountStatus]:
        return [xt.XtAccountStatus(self.account_id, xt.SECURITY_ACCOUNT, xt.ACCOUNT_STATUS_OK)]

    def answers_queries(self) -> bool:
        """False under the mute_queries fault: queries and subscribes go unanswered. Raises
        under the raise_in_queries fault (a native client that fails in the caller's call)."""
        if self._raise_in_queries:
            raise RuntimeError("the native client raised (raise_in_queries fault)")
        return not self._mute_queries

    # -- pushes ------------------------------------------------------------------

    def _dispatch(self, pushes: list[Push], requester: Session | None = None) -> None:
        """Hand pushes to the sessions' push threads in order (the records are already written)."""
        if not pushes:
            return
        if self._reorder:
            pushes = reorder(pushes)
        if self._skip_asset_pushes:
            pushes = [p for p in pushes if p.name not in ("on_stock_asset", "on_stock_position")]
        delay = self._config.callback_delay + self._fault_delay
        # each session's pushes in order, handed over at once: one wake-up per session
        batches: dict[int, list[tuple[str, Any]]] = {}
        for push in pushes:
            if push.private:
                if requester is not None and self._sessions.get(requester.session) is requester:
                    batches.setdefault(requester.session, []).append((push.name, push.payload))
                continue
            for session in self._subscribed:
                batches.setdefault(session, []).append((push.name, push.payload))
        for session, batch in batches.items():
            self._sessions[session].deliver_many(batch, delay)

    # -- market facts and faults (called by SimBroker) -------------------------

    def _xtdata_call(self, name: str) -> None:
        """Market data stands for xtdata: the slow_xtdata and fail_xtdata faults act here."""
        if self._xtdata_delay > 0:
            time.sleep(self._xtdata_delay)
        if self._xtdata_fails:
            raise RuntimeError(f"xtdata.{name} failed (fail_xtdata fault)")

    def instrument(self, stock_code: str) -> Instrument | None:
        self._xtdata_call("get_instrument_detail")
        if not is_stock_code(stock_code):
            return None
        with self._lock:
            return self._market.instrument(stock_code)

    def bars(
        self, stock_code: str, period: str, count: int, start_ms: int = 0, end_ms: int = 0
    ) -> list[dict[str, Any]] | None:
        """The last `count` bars of `stock_code` from the prices it traded at (market.py);
        None outside the universe."""
        self._xtdata_call("get_market_data_ex")
        if not is_stock_code(stock_code):
            return None
        with self._lock:
            return self._market.bars_of(stock_code, period, count, start_ms, end_ms)

    def instrument_detail(self, stock_code: str) -> dict[str, Any] | None:
        """xtdata.get_instrument_detail's fields for `stock_code`; None outside the universe."""
        found = self.instrument(stock_code)
        if found is None:
            return None
        code, exchange = stock_code.split(".")
        return {
            "ExchangeID": exchange,
            "InstrumentID": code,
            "InstrumentName": found.instrument_name,
            "PreClose": found.prev_close,
            "UpStopPrice": found.up_stop_price,
            "DownStopPrice": found.down_stop_price,
            "PriceTick": found.price_tick,
            "VolumeMultiple": 1,
        }

    def set_price(self, stock_code: str, price: float) -> str:
        with self._lock:
            now = self._clock()
            quote, clamped = self._market.set_price(stock_code, price)
            if hours.phase(now, self._config.market_hours) == "continuous":
                self._dispatch(self._book.match([stock_code], now))
            self._market.save(now)
            note = " (clamped to the daily limit)" if clamped else ""
            return f"{stock_code} last price {to_yuan(quote.last_m):.3f}{note}"

    def fault(self, fault: str, value: float = 0.0) -> str:
        with self._lock:
            if fault == "disconnect":
                delay = self._config.callback_delay + self._fault_delay
                dropped = list(self._sessions.values())
                self._sessions.clear()
                self._subscribed.clear()
                for trader in dropped:
                    trader.drop(delay)
                return f"disconnected {len(dropped)} session(s)"
            if fault in REJECTS:
                self._rejects.append(REJECTS[fault][0])
                return REJECTS[fault][1]
            if fault == "mute_next_order":
                self._mute_next += 1
                return "the next order is placed and nobody is told (no response, no pushes)"
            if fault == "mute_queries":
                self._mute_queries = bool(value)
                return "queries go unanswered" if value else "queries are answered"
            if fault == "raise_in_queries":
                self._raise_in_queries = bool(value)
                return "queries raise in the caller" if value else "queries do not raise"
            if fault == "skip_asset_pushes":
                self._skip_asset_pushes = bool(value)
                return "asset and position pushes are skipped" if value else "asset pushes on"
            if fault == "slow_xtdata":
                self._xtdata_delay = min(max(0.0, value), 600.0)
                return f"market data calls take {self._xtdata_delay:g} s"
            if fault == "fail_xtdata":
                self._xtdata_fails = bool(value)
                return "market data calls fail" if value else "market data calls work"
            if fault == "account_status":
                status = xt.XtAccountStatus(self.account_id, xt.SECURITY_ACCOUNT, int(value))
                self._dispatch([Push("on_account_status", status)])
                return f"account status {int(value)} pushed"
            if fault == "delay_callbacks":
                self._fault_delay = max(0.0, value)
                return f"every push is delayed by {self._fault_delay:g} s"
            if fault == "reorder_callbacks":
                self._reorder = bool(value)
                return "pushes are reordered" if self._reorder else "pushes are in order"
            if fault == "clear":
                self._rejects.clear()
                self._mute_next = 0
                self._mute_queries = self._skip_asset_pushes = self._xtdata_fails = False
                self._raise_in_queries = False
                self._fault_delay = self._xtdata_delay = 0.0
                self._reorder = False
                return "faults cleared"
            raise ValueError(f"unknown simulator fault {fault!r}")

    def close(self) -> None:
        """Stop the market and release the book; sessions still open just go dead."""
        global _any_path
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            for trader in self._sessions.values():
                trader.drop(None)
            self._sessions.clear()
            self._subscribed.clear()
            self._market.save(self._clock())
            self._store.close()
        with _registry_lock:
            if _registry.get(terminal_key(self.directory)) is self:
                del _registry[terminal_key(self.directory)]
            if _any_path is self:
                _any_path = None
            _unlock_directory(self._file_lock)


REJECTS: dict[str, tuple[Fault, str]] = {
    "reject_next": (
        "reject",
        "the next order will be rejected (response with error_msg, 57 junk, on_order_error)",
    ),
    "reject_next_error_first": (
        "reject_error_first",
        "the next order will be rejected (on_order_error before a clean response, 57 junk)",
    ),
    "silent_reject_next": ("silent", "the next order will be rejected without any callback"),
}


def reorder(pushes: list[Push]) -> list[Push]:
    """The reorder_callbacks fault: the first order push overtakes the order response, and a
    final order push (56) overtakes the trade push just before it."""
    out = list(pushes)
    for i, push in enumerate(out):
        if push.name == "on_order_stock_async_response":
            for j in range(i + 1, len(out)):
                if out[j].name == "on_stock_order":
                    out.insert(i, out.pop(j))
                    break
            break
    for i in range(len(out) - 1):
        nxt = out[i + 1]
        if (
            out[i].name == "on_stock_trade"
            and nxt.name == "on_stock_order"
            and nxt.payload.order_status == xt.ORDER_SUCCEEDED
        ):
            out[i], out[i + 1] = nxt, out[i]
    return out


def _lock_directory(directory: Path) -> Any:
    """Hold an OS lock on the book so two gateways never write it at once (freed by kill -9)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = open(directory / "lock", "a+b")  # noqa: SIM115 - held until close
    except OSError as err:
        raise BrokerUnavailable(
            f"cannot write the simulator book in {directory} ({err.strerror}); "
            "check gateway.data_dir"
        ) from None
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock; one gateway per data_dir is on the user
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise BrokerUnavailable(
            f"the simulator book in {directory} is in use by another process; stop the other "
            "gateway or give this one another gateway.data_dir"
        ) from None
    return handle


def _unlock_directory(handle: Any) -> None:
    handle.close()  # closing the file releases the flock
