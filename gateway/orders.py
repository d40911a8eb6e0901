"""Orders and cancels on the I/O thread: idempotent intake, waiting for the broker, outcomes.

An order is written down ("sending") before it goes to the broker; the first
answer for a client_order_id is the answer for every resend of it. The reply
waits for the broker's response up to order_reply_timeout, then says
"pending" and the events carry the outcome. Outcomes never guessed: an order
whose response never came is resolved by finding its order_remark in the
broker's orders.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from qmtbus import protocol as p
from qmtbus.gateway.handoff import SendCancel, SendOrder
from qmtbus.gateway.outcome import order_outcome
from qmtbus.gateway.store import ACCEPTED, REJECTED, SENDING, SENT, ClientOrder

if TYPE_CHECKING:
    from qmtbus.gateway.server import Server

log = logging.getLogger("gateway.orders")

_NEVER = float("inf")
ORPHAN_AFTER_NS = 5_000_000_000
ORPHANED = (
    "not placed: the gateway stopped before this order reached the broker; "
    "send it again with a new client_order_id"
)


@dataclass(slots=True)
class Waiter:
    envelope: list[bytes]
    json: bool
    deadline: float
    duplicate: bool = False


class OrderDesk:
    def __init__(self, server: Server):
        self.server = server
        self.book = server.book
        self.store = server.store
        self.timeout = server.config.gateway.order_reply_timeout
        self.max_in_flight = server.config.gateway.max_in_flight_per_client
        self.order_waiters: dict[str, list[Waiter]] = {}
        self.cancel_waiters: dict[int, list[Waiter]] = {}
        self.by_async_seq: dict[int, str] = {}
        # orders written down before this are a previous gateway process's
        self.started_ns = p.now_ns()

    # -- requests ---------------------------------------------------------------------
    def place(self, envelope: list[bytes], json: bool, cmd: p.PlaceOrder) -> None:
        server = self.server
        rec = self.book.client_orders.get(cmd.client_order_id)
        if rec is not None:
            if rec.state in (SENDING, SENT) and cmd.client_order_id in self.order_waiters:
                self._wait(self.order_waiters, cmd.client_order_id, envelope, json, True)
            else:
                server.reply(envelope, json, rec.ack(duplicate=True))
            return
        if server.stopping or server.state != "ready":
            why = "the gateway is stopping" if server.stopping else f"the gateway is {server.state}"
            server.reply(envelope, json, _error(p.NOT_CONNECTED, f"{why}; order not sent"))
            return
        if self._in_flight(envelope) >= self.max_in_flight:
            server.reply(envelope, json, _busy(self.max_in_flight))
            return
        denial = server.risk.check(cmd, self.book)
        if denial is not None:
            server.emit(_denied_event(cmd, denial.rule, denial.message))
            reply = p.ErrorReply(code=p.RISK_DENIED, message=denial.message, rule=denial.rule)
            server.reply(envelope, json, reply)
            return
        server.risk.record(cmd)
        rec = self.store.add_sending(self.book.trading_day(), cmd, p.now_ns())
        self.book.client_orders[cmd.client_order_id] = rec
        self._wait(self.order_waiters, cmd.client_order_id, envelope, json, False)
        server.lifecycle.submit(SendOrder(cmd))

    def cancel(self, envelope: list[bytes], json: bool, cmd: p.CancelOrder) -> None:
        server = self.server
        if (cmd.order_id > 0) == bool(cmd.client_order_id):
            message = "give exactly one of order_id and client_order_id"
            server.reply(envelope, json, _error(p.BAD_REQUEST, message))
            return
        order_id = cmd.order_id
        if cmd.client_order_id:
            rec = self.book.client_orders.get(cmd.client_order_id)
            if rec is None:
                message = f"no order with client_order_id {cmd.client_order_id!r} today"
                server.reply(envelope, json, _error(p.NOT_FOUND, message))
                return
            if rec.order_id <= 0:
                message = (
                    f"order {cmd.client_order_id!r} has no broker order_id "
                    f"({rec.state}{': ' + rec.error_msg if rec.error_msg else ''}); "
                    "nothing to cancel yet"
                )
                server.reply(envelope, json, _error(p.NOT_FOUND, message))
                return
            order_id = rec.order_id
        if server.stopping or server.state != "ready":
            message = f"the gateway is {server.state}; cancel not sent"
            server.reply(envelope, json, _error(p.NOT_CONNECTED, message))
            return
        if self._in_flight(envelope) >= self.max_in_flight:
            server.reply(envelope, json, _busy(self.max_in_flight))
            return
        self._wait(self.cancel_waiters, order_id, envelope, json, False)
        server.lifecycle.submit(SendCancel(order_id))

    # -- what the broker thread reports ---------------------------------------------
    def on_sent(self, client_order_id: str, async_seq: int) -> None:
        self.by_async_seq[async_seq] = client_order_id
        rec = self.book.client_orders.get(client_order_id)
        if rec is not None and rec.state == SENDING:
            self.store.update_client_order(rec, SENT)

    def on_failed(self, client_order_id: str, message: str) -> None:
        rec = self.book.client_orders.get(client_order_id)
        if rec is not None:
            self.store.update_client_order(rec, REJECTED, error_msg=message)
            self._answer_order(rec)

    def on_cancel_failed(self, order_id: int, message: str) -> None:
        rec = self.store.client_order_by_order_id(order_id)
        ack = p.CancelAck(
            order_id=order_id,
            client_order_id=rec.client_order_id if rec else "",
            cancel_result=-1,
            error_msg=message,
        )
        self._answer(self.cancel_waiters.pop(order_id, []), ack)

    def on_broker_event(self, ev: p.Event) -> None:
        if isinstance(ev, p.OrderEvent):
            self._on_order(ev)
        elif isinstance(ev, p.TradeEvent):
            trade = self.book.accept_trade(ev)
            if trade is not None:
                self.server.emit(trade)
        elif isinstance(ev, p.PositionEvent):
            self.server.emit(self.book.accept_position(ev))
        elif isinstance(ev, p.AssetEvent):
            self.server.emit(self.book.accept_asset(ev))
        elif isinstance(ev, p.OrderResponseEvent):
            self._on_order_response(ev)
        elif isinstance(ev, p.OrderErrorEvent):
            self._on_order_error(ev)
        elif isinstance(ev, p.CancelResponseEvent | p.CancelErrorEvent):
            self._on_cancel_outcome(ev)
        else:
            self.server.emit(ev)

    def _on_order(self, ev: p.OrderEvent) -> None:
        out = self.book.accept_order(ev)
        if out is not None:
            self.server.emit(out)
        self._learn(ev.order_remark, ev.order_id, ev.order_status, ev.status_msg)

    def _on_order_response(self, ev: p.OrderResponseEvent) -> None:
        remark = ev.order_remark or self.by_async_seq.pop(ev.async_seq, "")
        rec = self.book.client_order_for(remark, ev.order_id)
        if rec is not None:
            ev = msgspec.structs.replace(
                ev, client_order_id=rec.client_order_id, order_remark=remark
            )
            if rec.state in (SENDING, SENT):
                outcome, reason = order_outcome(ev.order_id, ev.error_msg)
                if outcome == "accepted":
                    self.store.update_client_order(rec, ACCEPTED, ev.order_id)
                else:
                    order_id = ev.order_id if ev.order_id > 0 else None
                    self.store.update_client_order(rec, REJECTED, order_id, reason)
                self._answer_order(rec)
        self.server.emit(ev)

    def _on_order_error(self, ev: p.OrderErrorEvent) -> None:
        rec = self.book.client_order_for(ev.order_remark, ev.order_id)
        if rec is not None:
            ev = msgspec.structs.replace(ev, client_order_id=rec.client_order_id)
            self.store.update_client_order(rec, REJECTED, error_msg=ev.error_msg)
            self._answer_order(rec)
        self.server.emit(ev)

    def _on_cancel_outcome(self, ev: p.CancelResponseEvent | p.CancelErrorEvent) -> None:
        rec = self.store.client_order_by_order_id(ev.order_id)
        if rec is not None:
            ev = msgspec.structs.replace(ev, client_order_id=rec.client_order_id)
        self.server.emit(ev)
        failed = isinstance(ev, p.CancelErrorEvent) or ev.cancel_result != 0 or bool(ev.error_msg)
        ack = p.CancelAck(
            order_id=ev.order_id,
            client_order_id=ev.client_order_id,
            cancel_result=-1 if failed else 0,
            error_msg=ev.error_msg,
        )
        self._answer(self.cancel_waiters.pop(ev.order_id, []), ack)

    def resolve_from(self, orders: list[p.Order]) -> None:
        """Learn outcomes from the broker's own list of orders (after a reconnect,
        a restart, or a response that never came)."""
        for order in orders:
            self._learn(order.order_remark, order.order_id, order.order_status, order.status_msg)

    def give_up_orphans(self, orders: list[p.Order]) -> None:
        """A previous gateway process wrote these down as "sending" and died before its
        broker call: the broker does not list them, so they were never placed. Say so
        (rejected), instead of "pending" for ever; a resend gets this answer too."""
        at_broker = {o.order_remark for o in orders if o.order_remark}
        # A request may still be on its way into the terminal right after a restart:
        # give up only on orders older than that (the periodic resolve looks again).
        settled = p.now_ns() - ORPHAN_AFTER_NS
        for rec in list(self.book.client_orders.values()):
            if (
                rec.state == SENDING
                and rec.created_ns < min(self.started_ns, settled)
                and rec.client_order_id not in at_broker
            ):
                log.warning(
                    "order %s never reached the broker (gateway restart)", rec.client_order_id
                )
                self.store.update_client_order(rec, REJECTED, error_msg=ORPHANED)
                self._answer_order(rec)

    def _learn(self, remark: str, order_id: int, status: int, status_msg: str) -> None:
        rec = self.book.client_orders.get(remark) if remark else None
        if rec is None or order_id <= 0:
            return
        if status == p.ORDER_JUNK and rec.state != REJECTED:
            self.store.update_client_order(rec, REJECTED, order_id, status_msg or "junk order")
        elif rec.state in (SENDING, SENT):
            self.store.update_client_order(rec, ACCEPTED, order_id)
        else:
            return
        self._answer_order(rec)

    # -- waiting -------------------------------------------------------------------------------
    def _wait(
        self, table: dict[Any, list[Waiter]], key: Any, env: list[bytes], json: bool, dup: bool
    ) -> None:
        waiter = Waiter(env, json, time.monotonic() + self.timeout, dup)
        table.setdefault(key, []).append(waiter)

    def _answer_order(self, rec: ClientOrder) -> None:
        for w in self.order_waiters.pop(rec.client_order_id, []):
            self.server.reply(w.envelope, w.json, rec.ack(duplicate=w.duplicate))

    def _answer(self, waiters: list[Waiter], reply: Any) -> None:
        for w in waiters:
            self.server.reply(w.envelope, w.json, reply)

    def expire(self, now: float) -> None:
        """Answer requests whose broker response is late: orders say pending."""
        if now < self.next_deadline():  # the usual case, checked every loop turn
            return
        for coid in [k for k, ws in self.order_waiters.items() if ws[0].deadline <= now]:
            rec = self.book.client_orders[coid]
            log.warning("order %s: no broker response in %.1fs (pending)", coid, self.timeout)
            self._answer_order(rec)
        for order_id in [k for k, ws in self.cancel_waiters.items() if ws[0].deadline <= now]:
            message = (
                f"no cancel response from the broker within {self.timeout:g}s; the cancel may "
                "still take effect: watch the order events"
            )
            self._answer(self.cancel_waiters.pop(order_id), _error(p.BROKER_ERROR, message))

    def next_deadline(self) -> float:
        if not self.order_waiters and not self.cancel_waiters:
            return _NEVER
        heads = [ws[0].deadline for ws in self.order_waiters.values()]
        heads += [ws[0].deadline for ws in self.cancel_waiters.values()]
        return min(heads, default=float("inf"))

    def waiting(self) -> bool:
        return bool(self.order_waiters or self.cancel_waiters)

    def unresolved(self) -> bool:
        return any(r.state in (SENDING, SENT) for r in self.book.client_orders.values())

    def _in_flight(self, envelope: list[bytes]) -> int:
        peer = envelope[0]
        tables: list[dict[Any, list[Waiter]]] = [self.order_waiters, self.cancel_waiters]
        return sum(1 for t in tables for ws in t.values() for w in ws if w.envelope[0] == peer)


def _error(code: str, message: str) -> p.ErrorReply:
    return p.ErrorReply(code=code, message=message)


def _busy(limit: int) -> p.ErrorReply:
    return _error(
        p.BUSY, f"more than {limit} requests in flight from this client; wait for replies"
    )


def _denied_event(cmd: p.PlaceOrder, rule: str, message: str) -> p.RiskDeniedEvent:
    return p.RiskDeniedEvent(
        client_order_id=cmd.client_order_id,
        stock_code=cmd.stock_code,
        order_type=cmd.order_type,
        order_volume=cmd.order_volume,
        price_type=cmd.price_type,
        price=cmd.price,
        strategy_name=cmd.strategy_name,
        rule=rule,
        message=message,
    )
