"""InstrumentCache: what the risk gate reads per order, answered from today's cache."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from qmtbus.gateway.broker import Instrument
from qmtbus.gateway.broker.instruments import InstrumentCache
from tests.support import wait_for

CODE = "600000.SH"


class Broker:
    """A loader that counts its calls and gives today's limits; `day` is settable."""

    def __init__(self) -> None:
        self.day = "20261124"
        self.loads = 0
        self.loaded = threading.Event()

    def load(self, code: str) -> Instrument:
        self.loads += 1
        self.loaded.set()
        up = 11.0 if self.day == "20261124" else 12.1
        return Instrument(code, "x", 10.0, 10.0, up, 9.0, 0.01)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def cache() -> Iterator[tuple[InstrumentCache, Broker, Clock]]:
    broker, clock = Broker(), Clock()
    cache = InstrumentCache(broker.load, lambda: broker.day, clock=clock, fresh_for=1.0)
    try:
        yield cache, broker, clock
    finally:
        cache.close()


def test_given_a_loaded_code_then_each_order_reads_the_cache_not_the_broker(cache):
    cache, broker, _ = cache
    first = cache.get(CODE)
    for _ in range(100):
        assert cache.get(CODE) is first
    assert broker.loads == 1


def test_given_a_new_trading_day_then_yesterdays_limits_are_never_served(cache):
    cache, broker, _ = cache
    yesterday = cache.get(CODE)
    assert yesterday is not None and yesterday.up_stop_price == 11.0
    broker.day = "20261125"  # midnight passed; the entry is still "fresh" by the clock
    today = cache.get(CODE)
    assert today is not None and today.up_stop_price == 12.1
    assert broker.loads == 2


def test_given_an_entry_older_than_fresh_for_then_it_is_served_and_reloaded_behind(cache):
    cache, broker, clock = cache
    first = cache.get(CODE)
    broker.loaded.clear()
    clock.t += 1.5
    assert cache.get(CODE) is first  # no wait on the broker for a refresh
    assert broker.loaded.wait(5.0)  # the refresh ran on the cache's own thread


class SlowBroker(Broker):
    """A loader that takes as long as the test says: it finishes when `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def load(self, code: str) -> Instrument:
        self.loaded.set()  # started
        assert self.release.wait(30)
        return super().load(code)


def test_given_an_order_while_the_prefetch_loads_then_it_waits_for_that_load_not_refused() -> None:
    # the first orders after a restart come while the held codes are being prefetched
    broker, clock = SlowBroker(), Clock()
    cache = InstrumentCache(broker.load, lambda: broker.day, clock=clock, wait=30.0)
    try:
        cache.prefetch([CODE])
        assert broker.loaded.wait(10)  # the load is under way
        got: list[Instrument | None] = []
        asking = threading.Thread(target=lambda: got.append(cache.get(CODE)))
        asking.start()
        wait_for(lambda: CODE in cache._asked, 10, "the order waiting for the load")
        broker.release.set()
        asking.join(10)
        assert got and got[0] is not None and got[0].up_stop_price == 11.0
        assert broker.loads == 1  # the prefetch's load, not a second one
    finally:
        broker.release.set()
        cache.close()


def test_given_a_slow_load_then_orders_wait_within_one_window_from_the_first_ask() -> None:
    broker, clock = SlowBroker(), Clock()
    cache = InstrumentCache(broker.load, lambda: broker.day, clock=clock, wait=0.2)
    try:
        assert cache.get(CODE) is None  # waited its 0.2 s: the load is still under way
        assert "still loading" in cache.note(CODE)
        clock.t += 0.2  # the window is over: a later order does not wait again
        cache._wait = 30.0  # were it to wait a window of its own, it would wait 30 s
        started = time.monotonic()
        assert cache.get(CODE) is None
        assert time.monotonic() - started < 10.0
        assert "still loading" in cache.note(CODE)
        broker.release.set()
        wait_for(lambda: cache.get(CODE) is not None, 10, "the load done")
        assert broker.loads == 1
    finally:
        broker.release.set()
        cache.close()
