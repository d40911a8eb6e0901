"""The design's floor: the gateway's thread hand-overs for one order, with no work between them.

An order in the gateway crosses these threads (/work/shared/DESIGN.md: the I/O thread never
calls the broker; pushes arrive on xtquant's own worker thread):

    client → ROUTER on the I/O thread → broker thread (gateway/inbox.py `Inbox`)
           → the broker call → xtquant's push worker (`ThreadPoolExecutor(max_workers=1)
             .submit`, as xttrader.py does per push) → I/O thread (gateway/server.py `post`:
             a deque and one wake-up byte per batch on a socket pair, polled with the ROUTER
             by `zmq.zmq_poll`) → reply on the ROUTER.

`python -m bench.floor` is a peer process (as bench/peers.py's, see bench.common.Peer) that
does exactly those hand-overs with the gateway's own primitives, and nothing else: it decodes
the same `PlaceOrder` with msgspec and encodes the same `OrderAck`; no risk gate, no journal,
no broker (the broker call is the push submit itself), no events, one push per order (the
order response an ack waits for). What qmtbus takes above it is the work.

It prints `{"ready": true, "address": ...}` once its ROUTER is bound; the command
`{"received": true}` answers, for each order, the wall clock (time.time_ns) at which the
broker thread had it: the floor of the gateway's intake. It stops when stdin closes.
"""

from __future__ import annotations

import collections
import contextlib
import json
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import msgspec
import zmq

from qmtbus import protocol
from qmtbus.gateway.inbox import Inbox

_MORE = int(zmq.SNDMORE)
_NOBLOCK = int(zmq.NOBLOCK)
_POLLIN = int(zmq.POLLIN)
_send = zmq.backend.Socket.send  # as gateway/server.py: libzmq's bindings, no Python layer
_recv = zmq.backend.Socket.recv

PROBE_INTERVAL = 10.0  # the gateway's default probe_interval
Envelope = list[bytes]
Push = tuple[Envelope, str, int]  # the envelope, client_order_id, order_id


class Floor:
    """The gateway's three threads (I/O, broker, push worker) and its two hand-over
    primitives, handing one order round with no work."""

    def __init__(self, address: str) -> None:
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.bind(address)
        self.address = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.stopping = False
        self.received: dict[str, int] = {}  # client_order_id → wall ns on the broker thread
        # I/O → broker thread, as gateway/lifecycle.py's `jobs`
        self.jobs: Inbox[tuple[Envelope, protocol.PlaceOrder] | None] = Inbox()
        # the push worker, as xttrader.py's `executor`
        self.pushes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="floor-push")
        # push worker → I/O thread, as gateway/server.py's `post`
        self._inbox: collections.deque[Push] = collections.deque()
        self._wake_sent = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._intents: list[tuple[Envelope, protocol.PlaceOrder]] = []
        self._replies: list[list[bytes]] = []
        self._broker = threading.Thread(target=self._broker_thread, name="floor-broker")
        self._broker.start()

    # -- the push worker → the I/O thread (gateway/server.py `post`) -----------------------
    def post(self, item: Push) -> None:
        self._inbox.append(item)
        if not self._wake_sent:
            self._wake_sent = True
            with contextlib.suppress(OSError):
                self._wake_w.send(b"!")

    # -- the broker thread ---------------------------------------------------------------
    def _broker_thread(self) -> None:
        jobs, received, submit, post = self.jobs, self.received, self.pushes.submit, self.post
        order_id = 0
        while True:
            try:  # with a timeout, as the gateway's broker thread waits (its probe interval)
                job = jobs.get(timeout=PROBE_INTERVAL)
            except queue.Empty:
                continue
            if job is None:
                return
            envelope, cmd = job
            received[cmd.client_order_id] = time.time_ns()
            order_id += 1
            # the broker call: its response comes back on the push worker
            submit(post, (envelope, cmd.client_order_id, order_id))

    # -- the I/O thread ------------------------------------------------------------------
    def run(self) -> None:
        wake = self._wake_r.fileno()
        poll_items: list[tuple[Any, int]] = [(self.router, _POLLIN), (wake, _POLLIN)]
        zmq_poll = zmq.zmq_poll
        while not self.stopping:
            ready = dict(zmq_poll(poll_items, 1000))
            if wake in ready:
                self._wake_r.recv(65536)
            self._take_items()
            if self.router in ready:
                self._take_requests()
            self._flush()

    def _take_items(self) -> None:
        self._wake_sent = False  # before emptying the inbox, as the gateway
        inbox, encode = self._inbox, protocol.msgpack_encoder.encode
        while inbox:
            envelope, coid, order_id = inbox.popleft()
            ack = protocol.OrderAck(client_order_id=coid, order_id=order_id)
            self._replies.append([*envelope, encode(ack)])

    def _take_requests(self) -> None:
        sock, decode = self.router, protocol.command_msgpack_decoder.decode
        waiting, zmq_poll = [(sock, _POLLIN)], zmq.zmq_poll
        for _ in range(1000):
            try:
                frame = _recv(sock, _NOBLOCK, False)
            except zmq.Again:
                return
            frames = [frame.bytes]
            while frame.more:
                frame = _recv(sock, 0, False)
                frames.append(frame.bytes)
            try:
                cmd = decode(frames[-1])
            except msgspec.MsgspecError as err:
                self._refuse(frames[:-1], f"the floor could not read the request: {err}")
            else:
                if isinstance(cmd, protocol.PlaceOrder):
                    self._intents.append((frames[:-1], cmd))
                else:
                    what = type(cmd).__name__
                    self._refuse(frames[:-1], f"the floor takes orders only, not {what}")
            if not zmq_poll(waiting, 0):
                return

    def _refuse(self, envelope: Envelope, message: str) -> None:
        error = protocol.ErrorReply(code=protocol.BAD_REQUEST, message=message)
        self._replies.append([*envelope, protocol.msgpack_encoder.encode(error)])

    def _flush(self) -> None:
        # where the gateway hands the turn's intents to the broker thread (after the journal)
        for job in self._intents:
            self.jobs.put(job)
        self._intents.clear()
        router = self.router
        for frames in self._replies:
            for frame in frames[:-1]:
                _send(router, frame, _MORE)
            _send(router, frames[-1])
        self._replies.clear()

    # -- stopping ------------------------------------------------------------------------
    def stop(self) -> None:
        """Any thread: the I/O loop ends at its next turn."""
        self.stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"!")

    def close(self) -> None:
        self.jobs.put(None)
        self._broker.join(5)
        self.pushes.shutdown(wait=True)
        self.router.close(0)
        self.ctx.term()
        self._wake_r.close()
        self._wake_w.close()


