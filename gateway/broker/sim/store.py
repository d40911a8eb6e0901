"""The simulator's book on disk: append-only JSON-lines segments, one per trading day.

Each segment `book-YYYYMMDD.jsonl` opens with a snapshot of what carries over
(cash, positions, counters) and then holds, in order, every order request and
the new state of every order, trade, position and cash balance that changed.
One operation's records go out in one os.write before any push about it, so a
kill -9 loses nothing a client has seen. Old segments stay: they are the
ledger of every request and fill ever made.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from qmtbus.gateway.broker import BrokerUnavailable


class Snapshot(msgspec.Struct, tag="snapshot", kw_only=True):
    trading_day: str
    account_id: str
    cash_m: int
    positions: list[PositionState]
    next_order_id: int
    next_sysid: int
    next_traded_id: int


class Request(msgspec.Struct, tag="request", kw_only=True):
    """An order request exactly as the simulator received it (also rejected and silent ones)."""

    order_id: int
    account_id: str
    stock_code: str
    order_type: int
    order_volume: int
    price_type: int
    price: float
    strategy_name: str
    order_remark: str
    session_id: int
    seq: int
    received_ns: int
    trading_day: str


class OrderState(msgspec.Struct, tag="order", kw_only=True):
    order_id: int
    stock_code: str
    order_type: int
    order_volume: int
    price_type: int
    price: float
    strategy_name: str
    order_remark: str
    order_time: int
    order_sysid: str = ""
    order_status: int = 50
    status_msg: str = ""
    traded_volume: int = 0
    traded_amount_m: int = 0
    # Commission charged so far: the minimum applies per order, not per fill.
    commission_m: int = 0
    # Cash still frozen for a buy; released when the order ends.
    frozen_m: int = 0
    # The price the order rests at (a market order that rests keeps its fill price).
    limit_m: int = 0


class TradeRecord(msgspec.Struct, tag="trade", kw_only=True):
    """One fill, with XtTrade's field names."""

    account_id: str
    stock_code: str
    order_type: int
    traded_id: str
    traded_time: int
    traded_price: float
    traded_volume: int
    traded_amount: float
    order_id: int
    order_sysid: str
    strategy_name: str
    order_remark: str
    direction: int
    offset_flag: int
    commission: float
    trading_day: str


class PositionState(msgspec.Struct, tag="position", kw_only=True):
    stock_code: str
    volume: int = 0
    can_use_volume: int = 0
    frozen_volume: int = 0
    yesterday_volume: int = 0
    # Cost of the shares held, buy fees included (avg_price) and excluded (open_price).
    cost_m: int = 0
    open_cost_m: int = 0


class Cash(msgspec.Struct, tag="cash", kw_only=True):
    cash_m: int


Record = Snapshot | Request | OrderState | TradeRecord | PositionState | Cash

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Record)

SEGMENT_GLOB = "book-*.jsonl"


def segment_name(day: str) -> str:
    return f"book-{day}.jsonl"


def segments(directory: Path) -> list[Path]:
    """Every segment, oldest first."""
    return sorted(directory.glob(SEGMENT_GLOB))


class Store:
    """Append-only writer of the current segment; `load` reads the latest one back."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = None
        self.day = ""

    def load(self) -> tuple[str, list[Record]]:
        """(day, records) of the latest segment, or ("", []) on a first start.

        A torn last line (power loss mid-write) is cut off; kill -9 cannot tear
        a write, so anything else that does not decode is a real corruption."""
        found = segments(self.directory)
        if not found:
            return "", []
        path = found[-1]
        data = path.read_bytes()
        records: list[Record] = []
        good = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                records.append(_decoder.decode(line))
            except msgspec.DecodeError:
                if good + len(line) < len(data):
                    raise BrokerUnavailable(
                        f"the simulator book {path} is corrupt at byte {good}; move the "
                        "folder away to start a fresh book"
                    ) from None
                break
            good += len(line)
        if good < len(data):
            with open(path, "r+b") as file:
                file.truncate(good)
        day = path.name.removeprefix("book-").removesuffix(".jsonl")
        self._open(day)
        return day, records

    def start_day(self, snapshot: Snapshot) -> None:
        """Begin the segment of a new trading day with what carries over. The segment appears
        with its snapshot in it or not at all, so a kill here never leaves an empty latest
        segment that would look like a first start."""
        self.close()
        path = self.directory / segment_name(snapshot.trading_day)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(_encoder.encode(snapshot) + b"\n")
        os.replace(tmp, path)
        self._open(snapshot.trading_day)

    def append(self, records: list[Record]) -> None:
        if not records:
            return
        assert self._fd is not None, "store is closed"
        data = _encoder.encode_lines(records)  # one JSON line each, in one call
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self, day: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0)
        self._fd = os.open(self.directory / segment_name(day), flags, 0o644)
        self.day = day
