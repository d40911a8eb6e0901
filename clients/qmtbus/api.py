"""The gateway client's API and retry loop, written once as coroutines for both facades.

`AsyncGateway` awaits them over zmq.asyncio. `Gateway` (blocking) runs the very same
coroutines with `run_blocking`: its transport does its I/O inside an `async def` that
never suspends, so each coroutine finishes in one step on the caller's thread, with no
event loop and no thread hop (ib_async's way: the blocking method a thin wrapper over the
async one). No asyncio is imported here.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Protocol, TypeVar

from qmtbus import protocol
from qmtbus.errors import from_reply
from qmtbus.sansio import (
    RETRY_SAFE,
    Endpoint,
    cancel_command,
    check_reply,
    check_stock_code,
    decode_or_raise,
    order_command,
    unreachable,
)

R = TypeVar("R")
S = TypeVar("S")


def run_blocking(step: Coroutine[Any, Any, R]) -> R:
    """The result of a coroutine that never suspends (a blocking transport's request)."""
    try:
        step.send(None)
    except StopIteration as done:
        return done.value
    step.close()
    raise RuntimeError("a blocking qmtbus call waited on an event loop")


class Transport(Protocol[S]):
    """A pool of REQ sockets: what the retry loop needs, blocking or asyncio."""

    endpoint: Endpoint
    closed: bool

    def take(self) -> S: ...

    async def attempt(self, sock: S, payload: bytes) -> bytes | None:
        """One try within the timeout: the reply, or None."""
        ...

    def keep(self, sock: S) -> None: ...

    def discard(self, sock: S) -> tuple[str, bool]:
        """Close a socket that lost its reply (its unread request is dropped): the handshake
        diagnosis, and whether the request may have left (False: it provably never did)."""
        ...


async def exchange(transport: Transport[S], command: Any, decode: Callable[[bytes], Any]) -> Any:
    """Send `command`, return the decoded reply; retried on a fresh socket while the rules
    allow (RETRY_SAFE, or provably never sent). Raises GatewayUnreachable."""
    endpoint = transport.endpoint
    if transport.closed:
        raise RuntimeError(f"this client of {endpoint.address} is closed")
    payload = protocol.msgpack_encoder.encode(command)
    retry_safe = type(command) in RETRY_SAFE
    sent_any = False
    attempts = 0
    why = ""
    while True:
        attempts += 1
        sock = transport.take()
        raw: bytes | None = None
        sent = False
        try:
            raw = await transport.attempt(sock, payload)
        finally:
            if raw is not None and not transport.closed:
                transport.keep(sock)
            else:  # timed out, interrupted or cancelled: the REQ socket waits for its reply
                diagnosis, sent = transport.discard(sock)
                why = diagnosis or why
        if raw is not None:
            return decode_or_raise(decode, raw)
        sent_any = sent_any or sent
        # never sent: nothing can have happened, so even a note may go again
        if attempts > endpoint.retries or (sent and not retry_safe):
            raise unreachable(endpoint, command, sent_any, attempts, why)


class GatewayApi:
    """Every request of a gateway client, once; a facade supplies `_exchange` and `client_id`.

    Every method sends one command and returns the protocol Struct of the reply. An
    `error` reply raises GatewayError (RiskDenied for RISK_DENIED, NotConnected for
    NOT_CONNECTED). When no reply comes within `timeout` seconds, safe commands are sent
    again on a fresh socket up to `retries` times, then GatewayUnreachable (a
    TimeoutError) is raised.
    """

    client_id: str

    async def _exchange(self, command: Any) -> Any:
        raise NotImplementedError

    async def request(self, command: Any) -> Any:
        """Send any protocol command, return its reply Struct; an `error` reply raises
        GatewayError. Retried after a lost reply only when the command is in RETRY_SAFE."""
        reply = await self._exchange(command)
        if isinstance(reply, protocol.ErrorReply):
            raise from_reply(reply)
        return reply

    async def _call(self, command: Any, expected: type[R]) -> R:
        return check_reply(await self._exchange(command), expected)

    async def ping(self) -> protocol.Pong:
        """Round trip to the gateway's I/O thread (never touches the broker). Retried."""
        return await self._call(protocol.Ping(), protocol.Pong)

    async def status(self) -> protocol.Status:
        """State of the connection, trading state, epoch and last_seq. Retried."""
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
        """Place an order; returns the gateway's OrderAck (check `status`: a broker rejection is
        an ack with status "rejected", a risk denial raises RiskDenied).

        Retried safely: every attempt carries the same client_order_id (generated
        here when not given), so the gateway answers a resend with `duplicate: true`
        and never places the order twice.
        """
        command = order_command(
            stock_code, order_type, order_volume, price, price_type, strategy_name, client_order_id
        )
        return await self._call(command, protocol.OrderAck)

    async def buy(self, stock_code: str, volume: int, price: float, **kw: Any) -> protocol.OrderAck:
        """`order(stock_code, STOCK_BUY, volume, price, ...)`."""
        return await self.order(stock_code, protocol.STOCK_BUY, volume, price, **kw)

    async def sell(
        self, stock_code: str, volume: int, price: float, **kw: Any
    ) -> protocol.OrderAck:
        """`order(stock_code, STOCK_SELL, volume, price, ...)`."""
        return await self.order(stock_code, protocol.STOCK_SELL, volume, price, **kw)

    async def cancel(
        self, order_id: int | None = None, client_order_id: str | None = None
    ) -> protocol.CancelAck:
        """Ask the broker to cancel (give exactly one id). Retried: resending a cancel is harmless.
        The outcome arrives as an order event (status 53/54) or a cancel_error event."""
        return await self._call(cancel_command(order_id, client_order_id), protocol.CancelAck)

    async def asset(self) -> protocol.AssetReply:
        """Cash and asset values, queried from the broker now. Retried."""
        return await self._call(protocol.QueryAsset(), protocol.AssetReply)

    async def orders(self, cancelable_only: bool = False) -> list[protocol.Order]:
        """Today's orders, queried from the broker now. Retried."""
        command = protocol.QueryOrders(cancelable_only=cancelable_only)
        return (await self._call(command, protocol.OrdersReply)).orders

    async def trades(self) -> list[protocol.Trade]:
        """Today's fills. Retried."""
        return (await self._call(protocol.QueryTrades(), protocol.TradesReply)).trades

    async def positions(self) -> list[protocol.Position]:
        """Current positions. Retried."""
        return (await self._call(protocol.QueryPositions(), protocol.PositionsReply)).positions

    async def replay(self, epoch: str, from_seq: int, limit: int = 1000) -> protocol.ReplayReply:
        """Journaled events of `epoch` from `from_seq` on (at most `limit`). Retried.
        Raises GatewayError NOT_FOUND when the gateway no longer holds them."""
        command = protocol.Replay(epoch=epoch, from_seq=from_seq, limit=limit)
        return await self._call(command, protocol.ReplayReply)

    async def epochs(self) -> protocol.EpochsReply:
        """Every epoch the gateway's journal holds, oldest first, with its seq range. Retried."""
        return await self._call(protocol.ListEpochs(), protocol.EpochsReply)

    async def halt(self, reason: str = "") -> protocol.Status:
        """Refuse every new order (cancels still pass). Retried: setting a state is idempotent."""
        return await self._call(protocol.Halt(reason=reason), protocol.Status)

    async def reduce_only(self, reason: str = "") -> protocol.Status:
        """Accept only orders that reduce positions. Retried."""
        return await self._call(protocol.ReduceOnly(reason=reason), protocol.Status)

    async def resume(self, reason: str = "") -> protocol.Status:
        """Back to active trading. Retried."""
        return await self._call(protocol.Resume(reason=reason), protocol.Status)

    async def note(self, topic: str, data: dict[str, Any] | None = None) -> int:
        """Publish a `note` event (job runs, signals, alerts); returns its seq.

        NOT retried once it may have reached the gateway: a resend would publish
        the note twice. It is retried only while no connection existed at all.
        """
        command = protocol.PublishNote(topic=topic, data=data or {})
        return (await self._call(command, protocol.NoteAck)).seq

    async def subscribe_quotes(self, stock_codes: Iterable[str]) -> protocol.QuotesAck:
        """Ask for `tick` events of these codes on the quotes socket, held for this
        client (`client_id`) for the gateway's quote_lease: renew by calling again.
        Retried (a set: asking twice holds once). QuoteStream does the renewing."""
        command = protocol.SubscribeQuotes(stock_codes=list(stock_codes), client_id=self.client_id)
        return await self._call(command, protocol.QuotesAck)

    async def unsubscribe_quotes(self, stock_codes: Iterable[str]) -> protocol.QuotesAck:
        """Drop this client's hold on these codes. Retried."""
        command = protocol.UnsubscribeQuotes(
            stock_codes=list(stock_codes), client_id=self.client_id
        )
        return await self._call(command, protocol.QuotesAck)

    async def quotes(self, stock_codes: Iterable[str]) -> list[protocol.TickEvent]:
        """The latest full tick of each code, in order; NOT_FOUND for a code with no quote.
        Retried."""
        command = protocol.QueryQuote(stock_codes=list(stock_codes))
        return (await self._call(command, protocol.QuotesReply)).quotes

    async def bars(
        self,
        stock_code: str,
        period: protocol.BarPeriod = "1d",
        count: int = 20,
        start_time: int = 0,
        end_time: int = 0,
    ) -> list[protocol.Bar]:
        """The last `count` bars ("1m", "5m" or "1d") of `stock_code`, oldest first; with
        `start_time`/`end_time` (epoch ms of a bar's start, 0: open) those of that range only.
        NOT_FOUND for a code the broker does not know. Retried."""
        command = protocol.QueryBars(
            stock_code=check_stock_code(stock_code),
            period=period,
            count=count,
            start_time=start_time,
            end_time=end_time,
        )
        return (await self._call(command, protocol.BarsReply)).bars

    async def instrument(self, stock_code: str) -> protocol.InstrumentReply:
        """The instrument detail of `stock_code` (xtdata.get_instrument_detail's fields).
        Retried."""
        command = protocol.QueryInstrument(stock_code=check_stock_code(stock_code))
        return await self._call(command, protocol.InstrumentReply)
