"""The built-in jobs and the example job, each run against a real gateway with a real client."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from examples.jobs import buy_small
from qmtbus import Gateway, protocol
from qmtbus.calendar import SHANGHAI
from qmtbus.config import load_config
from qmtbus.scheduler import JobContext
from qmtbus.scheduler.builtin import PreOpenCheckFailed, after_close_snapshot, pre_open_check
from tests.scheduler.conftest import CODE, price
from tests.support import NOBODY, Stack

WHEN = dt.datetime(2026, 11, 24, 9, 20, tzinfo=SHANGHAI)


@pytest.fixture
def client(stack: Stack) -> Iterator[Gateway]:
    gw = Gateway(stack.commands_address, stack.events_address, timeout=5.0, retries=1)
    yield gw
    gw.close()


def context(stack: Stack, gw: Gateway, name: str, **args: Any) -> JobContext:
    return JobContext(
        name=name,
        gateway=gw,
        log=logging.getLogger(f"scheduler.job.{name}"),
        trading_day=WHEN.date(),
        scheduled_for=WHEN,
        args=args,
        config=load_config(stack.config_path),
        stopping=threading.Event(),
    )


def note_on_bus(events: Any, topic: str) -> protocol.NoteEvent:
    return events.wait(
        lambda e: isinstance(e, protocol.NoteEvent) and e.topic == topic, what=f"a {topic} note"
    )


def test_given_ready_gateway_then_pre_open_check_passes_with_the_account_cash(
    stack, gateway, client
):
    result = pre_open_check(context(stack, client, "pre_open_check"))

    assert result["state"] == "ready" and result["trading"] == "active"
    assert result["cash"] == 1_000_000.0


def test_given_halted_trading_then_pre_open_check_fails_and_alerts_on_the_bus(
    stack, gateway, events, client
):
    client.halt("risk review")

    with pytest.raises(PreOpenCheckFailed, match=r"trading is halted \(risk review\)"):
        pre_open_check(context(stack, client, "pre_open_check"))

    alert = note_on_bus(events, "alert.pre_open_check")
    assert alert.data["trading"] == "halted"
    assert alert.data["problems"] == ["trading is halted (risk review)"]
    assert alert.data["trading_day"] == "2026-11-24"


def test_given_no_gateway_then_pre_open_check_fails_saying_it_does_not_answer(stack):
    silent = Gateway(NOBODY, timeout=0.2, retries=0)
    try:
        with pytest.raises(PreOpenCheckFailed, match="the gateway does not answer"):
            pre_open_check(context(stack, silent, "pre_open_check"))
    finally:
        silent.close()


def test_given_a_position_then_after_close_snapshot_notes_asset_and_holdings(
    stack, gateway, events, client
):
    ack = client.buy(CODE, 100, price(), client_order_id="snap-1")
    assert ack.status != "rejected"
    events.wait(lambda e: isinstance(e, protocol.TradeEvent), what="the fill")

    result = after_close_snapshot(context(stack, client, "after_close_snapshot"))

    snapshot = note_on_bus(events, "snapshot.after_close")
    assert snapshot.data["positions"] == result["positions"] == 1
    assert snapshot.data["holdings"][0]["stock_code"] == CODE
    assert snapshot.data["holdings"][0]["volume"] == 100
    assert snapshot.data["total_asset"] == pytest.approx(result["total_asset"])
    # the queries themselves reach the bus as asset events, so the recorder keeps them
    events.wait(lambda e: isinstance(e, protocol.AssetEvent), what="an asset event")


def test_example_job_buys_one_lot_and_returns_its_fill(stack, gateway, events, client):
    ctx = context(stack, client, "buy_small", stock_code=CODE, price=price(), wait_seconds=10)

    result = buy_small(ctx)

    assert result == {
        "client_order_id": "ex261124092000",
        "filled": 100,
        "average_price": pytest.approx(price()),
    }
    order = events.wait(
        lambda e: isinstance(e, protocol.OrderEvent) and e.client_order_id == "ex261124092000"
    )
    assert order.strategy_name == "buy_small" and order.price == price()


def test_example_job_without_a_price_buys_at_the_live_best_ask(stack, gateway, events, client):
    ctx = context(stack, client, "buy_small", stock_code=CODE, wait_seconds=10)
    ask = client.quotes([CODE])[0].askPrice[0]

    result = buy_small(ctx)

    assert result["filled"] == 100
    order = events.wait(
        lambda e: isinstance(e, protocol.OrderEvent) and e.client_order_id == "ex261124092000"
    )
    assert order.price == ask
