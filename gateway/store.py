"""The gateway's working state for the trading day, derived from the journal and nothing else.

Client orders, the order states and fills already published, the orders counted
by the risk gate, the last trading-state note: every one is what `Ledger.apply`
made of the events the gateway journaled, in journal order. `Server.emit` applies
each event as it journals it; at start, `rebuild` applies today's journaled
events again. So the working state can never be ahead of the journal (nothing is
made durable before the events that justify it) and there is no second store to
lose, corrupt or commit at the wrong moment.

A client order's outcome moves through OUTCOME_TRANSITIONS; every move is a
`client_order` event, and a move the table forbids is a logged error, never a
silent overwrite.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from qmtbus import protocol as p
from qmtbus.calendar import SHANGHAI
from qmtbus.gateway.journal import Journal, NotHeld

log = logging.getLogger("gateway.store")


class Outcome(enum.StrEnum):
    SENDING = "sending"  # intent journaled; the broker's answer not known yet
    ACCEPTED = "accepted"  # the broker gave an order_id
    REJECTED = "rejected"  # the broker refused it
    NOT_PLACED = "not_placed"  # provably never reached the broker
    UNKNOWN = "unknown"  # the answer was lost (a restart): looked up by remark until found


OUTCOME_TRANSITIONS: dict[Outcome, frozenset[Outcome]] = {
    Outcome.SENDING: frozenset(
        {Outcome.ACCEPTED, Outcome.REJECTED, Outcome.NOT_PLACED, Outcome.UNKNOWN}
    ),
    Outcome.UNKNOWN: frozenset({Outcome.ACCEPTED, Outcome.REJECTED}),
    # a junk order (status 57) is refused after the broker gave it an order_id
    Outcome.ACCEPTED: frozenset({Outcome.REJECTED}),
    Outcome.REJECTED: frozenset(),
    Outcome.NOT_PLACED: frozenset(),
}
OPEN_OUTCOMES = frozenset({Outcome.SENDING, Outcome.UNKNOWN})


def can_move(old: Outcome, new: Outcome) -> bool:
    return new in OUTCOME_TRANSITIONS[old]


@dataclass(slots=True)
class ClientOrder:
    trading_day: str
    client_order_id: str
    state: Outcome
    order_id: int
    stock_code: str
    order_type: int
    order_volume: int
    price_type: int
    price: float
    strategy_name: str
    error_msg: str
    created_ns: int
    notional: float = 0.0

    def ack(self, duplicate: bool) -> p.OrderAck:
        """The answer for this order as known now."""
        if self.state == Outcome.ACCEPTED:
            status = "accepted"
        elif self.state in (Outcome.REJECTED, Outcome.NOT_PLACED):
            status = "rejected"
        else:
            status = "pending"
        return p.OrderAck(
            client_order_id=self.client_order_id,
            order_id=max(self.order_id, 0),
            duplicate=duplicate,
            status=status,  # type: ignore[arg-type]
            error_msg=self.error_msg,
        )

    def event(self, outcome: Outcome, order_id: int = 0, error_msg: str = "") -> p.ClientOrderEvent:
        """The client_order event that moves this order to `outcome`."""
        return p.ClientOrderEvent(
            client_order_id=self.client_order_id,
            status=outcome.value,
            order_id=order_id or self.order_id,
            trading_day=self.trading_day,
            stock_code=self.stock_code,
            order_type=self.order_type,
            order_volume=self.order_volume,
            price_type=self.price_type,
            price=self.price,
            strategy_name=self.strategy_name,
            notional=self.notional,
            error_msg=error_msg,
        )


def intent(day: str, cmd: p.PlaceOrder, notional: float) -> p.ClientOrderEvent:
    """The `sending` event journaled before an order goes to the broker."""
    return p.ClientOrderEvent(
        client_order_id=cmd.client_order_id,
        status="sending",
        trading_day=day,
        stock_code=cmd.stock_code,
        order_type=cmd.order_type,
        order_volume=cmd.order_volume,
        price_type=cmd.price_type,
        price=cmd.price,
        strategy_name=cmd.strategy_name,
        notional=notional,
    )


def fill_key(day: str, stock_code: str, traded_id: str) -> tuple[str, str, str]:
    """A fill's identity: broker traded_ids repeat across trading days and exchanges."""
    return day, stock_code.rpartition(".")[2], traded_id


