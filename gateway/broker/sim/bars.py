"""The simulator's bars: every trade of the simulated market (the walk's own steps and the
fills of orders alike) lands in the one-minute bar of its time, so a fill's price lies
inside its bar. 5-minute and daily bars are made from the minutes.

Bars are held in memory since the simulator started (the last KEEP minutes of each code);
they are not kept over a restart. Prices are in mils, as in market.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from qmtbus.gateway.broker.sim import hours

KEEP = 20_000  # one-minute bars per code (about two weeks of an always-open market)
PERIODS = {"1m": 60, "5m": 300, "1d": 0}  # seconds per bar; 0: the Shanghai trading day

# one minute: [start (epoch s), open, high, low, close, volume, amount, pre_close]
_Row = list[int]


def _day_start(ts: int) -> int:
    day = hours.trading_day(ts)
    return int(datetime.strptime(day, "%Y%m%d").replace(tzinfo=hours.SHANGHAI).timestamp())


class Bars:
    def __init__(self) -> None:
        self._minutes: dict[str, list[_Row]] = {}

    def add(self, stock_code: str, price_m: int, volume: int, now: float, pre_close_m: int) -> None:
        """A trade of `volume` shares at `price_m` at `now`; `pre_close_m` is the close before
        the code's first bar."""
        start = int(now // 60) * 60
        rows = self._minutes.setdefault(stock_code, [])
        if rows and rows[-1][0] >= start:
            row = rows[-1]  # this minute's bar (a clock stepping back stays in it)
            row[2] = max(row[2], price_m)
            row[3] = min(row[3], price_m)
            row[4] = price_m
            row[5] += volume
            row[6] += volume * price_m
            return
        pre = rows[-1][4] if rows else pre_close_m
        rows.append([start, price_m, price_m, price_m, price_m, volume, volume * price_m, pre])
        if len(rows) > KEEP:
            del rows[: len(rows) - KEEP]

    def holds(self, stock_code: str) -> bool:
        return bool(self._minutes.get(stock_code))

    def bars(
        self, stock_code: str, period: str, count: int, start_ms: int = 0, end_ms: int = 0
    ) -> list[dict[str, Any]]:
        """The last `count` bars of `period` ("1m", "5m", "1d") that start from `start_ms` to
        `end_ms` (0: open), oldest first, in xtdata's field names; `time` is the bar's start
        in epoch milliseconds."""
        if period not in PERIODS:
            raise ValueError(f"period {period!r} is not one of {', '.join(PERIODS)}")
        seconds = PERIODS[period]
        merged: list[_Row] = []
        for row in self._minutes.get(stock_code, []):
            start = _day_start(row[0]) if seconds == 0 else row[0] // seconds * seconds
            if merged and merged[-1][0] == start:
                bar = merged[-1]
                bar[2], bar[3] = max(bar[2], row[2]), min(bar[3], row[3])
                bar[4] = row[4]
                bar[5] += row[5]
                bar[6] += row[6]
            else:
                merged.append([start, *row[1:]])
        end_ms = end_ms or 2**63
        inside = [row for row in merged if start_ms <= row[0] * 1000 <= end_ms]
        return [_bar(row) for row in inside[-count:]] if count > 0 else []


def _bar(row: _Row) -> dict[str, Any]:
    start, open_m, high_m, low_m, close_m, volume, amount_m, pre_m = row
    return {
        "time": start * 1000,
        "open": open_m / 1000,
        "high": high_m / 1000,
        "low": low_m / 1000,
        "close": close_m / 1000,
        "volume": volume,
        "amount": amount_m / 1000,
        "preClose": pre_m / 1000,
    }
