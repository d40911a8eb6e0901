"""The blocking gateway client, its socket pool, and the client's CURVE and socket set-up.

Transport: a small pool of REQ sockets, one per request in flight, so the
blocking path is send + recv on the caller's thread (no thread hops) and
several threads may share one `Gateway`. A request that gets no reply is
retried on a fresh socket (the old one is closed with linger 0), because a REQ
socket that lost its reply is stuck; only commands that are safe to send twice
are retried once they may have reached the gateway. The requests and the retry
loop are written once, in qmtbus.api, for this and the asyncio facade.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import zmq

from qmtbus import protocol
from qmtbus.api import GatewayApi, exchange, run_blocking
from qmtbus.config import Config, load_config
from qmtbus.keys import CurveKeys
from qmtbus.reqsocket import Link, prepare_socket

# the sans-IO core, importable from here as before
from qmtbus.sansio import RETRY_SAFE as RETRY_SAFE
from qmtbus.sansio import Endpoint as Endpoint
from qmtbus.sansio import cancel_command as cancel_command
from qmtbus.sansio import check_reply as check_reply
from qmtbus.sansio import decode_or_raise as decode_or_raise
from qmtbus.sansio import new_client_id as new_client_id
from qmtbus.sansio import new_client_order_id as new_client_order_id
from qmtbus.sansio import order_command as order_command
from qmtbus.sansio import unreachable as unreachable

if TYPE_CHECKING:
    from qmtbus.stream import EventStream, QuoteStream

F = TypeVar("F", bound=Callable[..., Any])


def client_curve(config: Config) -> CurveKeys | None:
    return CurveKeys.from_config(config.client)


def resolve_config(config: Config | str | os.PathLike[str] | None) -> Config:
    return config if isinstance(config, Config) else load_config(config)


# --------------------------------------------------------------------------
# Blocking transport
# --------------------------------------------------------------------------


class Requester:
    """Blocking request/reply with retries over a pool of REQ sockets (thread-safe).

    A transport of qmtbus.api.exchange: its `attempt` blocks inside a coroutine that
    never suspends, so `request` runs the shared retry loop on the caller's thread."""

    def __init__(
        self,
        endpoint: Endpoint,
        decode: Callable[[bytes], Any],
        context: zmq.Context[Any] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.decode = decode
        self._ctx = context or zmq.Context.instance()
        self._idle: list[zmq.Socket[Any]] = []
        self._links: dict[zmq.Socket[Any], Link] = {}
        self.closed = False

    def request(self, command: Any) -> Any:
        """Send `command`, return the decoded reply. Raises GatewayUnreachable."""
        return run_blocking(exchange(self, command, self.decode))

    async def attempt(self, sock: zmq.Socket[Any], payload: bytes) -> bytes | None:
        return self._attempt(sock, payload)

    def _attempt(self, sock: zmq.Socket[Any], payload: bytes) -> bytes | None:
        """One try within `timeout`: the reply, or None (the Link knows whether it left)."""
        link = self._links[sock]
        link.sending()
        try:
            # without IMMEDIATE a REQ socket queues the request even before it connects
            sock.send(payload, zmq.NOBLOCK)
            reply = sock.recv()  # RCVTIMEO bounds the wait
        except zmq.Again:
            return None
        link.answered()
        return reply

    def take(self) -> zmq.Socket[Any]:
        try:
            return self._idle.pop()
        except IndexError:
            sock = self._ctx.socket(zmq.REQ)
            self._links[sock] = prepare_socket(sock, self.endpoint, self._ctx)
            return sock

    def keep(self, sock: zmq.Socket[Any]) -> None:
        self._idle.append(sock)

    def discard(self, sock: zmq.Socket[Any]) -> tuple[str, bool]:
        return self._links.pop(sock).close(sock)

    def close(self) -> None:
        self.closed = True
        while self._idle:
            self.discard(self._idle.pop())


# --------------------------------------------------------------------------
# The facade
# --------------------------------------------------------------------------


def gateway_args(config: Config | str | os.PathLike[str] | None) -> dict[str, Any]:
    """Constructor arguments of a gateway client for `config` (blocking or asyncio)."""
    config = resolve_config(config)
    return {
        "commands_address": config.gateway.commands_address,
        "events_address": config.gateway.events_address,
        "timeout": config.client.timeout,
        "retries": config.client.retries,
        "quotes_address": config.gateway.quotes_address,
        "curve": client_curve(config),
    }


class _BlockingApi(GatewayApi):
    """The shared requests over the blocking socket pool (each finishes in one step)."""

    def __init__(self, requester: Requester, client_id: str) -> None:
        self._requester = requester
        self.client_id = client_id

    async def _exchange(self, command: Any) -> Any:
        return await exchange(self._requester, command, self._requester.decode)


def _blocking(api_method: Callable[..., Any]) -> Callable[[F], F]:
    """A blocking wrapper documented as the request it runs."""

    def wrap(method: F) -> F:
        method.__doc__ = api_method.__doc__
        return method

    return wrap


class Gateway:
    """A blocking client of one qmtbus gateway. Thread-safe; use as a context manager.

    Every method sends one command and returns the protocol Struct of the
    reply. An `error` reply raises GatewayError (RiskDenied for RISK_DENIED,
    NotConnected for NOT_CONNECTED). When no reply comes within `timeout`
    seconds, safe commands are sent again on a fresh socket up to `retries`
    times, then GatewayUnreachable (a TimeoutError) is raised. Each method is a
    thin wrapper over the one request of qmtbus.api.GatewayApi that AsyncGateway
    awaits.
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
        context: zmq.Context[Any] | None = None,
    ) -> None:
        self.commands_address = commands_address
        self.events_address = events_address
        self.quotes_address = quotes_address
        self.curve = curve
        self.endpoint = Endpoint(commands_address, timeout, retries, curve)
        # Names this client's quote subscriptions: each request may go out on
        # another pooled socket, so the socket cannot name them.
        self.client_id = new_client_id()
        self._requester = Requester(self.endpoint, protocol.decode_reply, context)
        self._api = _BlockingApi(self._requester, self.client_id)

    @classmethod
    def from_config(cls, config: Config | str | os.PathLike[str] | None = None) -> Gateway:
        """A client of the gateway `config` names (a Config, a TOML path, or None: defaults)."""
        return cls(**gateway_args(config))

    @_blocking(GatewayApi.request)
    def request(self, command: Any) -> Any:
        return run_blocking(self._api.request(command))

    @_blocking(GatewayApi.ping)
    def ping(self) -> protocol.Pong:
        return run_blocking(self._api.ping())

    @_blocking(GatewayApi.status)
    def status(self) -> protocol.Status:
        return run_blocking(self._api.status())

    @_blocking(GatewayApi.order)
    def order(
        self,
        stock_code: str,
        order_type: int,
        order_volume: int,
        price: float,
        price_type: int = protocol.FIX_PRICE,
        strategy_name: str = "",
        client_order_id: str | None = None,
    ) -> protocol.OrderAck:
        return run_blocking(
            self._api.order(
                stock_code,
                order_type,
                order_volume,
                price,
                price_type,
                strategy_name,
                client_order_id,
            )
        )

    @_blocking(GatewayApi.buy)
    def buy(self, stock_code: str, volume: int, price: float, **kw: Any) -> protocol.OrderAck:
        return run_blocking(self._api.buy(stock_code, volume, price, **kw))

    @_blocking(GatewayApi.sell)
    def sell(self, stock_code: str, volume: int, price: float, **kw: Any) -> protocol.OrderAck:
        return run_blocking(self._api.sell(stock_code, volume, price, **kw))

    @_blocking(GatewayApi.cancel)
    def cancel(
        self, order_id: int | None = None, client_order_id: str | None = None
    ) -> protocol.CancelAck:
        return run_blocking(self._api.cancel(order_id, client_order_id))

    @_blocking(GatewayApi.asset)
    def asset(self) -> protocol.AssetReply:
        return run_blocking(self._api.asset())

    @_blocking(GatewayApi.orders)
    def orders(self, cancelable_only: bool = False) -> list[protocol.Order]:
        return run_blocking(self._api.orders(cancelable_only))

    @_blocking(GatewayApi.trades)
    def trades(self) -> list[protocol.Trade]:
        return run_blocking(self._api.trades())

    @_blocking(GatewayApi.positions)
    def positions(self) -> list[protocol.Position]:
        return run_blocking(self._api.positions())

    @_blocking(GatewayApi.replay)
    def replay(self, epoch: str, from_seq: int, limit: int = 1000) -> protocol.ReplayReply:
        return run_blocking(self._api.replay(epoch, from_seq, limit))

    @_blocking(GatewayApi.epochs)
    def epochs(self) -> protocol.EpochsReply:
        return run_blocking(self._api.epochs())

    @_blocking(GatewayApi.halt)
    def halt(self, reason: str = "") -> protocol.Status:
        return run_blocking(self._api.halt(reason))

    @_blocking(GatewayApi.reduce_only)
    def reduce_only(self, reason: str = "") -> protocol.Status:
        return run_blocking(self._api.reduce_only(reason))

    @_blocking(GatewayApi.resume)
    def resume(self, reason: str = "") -> protocol.Status:
        return run_blocking(self._api.resume(reason))

    @_blocking(GatewayApi.note)
    def note(self, topic: str, data: dict[str, Any] | None = None) -> int:
        return run_blocking(self._api.note(topic, data))

    @_blocking(GatewayApi.subscribe_quotes)
    def subscribe_quotes(self, stock_codes: Iterable[str]) -> protocol.QuotesAck:
        return run_blocking(self._api.subscribe_quotes(stock_codes))

    @_blocking(GatewayApi.unsubscribe_quotes)
    def unsubscribe_quotes(self, stock_codes: Iterable[str]) -> protocol.QuotesAck:
        return run_blocking(self._api.unsubscribe_quotes(stock_codes))

    @_blocking(GatewayApi.quotes)
    def quotes(self, stock_codes: Iterable[str]) -> list[protocol.TickEvent]:
        return run_blocking(self._api.quotes(stock_codes))

    @_blocking(GatewayApi.bars)
    def bars(
        self,
        stock_code: str,
        period: protocol.BarPeriod = "1d",
        count: int = 20,
        start_time: int = 0,
        end_time: int = 0,
    ) -> list[protocol.Bar]:
        return run_blocking(self._api.bars(stock_code, period, count, start_time, end_time))

    @_blocking(GatewayApi.instrument)
    def instrument(self, stock_code: str) -> protocol.InstrumentReply:
        return run_blocking(self._api.instrument(stock_code))

    def quote_stream(self, *stock_codes: str, **kw: Any) -> QuoteStream:
        """A QuoteStream of these codes' ticks (subscribed now, renewed while read)."""
        from qmtbus.stream import QuoteStream

        return QuoteStream(self, stock_codes, **kw)

    def stream(self, *types: str, **kw: Any) -> EventStream:
        """An EventStream of this gateway's events (all when no types are given)."""
        from qmtbus.stream import EventStream

        return EventStream(self.events_address, types=types, gateway=self, **kw)

    def close(self) -> None:
        self._requester.close()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Gateway({self.commands_address!r}, {self.events_address!r})"


class RecorderClient:
    """A blocking client of the recorder's query endpoint (read-only SQL on the DuckDB file)."""

    def __init__(
        self,
        query_address: str = "tcp://127.0.0.1:7103",
        timeout: float = 5.0,
        retries: int = 3,
        *,
        curve: CurveKeys | None = None,
    ) -> None:
        self.endpoint = Endpoint(query_address, timeout, retries, curve, name="recorder")
        self._requester = Requester(self.endpoint, protocol.decode_recorder_reply)

    @classmethod
    def from_config(cls, config: Config | str | os.PathLike[str] | None = None) -> RecorderClient:
        config = resolve_config(config)
        return cls(
            config.recorder.query_address,
            config.client.timeout,
            config.client.retries,
            curve=client_curve(config),
        )

    def sql(self, sql: str, limit: int = 10_000) -> protocol.SqlResult:
        """Run a read-only statement; rows come back as lists in column order. Retried."""
        return check_reply(
            self._requester.request(protocol.SqlQuery(sql=sql, limit=limit)), protocol.SqlResult
        )

    def status(self) -> protocol.RecorderStatus:
        """What the recorder has committed. Retried."""
        return check_reply(
            self._requester.request(protocol.RecorderStatusQuery()), protocol.RecorderStatus
        )

    def close(self) -> None:
        self._requester.close()

    def __enter__(self) -> RecorderClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
