"""The client's REQ sockets against a raw ROUTER on loopback: a reply that arrived before
the gateway exited is kept, and "never sent" stays known for sure (qmtbus.reqsocket).

The ROUTER plays the gateway: it answers, goes silent or goes away exactly when the test
says, so each case is deterministic; the client is the real Requester / AsyncRequester.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
import zmq.asyncio

from qmtbus import GatewayUnreachable, protocol
from qmtbus.aio import AsyncRequester
from qmtbus.api import exchange
from qmtbus.client import Requester
from qmtbus.reqsocket import Link, prepare_socket
from qmtbus.sansio import Endpoint
from tests.support import wait_for

NOTE = protocol.PublishNote(topic="once", data={})


def encode(reply: Any) -> bytes:
    return protocol.msgpack_encoder.encode(reply)


class FakeGateway:
    """A ROUTER on a loopback port, in its own context, driven by the test."""

    def __init__(self, port: int = 0) -> None:
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 2000)  # a reply is flushed before exit
        if port:
            self.router.bind(f"tcp://127.0.0.1:{port}")
            self.port = port
        else:
            self.port = self.router.bind_to_random_port("tcp://127.0.0.1")
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.received: list[Any] = []

    def take_request(self, timeout_ms: int = 10_000) -> bytes:
        """The next request's routing id (its payload is kept in `received`)."""
        assert self.router.poll(timeout_ms), "no request reached the gateway"
        routing_id, _, payload = self.router.recv_multipart()
        self.received.append(protocol.command_msgpack_decoder.decode(payload))
        return routing_id

    def answer(self, routing_id: bytes, reply: Any) -> None:
        self.router.send_multipart([routing_id, b"", encode(reply)])

    def exit(self) -> None:
        """Close the socket and its context: returns once every reply is on the wire."""
        self.router.close()
        self.ctx.term()


class Counting(Requester):
    """The real Requester, counting the sockets it opens (a fresh one per attempt)."""

    opened = 0

    def take(self) -> zmq.Socket[Any]:
        if not self._idle:
            self.opened += 1
        return super().take()


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.destroy(linger=0)  # closes what a failed test left open


def requester(ctx: zmq.Context[Any], address: str, timeout: float, retries: int) -> Counting:
    return Counting(Endpoint(address, timeout, retries, None), protocol.decode_reply, ctx)


@contextlib.contextmanager
def refusing_address() -> Iterator[str]:
    """A loopback address nothing listens on: a port bound (to 0) and held, never
    listened on, so every connection to it is refused and no other test can take it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        yield f"tcp://127.0.0.1:{held.getsockname()[1]}"


class Call:
    """One blocking request on a thread; `result()` returns or re-raises."""

    def __init__(self, req: Requester, command: Any) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(req, command), daemon=True)
        self.thread.start()

    def _run(self, req: Requester, command: Any) -> None:
        try:
            self.value = req.request(command)
        except BaseException as err:
            self.error = err

    def result(self, timeout: float = 30.0) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the request did not return"
        if self.error is not None:
            raise self.error
        return self.value


def seen(link: Link, predicate: Any) -> Any:
    """Wait until the socket's monitor has told what `predicate` asks of its Link."""

    def check() -> Any:
        link.look()
        return predicate(link)

    return wait_for(check, 10, "the client's monitor to tell it")


def test_given_gateway_answers_and_exits_before_the_client_reads_then_the_reply_is_kept(
    ctx: zmq.Context[Any],
) -> None:
    gateway = FakeGateway()
    req = requester(ctx, gateway.address, 5.0, 0)
    sock = req.take()
    link = req._links[sock]
    seen(link, lambda link: link.up)
    link.sending()
    sock.send(encode(NOTE))
    gateway.answer(gateway.take_request(), protocol.NoteAck(seq=7))
    gateway.exit()
    # The client has not read yet, and its I/O thread has seen the connection drop
    # (with ZMQ_IMMEDIATE the reply would be gone now).
    seen(link, lambda link: not link.up)
    assert protocol.decode_reply(sock.recv()) == protocol.NoteAck(seq=7)
    req.discard(sock)


def test_given_nothing_listening_then_a_note_provably_never_left_and_is_retried(
    ctx: zmq.Context[Any],
) -> None:
    with refusing_address() as address, pytest.raises(GatewayUnreachable) as err:
        req = requester(ctx, address, 0.2, 2)
        req.request(NOTE)
    assert str(err.value) == f"gateway not reachable at {address} — is it running?"
    assert err.value.sent is False
    assert req.opened == 3  # the first try and both retries, each on a fresh socket


def test_given_note_reached_the_gateway_that_then_went_away_then_it_is_not_resent(
    ctx: zmq.Context[Any],
) -> None:
    gateway = FakeGateway()
    req = requester(ctx, gateway.address, 2.0, 3)
    call = Call(req, NOTE)
    gateway.take_request()
    gateway.exit()  # without answering
    with pytest.raises(GatewayUnreachable, match="may or may not have taken effect") as err:
        call.result()
    assert err.value.sent is True
    assert req.opened == 1
    assert gateway.received == [NOTE]


