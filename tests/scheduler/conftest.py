"""Scheduler test fixtures: a still market (prices known in advance), built-in jobs off."""

from __future__ import annotations

from pathlib import Path

import pytest

from qmtbus.config import SimConfig
from qmtbus.gateway.ashare import round_price
from qmtbus.gateway.broker.sim.market import initial_price
from tests.support import Stack

CODE = "600000.SH"


def price(code: str = CODE) -> float:
    """The still market's price of `code`, on the tick: a limit buy there fills."""
    return round_price(initial_price(SimConfig().seed, code), 0.01)


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    # The built-ins run at 09:20 and 15:05 on trading days: tests that want them
    # switch them on (or call them directly).
    return Stack(
        tmp_path,
        {
            "sim": {"volatility": 0.0},
            "scheduler": {"pre_open_check": False, "after_close_snapshot": False},
        },
    )
