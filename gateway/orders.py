"""Orders and cancels on the I/O thread: idempotent intake, waiting for the broker, outcomes.

An order's intent (a `client_order` event, status sending) is journaled before it
goes to the broker; the first answer for a client_order_id is the answer for
every resend of it. The reply waits for the broker's response up to
order_reply_timeout, then says "pending" and the events carry the outcome.

Outcomes never guessed: every change of a client order's outcome is a
`client_order` event, moved along store.OUTCOME_TRANSITIONS. "not_placed" only
when the order provably never reached the broker (the broker thread refused it
before calling, or the journal could not take its intent). An order whose answer
was lost (a restart) is "unknown" and looked up by its order_remark in the
broker's orders and trades until found.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from qmtbus import protocol as p
from qmtbus.clock import shanghai
from qmtbus.gateway import ashare
from qmtbus.gateway.book import Book
from qmtbus.gateway.handoff import Job, SendCancel, SendOrder
from qmtbus.gateway.outcome import order_outcome
from qmtbus.gateway.store import ClientOrder, Outcome, can_move, intent

log = logging.getLogger("gateway.orders")

_NEVER = float("inf")
_CLIENT_ORDER_ID = re.compile(r"^[\x21-\x7e]{1,24}$")
UNKNOWN_AFTER_RESTART = (
    "outcome unknown: the gateway restarted before the broker answered; it is looking the "
    "order up by its order_remark and will publish the outcome as a client_order event"
)


class Bus(Protocol):
    """What OrderDesk needs from the gateway's I/O loop."""

    def emit(self, event: p.Event) -> int: ...
    def reply(self, envelope: list[bytes], json: bool, message: Any) -> None: ...
    def submit(self, job: Job) -> None: ...
    def submit_after_journal(self, job: SendOrder) -> None: ...
    def refusal(self, what: str) -> p.ErrorReply | None: ...


class Risk(Protocol):
    def check(self, order: p.PlaceOrder, book: Any) -> Any: ...
    def record(self, order: p.PlaceOrder, book: Any = None) -> float: ...
    def restore(self, day: str, orders: list[tuple[str, float]]) -> None: ...


@dataclass(slots=True)
class Waiter:
    envelope: list[bytes]
    json: bool
    deadline: float
    duplicate: bool = False


