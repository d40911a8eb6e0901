"""The asyncio gateway client: the same API as Gateway, awaited, over zmq.asyncio.

The requests and the retry loop are qmtbus.api's (shared with the blocking Gateway);
only the waiting differs. Concurrent coroutines each take their own REQ socket from a
pool, so a slow order does not hold up a status query.
"""

from __future__ import annotations

import os
from typing import Any

import zmq
import zmq.asyncio

from qmtbus import protocol
from qmtbus.api import GatewayApi, exchange
from qmtbus.client import CurveKeys, gateway_args
from qmtbus.config import Config
from qmtbus.reqsocket import Link, prepare_socket
from qmtbus.sansio import Endpoint, new_client_id


class AsyncRequester:
    """Request/reply with retries over a pool of zmq.asyncio REQ sockets (one event loop)."""

    def __init__(self, endpoint: Endpoint, context: zmq.asyncio.Context | None = None) -> None:
        self.endpoint = endpoint
        self._ctx = context or zmq.asyncio.Context.instance()
        # the monitor is read without awaiting (a look per request, a short wait after a
        # failure): a blocking socket on the same underlying context, as inproc requires
        self._sync_ctx: zmq.Context[Any] = zmq.Context.shadow(self._ctx.underlying)
        self._idle: list[zmq.asyncio.Socket] = []
        self._links: dict[zmq.asyncio.Socket, Link] = {}
        self.closed = False

    async def attempt(self, sock: zmq.asyncio.Socket, payload: bytes) -> bytes | None:
        """One try within the timeout: the reply, or None (the Link knows whether it left)."""
        link = self._links[sock]
        link.sending()
        try:
            # without IMMEDIATE a REQ socket queues the request even before it connects
            await sock.send(payload, zmq.NOBLOCK)
        except zmq.Again:
            return None
        # pyzmq's stubs omit poll's `flags`; the runtime takes it
        if not await sock.poll(self.endpoint.timeout_ms, zmq.POLLIN):  # type: ignore[call-arg]
            return None
        reply = await sock.recv(zmq.NOBLOCK)
        link.answered()
        return reply

    def take(self) -> zmq.asyncio.Socket:
        try:
            return self._idle.pop()
        except IndexError:
            sock = self._ctx.socket(zmq.REQ)
            self._links[sock] = prepare_socket(sock, self.endpoint, self._sync_ctx)
            # This client polls with its own deadlines. pyzmq's asyncio poll also arms
            # RCVTIMEO and fails the poll with zmq.Again when that fires first (a
            # millisecond apart, so under load it can): no RCVTIMEO here.
            sock.setsockopt(zmq.RCVTIMEO, -1)
            return sock

    def keep(self, sock: zmq.asyncio.Socket) -> None:
        self._idle.append(sock)

    def discard(self, sock: zmq.asyncio.Socket) -> tuple[str, bool]:
        return self._links.pop(sock).close(sock)

    def close(self) -> None:
        self.closed = True
        while self._idle:
            self.discard(self._idle.pop())


class AsyncGateway(GatewayApi):
    """An asyncio client of one qmtbus gateway; `async with AsyncGateway(...) as gw:`.

    Same methods, results, errors and retry rules as Gateway (see there), as coroutines:
    both run the requests of qmtbus.api.GatewayApi.
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
        self._requester = AsyncRequester(self.endpoint, context)

    @classmethod
    def from_config(cls, config: Config | str | os.PathLike[str] | None = None) -> AsyncGateway:
        return cls(**gateway_args(config))

    async def _exchange(self, command: Any) -> Any:
        return await exchange(self._requester, command, protocol.decode_reply)

    def close(self) -> None:
        self._requester.close()

    async def __aenter__(self) -> AsyncGateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AsyncGateway({self.commands_address!r}, {self.events_address!r})"
