"""The blocking gateway client, and the sans-IO core (ids, retries, reply checks) shared with aio.

Transport: a small pool of REQ sockets, one per request in flight, so the
blocking path is send + recv on the caller's thread (no thread hops) and
several threads may share one `Gateway`. A request that gets no reply is
retried on a fresh socket (the old one is closed with linger 0), because a REQ
socket that lost its reply is stuck; only commands that are safe to send twice
are retried once they may have reached the gateway.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
import zmq

from qmtbus import protocol
from qmtbus.config import Config, ConfigError, load_config
from qmtbus.errors import BadReply, GatewayUnreachable, from_reply

if TYPE_CHECKING:
    from qmtbus.stream import EventStream, QuoteStream

R = TypeVar("R")

# --------------------------------------------------------------------------
# Sans-IO core: everything the blocking and the asyncio client agree on.
# --------------------------------------------------------------------------

# Commands that may be sent again after a reply was lost. An order is safe
# because it keeps its client_order_id (the gateway answers `duplicate: true`);
# a cancel of a cancelled order changes nothing; quote subscriptions are sets
# held per client_id; the rest read or set state.
# `note` is missing on purpose: a resent note would publish twice. Sim faults
# like reject_next would fire twice.
RETRY_SAFE: frozenset[type[Any]] = frozenset(
    {
        protocol.Ping,
        protocol.GetStatus,
        protocol.PlaceOrder,
        protocol.CancelOrder,
        protocol.QueryAsset,
        protocol.QueryOrders,
        protocol.QueryTrades,
        protocol.QueryPositions,
        protocol.Replay,
        protocol.ListEpochs,
        protocol.Halt,
        protocol.ReduceOnly,
        protocol.Resume,
        protocol.SimSetPrice,
        protocol.SubscribeQuotes,
        protocol.UnsubscribeQuotes,
        protocol.QueryQuote,
        protocol.SqlQuery,
        protocol.RecorderStatusQuery,
    }
)

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _base32(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "".join(reversed(chars))


def new_client_order_id(prefix: str = "q") -> str:
    """A fresh client_order_id: prefix + 9 chars of milliseconds + 10 random chars.

    Unique across processes and restarts without coordination (50 random
    bits per millisecond), sortable by creation time within one prefix, and
    at most 24 printable ASCII characters as the protocol requires.
    """
    if len(prefix) > 5 or not prefix.isascii() or not prefix.isprintable() or " " in prefix:
        raise ValueError("client_order_id prefix must be at most 5 printable ASCII characters")
    return prefix + _base32(time.time_ns() // 1_000_000, 9) + _base32(secrets.randbits(50), 10)


def new_client_id() -> str:
    """A name for one client object's quote subscriptions, unique across processes."""
    return f"py-{os.getpid()}-{_base32(secrets.randbits(40), 8)}"


@dataclass(frozen=True)
class CurveKeys:
    """This client's CURVE key pair and the server's public key (Z85 bytes)."""

    public: bytes
    secret: bytes
    server: bytes
    secret_key_file: str = ""  # named in error messages

    @classmethod
    def load(cls, secret_key_file: str, server_public_key_file: str) -> CurveKeys:
        """Read the key files written by `qmtbus keys new`; ConfigError names a bad one."""
        from qmtbus import keys

        if not secret_key_file or not server_public_key_file:
            raise ConfigError(
                "CURVE needs both client.secret_key and client.server_public_key; set both "
                "or neither"
            )
        public, secret = keys.load_secret_keypair(secret_key_file)
        server = keys.load_public_key(server_public_key_file)
        return cls(public, secret, server, secret_key_file)


@dataclass(frozen=True)
class Endpoint:
    """Where and how to send requests: the part of the config a requester needs."""

    address: str
    timeout: float = 5.0
    retries: int = 3
    curve: CurveKeys | None = None
    name: str = "gateway"

    @property
    def timeout_ms(self) -> int:
        return max(1, int(self.timeout * 1000))


