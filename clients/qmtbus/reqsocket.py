"""A client's REQ socket to a gateway or recorder: its set-up, and what its monitor tells.

The socket connects without ZMQ_IMMEDIATE. With IMMEDIATE, libzmq drops a connection's
pipe the moment the peer disconnects, and with it a reply that has arrived but that the
application has not read yet: a gateway that answers an order during its graceful stop
and exits a few milliseconds later would lose that answer. Without it the pipe outlives
the connection, so a delivered reply is kept, and a request sent while no connection is
up waits in the socket and goes out (to a restarted gateway too) once one is.

"Never sent" stays known for sure through the socket's monitor: a request may have left
only if a connection with a finished handshake was up when it was sent, or a handshake
succeeded between the send and the moment the socket was closed (linger 0: a request
still queued in a closed socket is dropped). Otherwise it provably never left, and any
command may be tried again. The same events tell why a connection failed ("auth",
"protocol", "no_handshake"): a refused handshake is silent in ZeroMQ.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
import time
from typing import Any, cast

import zmq

from qmtbus.keys import secure_client
from qmtbus.sansio import Endpoint

MONITOR_EVENTS = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_MONITOR_STOPPED  # sent when the closed socket is gone: nothing can leave after
)
_EVENTS, _POLLIN = zmq.EVENTS, zmq.POLLIN
_HANDSHAKE_FAILED = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL

# How long a closed socket's end is awaited (normally well under a millisecond) when it
# decides whether its request left; past it, the request is counted as sent.
SETTLE_MS = 5000

_monitor_ids = itertools.count()

# monitors of closed sockets that did not stop within SETTLE_MS, kept open (see Link.close)
_unsettled: list[zmq.Socket[Any]] = []


def prepare_socket(
    sock: zmq.Socket[Any], endpoint: Endpoint, monitor_context: zmq.Context[Any]
) -> Link:
    """Set a fresh REQ socket's options, connect it, and return its Link (its monitor)."""
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, endpoint.timeout_ms)
    # a handshake the server silently ignores is given up and retried, not kept 30 s
    sock.setsockopt(zmq.HANDSHAKE_IVL, max(200, endpoint.timeout_ms))
    secure_client(sock, endpoint.curve)
    address = f"inproc://qmtbus-monitor-{os.getpid()}-{next(_monitor_ids)}"
    sock.monitor(address, MONITOR_EVENTS)
    monitor = monitor_context.socket(zmq.PAIR)
    monitor.setsockopt(zmq.LINGER, 0)
    # No limit on the events waiting: they are read only when a request is sent, and an
    # idle socket retrying a gateway that refuses it makes a few a try; with a limit,
    # libzmq blocks the context's I/O thread once it is reached, and every socket with it.
    monitor.setsockopt(zmq.RCVHWM, 0)
    monitor.connect(address)
    sock.connect(endpoint.address)
    return Link(monitor)


class Link:
    """What one REQ socket's monitor has told so far: whether a connection with a finished
    handshake is up, how many handshakes succeeded, why the newest attempt failed, and
    what was so when the request in flight was sent."""

    __slots__ = ("handshakes", "mark", "monitor", "sent", "stopped", "up", "up_at_send", "why")

    def __init__(self, monitor: zmq.Socket[Any]) -> None:
        self.monitor = monitor
        self.up = False
        self.handshakes = 0
        # "auth" (key refused), "protocol" (handshake failed), "no_handshake" (connected,
        # no handshake yet) or ""
        self.why = ""
        self.stopped = False
        self.sent = False  # a request is in the socket, unanswered
        self.up_at_send = False
        self.mark = 0  # handshakes when it was sent

    def look(self) -> None:
        """Take in what the monitor told since the last look, without waiting (one poll
        of its mailbox when nothing happened)."""
        if cast(int, self.monitor.get(_EVENTS)) & _POLLIN:
            self._read()

    def sending(self) -> None:
        """Just before a request goes into the socket: what is so now decides whether it
        may leave. A handshake from now on counts as after the send."""
        self.look()
        self.sent = True
        self.up_at_send = self.up
        self.mark = self.handshakes

    def answered(self) -> None:
        self.sent = False

    def left(self) -> bool:
        """Whether the request sent may have reached the peer (known for sure once stopped)."""
        return self.sent and (self._connected_since_send() or not self.stopped)

    def _connected_since_send(self) -> bool:
        return self.up_at_send or self.handshakes > self.mark

    def close(self, sock: zmq.Socket[Any]) -> tuple[str, bool]:
        """Close `sock` (linger 0: a request still queued in it is dropped) and its monitor:
        (the diagnosis, whether an unanswered request may have left).

        When it is not yet known whether the request left, the monitor is read up to the
        socket's end (EVENT_MONITOR_STOPPED, sent once its connection is gone): a handshake
        that succeeded before then may have carried the request out. The reader is closed
        only after that event: libzmq's monitor can block the context's reaper thread when it
        stops into a reader that is gone."""
        with contextlib.suppress(zmq.ZMQError):
            self._read()
        if not self.sent or self._connected_since_send():
            with contextlib.suppress(zmq.ZMQError):
                sock.disable_monitor()  # stops it now: the reader may go
            sock.close(0)
            with contextlib.suppress(zmq.ZMQError):
                self._read()
            self.monitor.close(0)
            return self.why, self.sent
        sock.close(0)
        deadline = time.monotonic() + SETTLE_MS / 1000
        with contextlib.suppress(zmq.ZMQError):
            while not self.stopped:
                wait = int((deadline - time.monotonic()) * 1000)
                if wait <= 0 or not self.monitor.poll(wait):
                    break
                self._read()
        if self.stopped:
            self.monitor.close(0)
        else:  # the reaper is late or stuck: keep the reader (see above), count it as sent
            _unsettled.append(self.monitor)
        return self.why, self.left()

    def _read(self) -> None:
        while True:
            try:
                frames = self.monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._heard(struct.unpack("=H", frames[0][:2])[0])

    def _heard(self, event: int) -> None:
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.up = True
            self.handshakes += 1
            self.why = ""
        elif event == zmq.EVENT_CONNECTED:
            self.why = "no_handshake"
        elif event == zmq.EVENT_DISCONNECTED:
            self.up = False
            if self.why == "no_handshake":
                self.why = ""
        elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            self.why = "auth"
        elif event & _HANDSHAKE_FAILED:
            self.why = "protocol"
        elif event == zmq.EVENT_MONITOR_STOPPED:
            self.stopped = True
