"""The asyncio gateway client: the same API as Gateway, awaited, over zmq.asyncio.

It shares the sans-IO core of qmtbus.client (client_order_id, which commands
are retried, reply checks, the unreachable sentence); only the waiting differs.
Concurrent coroutines each take their own REQ socket from a pool, so a slow
order does not hold up a status query.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any, TypeVar

import zmq
import zmq.asyncio

from qmtbus import protocol
from qmtbus.client import (
    RETRY_SAFE,
    CurveKeys,
    Endpoint,
    cancel_command,
    check_reply,
    close_socket,
    decode_or_raise,
    gateway_args,
    new_client_id,
    order_command,
    prepare_socket,
    unreachable,
)
from qmtbus.config import Config
from qmtbus.errors import from_reply

R = TypeVar("R")


class AsyncGateway:
    """An asyncio client of one qmtbus gateway; `async with AsyncGateway(...) as gw:`.

    Same methods, results, errors and retry rules as Gateway (see there), as coroutines.
    """

    def __init__(
        self,
        commands_address: str = "tcp://127.0.0.1:7102",
        events_address: str = "tcp://127.0.0.1:7101",
        timeout: float = 5.0,
        retries: int = 3,
        *,
        quotes_address: str = "tcp://127.0.0.1:7104",
        curve: CurveKeys | None = None,
        context: zmq.asyncio.Context | None = None,
    ) -> None:
        self.commands_address = commands_address
        self.events_address = events_address
        self.quotes_address = quotes_address
        self.curve = curve
        self.client_id = new_client_id()  # names this client's quote subscriptions
        self.endpoint = Endpoint(commands_address, timeout, retries, curve)
        self._ctx = context or zmq.asyncio.Context.instance()
        # the monitor is read without awaiting (only after a failure): a blocking
        # socket on the same underlying context, as inproc requires
        self._sync_ctx: zmq.Context[Any] = zmq.Context.shadow(self._ctx.underlying)
        self._idle: list[zmq.asyncio.Socket] = []
        self._monitors: dict[zmq.asyncio.Socket, zmq.Socket[Any]] = {}
        self._closed = False

    @classmethod
    def from_config(cls, config: Config | str | os.PathLike[str] | None = None) -> AsyncGateway:
        return cls(**gateway_args(config))

    # -- transport ---------------------------------------------------------

    async def _exchange(self, command: Any) -> Any:
        if self._closed:
            raise RuntimeError(f"this client of {self.endpoint.address} is closed")
        payload = protocol.msgpack_encoder.encode(command)
        retry_safe = type(command) in RETRY_SAFE
        sent_any = False
        attempts = 0
        why = ""
        while True:
            attempts += 1
            sock = self._take()
            raw: bytes | None = None
            try:
                raw, sent = await self._attempt(sock, payload)
            finally:
                if raw is not None and not self._closed:
                    self._idle.append(sock)
                else:  # timed out or cancelled: the socket still waits for its reply
                    why = self._discard(sock) or why
            if raw is not None:
                return decode_or_raise(protocol.decode_reply, raw)
            sent_any = sent_any or sent
            if attempts > self.endpoint.retries or (sent and not retry_safe):
                raise unreachable(self.endpoint, command, sent_any, attempts, why)

    async def _attempt(self, sock: zmq.asyncio.Socket, payload: bytes) -> tuple[bytes | None, bool]:
        deadline = time.monotonic() + self.endpoint.timeout
        # pyzmq's stubs omit poll's `flags`; the runtime takes it
        if not await sock.poll(self.endpoint.timeout_ms, zmq.POLLOUT):  # type: ignore[call-arg]
            return None, False  # no finished connection: nothing was sent
        try:
            await sock.send(payload, zmq.NOBLOCK)
        except zmq.Again:
            return None, False
        left = int((deadline - time.monotonic()) * 1000)
        if left <= 0 or not await sock.poll(left, zmq.POLLIN):  # type: ignore[call-arg]
            return None, True
        return await sock.recv(zmq.NOBLOCK), True

    def _take(self) -> zmq.asyncio.Socket:
        try:
            return self._idle.pop()
        except IndexError:
            sock = self._ctx.socket(zmq.REQ)
            self._monitors[sock] = prepare_socket(sock, self.endpoint, self._sync_ctx)
            # This client polls with its own deadlines. pyzmq's asyncio poll also arms
            # RCVTIMEO and fails the poll with zmq.Again when that fires first (a
            # millisecond apart, so under load it can): no RCVTIMEO here.
            sock.setsockopt(zmq.RCVTIMEO, -1)
            return sock

    def _discard(self, sock: zmq.asyncio.Socket) -> str:
        return close_socket(sock, self._monitors.pop(sock, None))

    async def request(self, command: Any) -> Any:
        """Send any protocol command, return its reply Struct (see Gateway.request)."""
        reply = await self._exchange(command)
        if isinstance(reply, protocol.ErrorReply):
            raise from_reply(reply)
        return reply

    async def _call(self, command: Any, expected: type[R]) -> R:
        return check_reply(await self._exchange(command), expected)

    # -- the API -------------------------------------------------------------

    async def ping(self) -> protocol.Pong:
        return await self._call(protocol.Ping(), protocol.Pong)

    async def status(self) -> protocol.Status:
        return await self._call(protocol.GetStatus(), protocol.Status)

    async def order(
        self,
        stock_code: str,
        order_type: int,
        order_volume: int,
        price: float,
        price_type: int = protocol.FIX_PRICE,
        strategy_name: str = "",
        client_order_id: str | None = None,
    ) -> protocol.OrderAck:
        """Place an order; retried with the same client_order_id (see Gateway.order)."""
        command = order_command(
            stock_code, order_type, order_volume, price, price_type, strategy_name, client_order_id
        )
        return await self._call(command, protocol.OrderAck)

    async def buy(self, stock_code: str, volume: int, price: float, **kw: Any) -> protocol.OrderAck:
        return await self.order(stock_code, protocol.STOCK_BUY, volume, price, **kw)

    async def sell(
        self, stock_code: str, volume: int, price: float, **kw: Any
    ) -> protocol.OrderAck:
        return await self.order(stock_code, protocol.STOCK_SELL, volume, price, **kw)

    async def cancel(
        self, order_id: int | None = None, client_order_id: str | None = None
    ) -> protocol.CancelAck:
        return await self._call(cancel_command(order_id, client_order_id), protocol.CancelAck)

    async def asset(self) -> protocol.AssetReply:
        return await self._call(protocol.QueryAsset(), protocol.AssetReply)

    async def orders(self, cancelable_only: bool = False) -> list[protocol.Order]:
        command = protocol.QueryOrders(cancelable_only=cancelable_only)
        return (await self._call(command, protocol.OrdersReply)).orders

    async def trades(self) -> list[protocol.Trade]:
        return (await self._call(protocol.QueryTrades(), protocol.TradesReply)).trades

    async def positions(self) -> list[protocol.Position]:
        return (await self._call(protocol.QueryPositions(), protocol.PositionsReply)).positions

    async def replay(self, epoch: str, from_seq: int, limit: int = 1000) -> protocol.ReplayReply:
        command = protocol.Replay(epoch=epoch, from_seq=from_seq, limit=limit)
        return await self._call(command, protocol.ReplayReply)

    async def epochs(self) -> protocol.EpochsReply:
        return await self._call(protocol.ListEpochs(), protocol.EpochsReply)

    async def halt(self, reason: str = "") -> protocol.Status:
        return await self._call(protocol.Halt(reason=reason), protocol.Status)

    async def reduce_only(self, reason: str = "") -> protocol.Status:
        return await self._call(protocol.ReduceOnly(reason=reason), protocol.Status)

    async def resume(self, reason: str = "") -> protocol.Status:
        return await self._call(protocol.Resume(reason=reason), protocol.Status)

    async def note(self, topic: str, data: dict[str, Any] | None = None) -> int:
        """Publish a note; NOT retried once it may have been sent (see Gateway.note)."""
        command = protocol.PublishNote(topic=topic, data=data or {})
        return (await self._call(command, protocol.NoteAck)).seq

    async def subscribe_quotes(self, stock_codes: Iterable[str]) -> protocol.QuotesAck:
        """See Gateway.subscribe_quotes; renew within the quote_lease."""
        command = protocol.SubscribeQuotes(stock_codes=list(stock_codes), client_id=self.client_id)
        return await self._call(command, protocol.QuotesAck)

    async def unsubscribe_quotes(self, stock_codes: Iterable[str]) -> protocol.QuotesAck:
        command = protocol.UnsubscribeQuotes(
            stock_codes=list(stock_codes), client_id=self.client_id
        )
        return await self._call(command, protocol.QuotesAck)

    async def quotes(self, stock_codes: Iterable[str]) -> list[protocol.TickEvent]:
        command = protocol.QueryQuote(stock_codes=list(stock_codes))
        return (await self._call(command, protocol.QuotesReply)).quotes

    def close(self) -> None:
        self._closed = True
        while self._idle:
            self._discard(self._idle.pop())

    async def __aenter__(self) -> AsyncGateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AsyncGateway({self.commands_address!r}, {self.events_address!r})"