def client_curve(config: Config) -> CurveKeys | None:
    c = config.client
    if not c.secret_key and not c.server_public_key:
        return None
    return CurveKeys.load(c.secret_key, c.server_public_key)


def resolve_config(config: Config | str | os.PathLike[str] | None) -> Config:
    return config if isinstance(config, Config) else load_config(config)


_MONITOR_EVENTS = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


_monitor_ids = itertools.count()


def prepare_socket(
    sock: zmq.Socket[Any], endpoint: Endpoint, monitor_context: zmq.Context[Any]
) -> zmq.Socket[Any]:
    """Set a fresh REQ socket's options, connect it, and return its (blocking) monitor socket.

    IMMEDIATE keeps a request off connections that have not finished their
    handshake, so "never sent" is known for sure: then nothing can have
    happened at the gateway and any command may be tried again. A refused
    handshake (CURVE key not allowed, wrong server key, CURVE on one side
    only) is silent in ZeroMQ; the monitor is read only when a request fails,
    so that the error can say which it was.
    """
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IMMEDIATE, 1)
    sock.setsockopt(zmq.RCVTIMEO, endpoint.timeout_ms)
    # a handshake the server silently ignores is given up and retried, not kept 30 s
    sock.setsockopt(zmq.HANDSHAKE_IVL, max(200, endpoint.timeout_ms))
    if endpoint.curve is not None:
        sock.curve_publickey = endpoint.curve.public
        sock.curve_secretkey = endpoint.curve.secret
        sock.curve_serverkey = endpoint.curve.server
    address = f"inproc://qmtbus-monitor-{os.getpid()}-{next(_monitor_ids)}"
    sock.monitor(address, _MONITOR_EVENTS)
    monitor = monitor_context.socket(zmq.PAIR)
    monitor.setsockopt(zmq.LINGER, 0)
    monitor.connect(address)
    sock.connect(endpoint.address)
    return monitor


def handshake_diagnosis(monitor: zmq.Socket[Any]) -> str:
    """What the newest connection attempt came to: "auth" (key refused), "protocol"
    (handshake failed), "no_handshake" (connected, no handshake yet) or ""."""
    from zmq.utils.monitor import recv_monitor_message

    why = ""
    try:
        while monitor.poll(0):
            event = int(recv_monitor_message(monitor, zmq.NOBLOCK)["event"])
            if event == zmq.EVENT_CONNECTED:
                why = "no_handshake"
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                why = ""
            elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                why = "auth"
            elif event & (
                zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
            ):
                why = "protocol"
            elif event == zmq.EVENT_DISCONNECTED and why == "no_handshake":
                why = ""
    except zmq.ZMQError:
        pass
    return why


def close_socket(sock: zmq.Socket[Any], monitor: zmq.Socket[Any] | None) -> str:
    """Close a REQ socket (linger 0) and its monitor; returns the handshake diagnosis."""
    why = ""
    if monitor is not None:
        why = handshake_diagnosis(monitor)
        with contextlib.suppress(zmq.ZMQError):
            sock.disable_monitor()
        monitor.close(0)
    sock.close(0)
    return why