def _say(**message: Any) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _commands(floor: Floor) -> None:
    """stdin, on its own thread (the I/O loop polls only what the gateway's polls)."""
    for line in sys.stdin:
        if line.strip() and json.loads(line).get("received"):
            _say(received=dict(floor.received))
    floor.stop()


def serve(address: str = "tcp://127.0.0.1:*") -> None:
    floor = Floor(address)
    threading.Thread(target=_commands, args=(floor,), name="floor-stdin", daemon=True).start()
    _say(ready=True, address=floor.address)
    try:
        floor.run()
    finally:
        floor.close()


# -- the client side (bench/roundtrip.py) -----------------------------------------------


@dataclass
class Measured:
    round_trip_ns: list[int] = field(default_factory=list)
    intake_ns: list[int] = field(default_factory=list)  # client send → broker thread, wall
    sizes: tuple[int, int] = (0, 0)  # request, reply bytes
    cpu_us: float = float("nan")  # the floor process's CPU per order, every thread
    switches: float = float("nan")  # its context switches per order, every thread


def measure(order: Callable[[], protocol.PlaceOrder], warmup: int, orders: int) -> Measured:
    """Round trips through a fresh floor process from a bare REQ socket (as the echo's),
    timed as the echo's, and each measured order's intake timed as the bare hop's: wall
    clock before encoding, wall clock where the broker thread had it."""
    from bench.common import Cost, Peer, cost, cost_per_order  # the peer needs none of them

    out = Measured()
    with Peer("tcp://127.0.0.1:*", module="bench.floor") as peer:
        ctx: zmq.Context[Any] = zmq.Context.instance()
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(peer.info["address"])
        encode, decode = protocol.msgpack_encoder.encode, protocol.decode_reply
        sent: list[tuple[str, int]] = []
        request = reply = b""
        before: Cost | None = None
        try:
            for i in range(warmup + orders):
                if i == warmup:
                    before = cost(peer.pid)
                cmd = order()
                wall = time.time_ns()
                t = time.perf_counter_ns()
                request = encode(cmd)
                sock.send(request)
                reply = sock.recv()
                ack = decode(reply)
                elapsed = time.perf_counter_ns() - t
                if not (
                    isinstance(ack, protocol.OrderAck)
                    and ack.client_order_id == cmd.client_order_id
                ):
                    raise RuntimeError(f"the floor answered {ack!r} to {cmd.client_order_id}")
                if i >= warmup:
                    out.round_trip_ns.append(elapsed)
                    sent.append((cmd.client_order_id, wall))
        finally:
            sock.close(0)
        out.cpu_us, out.switches = cost_per_order(before, cost(peer.pid), orders)
        received: dict[str, int] = peer.ask(received=True)["received"]
    out.intake_ns = [received[coid] - wall for coid, wall in sent]
    out.sizes = (len(request), len(reply))
    return out


if __name__ == "__main__":
    serve(*sys.argv[1:2])
