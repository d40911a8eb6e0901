"""Inbox: hands items to a thread of ONE consumer (the broker thread, the simulated native
thread), first in, first out, instead of queue.Queue.

queue.Queue takes its mutex and notifies a Condition on every put, and the consumer waits on
a lock made for each wait. Here a put is a deque append, plus one wake-up when the consumer
is asleep: the release of a lock held down as a flag (the default), or a write to an eventfd
(Linux; `eventfd=True`). Alone, the eventfd hands over fastest (its writer gives up the GIL,
so the woken thread runs at once); in the running gateway, where that means a GIL switch in
the middle of the I/O thread's turn, the lock flag measured better at p50 and in bursts
(bench/CHANGES.md), and it is what Windows, where the real xtquant runs, has anyway.

No item is left unwoken: the consumer says it is going to sleep, then looks at the deque once
more, then sleeps; a producer appends, then wakes it if it said so. A stale wake-up costs the
consumer one more look.
"""

from __future__ import annotations

import math
import os
import queue
import select
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")

EVENTFD = hasattr(os, "eventfd") and hasattr(select, "poll")


class Inbox(Generic[T]):
    __slots__ = ("__weakref__", "_asleep", "_fd", "_flag", "_items", "_poll")

    def __init__(self, eventfd: bool = False) -> None:
        self._items: deque[T] = deque()
        self._asleep = False
        self._fd = -1
        self._poll: select.poll | None = None
        self._flag: threading.Lock | None = None
        if eventfd and EVENTFD:
            self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            weakref.finalize(self, os.close, self._fd)
            self._poll = select.poll()
            self._poll.register(self._fd, select.POLLIN)
        else:
            self._flag = threading.Lock()
            self._flag.acquire()  # held down: no wake-up pending

    def put(self, item: T) -> None:
        """Any thread."""
        self._items.append(item)
        if self._asleep:
            self._wake()

    def put_many(self, items: Iterable[T]) -> None:
        """Any thread: several items, in order, with at most one wake-up."""
        self._items.extend(items)
        if self._asleep:
            self._wake()

    def _wake(self) -> None:
        self._asleep = False
        if self._flag is None:
            os.eventfd_write(self._fd, 1)
        else:
            try:  # noqa: SIM105 - contextlib.suppress costs a context manager a put
                self._flag.release()
            except RuntimeError:  # another producer woke it in between
                pass

    def get(self, timeout: float | None = None) -> T:
        """The consumer thread only: the oldest item; waits for one at most `timeout` seconds
        (None: for ever), then raises queue.Empty, as queue.Queue.get does."""
        if self._items or self.wait(timeout):
            return self._items.popleft()
        raise queue.Empty

    def wait(self, timeout: float | None = None) -> bool:
        """The consumer thread only: wait at most `timeout` seconds (None: for ever) until an
        item is there, without taking it; False when none came."""
        items = self._items
        if items:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._asleep = True
            if items:
                break
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            self._sleep(left)
        self._asleep = False
        return bool(items)

    def peek(self) -> T:
        """The consumer thread only: the oldest item, left in place (IndexError if none)."""
        return self._items[0]

    def take(self) -> T:
        """The consumer thread only: the oldest item (IndexError if none); no waiting."""
        return self._items.popleft()

    def _sleep(self, seconds: float | None) -> None:
        if self._poll is not None:
            ms = None if seconds is None else max(1, math.ceil(seconds * 1000))
            if self._poll.poll(ms):
                try:  # noqa: SIM105 - as above
                    os.eventfd_read(self._fd)  # take the wake-ups: the counter back to 0
                except BlockingIOError:
                    pass
        elif self._flag is not None:
            if seconds is None:
                self._flag.acquire()
            else:
                self._flag.acquire(timeout=seconds)

    def __len__(self) -> int:
        return len(self._items)
