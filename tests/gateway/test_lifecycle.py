"""Lifecycle alone, against in-memory fakes of its ports (broker, trader, window, post):
the connection state machine, deadlines on broker calls, fresh cash, a dying thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from qmtbus import protocol as p
from qmtbus.config import Config, GatewayConfig
from qmtbus.gateway.connection import Connection, State
from qmtbus.gateway.handoff import Item, Snapshot, StateChanged
from qmtbus.gateway.lifecycle import Lifecycle
from qmtbus.gateway.window import WindowState
from tests.support import wait_for


@dataclass
class Account:
    account_id: str = "SIM0001"
    account_type: int = 2


@dataclass
class Asset:
    account_id: str = "SIM0001"
    cash: float = 1000.0
    frozen_cash: float = 0.0
    market_value: float = 0.0
    total_asset: float = 1000.0


@dataclass
class FakeTrader:
    """An XtQuantTrader that answers at once, or never (`hang`)."""

    session: int
    broker: FakeBroker
    callback: Any = None
    timeout_ms: int = 0
    stopped: bool = False

    def register_callback(self, callback: Any) -> None:
        self.callback = callback

    def start(self) -> None:
        pass

    def set_timeout(self, ms: int) -> None:
        self.timeout_ms = ms

    def connect(self) -> int:
        return 0

    def subscribe(self, account: Any) -> int:
        return 0

    def _answer(self, value: Any) -> Any:
        if self.broker.hang.is_set():
            threading.Event().wait()  # a terminal that never answers
        return value

    def query_stock_asset(self, account: Any) -> Any:
        return self._answer(Asset(cash=self.broker.cash))

    def query_stock_orders(self, account: Any, cancelable_only: bool = False) -> Any:
        return self._answer([])

    def query_stock_trades(self, account: Any) -> Any:
        return self._answer([])

    def query_stock_positions(self, account: Any) -> Any:
        return self._answer([])

    def stop(self) -> None:
        self.stopped = True


@dataclass
class FakeBroker:
    fail_new_trader: bool = False
    cash: float = 1000.0
    hang: threading.Event = field(default_factory=threading.Event)
    traders: list[FakeTrader] = field(default_factory=list)

    def account(self) -> Account:
        return Account()

    def new_session_id(self) -> int:
        return 1000 + len(self.traders)

    def new_trader(self, session_id: int) -> FakeTrader:
        if self.fail_new_trader:
            raise RuntimeError("a bug in the broker adapter")
        trader = FakeTrader(session_id, self)
        self.traders.append(trader)
        return trader


class Posted:
    """The post port: every item the broker thread hands the I/O thread."""

    def __init__(self) -> None:
        self.items: list[Item] = []
        self._cond = threading.Condition()

    def __call__(self, item: Item) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait(self, predicate: Callable[[list[Item]], Any], timeout: float = 10.0) -> Any:
        result: Any = None

        def check() -> bool:
            nonlocal result
            result = predicate(self.items)
            return bool(result)

        with self._cond:
            assert self._cond.wait_for(check, timeout), self.states()
        return result

    def states(self) -> list[str]:
        return [i.state for i in list(self.items) if isinstance(i, StateChanged)]


@contextmanager
def running(broker: FakeBroker, **gateway: Any) -> Iterator[tuple[Lifecycle, Posted, list[str]]]:
    values = {"broker_timeout": 0.3, "probe_interval": 0.2, "reconnect_initial": 0.05}
    values.update(gateway)
    posted, deaths = Posted(), []
    lifecycle = Lifecycle(
        Config(gateway=GatewayConfig(**values)), broker, posted, lambda: deaths.append("died")
    )
    lifecycle.start()
    try:
        yield lifecycle, posted, deaths
    finally:
        lifecycle.stop(5.0)


def test_given_a_broker_that_answers_then_each_state_is_published_once_from_starting_to_ready() -> (
    None
):
    broker = FakeBroker()
    with running(broker) as (lifecycle, posted, _):
        posted.wait(lambda items: "ready" in posted.states())
        # probes keep running: they publish no state while nothing changes
        posted.wait(lambda items: sum(isinstance(i, Snapshot) for i in items) >= 3)
        assert posted.states() == ["starting", "connecting", "connected", "reconciling", "ready"]
        assert broker.traders[0].timeout_ms == 300  # set_timeout(broker_timeout)
        assert lifecycle.connection.illegal == 0


def test_given_a_closed_window_then_outside_window_is_published_once_not_every_check() -> None:
    class Shut:
        checks = 0

        def state(self) -> WindowState:
            Shut.checks += 1
            return WindowState(False, "Sunday: not a trading day", 0.01)

    posted, deaths = Posted(), []
    lifecycle = Lifecycle(Config(), FakeBroker(), posted, lambda: deaths.append("died"))
    lifecycle.window = Shut()  # type: ignore[assignment]
    lifecycle.start()
    try:
        wait_for(lambda: Shut.checks >= 20, 10, "twenty window checks")
    finally:
        lifecycle.stop(5.0)
    assert posted.states() == ["starting", "outside_window"]


def test_given_a_broker_that_stops_answering_then_the_gateway_leaves_ready_within_the_bound() -> (
    None
):
    broker = FakeBroker()
    with running(broker) as (_, posted, deaths):
        posted.wait(lambda _: "ready" in posted.states())
        broker.hang.set()
        left = posted.wait(
            lambda items: next(
                (i for i in items if isinstance(i, StateChanged) and i.state == "disconnected"),
                None,
            ),
            timeout=0.2 + 0.3 + 1.0 + 2.0,  # probe_interval + broker_timeout + margin + slack
        )
        assert "no answer from the broker" in left.reason
        assert broker.traders[0].stopped
        assert deaths == []  # a broker that stops answering is a reconnect, not a death
        broker.hang.clear()
        posted.wait(lambda _: posted.states().count("ready") == 2)
        assert len(broker.traders) >= 2 and broker.traders[-1].session != broker.traders[0].session


def test_given_an_unexpected_exception_then_the_broker_thread_says_so_and_ends_the_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.CRITICAL), running(FakeBroker(fail_new_trader=True)) as (
        lifecycle, posted, deaths,
    ):  # fmt: skip
        posted.wait(lambda _: deaths == ["died"])
        assert posted.states() == ["starting", "connecting", "stopping"]
        last = [i for i in posted.items if isinstance(i, StateChanged)][-1]
        assert "the broker thread died (RuntimeError: a bug in the broker adapter)" in last.reason
        assert lifecycle.died == "RuntimeError: a bug in the broker adapter"
    assert "broker thread died" in caplog.text


def test_given_the_probe_then_cash_the_risk_gate_reads_is_refreshed_without_pushes() -> None:
    broker = FakeBroker()
    with running(broker) as (_, posted, _):
        posted.wait(lambda _: "ready" in posted.states())
        broker.cash = 1234.5  # changed at the broker; no asset push
        snap = posted.wait(
            lambda items: next(
                (
                    i
                    for i in items
                    if isinstance(i, Snapshot) and i.asset and i.asset.cash == 1234.5
                ),
                None,
            )
        )
        assert snap.positions == [] and not snap.reconcile


def test_given_a_failed_account_status_then_the_session_is_dropped_and_renewed() -> None:
    broker = FakeBroker()
    with running(broker) as (_, posted, _):
        posted.wait(lambda _: "ready" in posted.states())
        first = broker.traders[0]
        first.callback.on_account_status(_Status("SIM0001", 2, 3))
        first.callback.on_account_status(_Status("SOMEONE_ELSE", 2, 6))  # not ours: ignored
        left = posted.wait(
            lambda items: next(
                (i for i in items if isinstance(i, StateChanged) and i.state == "disconnected"),
                None,
            )
        )
        assert left.reason == "account SIM0001 status 3 (failed)"
        events = posted.wait(
            lambda items: [i.event for i in items if hasattr(i, "event")][:2] or None
        )
        assert [(e.account_id, e.status) for e in events] == [("SIM0001", 3), ("SOMEONE_ELSE", 6)]
        assert all(isinstance(e, p.AccountStatusEvent) for e in events)
        posted.wait(lambda _: posted.states().count("ready") == 2)


@dataclass
class _Status:
    account_id: str
    account_type: int
    status: int


def test_given_an_illegal_transition_then_it_is_a_logged_error_and_a_real_change_only_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    published: list[tuple[State, str]] = []
    machine = Connection(lambda state, reason: published.append((state, reason)))
    assert machine.move(State.STARTING)
    assert not machine.move(State.STARTING)
    with caplog.at_level(logging.ERROR):
        assert machine.move(State.READY, "skipped connecting")
    assert machine.illegal == 1
    assert "illegal transition starting -> ready" in caplog.text
    assert [s for s, _ in published] == [State.STARTING, State.READY]
