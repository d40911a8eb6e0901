"""One hand-over to a waiting thread, measured alone: queue.Queue against the Inbox
(gateway/inbox.py) with either wake-up. A ping-pong between two threads; one way is half
the round trip. `python -m bench.handoff`."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from qmtbus.gateway.inbox import EVENTFD, Inbox


def _one_way(make: Callable[[], Any], n: int, timeout: float | None) -> tuple[float, float]:
    there, back = make(), make()

    def echo() -> None:
        while (item := there.get(timeout=timeout)) is not None:
            back.put(item)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    took = []
    for i in range(n):
        t = time.perf_counter_ns()
        there.put(i)
        back.get(timeout=timeout)
        took.append(time.perf_counter_ns() - t)
    there.put(None)
    thread.join()
    took.sort()
    return took[n // 2] / 2000, took[n * 99 // 100] / 2000


def _put(make: Callable[[], Any], n: int) -> float:
    box = make()
    t = time.perf_counter()
    for i in range(n):
        box.put(i)
    return (time.perf_counter() - t) / n * 1e6


def run(n: int = 5000, rounds: int = 3) -> dict[str, list[float]]:
    kinds: dict[str, Callable[[], Any]] = {
        "queue.Queue": queue.Queue,
        "Inbox (lock flag)": lambda: Inbox(eventfd=False),
    }
    if EVENTFD:
        kinds["Inbox (eventfd)"] = lambda: Inbox(eventfd=True)
    out: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, make in kinds.items():
            p50, p99 = _one_way(make, n, 5.0)  # the broker thread always waits with a timeout
            out.setdefault(f"{name} one way p50 us", []).append(p50)
            out.setdefault(f"{name} one way p99 us", []).append(p99)
            out.setdefault(f"{name} put, nobody asleep, us", []).append(_put(make, 100_000))
    return out


if __name__ == "__main__":
    for key, values in run().items():
        print(f"{key:42} " + "  ".join(f"{v:6.2f}" for v in values))
