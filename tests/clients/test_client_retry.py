"""Retries against a real gateway that answers late or dies: an order is never placed twice."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qmtbus import Gateway, GatewayUnreachable, protocol
from qmtbus.config import SimConfig
from qmtbus.gateway.ashare import round_price
from qmtbus.gateway.broker.sim.market import initial_price
from tests.support import Proc, Stack, start_gateway, wait_for

CODE = "600000.SH"
TIMEOUT = 1.0


def last_price() -> float:
    return round_price(initial_price(SimConfig().seed, CODE), 0.01)


def orders_received(stack: Stack, client_order_id: str) -> int:
    """How many order requests with this remark the simulated broker ever got."""
    from qmtbus.gateway.broker.sim.ledger import read_ledger

    ledger = read_ledger(stack.data_dir)
    return sum(1 for o in ledger.orders_received if o["order_remark"] == client_order_id)


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(
        tmp_path, {"sim": {"volatility": 0.0}, "client": {"timeout": TIMEOUT, "retries": 8}}
    )


@pytest.fixture
def procs(stack: Stack) -> Iterator[list[Proc]]:
    """Gateway processes of the test, newest last; all stopped (and resumed first) at the end."""
    started = [start_gateway(stack)]
    yield started
    for proc in started:
        if proc.alive():
            os.kill(proc.pid, signal.SIGCONT)
            proc.stop()


class InThread:
    """Run one blocking client call on a thread; `result()` returns or re-raises."""

    def __init__(self, fn: Any, *args: Any, **kw: Any) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn, args, kw), daemon=True)
        self.thread.start()

    def _run(self, fn: Any, args: Any, kw: Any) -> None:
        try:
            self.value = fn(*args, **kw)
        except BaseException as err:
            self.error = err

    def result(self, timeout: float = 30.0) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the client call did not return"
        if self.error is not None:
            raise self.error
        return self.value


def test_given_gateway_paused_longer_than_timeout_when_ordering_then_one_order_and_duplicate_ack(
    stack: Stack, procs: list[Proc]
) -> None:
    gateway = procs[0]
    with Gateway.from_config(stack.config_path) as gw:
        gw.ping()  # a live connection: the first try is really sent, and really answered late
        os.kill(gateway.pid, signal.SIGSTOP)
        try:
            call = InThread(gw.buy, CODE, 100, last_price(), client_order_id="late-1")
            # Waiting is the point here: the gateway must stay silent past the
            # client's timeout so that the first try is abandoned and resent.
            time.sleep(TIMEOUT * 2.5)
        finally:
            os.kill(gateway.pid, signal.SIGCONT)
        ack = call.result()
    assert ack.client_order_id == "late-1"
    assert ack.duplicate, "the answer should come to a resend, from the gateway's idempotency"
    assert orders_received(stack, "late-1") == 1


def test_given_gateway_killed_after_sending_the_order_when_restarted_then_resend_finds_it(
    stack: Stack, procs: list[Proc]
) -> None:
    # The broker's answer is held back, so the gateway is still waiting to reply
    # when it is killed: the order reached the broker, the client never heard.
    stack.call(protocol.SimFault(fault="delay_callbacks", value=30.0))
    with Gateway.from_config(stack.config_path) as gw:
        call = InThread(gw.buy, CODE, 100, last_price(), client_order_id="crash-1")
        wait_for(lambda: orders_received(stack, "crash-1") == 1, 10, "the order at the broker")
        procs[0].kill()
        procs.append(start_gateway(stack, ready=False))
        ack = call.result()
    assert ack.client_order_id == "crash-1"
    assert ack.duplicate
    assert orders_received(stack, "crash-1") == 1
    with Gateway.from_config(stack.config_path) as gw:
        wait_for(lambda: gw.status().state == "ready", 20, "the restarted gateway ready")
        assert len([o for o in gw.orders() if o.order_remark == "crash-1"]) == 1


def test_given_gateway_killed_before_reading_the_order_when_restarted_then_resend_places_it_once(
    stack: Stack, procs: list[Proc]
) -> None:
    with Gateway.from_config(stack.config_path) as gw:
        gw.ping()
        os.kill(procs[0].pid, signal.SIGSTOP)  # the request sits unread in the socket
        call = InThread(gw.buy, CODE, 100, last_price(), client_order_id="lost-1")
        time.sleep(TIMEOUT / 2)  # let the first try go out before the kill
        procs[0].kill()
        procs.append(start_gateway(stack))
        ack = call.result()
    assert ack.client_order_id == "lost-1"
    assert ack.order_id > 0
    assert orders_received(stack, "lost-1") == 1


def test_given_note_sent_but_unanswered_then_not_resent_and_error_says_so(
    stack: Stack, procs: list[Proc]
) -> None:
    with Gateway.from_config(stack.config_path) as gw:
        gw.ping()
        os.kill(procs[0].pid, signal.SIGSTOP)
        try:
            start = time.monotonic()
            with pytest.raises(GatewayUnreachable) as err:
                gw.note("once", {"n": 1})
            elapsed = time.monotonic() - start
        finally:
            os.kill(procs[0].pid, signal.SIGCONT)
        assert err.value.sent
        assert "not resent" in str(err.value)
        assert elapsed < TIMEOUT * 2  # one try, no retries
        # the single note the gateway got after it woke up was published exactly once
        epoch = gw.status().epoch
        notes = [
            e
            for e in gw.replay(epoch, 1, limit=10_000).events
            if isinstance(e, protocol.NoteEvent) and e.topic == "once"
        ]
        assert len(notes) == 1


def test_given_gateway_paused_then_status_is_retried_until_it_answers(
    stack: Stack, procs: list[Proc]
) -> None:
    with Gateway.from_config(stack.config_path) as gw:
        gw.ping()
        os.kill(procs[0].pid, signal.SIGSTOP)
        try:
            call = InThread(gw.status)
            time.sleep(TIMEOUT * 1.5)
        finally:
            os.kill(procs[0].pid, signal.SIGCONT)
        assert call.result().state == "ready"
