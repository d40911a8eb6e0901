"""Ticks in DuckDB, per-symbol opt-in: the `ticks` table holds the chosen codes only, and
orders and fills are recorded completely while ticks stream in; off by default."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qmtbus import protocol
from tests.recorder.helpers import NoteSender, sql, start_recorder, wait_caught_up
from tests.support import Proc, Stack, start_gateway, wait_for

CODE = "600000.SH"
OTHER = "000001.SZ"
# 50 more symbols ticking every 10 ms for someone else: 5,000 ticks/s on the quotes socket.
NOISE = [f"{600100 + i:06d}.SH" for i in range(50)]


@pytest.fixture
def gateway(stack: Stack) -> Iterator[Proc]:
    stack.write_config(
        sim={"volatility": 0.002, "quote_interval": 0.01},
        recorder={"tick_symbols": [CODE, OTHER], "batch_seconds": 0.2},
    )
    proc = start_gateway(stack)
    yield proc
    if proc.alive():
        proc.stop()


def test_given_tick_symbols_then_their_ticks_fill_the_ticks_table_and_no_event_is_lost(
    stack: Stack, gateway: Proc
) -> None:
    noise = stack.call(protocol.SubscribeQuotes(stock_codes=NOISE, client_id="someone"))
    assert isinstance(noise, protocol.QuotesAck)
    recorder = start_recorder(stack)
    wait_for(
        lambda: sql(stack, "SELECT count(DISTINCT stock_code) FROM ticks")[0][0] == 2,
        20,
        "ticks of both symbols recorded",
    )
    sender = NoteSender(stack, 3000, run="with-ticks").start()
    assert sender.join() == 3000
    epoch, _ = wait_caught_up(stack)
    # One query: heartbeats keep committing while the test reads.
    [[count, distinct, low, high, notes]] = sql(
        stack,
        "SELECT count(*), count(DISTINCT seq), min(seq), max(seq), "
        "count(*) FILTER (WHERE json_extract_string(payload, '$.data.run') = 'with-ticks') "
        f"FROM events WHERE epoch = '{epoch}'",
    )
    assert (count, distinct, low) == (high, high, 1), "an event is missing or doubled"
    assert notes == 3000

    [[codes]] = sql(stack, "SELECT list(DISTINCT stock_code ORDER BY stock_code) FROM ticks")
    assert codes == sorted([CODE, OTHER]), "only the chosen symbols are recorded"
    rows = sql(
        stack,
        'SELECT time, ts, "lastPrice", "askPrice", "bidVol", epoch, seq FROM ticks '
        f"WHERE stock_code = '{CODE}' ORDER BY seq",
    )
    assert len(rows) >= 10
    time_text, ts, last, asks, bid_vols, tick_epoch, _ = rows[-1]
    assert time_text.endswith("+08") and ts > 0 and last > 0
    assert len(asks) == len(bid_vols) == 5 and asks[0] == last
    assert tick_epoch == epoch
    assert [r[6] for r in rows] == sorted(r[6] for r in rows)
    # The recorder holds its symbols at the gateway under one stable name.
    ack = stack.call(protocol.SubscribeQuotes(stock_codes=[CODE], client_id="probe"))
    assert set(ack.subscribed) == {CODE, OTHER, *NOISE}
    assert recorder.stop() == 0


def test_given_no_tick_symbols_then_nothing_is_subscribed_and_there_is_no_ticks_table(
    stack: Stack,
) -> None:
    stack.write_config(sim={"quote_interval": 0.01})
    proc = start_gateway(stack)
    try:
        recorder = start_recorder(stack)
        wait_caught_up(stack)
        tables = sql(
            stack, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'ticks'"
        )
        assert tables == [[0]]
        ack = stack.call(protocol.SubscribeQuotes(stock_codes=[OTHER], client_id="probe"))
        assert ack.subscribed == [OTHER]
        assert recorder.stop() == 0
    finally:
        proc.stop()