def unreachable(
    endpoint: Endpoint, command: Any, sent: bool, attempts: int, why: str
) -> GatewayUnreachable:
    """The one-sentence error after the last attempt."""
    name, address = endpoint.name, endpoint.address
    public_file = "this client's public key file"
    if endpoint.curve is not None and endpoint.curve.secret_key_file:
        public_file = endpoint.curve.secret_key_file.removesuffix("_secret")
    if why == "auth":
        text = (
            f"{name} at {address} refused this client's CURVE key — copy {public_file} into "
            f"the {name}'s security.allowed_clients_dir"
        )
    elif why == "protocol" and endpoint.curve is not None:
        text = (
            f"the CURVE handshake with the {name} at {address} failed — check that "
            f"client.server_public_key is the {name}'s public key (its NAME.key file)"
        )
    elif why == "protocol":
        text = (
            f"{name} at {address} refused the connection handshake — it probably requires "
            "CURVE: set client.secret_key and client.server_public_key"
        )
    elif why == "no_handshake" and not sent:
        text = (
            f"{name} at {address} accepted the connection but did not complete the handshake "
            f"within {endpoint.timeout:g} s — is it stuck or paused?"
        )
    elif not sent and endpoint.curve is not None:
        text = (
            f"{name} not reachable at {address} — is it running, is {public_file} in its "
            f"security.allowed_clients_dir, and is client.server_public_key its public key?"
        )
    elif not sent:
        text = f"{name} not reachable at {address} — is it running?"
    elif type(command) not in RETRY_SAFE:
        text = (
            f"{name} at {address} did not answer within {endpoint.timeout:g} s — the "
            f"{_tag(command)} command may or may not have taken effect, so it was not resent"
        )
    else:
        tries = "1 try" if attempts == 1 else f"{attempts} tries"
        text = (
            f"{name} at {address} did not answer within {endpoint.timeout:g} s ({tries}) — "
            f"is it running and not stuck?"
        )
    return GatewayUnreachable(text, address, sent)


def _tag(command: Any) -> str:
    config = getattr(type(command), "__struct_config__", None)
    return str(config.tag) if config is not None else type(command).__name__


def check_reply(reply: Any, expected: type[R]) -> R:
    """Raise the error an `error` reply stands for; insist on the expected reply type."""
    if isinstance(reply, expected):
        return reply
    if isinstance(reply, protocol.ErrorReply):
        raise from_reply(reply)
    raise BadReply("BAD_REPLY", f"expected a {expected.__name__} reply, got {type(reply).__name__}")


def decode_or_raise(decode: Callable[[bytes], Any], raw: bytes) -> Any:
    try:
        return decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise BadReply(
            "BAD_REPLY",
            f"undecodable reply ({err}); is the peer a qmtbus gateway "
            "of the same protocol version?",
        ) from None


def order_command(
    stock_code: str,
    order_type: int,
    order_volume: int,
    price: float,
    price_type: int,
    strategy_name: str,
    client_order_id: str | None,
) -> protocol.PlaceOrder:
    return protocol.PlaceOrder(
        client_order_id=client_order_id or new_client_order_id(),
        stock_code=stock_code,
        order_type=order_type,  # type: ignore[arg-type]  # checked by the gateway
        order_volume=order_volume,
        price_type=price_type,
        price=price,
        strategy_name=strategy_name,
    )


def cancel_command(order_id: int | None, client_order_id: str | None) -> protocol.CancelOrder:
    if (order_id is None) == (client_order_id is None):
        raise ValueError("cancel needs exactly one of order_id and client_order_id")
    if order_id is not None:
        return protocol.CancelOrder(order_id=order_id)
    return protocol.CancelOrder(client_order_id=client_order_id or "")


# --------------------------------------------------------------------------
# Blocking transport
# --------------------------------------------------------------------------


