"""Read the simulator's book files directly (tests, audits), also while a gateway runs.

`orders_received` is every order request the simulator ever got, rejected and
silently dropped ones included, with its `order_remark`; `trades` is every
fill ever made, with its `traded_id`. Both in the order they happened.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from qmtbus.gateway.broker.sim.store import segments


@dataclass
class Ledger:
    orders_received: list[dict[str, Any]] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)


def read_ledger(data_dir: str | os.PathLike[str]) -> Ledger:
    """The ledger of the simulator whose gateway.data_dir is `data_dir`."""
    ledger = Ledger()
    for path in segments(Path(data_dir) / "sim"):
        for line in path.read_bytes().splitlines():
            try:
                record = msgspec.json.decode(line)
            except msgspec.DecodeError:
                continue  # the line being written right now
            kind = record.pop("type", None)
            if kind == "request":
                ledger.orders_received.append(record)
            elif kind == "trade":
                ledger.trades.append(record)
    return ledger
