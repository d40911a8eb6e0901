"""Notes on the bus for every run and alert, sent in order by one thread, retried while the
gateway is away."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from qmtbus import Gateway, GatewayError, GatewayUnreachable

log = logging.getLogger("scheduler.report")

# Notes waiting for an unreachable gateway; past this the oldest are dropped (and logged),
# so that a gateway down all day cannot eat the scheduler's memory.
MAX_PENDING = 10_000
RETRY_SECONDS = 2.0


class Reporter:
    """Queues notes and publishes them through a client of its own.

    Jobs never wait on the bus: a run's note is queued and its job thread moves
    on. The queue lives in memory; the state file, not the bus, is what keeps
    runs at most once, so a note lost to a kill -9 loses a record, never safety.
    """

    def __init__(self, connect: Callable[[], Gateway]) -> None:
        self._connect = connect
        self._client: Gateway | None = None
        self._pending: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="scheduler-report", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def note(self, topic: str, data: dict[str, Any]) -> None:
        with self._cond:
            if len(self._pending) >= MAX_PENDING:
                dropped_topic, _ = self._pending.popleft()
                log.error("gateway unreachable: dropped an unsent %s note", dropped_topic)
            self._pending.append((topic, data))
            self._cond.notify()

    def close(self, timeout: float) -> bool:
        """Send what is queued for at most `timeout` seconds; True if all went out."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closing = True
            self._cond.notify()
            while self._pending and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            left = len(self._pending)
        if left:
            log.error("stopping with %d notes not sent (gateway unreachable)", left)
        return left == 0

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                topic, data = self._pending[0]
            if self._send(topic, data):
                with self._cond:
                    self._pending.popleft()
                    self._cond.notify_all()
            else:
                time.sleep(RETRY_SECONDS)

    def _send(self, topic: str, data: dict[str, Any]) -> bool:
        """True when the note is dealt with (published, or refused for good)."""
        try:
            if self._client is None:
                self._client = self._connect()
            self._client.note(topic, data)
            return True
        except GatewayUnreachable as err:
            # when the note may have reached the gateway (err.sent) a resend can publish
            # it twice; a duplicate is recognisable by its (job, scheduled_for, outcome), a
            # lost run record is not recoverable
            log.warning("could not publish the %s note (%s); retrying", topic, err)
            self._drop_client()
            return False
        except GatewayError as err:
            # the gateway answered and refused it (too large, bad topic): retrying
            # would repeat the same refusal forever
            log.error("gateway refused the %s note: %s", topic, err)
            return True
        except Exception as err:  # unreachable, or a client broken mid-request
            log.warning("could not publish the %s note (%s); retrying", topic, err)
            self._drop_client()
            return False

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:
                log.debug("closing a broken client failed", exc_info=True)
