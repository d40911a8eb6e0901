"""xtdata's history calls for unchanged scripts: bars shaped as xtdata shapes them (over a
fake source here, over a real gateway and over `--sim` below), instrument details, and
trading dates from the calendar."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from qmtbus import protocol
from qmtbus.xt import history
from tests.clients.xt_support import SIM, XT_RUN, Script
from tests.support import Stack, start_gateway

CODE = "600000.SH"
DAY_MS = 86_400_000
MIDNIGHT = 1_764_864_000_000  # 2025-12-05 00:00 Shanghai (a Friday)


def bar(time: int, close: float) -> dict[str, Any]:
    return {
        "time": time,
        "open": close - 0.1,
        "high": close + 0.2,
        "low": close - 0.2,
        "close": close,
        "volume": 100,
        "amount": close * 100,
        "preClose": close - 0.05,
    }


class Source:
    """A fake of the bar source: three daily bars of CODE, recording what was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, int, int, int]] = []

    def __call__(
        self, code: str, period: str, count: int, start_ms: int, end_ms: int
    ) -> list[dict[str, Any]]:
        self.asked.append((code, period, count, start_ms, end_ms))
        if code != CODE:
            return []
        return [bar(MIDNIGHT + n * DAY_MS, 10.0 + n) for n in range(3)]


def test_given_bars_then_get_market_data_ex_indexes_them_by_xtdatas_time_text() -> None:
    source = Source()
    frames = history.market_data_ex(source, ["close", "volume"], [CODE, "000001.SH"], "1d")
    frame = frames[CODE]
    assert list(frame.index) == ["20251205", "20251206", "20251207"]
    assert list(frame.columns) == ["close", "volume"]
    assert list(frame["close"]) == [10.0, 11.0, 12.0]
    assert frames["000001.SH"].empty  # a code nobody knows: no bars, as xtdata
    assert source.asked[0] == (CODE, "1d", history.MAX_BARS, 0, 0)
    last = history.market_data_ex(source, [], CODE, "1d", count=2)[CODE]
    assert list(last.index) == ["20251206", "20251207"] and list(last.columns) == (
        history.BAR_FIELDS
    )
    window = history.market_data_ex(source, ["close"], [CODE], "1d", "20251206", "20251206")
    assert list(window[CODE]["close"]) == [11.0]
    # the range goes to the source too: bars older than the last 5000 are reachable
    assert source.asked[-1][3:] == (MIDNIGHT + DAY_MS, MIDNIGHT + 2 * DAY_MS - 1000)


def test_given_bars_then_get_market_data_gives_a_frame_per_field_codes_by_times() -> None:
    data = history.market_data(Source(), ["open", "close"], [CODE], "1d", count=2)
    assert set(data) == {"open", "close"}
    assert list(data["close"].index) == [CODE]
    assert list(data["close"].columns) == ["20251206", "20251207"]
    assert data["close"].loc[CODE, "20251207"] == 12.0


@pytest.mark.parametrize(
    ("kw", "named"),
    [
        ({"period": "15m"}, "period '15m'"),
        ({"dividend_type": "front"}, "dividend_type='front'"),
        ({"field_list": ["openInterest"]}, "openInterest"),
    ],
)
def test_given_what_the_bus_does_not_carry_then_not_implemented_names_it(
    kw: dict[str, Any], named: str
) -> None:
    args = {"field_list": [], "stock_list": [CODE], **kw}
    with pytest.raises(NotImplementedError, match=named.replace("(", r"\(").replace("[", r"\[")):
        history.market_data_ex(Source(), **args)


