"""Reconnect backoff: seconds, doubling, capped, jittered, reset after a good connection."""

from __future__ import annotations

import random

from qmtbus.gateway.lifecycle import Backoff


def test_given_repeated_failures_then_delays_double_up_to_the_cap_with_jitter() -> None:
    backoff = Backoff(1.0, 30.0, random.Random(7))
    delays = [backoff.next_delay() for _ in range(10)]
    bases = [1, 2, 4, 8, 16, 30, 30, 30, 30, 30]
    for delay, base in zip(delays, bases, strict=True):
        assert base * 0.5 <= delay <= base  # jitter keeps gateways from reconnecting in step
    assert max(delays) <= 30.0
    assert len(set(delays)) == len(delays)


def test_given_a_good_connection_then_the_next_failure_starts_small_again() -> None:
    backoff = Backoff(1.0, 30.0, random.Random(1))
    for _ in range(6):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 1.0
