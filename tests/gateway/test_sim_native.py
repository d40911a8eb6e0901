"""The simulated native client's delivery: in order, on the caller's thread when nothing is
queued ahead, through its own thread when a push is delayed."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from qmtbus.gateway.broker.sim.native import XtQuantAsyncClient


class Bound:
    """What xttrader binds: records (payload, thread) and signals each arrival."""

    def __init__(self) -> None:
        self.got: list[tuple[str, int]] = []
        self.cond = threading.Condition()

    def __call__(self, order: str) -> None:
        with self.cond:
            self.got.append((order, threading.get_ident()))
            self.cond.notify_all()

    def wait_for(self, n: int) -> list[tuple[str, int]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.got) >= n, timeout=10.0)
            return list(self.got)


@pytest.fixture
def client() -> Iterator[tuple[XtQuantAsyncClient, Bound]]:
    native = XtQuantAsyncClient(b"/nowhere", "xtquant", 7)
    bound = Bound()
    native.bindOnStockOrderCallback(bound)
    native.start()
    try:
        yield native, bound
    finally:
        native.stop()


def test_given_nothing_queued_then_a_push_is_handed_over_on_the_callers_thread(client):
    native, bound = client

    native.deliver("on_stock_order", "A", None)

    assert bound.wait_for(1) == [("A", threading.get_ident())]


def test_given_a_delayed_push_then_later_pushes_wait_behind_it_in_order(client):
    native, bound = client

    native.deliver("on_stock_order", "A", 0.05)  # e.g. the delay_callbacks fault
    native.deliver("on_stock_order", "B", None)
    native.deliver("on_stock_order", "C", 0.0)

    got = bound.wait_for(3)
    assert [order for order, _ in got] == ["A", "B", "C"]
    assert all(thread != threading.get_ident() for _, thread in got)  # the native thread's
    native.deliver("on_stock_order", "D", None)  # the queue is empty again: at once
    assert bound.wait_for(4)[-1] == ("D", threading.get_ident())


def test_given_pushes_from_two_threads_then_each_threads_pushes_keep_their_order(client):
    native, bound = client

    def push(name: str) -> None:
        for i in range(200):
            native.deliver("on_stock_order", f"{name}{i}", 0.001 if i % 50 == 0 else None)

    threads = [threading.Thread(target=push, args=(n,)) for n in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    got = [order for order, _ in bound.wait_for(400)]
    for name in ("x", "y"):
        mine = [int(o[1:]) for o in got if o[0] == name]
        assert mine == list(range(200))
