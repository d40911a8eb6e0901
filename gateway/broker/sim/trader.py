"""SimTrader: XtQuantTrader's constructor, methods, parameter names, defaults and return codes.

Like the real client, every callback (pushes and async responses) runs on one
push thread per trader, exceptions raised in callbacks are swallowed, and
stop() from a callback raises. Where the real client would deadlock (a
synchronous call made from a callback) this one raises RuntimeError instead,
so the mistake shows in tests rather than in production.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from qmtbus.gateway.broker.sim import objects as xt
from qmtbus.gateway.broker.sim import terminal as terminals
from qmtbus.gateway.broker.sim.book import Book

log = logging.getLogger(__name__)


class SimTrader:
    def __init__(self, path: str, session: int, callback: Any = None) -> None:
        self.path: str = str(path)
        self.session: int = int(session)
        self.callback: Any = callback
        self.connected = False
        # Like the real one: a fresh event loop set as this thread's loop, never run.
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.relaxed_resp_order_enabled = False
        self._executor: ThreadPoolExecutor | None = None
        # Set by stop(): a stopped client delivers nothing more, delayed pushes included.
        self._stopped = threading.Event()
        self._push_thread: int | None = None
        self._terminal: terminals.SimTerminal | None = None
        self._dead = False
        self._seq = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------

    def register_callback(self, callback: Any) -> None:
        self.callback = callback

    def start(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix=f"xtsim-push-{self.session}",
                initializer=self._mark_push_thread,
            )

    def stop(self) -> None:
        if self._on_push_thread():
            # The real stop() joins the push thread: from a callback that is joining itself.
            raise RuntimeError("cannot join current thread: stop() was called from a callback")
        self._dead = True
        self.connected = False
        self._stopped.set()
        if self._terminal is not None:
            self._terminal.leave(self)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        if not self.loop.is_closed():
            self.loop.close()

    def connect(self) -> int:
        if self._dead or self._executor is None or self.connected:
            return -1
        terminal = terminals.lookup(self.path)
        if terminal is None:
            return -1  # no miniQMT running at this path
        result = terminal.connect(self)
        if result == 0:
            self._terminal = terminal
            self.connected = True
        return result

    def subscribe(self, account: Any) -> int:
        terminal = self._live("subscribe", query=True)
        return terminal.subscribe(self, account.account_id, True) if terminal else -1

    def unsubscribe(self, account: Any) -> int:
        terminal = self._live("unsubscribe", query=True)
        return terminal.subscribe(self, account.account_id, False) if terminal else -1

    def set_relaxed_response_order_enabled(self, enabled: bool) -> None:
        self.relaxed_resp_order_enabled = bool(enabled)

    # -- trading -----------------------------------------------------------------

    def order_stock_async(
        self,
        account: Any,
        stock_code: str,
        order_type: int,
        order_volume: int,
        price_type: int,
        price: float,
        strategy_name: str = "",
        order_remark: str = "",
    ) -> int:
        terminal = self._live()
        if terminal is None:
            return -1
        seq = next(self._seq)
        terminal.place(
            self,
            seq,
            True,
            **_order(account, stock_code, order_type, order_volume, price_type, price,
                     strategy_name, order_remark),
        )  # fmt: skip
        return seq

    def order_stock(
        self,
        account: Any,
        stock_code: str,
        order_type: int,
        order_volume: int,
        price_type: int,
        price: float,
        strategy_name: str = "",
        order_remark: str = "",
    ) -> int:
        terminal = self._live("order_stock", sync=True)
        if terminal is None:
            return -1
        return terminal.place(
            self,
            next(self._seq),
            False,
            **_order(account, stock_code, order_type, order_volume, price_type, price,
                     strategy_name, order_remark),
        )  # fmt: skip

    def cancel_order_stock(self, account: Any, order_id: int) -> int:
        terminal = self._live("cancel_order_stock", sync=True)
        if terminal is None or account.account_id != terminal.account_id:
            return -1
        return terminal.cancel(self, next(self._seq), False, order_id=int(order_id))

    def cancel_order_stock_async(self, account: Any, order_id: int) -> int:
        terminal = self._live()
        if terminal is None or account.account_id != terminal.account_id:
            return -1
        seq = next(self._seq)
        terminal.cancel(self, seq, True, order_id=int(order_id))
        return seq

    def cancel_order_stock_sysid(self, account: Any, market: int | str, sysid: str) -> int:
        terminal = self._live("cancel_order_stock_sysid", sync=True)
        if terminal is None or account.account_id != terminal.account_id:
            return -1
        return terminal.cancel(self, next(self._seq), False, sysid=str(sysid), market=market)

    def cancel_order_stock_sysid_async(self, account: Any, market: int | str, sysid: str) -> int:
        terminal = self._live()
        if terminal is None or account.account_id != terminal.account_id:
            return -1
        seq = next(self._seq)
        terminal.cancel(self, seq, True, sysid=str(sysid), market=market)
        return seq

    # -- queries -------------------------------------------------------------------

    def query_stock_asset(self, account: Any) -> xt.XtAsset | None:
        return self._query("query_stock_asset", account, Book.asset, None)

    def query_stock_order(self, account: Any, order_id: int) -> xt.XtOrder | None:
        return self._query(
            "query_stock_order", account, lambda b: b.order_view(int(order_id)), None
        )

    def query_stock_orders(
        self, account: Any, cancelable_only: bool = False
    ) -> list[xt.XtOrder] | None:
        return self._query(
            "query_stock_orders", account, lambda b: b.order_views(bool(cancelable_only)), []
        )

    def query_stock_trades(self, account: Any) -> list[xt.XtTrade] | None:
        return self._query("query_stock_trades", account, Book.trade_views, [])

    def query_stock_position(self, account: Any, stock_code: str) -> xt.XtPosition | None:
        return self._query(
            "query_stock_position", account, lambda b: b.position_view(stock_code), None
        )

    def query_stock_positions(self, account: Any) -> list[xt.XtPosition] | None:
        return self._query("query_stock_positions", account, Book.position_views, [])

    def query_account_status(self) -> list[xt.XtAccountStatus] | None:
        terminal = self._live("query_account_status", query=True)
        return terminal.account_status() if terminal else None

    # -- internals -----------------------------------------------------------------

    def _query(self, name: str, account: Any, what: Any, empty: Any) -> Any:
        terminal = self._live(name, query=True)
        if terminal is None:
            return None
        return terminal.query(account.account_id, what, empty)

    def _live(
        self, name: str = "", *, sync: bool = False, query: bool = False
    ) -> terminals.SimTerminal | None:
        """The terminal when this session is connected, else None (the call fails)."""
        if (sync or (query and not self.relaxed_resp_order_enabled)) and self._on_push_thread():
            message = (
                f"{name}() from a callback deadlocks the real XtQuantTrader "
                f"(its reply comes on the push thread, which is busy running this callback)"
            )
            log.error("%s", message)
            raise RuntimeError(message)
        if self._dead or not self.connected:
            return None
        return self._terminal

    def _mark_push_thread(self) -> None:
        self._push_thread = threading.get_ident()

    def _on_push_thread(self) -> bool:
        return self._push_thread is not None and threading.get_ident() == self._push_thread

    def deliver(self, name: str, payload: Any, delay: float | None) -> None:
        """Queue one callback on the push thread (the terminal calls this, under its lock)."""
        if self._executor is not None:
            self._executor.submit(self._run_callback, name, payload, delay or 0.0)

    def drop(self, delay: float | None) -> None:
        """The terminal dropped this session: every call fails from now on; `delay` not None
        means the session is told with on_disconnected."""
        self._dead = True
        self.connected = False
        if delay is not None:
            self.deliver("on_disconnected", None, delay)

    def _run_callback(self, name: str, payload: Any, delay: float) -> None:
        if self._stopped.wait(delay) if delay > 0 else self._stopped.is_set():
            return
        method = getattr(self.callback, name, None)
        if method is None:
            return
        try:
            method() if name == "on_disconnected" else method(payload)
        except Exception:
            # The real client swallows callback exceptions silently.
            log.debug("callback %s raised", name, exc_info=True)

    def __del__(self) -> None:
        loop = getattr(self, "loop", None)
        if loop is not None and not loop.is_closed():
            loop.close()


def _order(
    account: Any,
    stock_code: Any,
    order_type: Any,
    order_volume: Any,
    price_type: Any,
    price: Any,
    strategy_name: Any,
    order_remark: Any,
) -> dict[str, Any]:
    # The real client converts as it fills its request struct: int volume, the rest as given.
    return {
        "account_id": account.account_id,
        "stock_code": str(stock_code),
        "order_type": int(order_type),
        "order_volume": int(order_volume),
        "price_type": int(price_type),
        "price": float(price),
        "strategy_name": str(strategy_name),
        "order_remark": str(order_remark),
    }
