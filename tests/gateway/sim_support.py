"""Helpers for the simulator tests (no tests here): a real SimBroker on a temp dir, xtquant's
own XtQuantTrader over it, and a recording callback that waits on a condition instead of
sleeping."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qmtbus.config import Config, GatewayConfig, SimConfig
from qmtbus.gateway.broker.sim.broker import SimBroker
from qmtbus.gateway.broker.sim.hours import SHANGHAI
from qmtbus.gateway.broker.xtquant import release
from qmtbus.protocol import SimFault, SimSetPrice

CODE = "600000.SH"
BUY, SELL, LIMIT = 23, 24, 11
# A Tuesday, 10:00 in Shanghai: continuous trading even with market_hours on.
TUESDAY_10AM = dt.datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI).timestamp()
DAY = 86400.0


class Clock:
    """A settable clock (epoch seconds) for the simulator's trading day and timestamps."""

    def __init__(self, t: float = TUESDAY_10AM) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Call:
    name: str
    payload: Any
    thread: int


class Recorder:
    """A gateway-like callback: a plain object with every on_* method of XtQuantTraderCallback."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._cond = threading.Condition()
        self.on_call: Callable[[Call], None] | None = None

    def _record(self, name: str, payload: Any = None) -> None:
        call = Call(name, payload, threading.get_ident())
        if self.on_call is not None:
            self.on_call(call)
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def on_connected(self) -> None:
        self._record("on_connected")

    def on_disconnected(self) -> None:
        self._record("on_disconnected")

    def on_account_status(self, status: Any) -> None:
        self._record("on_account_status", status)

    def on_stock_asset(self, asset: Any) -> None:
        self._record("on_stock_asset", asset)

    def on_stock_order(self, order: Any) -> None:
        self._record("on_stock_order", order)

    def on_stock_trade(self, trade: Any) -> None:
        self._record("on_stock_trade", trade)

    def on_stock_position(self, position: Any) -> None:
        self._record("on_stock_position", position)

    def on_order_error(self, order_error: Any) -> None:
        self._record("on_order_error", order_error)

    def on_cancel_error(self, cancel_error: Any) -> None:
        self._record("on_cancel_error", cancel_error)

    def on_order_stock_async_response(self, response: Any) -> None:
        self._record("on_order_stock_async_response", response)

    def on_cancel_order_stock_async_response(self, response: Any) -> None:
        self._record("on_cancel_order_stock_async_response", response)

    def wait_for(self, predicate: Callable[[list[Call]], Any], timeout: float = 10.0) -> Any:
        """Block until `predicate(calls)` is truthy (checked on every callback); its value."""
        result: Any = None

        def check() -> bool:
            nonlocal result
            result = predicate(self.calls)
            return bool(result)

        with self._cond:
            if not self._cond.wait_for(check, timeout):
                names = [c.name for c in self.calls]
                raise AssertionError(f"timed out waiting; callbacks so far: {names}")
        return result

    def wait_call(self, name: str, where: Callable[[Any], bool] = lambda _: True) -> Any:
        """The payload of the first `name` callback matching `where`, once it has come."""
        found = self.wait_for(
            lambda calls: next((c for c in calls if c.name == name and where(c.payload)), None)
        )
        return found.payload

    def clear(self) -> None:
        with self._cond:
            self.calls.clear()

    def names(self) -> list[str]:
        with self._cond:
            return [c.name for c in self.calls]

    def order_statuses(self, order_id: int) -> list[int]:
        with self._cond:
            return [
                c.payload.order_status
                for c in self.calls
                if c.name == "on_stock_order" and c.payload.order_id == order_id
            ]


def sim_config(data_dir: Path, **sim: Any) -> Config:
    """Defaults for tests: the market thread idles (tests move prices themselves) and the
    book has no spread (fills at the last price)."""
    values: dict[str, Any] = {"tick_interval": 3600.0, "seed": 7, "spread_ticks": 0}
    values.update(sim)
    return Config(gateway=GatewayConfig(data_dir=str(data_dir)), sim=SimConfig(**values))


@dataclass
class Sim:
    broker: SimBroker
    clock: Clock
    traders: list[Any] = field(default_factory=list)

    @property
    def account(self) -> Any:
        return self.broker.account()

    def session(self, subscribe: bool = True) -> tuple[Any, Recorder]:
        """A trader connected (and subscribed) the way the gateway does it."""
        recorder = Recorder()
        _ensure_main_thread_loop()  # xttrader's constructor asks for the thread's loop
        trader = self.broker.new_trader(self.broker.new_session_id())
        trader.register_callback(recorder)
        trader.start()
        self.traders.append(trader)
        assert trader.connect() == 0
        if subscribe:
            assert trader.subscribe(self.account) == 0
            recorder.wait_call("on_account_status")
            recorder.clear()
        return trader, recorder

    def set_price(self, price: float, code: str = CODE) -> str:
        return self.broker.sim_command(SimSetPrice(stock_code=code, price=price))

    def fault(self, fault: Any, value: float = 0.0) -> str:
        return self.broker.sim_command(SimFault(fault=fault, value=value))

    def prev_close(self, code: str = CODE) -> float:
        instrument = self.broker.terminal.instrument(code)  # straight from the market
        assert instrument is not None
        return instrument.prev_close

    def buy(
        self, trader: Any, volume: int, price: float, remark: str = "", code: str = CODE
    ) -> int:
        return trader.order_stock_async(self.account, code, BUY, volume, LIMIT, price, "t", remark)

    def sell(
        self, trader: Any, volume: int, price: float, remark: str = "", code: str = CODE
    ) -> int:
        return trader.order_stock_async(self.account, code, SELL, volume, LIMIT, price, "t", remark)

    def close(self) -> None:
        for trader in self.traders:
            release(trader)
        self.broker.close()


@contextmanager
def open_sim(data_dir: Path, clock: Clock | None = None, **sim: Any) -> Iterator[Sim]:
    clock = clock or Clock()
    with main_thread_loop():
        sim_ = Sim(SimBroker(sim_config(data_dir, **sim), clock=clock), clock)
        try:
            yield sim_
        finally:
            sim_.close()
            sim_.traders.clear()


# Main-thread event loops kept for the whole test session (see main_thread_loop).
_KEPT_LOOPS: list[asyncio.AbstractEventLoop] = []


def _ensure_main_thread_loop() -> None:
    """On the main thread, give it a loop (one kept for the session) when it has none: an
    earlier test's asyncio.run() leaves it without one, and XtQuantTrader() then raises."""
    if threading.current_thread() is not threading.main_thread():
        return
    policy = asyncio.get_event_loop_policy()
    if getattr(getattr(policy, "_local", None), "_loop", None) is None:
        if not _KEPT_LOOPS:
            _KEPT_LOOPS.append(asyncio.new_event_loop())
        asyncio.set_event_loop(_KEPT_LOOPS[0])