def test_given_note_sent_on_a_connected_socket_and_unanswered_then_it_counts_as_sent(
    ctx: zmq.Context[Any],
) -> None:
    gateway = FakeGateway()
    req = requester(ctx, gateway.address, 2.0, 3)
    first = Call(req, protocol.Ping())
    gateway.answer(gateway.take_request(), protocol.Pong())
    assert first.result() == protocol.Pong()
    with pytest.raises(GatewayUnreachable, match="not resent") as err:
        req.request(NOTE)  # the gateway takes it and stays silent
    assert err.value.sent is True
    assert req.opened == 1
    gateway.take_request()
    assert gateway.received == [protocol.Ping(), NOTE]
    gateway.exit()


def connected_then_gone(
    ctx: zmq.Context[Any], timeout: float, retries: int
) -> tuple[Counting, FakeGateway]:
    """A requester whose pooled socket got an answer from a gateway that has exited since
    (its monitor has told it so)."""
    gateway = FakeGateway()
    req = requester(ctx, gateway.address, timeout, retries)
    first = Call(req, protocol.Ping())
    gateway.answer(gateway.take_request(), protocol.Pong())
    assert first.result() == protocol.Pong()
    gateway.exit()
    seen(req._links[req._idle[-1]], lambda link: not link.up)
    return req, gateway


def test_given_gateway_restarted_between_two_requests_then_the_pooled_socket_gets_through(
    ctx: zmq.Context[Any],
) -> None:
    req, gateway = connected_then_gone(ctx, 10.0, 0)
    # sent while the gateway is down: it waits in the socket and goes out on reconnect
    second = Call(req, NOTE)
    restarted = FakeGateway(gateway.port)
    restarted.answer(restarted.take_request(), protocol.NoteAck(seq=1))
    assert second.result() == protocol.NoteAck(seq=1)
    assert req.opened == 1
    assert restarted.received == [NOTE]
    restarted.exit()
    req.close()


def test_given_gateway_restarted_takes_the_waiting_note_and_is_silent_then_it_counts_as_sent(
    ctx: zmq.Context[Any],
) -> None:
    req, gateway = connected_then_gone(ctx, 2.0, 3)
    second = Call(req, NOTE)
    restarted = FakeGateway(gateway.port)
    restarted.take_request()  # and no answer
    with pytest.raises(GatewayUnreachable, match="not resent") as err:
        second.result()
    assert err.value.sent is True
    assert restarted.received == [NOTE]
    restarted.exit()


def test_given_async_client_when_gateway_answers_and_exits_then_the_reply_is_kept() -> None:
    async def run() -> None:
        gateway = FakeGateway()
        req = AsyncRequester(Endpoint(gateway.address, 5.0, 0, None), actx)
        sock = req.take()
        try:
            link = req._links[sock]
            while not link.up:  # the pooled socket is connected
                link.look()
                await asyncio.sleep(0.01)
            link.sending()
            await sock.send(encode(NOTE))
            gateway.answer(gateway.take_request(), protocol.NoteAck(seq=3))
            gateway.exit()
            while link.up:  # the client has seen the gateway go
                link.look()
                await asyncio.sleep(0.01)
            assert await sock.poll(5000), "the reply was lost"
            assert protocol.decode_reply(await sock.recv()) == protocol.NoteAck(seq=3)
        finally:
            req.discard(sock)

    actx = zmq.asyncio.Context()
    try:
        asyncio.run(asyncio.wait_for(run(), 30))
    finally:
        actx.destroy(linger=0)


def test_given_nothing_listening_then_async_note_is_retried_and_never_sent() -> None:
    with refusing_address() as address:
        err = _async_note_to(address)
    assert str(err) == f"gateway not reachable at {address} — is it running?"
    assert err.sent is False


def _async_note_to(address: str) -> GatewayUnreachable:
    async def run() -> GatewayUnreachable:
        req = AsyncRequester(Endpoint(address, 0.2, 2, None), actx)
        try:
            await exchange(req, NOTE, protocol.decode_reply)
        except GatewayUnreachable as err:
            return err
        finally:
            req.close()
        raise AssertionError("no error")

    actx = zmq.asyncio.Context()
    try:
        return asyncio.run(run())
    finally:
        actx.destroy(linger=0)


def test_given_an_idle_socket_whose_monitor_fills_then_the_context_keeps_serving(
    ctx: zmq.Context[Any],
) -> None:
    # a pooled socket left idle while its gateway refuses it: each try a few monitor
    # events nobody reads; once they filled the monitor's pipe libzmq blocked the
    # context's I/O thread, and every other socket of the process with it
    refused = 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        server.settimeout(2)  # no more tries for that long: the context stopped
        idle: zmq.Socket[Any] = ctx.socket(zmq.REQ)
        idle.setsockopt(zmq.RECONNECT_IVL, 1)
        link = prepare_socket(idle, Endpoint(f"tcp://127.0.0.1:{server.getsockname()[1]}",
                                             5.0, 0, None), ctx)  # fmt: skip
        with contextlib.suppress(TimeoutError):
            while refused < 1500:  # accepted and closed at once: 2 events each, and more
                conn, _ = server.accept()
                conn.close()
                refused += 1
        assert refused == 1500, f"the idle socket stopped retrying after {refused} tries"
        gateway = FakeGateway()
        req = requester(ctx, gateway.address, 10.0, 0)
        call = Call(req, protocol.Ping())
        gateway.answer(gateway.take_request(5000), protocol.Pong())
        assert call.result() == protocol.Pong()
        gateway.exit()
        req.close()
        link.close(idle)