class Requester:
    """Blocking request/reply with retries over a pool of REQ sockets (thread-safe)."""

    def __init__(
        self,
        endpoint: Endpoint,
        decode: Callable[[bytes], Any],
        context: zmq.Context[Any] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._decode = decode
        self._ctx = context or zmq.Context.instance()
        self._idle: list[zmq.Socket[Any]] = []
        self._monitors: dict[zmq.Socket[Any], zmq.Socket[Any]] = {}
        self._closed = False

    def request(self, command: Any) -> Any:
        """Send `command`, return the decoded reply. Raises GatewayUnreachable."""
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
            done = False
            try:
                raw, sent = self._attempt(sock, payload)
                done = raw is not None
            finally:
                if done and not self._closed:
                    self._idle.append(sock)
                else:  # timed out or interrupted: this REQ socket waits for a lost reply forever
                    why = self._discard(sock) or why
            if raw is not None:
                return decode_or_raise(self._decode, raw)
            sent_any = sent_any or sent
            # never sent: nothing can have happened, so even a note may go again
            if attempts > self.endpoint.retries or (sent and not retry_safe):
                raise unreachable(self.endpoint, command, sent_any, attempts, why)

    def _attempt(self, sock: zmq.Socket[Any], payload: bytes) -> tuple[bytes | None, bool]:
        """One try within `timeout`: (the reply or None, whether the request left)."""
        try:
            sock.send(payload, zmq.NOBLOCK)
        except zmq.Again:
            return self._attempt_connecting(sock, payload)
        try:
            return sock.recv(), True  # RCVTIMEO bounds the wait
        except zmq.Again:
            return None, True

    def _attempt_connecting(
        self, sock: zmq.Socket[Any], payload: bytes
    ) -> tuple[bytes | None, bool]:
        # No finished connection yet (fresh socket, or the gateway is down):
        # wait for one, then for the reply, within the same time budget.
        deadline = time.monotonic() + self.endpoint.timeout
        if not sock.poll(self.endpoint.timeout_ms, zmq.POLLOUT):
            return None, False
        try:
            sock.send(payload, zmq.NOBLOCK)
        except zmq.Again:
            return None, False
        left = int((deadline - time.monotonic()) * 1000)
        if left <= 0 or not sock.poll(left, zmq.POLLIN):
            return None, True
        return sock.recv(zmq.NOBLOCK), True

    def _take(self) -> zmq.Socket[Any]:
        try:
            return self._idle.pop()
        except IndexError:
            sock = self._ctx.socket(zmq.REQ)
            self._monitors[sock] = prepare_socket(sock, self.endpoint, self._ctx)
            return sock

    def _discard(self, sock: zmq.Socket[Any]) -> str:
        return close_socket(sock, self._monitors.pop(sock, None))

    def close(self) -> None:
        self._closed = True
        while self._idle:
            self._discard(self._idle.pop())


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


class Gateway:
    """A blocking client of one qmtbus gateway. Thread-safe; use as a context manager.

    Every method sends one command and returns the protocol Struct of the
    reply. An `error` reply raises GatewayError (RiskDenied for RISK_DENIED,
    NotConnected for NOT_CONNECTED). When no reply comes within `timeout`
    seconds, safe commands are sent again on a fresh socket up to `retries`
    times, then GatewayUnreachable (a TimeoutError) is raised.
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

    @classmethod
    def from_config(cls, config: Config | str | os.PathLike[str] | None = None) -> Gateway:
        """A client of the gateway `config` names (a Config, a TOML path, or None: defaults)."""
        return cls(**gateway_args(config))

    def request(self, command: Any) -> Any:
        """Send any protocol command, return its reply Struct; an `error` reply raises GatewayError.

        Retried after a lost reply only when the command is in RETRY_SAFE.
        """
        reply = self._requester.request(command)
        if isinstance(reply, protocol.ErrorReply):
            raise from_reply(reply)
        return reply

    def _call(self, command: Any, expected: type[R]) -> R:
        return check_reply(self._requester.request(command), expected)

    def ping(self) -> protocol.Pong:
        """Round trip to the gateway's I/O thread (never touches the broker). Retried."""
        return self._call(protocol.Ping(), protocol.Pong)

    def status(self) -> protocol.Status:
        """State of the connection, trading state, epoch and last_seq. Retried."""
        return self._call(protocol.GetStatus(), protocol.Status)

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
        """Place an order; returns the gateway's OrderAck (check `status`: a broker rejection is
        an ack with status "rejected", a risk denial raises RiskDenied).

        Retried safely: every attempt carries the same client_order_id (generated
        here when not given), so the gateway answers a resend with `duplicate: true`
        and never places the order twice.
        """
        command = order_command(
            stock_code, order_type, order_volume, price, price_type, strategy_name, client_order_id
        )
        return self._call(command, protocol.OrderAck)

    def buy(self, stock_code: str, volume: int, price: float, **kw: Any) -> protocol.OrderAck:
        """`order(stock_code, STOCK_BUY, volume, price, ...)`."""
        return self.order(stock_code, protocol.STOCK_BUY, volume, price, **kw)

    def sell(self, stock_code: str, volume: int, price: float, **kw: Any) -> protocol.OrderAck:
        """`order(stock_code, STOCK_SELL, volume, price, ...)`."""
        return self.order(stock_code, protocol.STOCK_SELL, volume, price, **kw)

    def cancel(
        self, order_id: int | None = None, client_order_id: str | None = None
    ) -> protocol.CancelAck:
        """Ask the broker to cancel (give exactly one id). Retried: resending a cancel is harmless.
        The outcome arrives as an order event (status 53/54) or a cancel_error event."""
        return self._call(cancel_command(order_id, client_order_id), protocol.CancelAck)

    def asset(self) -> protocol.AssetReply:
        """Cash and asset values, queried from the broker now. Retried."""
        return self._call(protocol.QueryAsset(), protocol.AssetReply)

    def orders(self, cancelable_only: bool = False) -> list[protocol.Order]:
        """Today's orders, queried from the broker now. Retried."""
        return self._call(
            protocol.QueryOrders(cancelable_only=cancelable_only), protocol.OrdersReply
        ).orders

    def trades(self) -> list[protocol.Trade]:
        """Today's fills. Retried."""
        return self._call(protocol.QueryTrades(), protocol.TradesReply).trades

    def positions(self) -> list[protocol.Position]:
        """Current positions. Retried."""
        return self._call(protocol.QueryPositions(), protocol.PositionsReply).positions

    def replay(self, epoch: str, from_seq: int, limit: int = 1000) -> protocol.ReplayReply:
        """Journaled events of `epoch` from `from_seq` on (at most `limit`). Retried.
        Raises GatewayError NOT_FOUND when the gateway no longer holds them."""
        return self._call(
            protocol.Replay(epoch=epoch, from_seq=from_seq, limit=limit), protocol.ReplayReply
        )

    def epochs(self) -> protocol.EpochsReply:
        """Every epoch the gateway's journal holds, oldest first, with its seq range. Retried."""
        return self._call(protocol.ListEpochs(), protocol.EpochsReply)

    def halt(self, reason: str = "") -> protocol.Status:
        """Refuse every new order (cancels still pass). Retried: setting a state is idempotent."""
        return self._call(protocol.Halt(reason=reason), protocol.Status)

    def reduce_only(self, reason: str = "") -> protocol.Status:
        """Accept only orders that reduce positions. Retried."""
        return self._call(protocol.ReduceOnly(reason=reason), protocol.Status)

    def resume(self, reason: str = "") -> protocol.Status:
        """Back to active trading. Retried."""
        return self._call(protocol.Resume(reason=reason), protocol.Status)

    def note(self, topic: str, data: dict[str, Any] | None = None) -> int:
        """Publish a `note` event (job runs, signals, alerts); returns its seq.

        NOT retried once it may have reached the gateway: a resend would publish
        the note twice. It is retried only while no connection existed at all.
        """
        return self._call(protocol.PublishNote(topic=topic, data=data or {}), protocol.NoteAck).seq

    def subscribe_quotes(self, stock_codes: Iterable[str]) -> protocol.QuotesAck:
        """Ask for `tick` events of these codes on the quotes socket, held for this
        client (`client_id`) for the gateway's quote_lease: renew by calling again.
        Retried (a set: asking twice holds once). QuoteStream does the renewing."""
        command = protocol.SubscribeQuotes(stock_codes=list(stock_codes), client_id=self.client_id)
        return self._call(command, protocol.QuotesAck)

    def unsubscribe_quotes(self, stock_codes: Iterable[str]) -> protocol.QuotesAck:
        """Drop this client's hold on these codes. Retried."""
        command = protocol.UnsubscribeQuotes(
            stock_codes=list(stock_codes), client_id=self.client_id
        )
        return self._call(command, protocol.QuotesAck)

    def quotes(self, stock_codes: Iterable[str]) -> list[protocol.TickEvent]:
        """The latest full tick of each code, in order; NOT_FOUND for a code with no quote.
        Retried."""
        command = protocol.QueryQuote(stock_codes=list(stock_codes))
        return self._call(command, protocol.QuotesReply).quotes

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