class OrderDesk:
    """`clock` (epoch seconds) is a port: with `cancel_windows`, cancels in the exchange's
    no-cancel windows (ashare.cancel_window) are refused before anything is sent."""

    def __init__(
        self,
        bus: Bus,
        book: Book,
        risk: Risk,
        *,
        reply_timeout: float,
        max_in_flight: int,
        cancel_windows: bool = False,
        clock: Callable[[], float] = time.time,
    ):
        self.bus = bus
        self.cancel_windows = cancel_windows
        self.clock = clock
        self.book = book
        self.risk = risk
        self.timeout = reply_timeout
        self.max_in_flight = max_in_flight
        self.order_waiters: dict[str, list[Waiter]] = {}
        self.cancel_waiters: dict[int, list[Waiter]] = {}
        self.by_async_seq: dict[int, str] = {}

    # -- requests ---------------------------------------------------------------------
    def place(self, envelope: list[bytes], json: bool, cmd: p.PlaceOrder) -> None:
        bus = self.bus
        rec = self.book.client_orders.get(cmd.client_order_id)
        if rec is not None:
            if rec.state == Outcome.SENDING and cmd.client_order_id in self.order_waiters:
                self._wait(self.order_waiters, cmd.client_order_id, envelope, json, True)
            else:
                bus.reply(envelope, json, rec.ack(duplicate=True))
            return
        refusal = bus.refusal("order not sent")
        if refusal is not None:
            bus.reply(envelope, json, refusal)
            return
        if self._in_flight(envelope) >= self.max_in_flight:
            bus.reply(envelope, json, _busy(self.max_in_flight))
            return
        denial = self.risk.check(cmd, self.book)
        if denial is not None:
            bus.emit(_denied_event(cmd, denial.rule, denial.message))
            reply = p.ErrorReply(code=p.RISK_DENIED, message=denial.message, rule=denial.rule)
            bus.reply(envelope, json, reply)
            return
        notional = self.risk.record(cmd)
        bus.emit(intent(self.book.ledger.day, cmd, notional))  # the ledger now holds it
        self._wait(self.order_waiters, cmd.client_order_id, envelope, json, False)
        bus.submit_after_journal(SendOrder(cmd))

    def cancel(self, envelope: list[bytes], json: bool, cmd: p.CancelOrder) -> None:
        bus = self.bus
        if (cmd.order_id > 0) == bool(cmd.client_order_id):
            message = "give exactly one of order_id and client_order_id"
            bus.reply(envelope, json, _error(p.BAD_REQUEST, message))
            return
        order_id = cmd.order_id
        if cmd.client_order_id:
            rec = self.book.client_orders.get(cmd.client_order_id)
            if rec is None:
                message = f"no order with client_order_id {cmd.client_order_id!r} today"
                bus.reply(envelope, json, _error(p.NOT_FOUND, message))
                return
            if rec.order_id <= 0:
                message = (
                    f"order {cmd.client_order_id!r} has no broker order_id "
                    f"({rec.state}{': ' + rec.error_msg if rec.error_msg else ''}); "
                    "nothing to cancel yet"
                )
                bus.reply(envelope, json, _error(p.NOT_FOUND, message))
                return
            order_id = rec.order_id
        window = ashare.cancel_window(shanghai(self.clock())) if self.cancel_windows else None
        if window is not None:
            bus.reply(envelope, json, _error(p.RISK_DENIED, f"cancel not sent: {window}"))
            return
        refusal = bus.refusal("cancel not sent")
        if refusal is not None and refusal.code != p.DISK_FULL:  # cancels pass a full disk
            bus.reply(envelope, json, refusal)
            return
        if self._in_flight(envelope) >= self.max_in_flight:
            bus.reply(envelope, json, _busy(self.max_in_flight))
            return
        self._wait(self.cancel_waiters, order_id, envelope, json, False)
        bus.submit(SendCancel(order_id))

    # -- outcomes ----------------------------------------------------------------------
    def _move(self, rec: ClientOrder, outcome: Outcome, order_id: int = 0, why: str = "") -> bool:
        """Move a client order to `outcome` by emitting its client_order event; answer
        whoever waits. A move the transition table forbids is logged, not made."""
        if rec.state == outcome:
            return False
        if not can_move(rec.state, outcome):
            log.error(
                "client order %s: %s -> %s is not a legal transition; kept %s (%s)",
                rec.client_order_id,
                rec.state,
                outcome,
                rec.state,
                why or f"order_id {order_id}",
            )
            return False
        self.bus.emit(rec.event(outcome, order_id, why))  # the ledger applies it
        self._answer_order(rec)
        return True

    def mark_unknown(self) -> None:
        """At start: every order still "sending" in the journal was a previous process's,
        whose broker answer is lost. Say so (an event), then look it up."""
        for rec in self.book.ledger.open_orders():
            if rec.state == Outcome.SENDING:
                log.warning("order %s: outcome unknown after a restart", rec.client_order_id)
                self._move(rec, Outcome.UNKNOWN, why=UNKNOWN_AFTER_RESTART)

    def abandon(self, client_order_id: str, code: str, message: str) -> None:
        """The order's intent could not be journaled, so it was never handed to the broker:
        not placed, and every waiter hears why."""
        rec = self.book.client_orders.get(client_order_id)
        if rec is None:
            return
        waiters = self.order_waiters.pop(client_order_id, [])
        self._move(rec, Outcome.NOT_PLACED, why=f"not placed: {message}")
        for w in waiters:
            self.bus.reply(w.envelope, w.json, _error(code, message))

    # -- what the broker thread reports ---------------------------------------------
    def on_sent(self, client_order_id: str, async_seq: int) -> None:
        """The call's seq, for a response without its remark: kept only while the order
        still waits for its outcome (a response taken first has settled it)."""
        rec = self.book.client_orders.get(client_order_id)
        if rec is not None and rec.state in (Outcome.SENDING, Outcome.UNKNOWN):
            self.by_async_seq[async_seq] = client_order_id

    def on_new_session(self) -> None:
        """A new trader object numbers its calls from 1 again: an old session's seq must
        never name a new session's order."""
        self.by_async_seq.clear()

    def on_failed(self, client_order_id: str, message: str, called: bool = True) -> None:
        rec = self.book.client_orders.get(client_order_id)
        if rec is None:
            return
        if called:  # the call returned an error: the broker's library refused it
            self._move(rec, Outcome.REJECTED, why=message)
        else:  # refused before the call: provably never sent
            why = f"not placed: {message}; send it again with a new client_order_id"
            self._move(rec, Outcome.NOT_PLACED, why=why)

    def on_cancel_failed(self, order_id: int, message: str) -> None:
        rec = self.book.ledger.by_order_id.get(order_id)
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
            self._on_trade(ev)
        elif isinstance(ev, p.PositionEvent):
            self.bus.emit(self.book.accept_position(ev))
        elif isinstance(ev, p.AssetEvent):
            self.bus.emit(self.book.accept_asset(ev))
        elif isinstance(ev, p.OrderResponseEvent):
            self._on_order_response(ev)
        elif isinstance(ev, p.OrderErrorEvent):
            self._on_order_error(ev)
        elif isinstance(ev, p.CancelResponseEvent | p.CancelErrorEvent):
            self._on_cancel_outcome(ev)
        else:
            self.bus.emit(ev)

    def _on_order(self, ev: p.OrderEvent) -> None:
        # the outcome first: an order event for a client order follows its client_order event
        self._learn(ev.order_remark, ev.order_id, ev.order_status, ev.status_msg)
        out = self.book.accept_order(ev)
        if out is not None:
            self.bus.emit(out)

    def _on_trade(self, ev: p.TradeEvent) -> None:
        rec = self.book.client_order_for(ev.order_remark, ev.order_id)
        if rec is not None and rec.state in (Outcome.SENDING, Outcome.UNKNOWN):
            self._move(rec, Outcome.ACCEPTED, ev.order_id)  # a fill proves it was placed
        trade = self.book.accept_trade(ev)
        if trade is not None:
            self.bus.emit(trade)

    def _on_order_response(self, ev: p.OrderResponseEvent) -> None:
        mapped = self.by_async_seq.pop(ev.async_seq, "")
        remark = ev.order_remark or mapped
        rec = self.book.client_order_for(remark, ev.order_id)
        if rec is not None:
            ev = msgspec.structs.replace(
                ev, client_order_id=rec.client_order_id, order_remark=remark
            )
            if rec.state in (Outcome.SENDING, Outcome.UNKNOWN):
                outcome, reason = order_outcome(ev.order_id, ev.error_msg)
                if outcome == "accepted":
                    self._move(rec, Outcome.ACCEPTED, ev.order_id)
                else:  # a junk order keeps its id, so a later push can be matched to it
                    self._move(rec, Outcome.REJECTED, max(ev.order_id, 0), reason)
        self.bus.emit(ev)

    def _on_order_error(self, ev: p.OrderErrorEvent) -> None:
        rec = self.book.client_order_for(ev.order_remark, ev.order_id)
        if rec is not None:
            ev = msgspec.structs.replace(ev, client_order_id=rec.client_order_id)
            self._move(rec, Outcome.REJECTED, ev.order_id, ev.error_msg)
        self.bus.emit(ev)

    def _on_cancel_outcome(self, ev: p.CancelResponseEvent | p.CancelErrorEvent) -> None:
        rec = self.book.ledger.by_order_id.get(ev.order_id)
        if rec is not None:
            ev = msgspec.structs.replace(ev, client_order_id=rec.client_order_id)
        self.bus.emit(ev)
        failed = isinstance(ev, p.CancelErrorEvent) or ev.cancel_result != 0 or bool(ev.error_msg)
        ack = p.CancelAck(
            order_id=ev.order_id,
            client_order_id=ev.client_order_id,
            cancel_result=-1 if failed else 0,
            error_msg=ev.error_msg,
        )
        self._answer(self.cancel_waiters.pop(ev.order_id, []), ack)

    def resolve_from(self, orders: list[p.Order], trades: list[p.Trade]) -> None:
        """Learn outcomes from the broker's own orders and trades (after a reconnect, a
        restart, or a response that never came), and take in every order the broker
        holds under a remark the journal lacks (the gateway's data folder was lost): a
        resend of that client_order_id is then a duplicate, never a second order."""
        for order in orders:
            if order.order_remark and order.order_remark not in self.book.client_orders:
                self._recover(order.order_remark, order, order.order_id, order.order_status)
            self._learn(order.order_remark, order.order_id, order.order_status, order.status_msg)
        for trade in trades:
            rec = self.book.client_orders.get(trade.order_remark) if trade.order_remark else None
            if rec is None and trade.order_remark:
                self._recover(trade.order_remark, trade, trade.order_id, p.ORDER_PART_SUCC)
            elif rec is not None and rec.state in (Outcome.SENDING, Outcome.UNKNOWN):
                self._move(rec, Outcome.ACCEPTED, trade.order_id)

    def _recover(self, remark: str, record: Any, order_id: int, status: int) -> None:
        if order_id <= 0 or not _CLIENT_ORDER_ID.match(remark):
            return  # not a remark the gateway could have written
        junk = status == p.ORDER_JUNK
        volume = int(getattr(record, "order_volume", 0) or getattr(record, "traded_volume", 0))
        price = float(getattr(record, "price", 0.0) or getattr(record, "traded_price", 0.0))
        log.warning("order %s: known to the broker only; taken from its orders", remark)
        day = self.book.ledger.day
        self.risk.restore(
            day, [(record.strategy_name, price * volume)]
        )  # counted as a restart would
        self.bus.emit(
            p.ClientOrderEvent(
                client_order_id=remark,
                status="rejected" if junk else "accepted",
                order_id=order_id,
                trading_day=day,
                stock_code=record.stock_code,
                order_type=record.order_type,
                order_volume=volume,
                price_type=int(getattr(record, "price_type", 0)),
                price=price,
                strategy_name=record.strategy_name,
                notional=price * volume,
                error_msg="taken from the broker's orders (the gateway's journal lacked it)",
            )
        )

    def _learn(self, remark: str, order_id: int, status: int, status_msg: str) -> None:
        rec = self.book.client_orders.get(remark) if remark else None
        if rec is None or order_id <= 0:
            return
        if status == p.ORDER_JUNK and rec.state != Outcome.REJECTED:
            self._move(rec, Outcome.REJECTED, order_id, status_msg or "junk order")
        elif rec.state in (Outcome.SENDING, Outcome.UNKNOWN, Outcome.NOT_PLACED):
            # NOT_PLACED: the broker contradicts a "provably not sent"; _move logs it loudly
            self._move(rec, Outcome.ACCEPTED, order_id)

    # -- waiting -------------------------------------------------------------------------------
    def _wait(
        self, table: dict[Any, list[Waiter]], key: Any, env: list[bytes], json: bool, dup: bool
    ) -> None:
        waiter = Waiter(env, json, time.monotonic() + self.timeout, dup)
        table.setdefault(key, []).append(waiter)

    def _answer_order(self, rec: ClientOrder) -> None:
        for w in self.order_waiters.pop(rec.client_order_id, []):
            self.bus.reply(w.envelope, w.json, rec.ack(duplicate=w.duplicate))

    def _answer(self, waiters: list[Waiter], reply: Any) -> None:
        for w in waiters:
            self.bus.reply(w.envelope, w.json, reply)

    def expire(self, now: float) -> None:
        """Answer requests whose broker response is late: orders say pending."""
        if now < self.next_deadline():  # the usual case, checked every loop turn
            return
        for coid in [k for k, ws in self.order_waiters.items() if ws[0].deadline <= now]:
            log.warning("order %s: no broker response in %.1fs (pending)", coid, self.timeout)
            rec = self.book.client_orders.get(coid)
            if rec is not None:
                self._answer_order(rec)
            else:  # the trading day turned while it waited: the events carry the outcome
                ack = p.OrderAck(client_order_id=coid, order_id=0, status="pending")
                self._answer(self.order_waiters.pop(coid), ack)
        for order_id in [k for k, ws in self.cancel_waiters.items() if ws[0].deadline <= now]:
            message = (
                f"no cancel response from the broker within {self.timeout:g}s; the cancel may "
                "still take effect: watch the order events"
            )
            self._answer(self.cancel_waiters.pop(order_id), _error(p.BROKER_ERROR, message))

    def next_deadline(self) -> float:
        """The earliest waiter's deadline (asked twice a loop turn). Every deadline is its
        waiter's arrival + the same timeout, and a key enters its table with its first
        waiter, so each table's first key holds its earliest deadline."""
        soonest = _NEVER
        for table in (self.order_waiters, self.cancel_waiters):
            if table:
                soonest = min(soonest, next(iter(table.values()))[0].deadline)
        return soonest

    def waiting(self) -> bool:
        return bool(self.order_waiters or self.cancel_waiters)

    def unresolved(self) -> bool:
        return bool(self.book.ledger.open_orders())

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
