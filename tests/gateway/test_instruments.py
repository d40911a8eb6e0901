"""InstrumentCache: what the risk gate reads per order, answered from today's cache."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from qmtbus.gateway.broker import Instrument
from qmtbus.gateway.broker.instruments import InstrumentCache

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
