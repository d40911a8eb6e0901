"""What the gateway's threads hand each other: broker- and quote-thread jobs, I/O-thread items."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qmtbus import protocol as p

# -- to the broker thread ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendOrder:
    cmd: p.PlaceOrder


@dataclass(frozen=True, slots=True)
class SendCancel:
    order_id: int


@dataclass(frozen=True, slots=True)
class RunQuery:
    command: p.QueryAsset | p.QueryOrders | p.QueryTrades | p.QueryPositions
    envelope: list[bytes]
    json: bool


@dataclass(frozen=True, slots=True)
class ResolvePending:
    """Query the broker's orders to learn the outcome of orders with no answer yet."""


Job = SendOrder | SendCancel | RunQuery | ResolvePending

# -- to the quote thread (gateway/quotes.py) ------------------------------------


@dataclass(frozen=True, slots=True)
class CheckQuotes:
    """Codes new to the gateway that a client asks to subscribe: subscribe them at the
    broker and report those it does not know."""

    envelope: list[bytes]
    json: bool
    client_id: str
    stock_codes: list[str]


@dataclass(frozen=True, slots=True)
class ChangeQuotes:
    """Make the broker's subscriptions follow the union the clients hold."""

    add: list[str]
    remove: list[str]


@dataclass(frozen=True, slots=True)
class QueryQuotes:
    envelope: list[bytes]
    json: bool
    stock_codes: list[str]


QuoteJob = CheckQuotes | ChangeQuotes | QueryQuotes

# -- to the I/O thread ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrokerEvent:
    event: p.Event


@dataclass(frozen=True, slots=True)
class StateChanged:
    state: p.GatewayState
    session_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a query of the broker found; None for what was not queried."""

    asset: p.Asset | None = None
    orders: list[p.Order] | None = None
    trades: list[p.Trade] | None = None
    positions: list[p.Position] | None = None
    reconcile: bool = False  # a full reconciliation after (re)connect


@dataclass(frozen=True, slots=True)
class OrderSent:
    client_order_id: str
    async_seq: int


@dataclass(frozen=True, slots=True)
class OrderFailed:
    """The order did not go: refused by the broker call itself (it returned an error), or
    refused before any call (`called` False: provably never sent, so "not placed")."""

    client_order_id: str
    message: str
    called: bool = True


@dataclass(frozen=True, slots=True)
class CancelFailed:
    order_id: int
    message: str


@dataclass(frozen=True, slots=True)
class Answer:
    """A reply for a client, computed on the broker thread."""

    envelope: list[bytes]
    json: bool
    reply: Any
    snapshot: Snapshot | None = field(default=None)


@dataclass(frozen=True, slots=True)
class TicksReady:
    """Ticks wait in the tick buffer (the latest per symbol): publish them. Posted only when
    the buffer turns non-empty, so a tick storm never floods the inbox."""


@dataclass(frozen=True, slots=True)
class QuotesChecked:
    """The broker's verdict on a CheckQuotes: `unknown` codes, or `error` when it failed."""

    envelope: list[bytes]
    json: bool
    client_id: str
    stock_codes: list[str]
    unknown: list[str]
    error: str = ""


Item = (
    BrokerEvent
    | StateChanged
    | Snapshot
    | OrderSent
    | OrderFailed
    | CancelFailed
    | Answer
    | TicksReady
    | QuotesChecked
)
