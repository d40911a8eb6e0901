"""OrderDesk and Book alone, on in-memory fakes of their ports: outcomes are events, not guesses."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import msgspec
import pytest

from qmtbus import protocol as p
from qmtbus.clock import SHANGHAI
from qmtbus.gateway.book import Book
from qmtbus.gateway.handoff import Job, SendCancel, SendOrder, Snapshot
from qmtbus.gateway.orders import OrderDesk
from qmtbus.gateway.store import Ledger, Outcome

DAY = "2026-12-07"
ENVELOPE = [b"client-1", b""]


class FakeBus:
    """The I/O loop's side of OrderDesk: a journal that is a list, replies and jobs kept."""

    def __init__(self, book: Book) -> None:
        self.book = book
        self.journal: list[p.Event] = []
        self.replies: list[Any] = []
        self.jobs: list[Job] = []
        self.refuse: p.ErrorReply | None = None

    def emit(self, event: p.Event) -> int:
        event = msgspec.structs.replace(event, seq=len(self.journal) + 1, ts=p.now_ns())
        self.journal.append(event)
        self.book.apply(event)
        return event.seq

    def reply(self, envelope: list[bytes], json: bool, message: Any) -> None:
        self.replies.append(message)

    def submit(self, job: Job) -> None:
        self.jobs.append(job)

    def submit_after_journal(self, job: SendOrder) -> None:
        self.jobs.append(job)

    def refusal(self, what: str) -> p.ErrorReply | None:
        return self.refuse

    def outcomes(self, client_order_id: str) -> list[str]:
        return [
            e.status
            for e in self.journal
            if isinstance(e, p.ClientOrderEvent) and e.client_order_id == client_order_id
        ]


class FakeRisk:
    def check(self, order: p.PlaceOrder, book: Any) -> None:
        return None

    def __init__(self) -> None:
        self.counted: list[tuple[str, float]] = []

    def record(self, order: p.PlaceOrder, book: Any = None) -> float:
        self.counted.append((order.strategy_name, order.price * order.order_volume))
        return order.price * order.order_volume

    def restore(self, day: str, orders: list[tuple[str, float]]) -> None:
        self.counted += orders


class FakeClock:
    """Epoch seconds the test sets: the desk's clock port."""

    def __init__(self, when: dt.datetime = dt.datetime(2026, 12, 7, 10, 0, tzinfo=SHANGHAI)):
        self.t = when.timestamp()

    def __call__(self) -> float:
        return self.t

    def set(self, hh: int, mm: int, ss: int = 0) -> None:
        self.t = dt.datetime(2026, 12, 7, hh, mm, ss, tzinfo=SHANGHAI).timestamp()


def desk(
    journal: list[p.Event] | None = None, clock: FakeClock | None = None
) -> tuple[OrderDesk, FakeBus]:
    """A desk whose ledger is rebuilt from `journal` (a previous process's events); with a
    clock, it keeps the exchange's no-cancel windows."""
    book = Book(lambda: DAY, lambda code: None)
    for event in journal or []:
        book.apply(event)
    bus = FakeBus(book)
    d = OrderDesk(
        bus,
        book,
        FakeRisk(),
        reply_timeout=1.0,
        max_in_flight=10,
        cancel_windows=clock is not None,
        clock=clock or FakeClock(),
    )
    return d, bus


def place(d: OrderDesk, coid: str) -> None:
    cmd = p.PlaceOrder(
        client_order_id=coid, stock_code="600000.SH", order_type=23, order_volume=100, price=10.0
    )
    d.place(ENVELOPE, False, cmd)


def response(coid: str, order_id: int) -> p.OrderResponseEvent:
    return p.OrderResponseEvent(order_id=order_id, order_remark=coid)


def broker_order(coid: str, order_id: int, status: int = 50) -> p.Order:
    return p.Order(
        stock_code="600000.SH",
        order_id=order_id,
        order_type=23,
        order_volume=100,
        price=10.0,
        order_status=status,
        order_remark=coid,
    )


def test_given_an_order_then_its_intent_is_emitted_before_it_is_handed_to_the_broker() -> None:
    d, bus = desk()
    place(d, "c-1")
    assert bus.outcomes("c-1") == ["sending"]
    assert [type(j) for j in bus.jobs] == [SendOrder] and not bus.replies
    d.on_broker_event(response("c-1", 7))
    assert bus.outcomes("c-1") == ["sending", "accepted"]
    assert bus.replies[-1].status == "accepted" and bus.replies[-1].order_id == 7


