"""The Inbox that hands jobs to the broker thread and pushes to the simulated native thread:
first in, first out, no item left unwoken, and a timeout as queue.Queue has; with either
wake-up (an eventfd on Linux, a lock held down as a flag elsewhere)."""

from __future__ import annotations

import queue
import threading

import pytest

from qmtbus.gateway.inbox import EVENTFD, Inbox
from tests.support import wait_for

WAKE_UPS = [pytest.param(False, id="lock")] + (
    [pytest.param(True, id="eventfd")] if EVENTFD else []
)


@pytest.fixture(params=WAKE_UPS)
def eventfd(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def test_given_items_put_then_they_come_out_in_the_order_they_went_in(eventfd: bool) -> None:
    inbox: Inbox[int] = Inbox(eventfd)
    for n in range(5):
        inbox.put(n)
    assert [inbox.get(0) for _ in range(5)] == [0, 1, 2, 3, 4]
    assert len(inbox) == 0


def test_given_a_sleeping_consumer_and_items_put_at_once_then_it_wakes_and_takes_them_in_order(
    eventfd: bool,
) -> None:
    inbox: Inbox[int] = Inbox(eventfd)
    got: list[int] = []
    consumer = threading.Thread(target=lambda: got.extend(inbox.get(5) for _ in range(4)))
    consumer.start()
    wait_for(lambda: inbox._asleep, 5, "the consumer asleep")
    inbox.put_many([1, 2, 3])
    inbox.put(4)
    consumer.join(5)
    assert got == [1, 2, 3, 4] and len(inbox) == 0


def test_given_an_empty_inbox_then_get_with_a_timeout_raises_empty(eventfd: bool) -> None:
    inbox: Inbox[int] = Inbox(eventfd)
    with pytest.raises(queue.Empty):
        inbox.get(0)
    with pytest.raises(queue.Empty):
        inbox.get(0.01)


def test_given_a_stale_wake_up_then_get_still_waits_for_a_real_item(eventfd: bool) -> None:
    inbox: Inbox[int] = Inbox(eventfd)
    inbox.put(1)
    inbox.put(2)  # the flag is raised once for both
    assert inbox.get() == 1 and inbox.get() == 2
    with pytest.raises(queue.Empty):
        inbox.get(0.01)


def test_given_producers_on_other_threads_then_the_consumer_gets_each_ones_items_in_order(
    eventfd: bool,
) -> None:
    inbox: Inbox[tuple[int, int] | None] = Inbox(eventfd)
    producers, each = 4, 5_000
    got: list[tuple[int, int]] = []
    done = threading.Event()

    def consume() -> None:
        finished = 0
        while finished < producers:
            item = inbox.get(10)
            if item is None:
                finished += 1
            else:
                got.append(item)
        done.set()

    def produce(who: int) -> None:
        for n in range(each):
            inbox.put((who, n))
        inbox.put(None)

    consumer = threading.Thread(target=consume)
    consumer.start()
    threads = [threading.Thread(target=produce, args=(who,)) for who in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert done.wait(30)
    consumer.join()
    assert len(got) == producers * each
    for who in range(producers):
        assert [n for w, n in got if w == who] == list(range(each))


def test_given_a_consumer_asleep_then_one_put_wakes_it(eventfd: bool) -> None:
    inbox: Inbox[str] = Inbox(eventfd)
    got: list[str] = []
    consumer = threading.Thread(target=lambda: got.append(inbox.get()))
    consumer.start()
    wait_for(lambda: inbox._asleep, timeout=10)  # it said it sleeps: the put must wake it
    inbox.put("order")
    consumer.join(10)
    assert got == ["order"]