class Ledger:
    """Today's working state, made only by `apply` from journaled events."""

    def __init__(self, day: str):
        self.day = day
        self.client_orders: dict[str, ClientOrder] = {}
        self.by_order_id: dict[int, ClientOrder] = {}
        self.known_orders: dict[int, tuple[int, int]] = {}  # order_id -> (status, traded volume)
        self.fills: set[tuple[str, str, str]] = set()
        self.trading: tuple[str, str] | None = None  # last trading note: (state, reason)
        self.illegal = 0  # transitions the table refused (each one logged)

    def apply(self, ev: p.Event) -> None:
        if isinstance(ev, p.ClientOrderEvent):
            self._client_order(ev)
        elif isinstance(ev, p.OrderEvent):
            if ev.order_id > 0:
                self.known_orders[ev.order_id] = (ev.order_status, ev.traded_volume)
        elif isinstance(ev, p.TradeEvent):
            self.fills.add(fill_key(self.day, ev.stock_code, ev.traded_id))
        elif isinstance(ev, p.NoteEvent) and ev.topic == "trading":
            self.trading = (str(ev.data.get("trading", "")), str(ev.data.get("reason", "")))

    def _client_order(self, ev: p.ClientOrderEvent) -> None:
        if ev.trading_day != self.day:
            return
        outcome = Outcome(ev.status)
        rec = self.client_orders.get(ev.client_order_id)
        if outcome == Outcome.SENDING:
            if rec is not None:
                self._illegal(rec, outcome, "a second intent for the same client_order_id")
                return
            self._enter(ev, outcome)
            return
        if rec is None:
            # An order the broker knows by its remark whose intent the journal lacks
            # (the data folder was lost): it enters the ledger with its outcome.
            rec = self._enter(ev, outcome)
        elif not can_move(rec.state, outcome):
            self._illegal(rec, outcome, "not in the transition table")
            return
        rec.state = outcome
        if ev.order_id > 0:
            rec.order_id = ev.order_id
        rec.error_msg = ev.error_msg  # an outcome's own words; accepted clears "unknown"'s
        if rec.order_id > 0:
            self.by_order_id[rec.order_id] = rec

    def _enter(self, ev: p.ClientOrderEvent, outcome: Outcome) -> ClientOrder:
        rec = ClientOrder(
            ev.trading_day,
            ev.client_order_id,
            outcome,
            ev.order_id,
            ev.stock_code,
            ev.order_type,
            ev.order_volume,
            ev.price_type,
            ev.price,
            ev.strategy_name,
            ev.error_msg,
            ev.ts,
            ev.notional,
        )
        self.client_orders[rec.client_order_id] = rec
        return rec

    def _illegal(self, rec: ClientOrder, outcome: Outcome, why: str) -> None:
        self.illegal += 1
        log.error(
            "client order %s: %s -> %s refused (%s)", rec.client_order_id, rec.state, outcome, why
        )

    def open_orders(self) -> list[ClientOrder]:
        return [r for r in self.client_orders.values() if r.state in OPEN_OUTCOMES]


# -- rebuilding from the journal ---------------------------------------------------------


class _Head(msgspec.Struct):
    """The two fields read from every journaled event; the rest only when it matters."""

    type: str = ""
    ts: int = 0
    seq: int = 0


class _OrderSeen(msgspec.Struct):
    order_id: int = 0
    order_status: int = p.ORDER_UNKNOWN
    traded_volume: int = 0


class _FillSeen(msgspec.Struct):
    stock_code: str = ""
    traded_id: str = ""


_head = msgspec.msgpack.Decoder(_Head)
_order_seen = msgspec.msgpack.Decoder(_OrderSeen)
_fill_seen = msgspec.msgpack.Decoder(_FillSeen)
_MATTERS = frozenset({"client_order", "order", "trade", "note"})


def _read_back(kind: str, raw: bytes) -> p.Event:
    """The event as far as the ledger reads it: orders and fills by their few fields
    (most of a busy day's journal), the rest whole."""
    if kind == "order":
        o = _order_seen.decode(raw)
        return p.OrderEvent(
            order_id=o.order_id, order_status=o.order_status, traded_volume=o.traded_volume
        )
    if kind == "trade":
        t = _fill_seen.decode(raw)
        return p.TradeEvent(stock_code=t.stock_code, traded_id=t.traded_id)
    return p.decode_event(raw)


def seq_of(payload: bytes) -> int:
    """The seq a journaled event was stamped with."""
    return _head.decode(payload).seq


def day_bounds_ns(day: str) -> tuple[int, int]:
    start = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), SHANGHAI)
    return int(start.timestamp()) * 10**9, int(start.timestamp() + 86400) * 10**9


def todays_events(payloads: Iterable[bytes], day: str) -> Iterable[p.Event]:
    """Decode the events of `payloads` that were stamped on `day` and shape the ledger."""
    low, high = day_bounds_ns(day)
    for raw in payloads:
        try:
            head = _head.decode(raw)
        except msgspec.DecodeError:
            continue
        if head.type in _MATTERS and low <= head.ts < high:
            try:
                yield _read_back(head.type, raw)
            except msgspec.DecodeError as err:  # ValidationError included
                log.error(
                    "journal event %s seq %d cannot be read back (%s)", head.type, head.seq, err
                )


def epochs_touching(epochs: list[str], day: str) -> list[str]:
    """The epochs that may hold events of `day`: those started that day or later, and
    the last one started before (it may have run past midnight). Epoch names start
    with their UTC start time (YYYYmmddTHHMMSSZ)."""
    low, _ = day_bounds_ns(day)
    start = dt.datetime.fromtimestamp(low / 1e9, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    before = [e for e in epochs if e[:16] < start]
    return before[-1:] + [e for e in epochs if e[:16] >= start]


def rebuild(journal: Journal, ledger: Ledger) -> int:
    """Apply to `ledger` every event of its day that the journal's earlier epochs hold;
    returns how many. A stretch the journal cannot serve is logged and skipped: the
    broker's orders and trades fill in what it held at the next reconnect."""
    held = {e.epoch: e.first_seq for e in journal.epochs() if e.epoch != journal.epoch}
    events = 0
    for epoch in epochs_touching(sorted(held), ledger.day):
        seq, more = held[epoch], True
        while more:
            try:
                payloads, _, more = journal.read(epoch, seq, 10_000)
            except NotHeld as err:
                log.warning("rebuilding from the journal: %s", err)
                break
            if not payloads:
                break
            for event in todays_events(payloads, ledger.day):
                ledger.apply(event)
                events += 1
            seq = seq_of(payloads[-1]) + 1  # not + len: a damaged stretch may be skipped
    return events
