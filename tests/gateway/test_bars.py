"""Bars and instrument details over the bus: the simulator's bars come from the prices its
orders fill at (a fill lies inside its bar), the xtquant broker's from xtdata (a small fake
here), and the gateway answers query_bars / query_instrument off its I/O thread."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from qmtbus import protocol as p
from qmtbus.gateway.broker import xtbars
from qmtbus.gateway.broker.sim.bars import Bars
from tests.gateway.conftest import CODE
from tests.support import Proc, Stack, start_gateway, wait_for

T0 = 1_764_900_000  # 2025-12-05 10:00 Shanghai, on a minute boundary


def test_given_trades_then_minute_bars_hold_their_open_high_low_close_and_totals() -> None:
    bars = Bars()
    bars.add(CODE, 10_000, 100, T0 + 1, 9_900)
    bars.add(CODE, 10_200, 200, T0 + 20, 9_900)
    bars.add(CODE, 9_800, 100, T0 + 59, 9_900)
    bars.add(CODE, 10_100, 0, T0 + 61, 9_900)
    first, second = bars.bars(CODE, "1m", 10)
    assert first == {
        "time": T0 * 1000,
        "open": 10.0,
        "high": 10.2,
        "low": 9.8,
        "close": 9.8,
        "volume": 400,
        "amount": 4020.0,  # 10 * 100 + 10.2 * 200 + 9.8 * 100
        "preClose": 9.9,
    }
    assert second["time"] == (T0 + 60) * 1000 and second["preClose"] == 9.8
    assert second["open"] == second["close"] == 10.1 and second["volume"] == 0
    assert bars.bars(CODE, "1m", 1) == [second]


def test_given_minutes_then_5m_and_daily_bars_are_made_of_them() -> None:
    bars = Bars()
    for minute, price in enumerate([10_000, 10_300, 9_700, 10_100, 10_000, 10_500]):
        bars.add(CODE, price, 100, T0 + 60 * minute, 9_900)
    five = bars.bars(CODE, "5m", 5)
    assert [b["time"] for b in five] == [T0 * 1000, (T0 + 300) * 1000]
    assert (five[0]["open"], five[0]["high"], five[0]["low"], five[0]["close"]) == (
        10.0,
        10.3,
        9.7,
        10.0,
    )
    assert five[0]["volume"] == 500 and five[1]["volume"] == 100
    (day,) = bars.bars(CODE, "1d", 5)
    assert day["time"] == (T0 - 10 * 3600) * 1000  # Shanghai midnight
    assert (day["open"], day["high"], day["low"], day["close"]) == (10.0, 10.5, 9.7, 10.5)
    assert day["preClose"] == 9.9 and day["volume"] == 600
    ranged = bars.bars(CODE, "1m", 10, (T0 + 120) * 1000, (T0 + 180) * 1000)
    assert [b["time"] for b in ranged] == [(T0 + 120) * 1000, (T0 + 180) * 1000]
    assert [b["time"] for b in bars.bars(CODE, "1m", 1, (T0 + 120) * 1000)] == [(T0 + 300) * 1000]
    with pytest.raises(ValueError, match="period '2m' is not one of 1m, 5m, 1d"):
        bars.bars(CODE, "2m", 5)


class FakeFrame:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def to_dict(self, orient: str) -> list[dict[str, Any]]:
        assert orient == "records"
        return self.rows


class FakeXtdata:
    """xtdata's three calls the bars path makes, recording them."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def get_instrument_detail(self, code: str) -> dict[str, Any] | None:
        if code != CODE:
            return None
        return {"InstrumentName": "浦发银行", "ExchangeID": "SH", "PreClose": 10, "Other": 1}

    def download_history_data(self, code: str, period: str, *args: Any, **kw: Any) -> None:
        self.calls.append(("download", code, period, kw))

    def get_market_data_ex(self, fields: list[str], codes: list[str], **kw: Any) -> Any:
        self.calls.append(("read", tuple(codes), kw["period"], kw["count"], kw["start_time"]))
        rows = [
            {"time": "20251205", "open": 10, "high": 11, "low": 9, "close": 10.5, "volume": 7},
            {"time": 1_764_950_400_000, "open": 10.5, "close": 10.6, "amount": 3.5},
        ]
        return {CODE: FakeFrame(rows)}


def test_given_xtdata_then_its_bars_and_detail_are_read_as_plain_values() -> None:
    xtdata = FakeXtdata()
    got = xtbars.bars(xtdata, CODE, "1d", 2, start_ms=T0 * 1000)
    assert xtdata.calls == [
        ("download", CODE, "1d", {"incrementally": True}),
        ("read", (CODE,), "1d", 2, "20251205100000"),  # xtdata's time text, Shanghai
    ]
    assert got is not None and [b["time"] for b in got] == [1_764_864_000_000, 1_764_950_400_000]
    assert got[0]["volume"] == 7 and got[0]["preClose"] == 0.0 and got[1]["amount"] == 3.5
    assert xtbars.bars(xtdata, "000001.SH", "1d", 2) is None  # not known: nothing downloaded
    detail = xtbars.instrument_detail(xtdata, CODE)
    assert detail == {"InstrumentName": "浦发银行", "ExchangeID": "SH", "PreClose": 10.0}


@pytest.fixture
def moving(stack: Stack) -> Iterator[Proc]:
    """A gateway whose simulator walks (the still market of conftest has flat bars)."""
    stack.write_config(sim={"volatility": 0.002, "tick_interval": 0.05})
    proc = start_gateway(stack)
    yield proc
    proc.stop()


