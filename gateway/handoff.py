"""What the gateway's threads hand each other: broker- and quote-thread jobs, I/O-thread items,
and the Inbox that carries them to a thread of one consumer."""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from qmtbus import protocol as p

T = TypeVar("T")


class Inbox(Generic[T]):
    """First in, first out, to ONE consumer thread: a deque and a lock held down as a wake-up
    flag. `put` from any thread costs an append and, when the consumer may be asleep, one
    release; queue.Queue takes its mutex and notifies a Condition on every put (measured in
    bench/CHANGES.md). The flag is raised after the append, and the consumer looks at the deque
    before it sleeps on the flag, so no item is left unwoken; a stale flag costs the consumer
    one extra look."""

    __slots__ = ("_flag", "_items")

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._flag = threading.Lock()
        self._flag.acquire()  # held: nothing new since the consumer last looked

    def put(self, item: T) -> None:
        self._items.append(item)
        if self._flag.locked():
            try:  # noqa: SIM105 - contextlib.suppress costs a context manager a put
                self._flag.release()
            except RuntimeError:  # another producer raised it in between
                pass

    def get(self, timeout: float | None = None) -> T:
        """The oldest item; waits for one at most `timeout` seconds (None: for ever), then
        raises queue.Empty, as queue.Queue.get does."""
        items = self._items
        if items:
            return items.popleft()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not items:
            if deadline is None:
                self._flag.acquire()
                continue
            left = deadline - time.monotonic()
            if not (self._flag.acquire(timeout=left) if left > 0 else self._flag.acquire(False)):
                if items:
                    break
                raise queue.Empty
        return items.popleft()

    def __len__(self) -> int:
        return len(self._items)


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
