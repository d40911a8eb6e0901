"""Gateway test fixtures: a still market (volatility 0) so every price is known in advance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from qmtbus import protocol as p
from qmtbus.config import SimConfig
from qmtbus.gateway.ashare import round_price
from qmtbus.gateway.broker.sim.market import initial_price
from tests.support import Proc, Stack, Subscriber, start_gateway

CODE = "600000.SH"
SEED = SimConfig().seed


def price(factor: float = 1.0, code: str = CODE) -> float:
    """The still market's price of `code` times `factor`, on the tick."""
    return round_price(initial_price(SEED, code) * factor, 0.01)


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(tmp_path, {"sim": {"volatility": 0.0}})


def start_listened(stack: Stack, events: Subscriber) -> Proc:
    """Start a gateway and wait until `events` is live on it.

    A SUB joins a moment after the PUB binds; a heartbeat proves it is live."""
    proc = start_gateway(stack)
    events.wait(lambda e: isinstance(e, p.HeartbeatEvent), 5, "subscriber live")
    return proc


@pytest.fixture
def gateway(stack: Stack, events: Subscriber) -> Iterator[Proc]:
    """A ready gateway whose events the `events` subscriber sees from the first order on."""
    proc = start_listened(stack, events)
    yield proc
    if proc.alive():
        proc.stop()


def order(
    client_order_id: str, volume: int = 100, factor: float = 1.0, sell: bool = False
) -> p.PlaceOrder:
    return p.PlaceOrder(
        client_order_id=client_order_id,
        stock_code=CODE,
        order_type=p.STOCK_SELL if sell else p.STOCK_BUY,
        order_volume=volume,
        price_type=p.FIX_PRICE,
        price=price(factor),
    )
