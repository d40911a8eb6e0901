"""The gateway's view of the account: what it has published, so each change goes out once.

Pushes can repeat what a reconciliation already published, arrive late (an
order's 55 after its 56) or not at all. An order event is published only when
it moves the order forward; a fill only once per (trading day, market,
traded_id); reconciliation publishes whatever the broker's answers add to what
was known. What was published is today's Ledger (gateway/store.py), derived
from the journal. Also the BookView the risk gate reads (cash, sellable volume,
instruments).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from qmtbus import protocol as p
from qmtbus.gateway import convert
from qmtbus.gateway.handoff import Snapshot
from qmtbus.gateway.store import ClientOrder, Ledger, fill_key

log = logging.getLogger("gateway.book")


# Before the exchange has it, an order is unreported (48), then waits to be reported (49).
_REPORTING_RANK = {p.ORDER_UNREPORTED: 0, p.ORDER_WAIT_REPORTING: 1}


def _progress(status: int, traded_volume: int) -> tuple[int, int, int]:
    """Orders only move forward: more volume traded, then final beats live, then reported
    (50 and later) beats waiting to be reported (49) beats unreported (48)."""
    final = 1 if status in p.FINAL_ORDER_STATUSES else 0
    return traded_volume, final, _REPORTING_RANK.get(status, 2)


class Book:
    """Ports: `trading_day()` (today's date) and `instrument(stock_code)` (the broker's
    static data, for the risk gate); events reach it through `apply`."""

    def __init__(
        self,
        trading_day: Callable[[], str],
        instrument: Callable[[str], Any],
        instrument_note: Callable[[str], str] | None = None,
    ):
        self.trading_day = trading_day
        self._instrument = instrument
        self._instrument_note = instrument_note
        self.asset: p.Asset | None = None
        self.positions: dict[str, p.Position] = {}
        self._ledger = Ledger(trading_day())
        self.duplicates_dropped = 0

    @property
    def ledger(self) -> Ledger:
        """Today's ledger; a new trading day starts an empty one (client_order_ids are
        unique per trading day only)."""
        day = self.trading_day()
        if day != self._ledger.day:
            self._ledger = Ledger(day)
        return self._ledger

    def apply(self, event: p.Event) -> None:
        """Take in an event the gateway has just journaled."""
        self.ledger.apply(event)

    @property
    def client_orders(self) -> dict[str, ClientOrder]:
        """Today's orders placed through the gateway, by client_order_id."""
        return self.ledger.client_orders

    # -- which client order an event belongs to --------------------------------
    def client_order_for(
        self, order_remark: str, order_id: int = 0, ledger: Ledger | None = None
    ) -> ClientOrder | None:
        """`ledger`: today's, when the caller holds it already (each `ledger` look-up asks
        the clock for the day: a fifth of a broker event's time on the I/O thread)."""
        ledger = self.ledger if ledger is None else ledger
        rec = ledger.client_orders.get(order_remark) if order_remark else None
        if rec is None and order_id > 0:
            rec = ledger.by_order_id.get(order_id)
        return rec

    def enrich(self, record: Any, ledger: Ledger | None = None) -> Any:
        """Fill client_order_id (and a missing strategy_name) from the gateway's orders."""
        rec = self.client_order_for(record.order_remark, getattr(record, "order_id", 0), ledger)
        if rec is None:
            return record
        changes: dict[str, Any] = {"client_order_id": rec.client_order_id}
        if not record.strategy_name and rec.strategy_name:
            changes["strategy_name"] = rec.strategy_name
        return msgspec.structs.replace(record, **changes)

    # -- events from pushes ------------------------------------------------------
    def accept_order(self, ev: p.OrderEvent) -> p.OrderEvent | None:
        """The event to publish for this order state, or None if it adds nothing."""
        ledger = self.ledger
        known = ledger.known_orders.get(ev.order_id)
        new = _progress(ev.order_status, ev.traded_volume)
        if known is not None:
            old = _progress(*known)
            if new < old or (new == old and ev.order_status == known[0]):
                self.duplicates_dropped += 1
                log.debug("order %s state %s already published", ev.order_id, ev.order_status)
                return None
        return self.enrich(ev, ledger)

    def accept_trade(self, ev: p.TradeEvent) -> p.TradeEvent | None:
        ledger = self.ledger
        if fill_key(ledger.day, ev.stock_code, ev.traded_id) in ledger.fills:
            self.duplicates_dropped += 1
            log.debug("fill %s already published", ev.traded_id)
            return None
        return self.enrich(ev, ledger)

    def accept_position(self, ev: p.PositionEvent) -> p.PositionEvent:
        self.positions[ev.stock_code] = _record(p.Position, ev)
        return ev

    def accept_asset(self, ev: p.AssetEvent) -> p.AssetEvent:
        self.asset = _record(p.Asset, ev)
        return ev

    # -- reconciliation ----------------------------------------------------------------
    def reconcile(self, snap: Snapshot) -> Iterator[p.Event]:
        """Events for what the snapshot adds to what was published, in DESIGN's order:
        asset, orders, trades, positions."""
        if snap.asset is not None:
            yield self.accept_asset(convert.as_event(snap.asset))  # type: ignore[arg-type]
        for order in sorted(snap.orders or [], key=lambda o: (o.order_time, o.order_id)):
            ev = self.accept_order(convert.as_event(order))  # type: ignore[arg-type]
            if ev is not None:
                yield ev
        for trade in sorted(snap.trades or [], key=lambda t: (t.traded_time, t.traded_id)):
            tev = self.accept_trade(convert.as_event(trade))  # type: ignore[arg-type]
            if tev is not None:
                yield tev
        if snap.positions is not None:
            yield from self._reconcile_positions(snap.positions)

    def _reconcile_positions(self, positions: list[p.Position]) -> Iterator[p.Event]:
        seen = set()
        for pos in positions:
            seen.add(pos.stock_code)
            if self.positions.get(pos.stock_code) != pos:
                yield self.accept_position(convert.as_event(pos))  # type: ignore[arg-type]
        for code in list(self.positions):
            if code not in seen:  # sold out while nobody was listening
                gone = msgspec.structs.replace(
                    self.positions[code], volume=0, can_use_volume=0, market_value=0.0
                )
                del self.positions[code]
                yield convert.as_event(gone)

    # -- BookView for the risk gate ------------------------------------------------------
    def instrument(self, stock_code: str) -> Any:
        return self._instrument(stock_code)  # a cache: never waits on the broker

    def instrument_note(self, stock_code: str) -> str:
        """Why no instrument data is at hand for `stock_code` (loading, or the failure)."""
        return str(self._instrument_note(stock_code)) if self._instrument_note else ""

    def can_use_volume(self, stock_code: str) -> int:
        pos = self.positions.get(stock_code)
        return pos.can_use_volume if pos else 0

    def volume(self, stock_code: str) -> int:
        pos = self.positions.get(stock_code)
        return pos.volume if pos else 0

    def cash(self) -> float:
        return self.asset.cash if self.asset else 0.0


def _record(cls: type[Any], ev: Any) -> Any:
    fields = {f: getattr(ev, f) for f in cls.__struct_fields__}
    return cls(**fields)