def test_given_a_fill_then_it_lies_inside_its_minute_and_daily_bar(
    stack: Stack, moving: Proc
) -> None:
    instrument: p.InstrumentReply = stack.call(p.QueryInstrument(stock_code=CODE))
    assert instrument.InstrumentName and instrument.ExchangeID == "SH"
    assert instrument.DownStopPrice < instrument.PreClose < instrument.UpStopPrice
    quotes: p.QuotesReply = stack.call(p.QueryQuote(stock_codes=[CODE]))
    marketable = round(quotes.quotes[0].lastPrice * 1.02, 2)  # inside the fat-finger band
    buy = p.PlaceOrder(
        client_order_id="bars-fill-1",
        stock_code=CODE,
        order_type=p.STOCK_BUY,
        order_volume=300,
        price=min(marketable, instrument.UpStopPrice),
    )
    ack: p.OrderAck = stack.call(buy)
    assert isinstance(ack, p.OrderAck) and ack.status == "accepted", ack

    def fills() -> list[p.Trade]:
        trades: p.TradesReply = stack.call(p.QueryTrades())
        return [t for t in trades.trades if t.order_id == ack.order_id]

    wait_for(lambda: sum(t.traded_volume for t in fills()) == 300, 30, "the buy filled")
    for period, seconds in (("1m", 60), ("5m", 300)):
        reply: p.BarsReply = stack.call(p.QueryBars(stock_code=CODE, period=period, count=50))
        assert reply.period == period and reply.bars
        for fill in fills():
            at = fill.traded_time * 1000
            (bar,) = [b for b in reply.bars if b.time <= at < b.time + seconds * 1000]
            assert bar.low <= fill.traded_price <= bar.high, (fill, bar)
            assert bar.volume >= fill.traded_volume
        since = reply.bars[-1].time
        ranged: p.BarsReply = stack.call(
            p.QueryBars(stock_code=CODE, period=period, count=50, start_time=since)
        )
        assert ranged.bars and all(b.time >= since for b in ranged.bars)
        before: p.BarsReply = stack.call(
            p.QueryBars(stock_code=CODE, period=period, end_time=since - 1)
        )
        assert [b.time for b in before.bars] == [b.time for b in reply.bars[:-1]][-20:]
    daily: p.BarsReply = stack.call(p.QueryBars(stock_code=CODE, period="1d", count=3))
    today = daily.bars[-1]
    assert all(today.low <= f.traded_price <= today.high for f in fills())
    assert today.preClose == instrument.PreClose


def test_given_a_code_the_broker_does_not_know_then_not_found_names_it(
    stack: Stack, moving: Proc
) -> None:
    for command in (
        p.QueryBars(stock_code="000001.SH", period="1m"),
        p.QueryInstrument(stock_code="000001.SH"),
    ):
        reply: p.ErrorReply = stack.call(command)
        assert reply.code == p.NOT_FOUND
        assert "no market data for 000001.SH" in reply.message


def test_given_a_bad_period_or_count_then_bad_request_names_the_field(
    stack: Stack, moving: Proc
) -> None:
    bad = {"type": "query_bars", "stock_code": CODE, "period": "2m"}
    reply: p.ErrorReply = stack.call(bad, json=True)
    assert reply.code == p.BAD_REQUEST and "$.period" in reply.message
    bad = {"type": "query_bars", "stock_code": CODE, "count": 0}
    reply = stack.call(bad, json=True)
    assert reply.code == p.BAD_REQUEST and "$.count" in reply.message


def test_given_the_cli_then_bars_prints_a_table_of_the_last_bars(
    stack: Stack, moving: Proc
) -> None:
    run = [sys.executable, "-m", "qmtbus", "--config", str(stack.config_path), "bars"]
    done = subprocess.run(
        [*run, "600000.sh", "--period", "1m", "--count", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "time",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "amount",
        "preClose",
    ]
    assert 2 <= len(lines) <= 2 + 3  # a rule line, then at most 3 bars
    bad = subprocess.run([*run, CODE, "--count", "0"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--count 0" in bad.stderr
    unknown = subprocess.run([*run, "000001.SH"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 1 and "no market data for 000001.SH" in unknown.stderr


def test_given_slow_then_failing_market_data_then_the_gateway_keeps_answering_and_says_why(
    stack: Stack, moving: Proc
) -> None:
    stack.call(p.SimFault(fault="slow_xtdata", value=2.0))
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(stack.commands_address)
    try:
        # one socket, in this order: the ping is answered while the bars wait on the broker
        dealer.send(p.encode(p.QueryBars(stock_code=CODE)))
        dealer.send(p.encode(p.Ping()))
        assert dealer.poll(20_000)
        assert isinstance(p.decode_reply(dealer.recv()), p.Pong)
        assert dealer.poll(20_000)
        bars = p.decode_reply(dealer.recv())
        assert isinstance(bars, p.BarsReply) and bars.bars
    finally:
        dealer.close()
    stack.call(p.SimFault(fault="clear"))
    stack.call(p.SimFault(fault="fail_xtdata", value=1))
    reply: p.ErrorReply = stack.call(p.QueryInstrument(stock_code=CODE))
    assert reply.code == p.BROKER_ERROR
    assert "could not give an instrument detail of 600000.SH" in reply.message
