"""The XtQuantTraderCallback the gateway registers: convert, hand over, return.

Runs on xtquant's single push thread. It never touches a socket and never
calls the broker (a synchronous call there deadlocks). xtquant swallows
exceptions raised here, so every handler logs its own.
"""

from __future__ import annotations

import functools
import logging
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from qmtbus import protocol as p
from qmtbus.gateway import convert

log = logging.getLogger("gateway.callbacks")


class Sink(Protocol):
    def post_event(self, event: p.Event) -> None: ...
    def post_disconnected(self, session_id: int, reason: str = ...) -> None: ...


# xtconstant's account statuses that mean the account cannot trade on this session:
# -1 invalid, 3 failed, 6 closed, 7 assist fail, 8 disabled by system, 9 disabled by user.
ACCOUNT_DOWN = {-1: "invalid", 3: "failed", 6: "closed", 7: "assist failed",
                8: "disabled by the system", 9: "disabled by the user"}  # fmt: skip


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

    def __init__(self, sink: Sink, session_id: int, trader: Any = None, account_id: str = ""):
        self.sink = sink
        self.session_id = session_id
        self.account_id = account_id
        # Weak: the trader holds this object as its callback; a cycle would leave the trader
        # to the garbage collector, on whatever thread it runs.
        self._trader = weakref.ref(trader) if trader is not None else None

    def on_connected(self) -> None:  # never called by xtquant; here for completeness
        pass

    @_logged
    def on_disconnected(self) -> None:
        self.sink.post_disconnected(self.session_id)

    @_logged
    def on_account_status(self, status: Any) -> None:
        event = convert.read(p.AccountStatusEvent, status)
        self.sink.post_event(event)
        down = ACCOUNT_DOWN.get(event.status)
        if down and (not self.account_id or event.account_id == self.account_id):
            # The account cannot trade on this session: drop it; a new one reconciles.
            reason = f"account {event.account_id} status {event.status} ({down})"
            self.sink.post_disconnected(self.session_id, reason)

    @_logged
    def on_stock_asset(self, asset: Any) -> None:
        self.sink.post_event(convert.asset_event(asset))

    @_logged
    def on_stock_order(self, order: Any) -> None:
        self.sink.post_event(convert.order_event(order))

    @_logged
    def on_stock_trade(self, trade: Any) -> None:
        self.sink.post_event(convert.trade_event(trade))

    @_logged
    def on_stock_position(self, position: Any) -> None:
        self.sink.post_event(convert.position_event(position))

    @_logged
    def on_order_error(self, error: Any) -> None:
        self.sink.post_event(convert.read(p.OrderErrorEvent, error))

    @_logged
    def on_cancel_error(self, error: Any) -> None:
        self.sink.post_event(convert.read(p.CancelErrorEvent, error))

    @_logged
    def on_order_stock_async_response(self, response: Any) -> None:
        event = convert.read(p.OrderResponseEvent, response)
        if not event.error_msg:
            # An on_order_error that came before this response waits in xttrader, which
            # delivers it right after this call returns: fold its message in, so that the
            # first answer for the order is the rejection, not "accepted".
            trader = self._trader() if self._trader is not None else None
            error = queued_order_error(trader, event.async_seq, event.order_id)
            if error is not None:
                message = str(getattr(error, "error_msg", "") or "on_order_error")
                event = msgspec.structs.replace(event, error_msg=message)
        self.sink.post_event(event)

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


def queued_order_error(trader: Any, seq: int, order_id: int) -> Any:
    """The on_order_error xttrader holds for this seq or order_id, to deliver right after the
    response (xttrader.py's queuing_order_errors_by*); None when there is none."""
    by_seq = getattr(trader, "queuing_order_errors_byseq", None) or {}
    by_id = getattr(trader, "queuing_order_errors_byid", None) or {}
    return by_seq.get(seq) or by_id.get(order_id)