def test_given_a_dead_process_journal_then_the_rebuilt_ledger_answers_duplicate() -> None:
    first, bus = desk()
    place(first, "c-1")
    first.on_broker_event(response("c-1", 7))
    first.on_broker_event(p.TradeEvent(stock_code="600000.SH", traded_id="T1", order_id=7))
    again, bus2 = desk(bus.journal)
    place(again, "c-1")
    assert bus2.replies[-1].duplicate and bus2.replies[-1].status == "accepted"
    assert bus2.jobs == []
    again.on_broker_event(p.TradeEvent(stock_code="600000.SH", traded_id="T1", order_id=7))
    assert not [e for e in bus2.journal if isinstance(e, p.TradeEvent)], "a fill published twice"


def test_given_an_intent_without_answer_after_restart_then_unknown_and_never_guessed() -> None:
    first, bus = desk()
    place(first, "c-1")  # the process dies here: intent journaled, no answer
    again, bus2 = desk(bus.journal)
    again.mark_unknown()
    assert bus2.outcomes("c-1") == ["unknown"]
    again.resolve_from([], [])  # the broker shows nothing: still unknown, looked up again
    assert bus2.outcomes("c-1") == ["unknown"] and again.unresolved()
    place(again, "c-1")
    assert bus2.replies[-1].status == "pending" and "unknown" in bus2.replies[-1].error_msg
    again.resolve_from([broker_order("c-1", 9)], [])
    assert bus2.outcomes("c-1") == ["unknown", "accepted"] and not again.unresolved()


def test_given_a_fill_for_an_unknown_order_then_the_fill_resolves_it_as_accepted() -> None:
    first, bus = desk()
    place(first, "c-1")
    again, bus2 = desk(bus.journal)
    again.mark_unknown()
    trade = p.Trade(stock_code="600000.SH", traded_id="T1", order_id=9, order_remark="c-1")
    again.resolve_from([], [trade])
    assert bus2.outcomes("c-1") == ["unknown", "accepted"]


def test_given_refused_before_the_broker_call_then_not_placed() -> None:
    d, bus = desk()
    place(d, "c-1")
    d.on_failed("c-1", "the gateway is not connected to the broker", called=False)
    assert bus.outcomes("c-1") == ["sending", "not_placed"]
    ack = bus.replies[-1]
    assert ack.status == "rejected" and ack.error_msg.startswith("not placed")


def test_given_an_illegal_transition_then_logged_error_and_state_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    d, bus = desk()
    place(d, "c-1")
    d.on_failed("c-1", "not connected", called=False)
    with caplog.at_level(logging.ERROR, "gateway.orders"):
        d.resolve_from([broker_order("c-1", 9)], [])  # the broker contradicts "not placed"
    assert d.book.client_orders["c-1"].state == Outcome.NOT_PLACED
    assert bus.outcomes("c-1") == ["sending", "not_placed"]
    assert "not a legal transition" in caplog.text


def test_given_broker_orders_the_journal_lacks_then_taken_in_and_a_resend_places_nothing() -> None:
    d, bus = desk()  # the gateway's data folder was deleted: empty journal
    d.resolve_from([broker_order("c-1", 9), broker_order("manual order", 10)], [])
    assert bus.outcomes("c-1") == ["accepted"]
    assert bus.outcomes("manual order") == []  # not a remark the gateway writes
    assert d.risk.counted == [("", 1000.0)]  # the daily caps count it, as a restart would
    place(d, "c-1")
    assert bus.replies[-1].duplicate and bus.replies[-1].order_id == 9
    assert not [j for j in bus.jobs if isinstance(j, SendOrder)]


def test_given_one_traded_id_on_two_markets_then_both_fills_are_published_once() -> None:
    d, bus = desk()
    for code in ("600000.SH", "000001.SZ", "600000.SH"):
        d.on_broker_event(p.TradeEvent(stock_code=code, traded_id="T1", order_id=1))
    assert [e.stock_code for e in bus.journal if isinstance(e, p.TradeEvent)] == [
        "600000.SH",
        "000001.SZ",
    ]


def test_given_reconcile_after_pushes_then_nothing_already_published_goes_again() -> None:
    d, bus = desk()
    place(d, "c-1")
    d.on_broker_event(response("c-1", 7))
    d.on_broker_event(p.OrderEvent(order_id=7, order_status=56, traded_volume=100))
    d.on_broker_event(p.TradeEvent(stock_code="600000.SH", traded_id="T1", order_id=7))
    published = len(bus.journal)
    snap = Snapshot(
        orders=[broker_order("c-1", 7, 56)],
        trades=[p.Trade(stock_code="600000.SH", traded_id="T1", order_id=7, order_remark="c-1")],
    )
    d.resolve_from(snap.orders or [], snap.trades or [])
    for event in d.book.reconcile(snap):
        bus.emit(event)
    # the snapshot's order has traded_volume 0 < 100 published: not a step forward
    assert len(bus.journal) == published


