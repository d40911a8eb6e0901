"""The XtQuantTraderCallback the gateway registers: convert, hand over, return.

Runs on xtquant's single push thread. It never touches a socket and never
calls the broker (a synchronous call there deadlocks). xtquant swallows
exceptions raised here, so every handler logs its own.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Protocol

from qmtbus import protocol as p
from qmtbus.gateway import convert

log = logging.getLogger("gateway.callbacks")


class Sink(Protocol):
    def post_event(self, event: p.Event) -> None: ...
    def post_disconnected(self, session_id: int) -> None: ...


def _logged(fn: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(fn)
    def wrapper(self: Callbacks, *args: Any) -> None:
        try:
            fn(self, *args)
        except Exception:
            log.exception("callback %s failed (session %s)", fn.__name__, self.session_id)

    return wrapper


class Callbacks:
    """One instance per trader object (per session)."""

    def __init__(self, sink: Sink, session_id: int):
        self.sink = sink
        self.session_id = session_id

    def on_connected(self) -> None:  # never called by xtquant; here for completeness
        pass

    @_logged
    def on_disconnected(self) -> None:
        self.sink.post_disconnected(self.session_id)

    @_logged
    def on_account_status(self, status: Any) -> None:
        self.sink.post_event(convert.read(p.AccountStatusEvent, status))

    @_logged
    def on_stock_asset(self, asset: Any) -> None:
        self.sink.post_event(convert.as_event(convert.asset(asset)))

    @_logged
    def on_stock_order(self, order: Any) -> None:
        self.sink.post_event(convert.as_event(convert.order(order)))

    @_logged
    def on_stock_trade(self, trade: Any) -> None:
        self.sink.post_event(convert.as_event(convert.trade(trade)))

    @_logged
    def on_stock_position(self, position: Any) -> None:
        self.sink.post_event(convert.as_event(convert.position(position)))

    @_logged
    def on_order_error(self, error: Any) -> None:
        self.sink.post_event(convert.read(p.OrderErrorEvent, error))

    @_logged
    def on_cancel_error(self, error: Any) -> None:
        self.sink.post_event(convert.read(p.CancelErrorEvent, error))

    @_logged
    def on_order_stock_async_response(self, response: Any) -> None:
        self.sink.post_event(convert.read(p.OrderResponseEvent, response))

    @_logged
    def on_cancel_order_stock_async_response(self, response: Any) -> None:
        self.sink.post_event(convert.read(p.CancelResponseEvent, response))

    # Callbacks for products qmtbus does not trade; present so that the real
    # client finds every method it may call.
    def on_smt_appointment_async_response(self, response: Any) -> None:
        pass

    def on_bank_transfer_async_response(self, response: Any) -> None:
        pass

    def on_ctp_internal_transfer_async_response(self, response: Any) -> None:
        pass

    def on_smart_algo_order_async_response(self, response: Any) -> None:
        pass

    def on_operate_smart_task_async_response(self, response: Any) -> None:
        pass
