"""Helpers for the recorder tests: a real recorder process, streams of `note` events, checks."""

from __future__ import annotations

import threading
from typing import Any

import msgspec
import zmq

from qmtbus import RecorderClient, protocol
from tests.support import Proc, Stack, wait_for

STARTED: list[Proc] = []  # every recorder a test started; conftest kills leftovers


def start_recorder(stack: Stack, timeout: float = 20.0) -> Proc:
    """A real `python -m qmtbus.recorder`, started and answering on its query endpoint."""
    proc = Proc("recorder", stack).start()
    STARTED.append(proc)
    wait_endpoint(stack, proc, timeout)
    return proc


def wait_endpoint(stack: Stack, proc: Proc, timeout: float = 20.0) -> protocol.RecorderStatus:
    with RecorderClient(stack.query_address, timeout=0.5, retries=0) as client:

        def up() -> protocol.RecorderStatus | None:
            if not proc.alive():
                raise AssertionError(f"recorder exited early:\n{proc.log()}")
            try:
                return client.status()
            except TimeoutError:
                return None

        status: protocol.RecorderStatus = wait_for(up, timeout, "recorder endpoint")
        return status


def sql(stack: Stack, query: str, limit: int = 10_000, timeout: float = 10.0) -> list[list[Any]]:
    with RecorderClient(stack.query_address, timeout=timeout, retries=0) as client:
        return client.sql(query, limit=limit).rows


def status(stack: Stack) -> protocol.RecorderStatus:
    with RecorderClient(stack.query_address, timeout=5.0, retries=0) as client:
        return client.status()


def gateway_last_seq(stack: Stack) -> tuple[str, int]:
    reply = stack.call(protocol.GetStatus())
    return reply.epoch, reply.last_seq


def wait_recorded(stack: Stack, epoch: str, seq: int, timeout: float = 30.0) -> None:
    """Until the recorder has committed `epoch` up to `seq` (seen through its endpoint)."""

    def done() -> bool:
        try:
            rows = sql(stack, f"SELECT max(seq) FROM events WHERE epoch = '{epoch}'", timeout=2)
        except TimeoutError:
            return False
        return (rows[0][0] or 0) >= seq

    wait_for(done, timeout, f"recorder to commit {epoch}/{seq}")


def wait_caught_up(stack: Stack, timeout: float = 30.0) -> tuple[str, int]:
    """Until the recorder holds everything the gateway had published when this was called."""
    epoch, last = gateway_last_seq(stack)
    wait_recorded(stack, epoch, last, timeout)
    return epoch, last


def assert_epoch_complete(stack: Stack, epoch: str) -> int:
    """Every seq of `epoch` from 1 to its max is stored exactly once; returns the max."""
    # One statement, so the rows and the progress are read from the same commit.
    count, distinct, low, high, progress = sql(
        stack,
        "SELECT count(*), count(DISTINCT seq), min(seq), max(seq), "
        f"(SELECT last_seq FROM progress WHERE epoch = '{epoch}') FROM events "
        f"WHERE epoch = '{epoch}'",
    )[0]
    assert (count, distinct, low) == (high, high, 1), (
        f"epoch {epoch}: {count} rows, {distinct} distinct seqs, seqs {low}..{high}"
    )
    assert progress == high
    return int(high)


class NoteSender:
    """Publishes `note` events through the gateway's command socket with several requests
    in flight (a DEALER), on a thread: thousands of events a second. Each note carries
    `{"run": run, "i": i}`; `acked` counts the gateway's answers."""

    def __init__(self, stack: Stack, total: int, run: str = "r", window: int = 32) -> None:
        self.stack = stack
        self.total = total
        self.run = run
        self.window = window
        self.acked = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._send, daemon=True)

    def start(self) -> NoteSender:
        self.thread.start()
        return self

    def join(self, timeout: float = 60.0) -> int:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "note sender did not finish"
        return self.acked

    def _send(self) -> None:
        sock: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.stack.commands_address)
        sent = 0
        try:
            while self.acked < self.total and not self.stop.is_set():
                while sent < self.total and sent - self.acked < self.window:
                    note = protocol.PublishNote(topic="test", data={"run": self.run, "i": sent})
                    sock.send_multipart([b"", msgspec.msgpack.encode(note)])
                    sent += 1
                if not sock.poll(2000):
                    return  # the gateway went away: the caller decides what that means
                reply = protocol.decode_reply(sock.recv_multipart()[-1])
                assert isinstance(reply, protocol.NoteAck), reply
                self.acked += 1
        finally:
            sock.close(0)


def send_notes(stack: Stack, total: int, run: str = "r") -> int:
    return NoteSender(stack, total, run).start().join()