def test_given_a_cancel_when_disk_full_then_it_still_goes() -> None:
    d, bus = desk()
    place(d, "c-1")
    d.on_broker_event(response("c-1", 7))
    bus.refuse = p.ErrorReply(code=p.DISK_FULL, message="disk full")
    d.cancel(ENVELOPE, False, p.CancelOrder(client_order_id="c-1"))
    assert isinstance(bus.jobs[-1], SendCancel)
    place(d, "c-2")
    assert bus.replies[-1].code == p.DISK_FULL and bus.outcomes("c-2") == []


def test_given_events_applied_again_to_a_new_ledger_then_the_same_state() -> None:
    d, bus = desk()
    for i in range(3):
        place(d, f"c-{i}")
        d.on_broker_event(response(f"c-{i}", 10 + i))
        d.on_broker_event(p.TradeEvent(stock_code="600000.SH", traded_id=f"T{i}", order_id=10 + i))
    fresh = Ledger(DAY)
    for event in bus.journal:
        fresh.apply(event)
    live = d.book.ledger
    assert fresh.client_orders == live.client_orders
    assert fresh.fills == live.fills and fresh.known_orders == live.known_orders


def test_given_the_closing_call_auction_then_a_cancel_is_refused_naming_it_and_not_sent() -> None:
    clock = FakeClock()
    d, bus = desk(clock=clock)
    place(d, "c-1")
    d.on_broker_event(response("c-1", 7))
    jobs = len(bus.jobs)
    for hh, mm, ss, window in (
        (14, 57, 0, "14:57 and 15:00"),
        (14, 59, 59, "14:57 and 15:00"),
        (9, 20, 0, "09:20 and 09:25"),
        (9, 24, 59, "09:20 and 09:25"),
    ):
        clock.set(hh, mm, ss)
        d.cancel(ENVELOPE, False, p.CancelOrder(client_order_id="c-1"))
        assert bus.replies[-1].code == p.RISK_DENIED
        assert f"no cancels between {window}" in bus.replies[-1].message
        assert len(bus.jobs) == jobs, f"a cancel was sent at {hh}:{mm}:{ss}"
    for hh, mm, ss in ((9, 25, 0), (14, 56, 59), (15, 0, 0)):
        clock.set(hh, mm, ss)
        d.cancel(ENVELOPE, False, p.CancelOrder(order_id=7))
        assert bus.jobs[-1] == SendCancel(7) and len(bus.jobs) == jobs + 1
        jobs += 1


def test_given_no_cancel_windows_then_a_cancel_at_1458_is_sent() -> None:
    d, bus = desk()
    d.clock = FakeClock(dt.datetime(2026, 12, 7, 14, 58, tzinfo=SHANGHAI))
    place(d, "c-1")
    d.on_broker_event(response("c-1", 7))
    d.cancel(ENVELOPE, False, p.CancelOrder(client_order_id="c-1"))
    assert isinstance(bus.jobs[-1], SendCancel)


def order_event(order_id: int, status: int, traded: int = 0) -> p.OrderEvent:
    return p.OrderEvent(
        stock_code="600000.SH",
        order_id=order_id,
        order_type=23,
        order_volume=100,
        price=10.0,
        order_status=status,
        traded_volume=traded,
        order_remark="c-1",
    )


def test_given_48_49_50_then_each_is_published_in_order_and_a_late_49_is_not() -> None:
    d, bus = desk()
    published = []
    for status in (48, 49, 50, 49, 48, 50):
        ev = d.book.accept_order(order_event(7, status))
        if ev is not None:
            bus.emit(ev)
            published.append(status)
    assert published == [48, 49, 50]
    assert d.book.accept_order(order_event(7, 49)) is None
    assert d.book.accept_order(order_event(7, 55, traded=100)) is not None


def test_given_a_new_session_reusing_a_seq_then_a_response_without_remark_is_not_misread() -> None:
    # Session 1 sends c-1 as its call 1 and goes before the answer; session 2 numbers its
    # calls from 1 again. Its answer to c-2, without a remark, comes before its seq does.
    d, bus = desk()
    place(d, "c-1")
    d.on_sent("c-1", 1)
    d.on_new_session()
    place(d, "c-2")
    d.on_broker_event(p.OrderResponseEvent(order_id=8, async_seq=1))
    assert bus.outcomes("c-1") == ["sending"], "an old session's seq named a new order"
    d.on_sent("c-2", 1)
    d.on_broker_event(p.OrderResponseEvent(order_id=8, async_seq=1))
    assert bus.outcomes("c-2") == ["sending", "accepted"]


def test_given_a_response_that_came_before_its_seq_then_no_seq_is_kept() -> None:
    d, _ = desk()
    place(d, "c-1")
    d.on_broker_event(response("c-1", 7))  # answered by its remark first
    d.on_sent("c-1", 1)
    assert d.by_async_seq == {}
    place(d, "c-2")
    d.on_sent("c-2", 2)
    answer = p.OrderResponseEvent(order_id=9, order_remark="c-2", async_seq=2)
    d.on_broker_event(answer)  # answered with its remark: its seq goes too
    assert d.by_async_seq == {}