def test_given_a_calendar_then_trading_dates_are_shanghai_midnights_in_ms() -> None:
    def weekday(day: dt.date) -> bool:
        return day.weekday() < 5 and day != dt.date(2025, 12, 3)

    first = dt.date(2025, 12, 1)
    today = dt.date(2025, 12, 9)
    days = history.trading_dates(weekday, first, "SH", today=today)
    texts = [dt.datetime.fromtimestamp(d / 1000, history.SHANGHAI).strftime("%d") for d in days]
    assert texts == ["01", "02", "04", "05", "08", "09"]
    assert MIDNIGHT in days
    assert history.trading_dates(weekday, first, "SZ", "20251204", "20251208", today=today) == [
        MIDNIGHT - DAY_MS,
        MIDNIGHT,
        MIDNIGHT + 3 * DAY_MS,
    ]
    assert history.trading_dates(weekday, first, "SH", count=2, today=today) == days[-2:]
    with pytest.raises(NotImplementedError, match="get_trading_dates\\('IF'\\)"):
        history.trading_dates(weekday, first, "IF")


HISTORY = """
import json
from xtquant import xtdata

frames = xtdata.get_market_data_ex(["close", "volume"], ["600000.SH"], period="1m", count=5)
frame = frames["600000.SH"]
print("bars", len(frame), list(frame.columns), flush=True)
print("index", frame.index[-1], flush=True)
data = xtdata.get_market_data(["close"], ["600000.SH"], period="1d", count=1)
print("daily", list(data["close"].index), len(data["close"].columns), flush=True)
print("close", float(data["close"].iloc[0, -1]), flush=True)
print("detail", json.dumps(xtdata.get_instrument_detail("600000.SH")), flush=True)
print("unknown", xtdata.get_instrument_detail("000001.SH"), flush=True)
print("dates", len(xtdata.get_trading_dates("SH", "20250101", "20251231")), flush=True)
print("done", flush=True)
"""


def check_history(script: Script) -> dict[str, Any]:
    """What both runs print alike; returns the instrument detail."""
    script.wait_line("done")
    assert script.popen.wait(30) == 0, script.output
    count, columns = script.lines[script.wait_line("bars ")].split(" ", 2)[1:]
    assert 1 <= int(count) <= 5 and columns == "['close', 'volume']"
    index = script.lines[script.wait_line("index ")].split()[1]
    assert len(index) == 14 and index.isdigit()  # YYYYMMDDhhmmss, xtdata's minute text
    assert "daily ['600000.SH'] 1" in script.lines
    assert "unknown None" in script.lines
    assert "dates 243" in script.lines  # the SSE's sessions of 2025
    detail: dict[str, Any] = json.loads(script.lines[script.wait_line("detail ")][7:])
    assert detail["ExchangeID"] == "SH" and detail["InstrumentID"] == "600000"
    assert detail["DownStopPrice"] < detail["PreClose"] < detail["UpStopPrice"]
    return detail


def write(tmp_path: Path) -> Path:
    path = tmp_path / "history.py"
    path.write_text(HISTORY)
    return path


@pytest.mark.timeout(120)
def test_given_a_gateway_then_a_scripts_xtdata_history_calls_are_answered_over_the_bus(
    tmp_path: Path,
) -> None:
    stack = Stack(tmp_path / "stack", {"sim": SIM})
    gateway = start_gateway(stack)
    script = Script(stack, write(tmp_path))
    try:
        detail = check_history(script)
        reply: protocol.InstrumentReply = stack.call(protocol.QueryInstrument(stock_code=CODE))
        assert detail["PreClose"] == reply.PreClose
        daily: protocol.BarsReply = stack.call(protocol.QueryBars(stock_code=CODE, count=1))
        assert f"close {daily.bars[-1].close}" in script.lines  # a still market (SIM)
    finally:
        script.stop()
        gateway.stop()


@pytest.mark.timeout(120)
def test_given_sim_then_a_scripts_xtdata_history_calls_are_answered_by_the_simulator(
    tmp_path: Path,
) -> None:
    stack = Stack(tmp_path / "stack", {"sim": SIM})  # no gateway started
    script = Script(stack, write(tmp_path), launcher=(*XT_RUN, "--sim"))
    try:
        check_history(script)
    finally:
        script.stop()
