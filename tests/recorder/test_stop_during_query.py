"""A recorder stopped while a query runs (the dashboard asks every few seconds) exits
promptly: the query is interrupted, and its reply, with nobody left to take it, is dropped
instead of holding the process until supervisord's SIGKILL."""

from __future__ import annotations

from typing import Any

import msgspec
import zmq

from qmtbus import protocol
from tests.recorder.helpers import start_recorder
from tests.support import Proc, Stack, wait_for


def test_given_a_long_query_running_when_the_recorder_stops_then_it_exits_promptly(
    stack: Stack, gateway: Proc
) -> None:
    recorder = start_recorder(stack)
    sock: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(stack.query_address)
    try:
        slow = protocol.SqlQuery(sql="SELECT count(*) FROM range(100000000000)")
        sock.send_multipart([b"", msgspec.msgpack.encode(slow)])
        # running: a second question waits behind it only when both workers are busy, so ask
        # the status (answered on the endpoint thread) to know the request has arrived
        with_status = protocol.RecorderStatusQuery()
        sock.send_multipart([b"", msgspec.msgpack.encode(with_status)])
        wait_for(lambda: sock.poll(100), 10, "the recorder's status reply")
        assert recorder.stop(timeout=20) == 0
    finally:
        sock.close()
