"""What the gateway's threads hand each other: broker-thread jobs and I/O-thread items."""

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
    """The broker call refused the order outright: nothing was sent."""

    client_order_id: str
    message: str


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


Item = BrokerEvent | StateChanged | Snapshot | OrderSent | OrderFailed | CancelFailed | Answer