@contextmanager
def main_thread_loop() -> Iterator[None]:
    """XtQuantTrader built on the main thread saves the thread's event loop (making one if
    there is none) and puts it back from __del__, whenever that runs: even after the test.
    So the main thread gets one loop for the whole session, never closed nor dropped (a
    dropped loop warns when collected), and any loop it had before is kept alive too."""
    policy = asyncio.get_event_loop_policy()
    previous = getattr(getattr(policy, "_local", None), "_loop", None)
    if previous is not None and previous not in _KEPT_LOOPS:
        _KEPT_LOOPS.append(previous)
    if not _KEPT_LOOPS:
        _KEPT_LOOPS.append(asyncio.new_event_loop())
    loop = previous or _KEPT_LOOPS[0]
    asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        gc.collect()  # stopped traders: their __del__ runs now, on this thread
        asyncio.set_event_loop(loop)


def settle(sim: Sim, trader: Any, recorder: Recorder) -> None:
    """Wait until every push queued so far has been delivered: the push thread is FIFO, so once
    the answer to a fresh marker request arrives, all earlier pushes have too. The marker's own
    callbacks are then removed."""
    seq = trader.cancel_order_stock_async(sim.account, 999_999_999)
    recorder.wait_call("on_cancel_error", lambda e: e.order_id == 999_999_999)
    with recorder._cond:
        recorder.calls[:] = [
            c
            for c in recorder.calls
            if not (
                (c.name == "on_cancel_error" and c.payload.order_id == 999_999_999)
                or (c.name == "on_cancel_order_stock_async_response" and c.payload.seq == seq)
            )
        ]


def response_for(recorder: Recorder, seq: int) -> Any:
    return recorder.wait_call("on_order_stock_async_response", lambda r: r.seq == seq)


def wait_status(recorder: Recorder, order_id: int, status: int) -> Any:
    return recorder.wait_call(
        "on_stock_order", lambda o: o.order_id == order_id and o.order_status == status
    )
