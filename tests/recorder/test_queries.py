"""Analysts query while the recorder runs: the SQL endpoint and the snapshot file."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from qmtbus import GatewayError, RecorderClient, protocol
from tests.recorder.helpers import (
    NoteSender,
    assert_epoch_complete,
    send_notes,
    sql,
    start_recorder,
    status,
    wait_caught_up,
)
from tests.support import Proc, Stack, wait_for


def test_given_events_when_queried_then_rows_come_back_with_shanghai_iso_times(
    stack: Stack, gateway: Proc
) -> None:
    recorder = start_recorder(stack)
    send_notes(stack, 10, run="times")
    wait_caught_up(stack)
    with RecorderClient(stack.query_address) as client:
        result = client.sql("SELECT seq, ts, time, type FROM events ORDER BY seq LIMIT 3")
    assert result.columns == ["seq", "ts", "time", "type"]
    assert result.types[2] == "TIMESTAMP WITH TIME ZONE"
    seq, ts, time_text, _ = result.rows[0]
    assert seq == 1 and time_text.endswith("+08")
    shown = dt.datetime.fromisoformat(time_text)
    assert abs(shown.timestamp() - ts / 1e9) < 1e-5  # the same instant as the raw ns
    assert recorder.stop() == 0


def test_given_bad_sql_then_bad_request_carries_duckdbs_message(
    stack: Stack, gateway: Proc
) -> None:
    recorder = start_recorder(stack)
    with RecorderClient(stack.query_address) as client:
        with pytest.raises(GatewayError) as err:
            client.sql("SELEC count(*) FROM events")
        assert err.value.code == protocol.BAD_REQUEST
        assert "syntax error" in err.value.message
        with pytest.raises(GatewayError) as err:
            client.sql("SELECT nope FROM events")
        assert err.value.code == protocol.BAD_REQUEST and "nope" in err.value.message
        assert client.status().last_seq >= 0  # the endpoint is still there
    assert recorder.stop() == 0


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM events",
        "INSERT INTO notes (epoch) VALUES ('x')",
        "CREATE TABLE mine (a INTEGER)",
        "DROP VIEW fills",
        "UPDATE progress SET last_seq = 0",
        "COPY events TO '{out}'",
        "ATTACH '{out}' AS other",
        "SET threads = 1",
        "SELECT 1; DELETE FROM events",
        "CHECKPOINT",
    ],
)
def test_given_a_statement_that_writes_then_it_is_refused_and_nothing_changes(
    stack: Stack, gateway: Proc, statement: str
) -> None:
    recorder = start_recorder(stack)
    wait_caught_up(stack)
    before = sql(stack, "SELECT count(*) FROM events")
    out = stack.dir / "leak.csv"
    with RecorderClient(stack.query_address) as client, pytest.raises(GatewayError) as err:
        client.sql(statement.format(out=out))
    assert err.value.code == protocol.BAD_REQUEST
    assert not out.exists()
    assert sql(stack, "SELECT count(*) FROM events")[0][0] >= before[0][0]
    assert sql(stack, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'mine'")[
        0
    ] == [0]
    assert recorder.stop() == 0


def test_given_a_json_request_then_the_reply_is_json(stack: Stack, gateway: Proc) -> None:
    recorder = start_recorder(stack)
    sock: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(stack.query_address)
    try:
        sock.send(b'{"type": "sql", "sql": "SELECT 42 AS answer, 1.5::DECIMAL(4,1) AS d"}')
        assert sock.poll(5000)
        raw = sock.recv()
    finally:
        sock.close()
    assert raw.startswith(b"{")
    reply = protocol.decode_recorder_reply(raw)
    assert isinstance(reply, protocol.SqlResult)
    assert reply.rows == [[42, 1.5]]
    assert recorder.stop() == 0


def test_given_more_rows_than_the_limit_then_the_result_is_truncated(
    stack: Stack, gateway: Proc
) -> None:
    recorder = start_recorder(stack)
    with RecorderClient(stack.query_address) as client:
        result = client.sql("SELECT range AS n FROM range(100)", limit=10)
        assert [r[0] for r in result.rows] == list(range(10)) and result.truncated
        assert not client.sql("SELECT 1", limit=10).truncated
    assert recorder.stop() == 0


def test_given_a_long_query_then_ingestion_keeps_committing_meanwhile(
    stack: Stack, gateway: Proc
) -> None:
    recorder = start_recorder(stack)
    epoch, _ = wait_caught_up(stack)
    answers: list[object] = []

    def slow_query() -> None:
        with RecorderClient(stack.query_address, timeout=60, retries=0) as client:
            answers.append(
                client.sql(
                    "SELECT count(*) FROM range(40000) a, range(40000) b WHERE a.range < b.range"
                )
            )

    query = threading.Thread(target=slow_query)
    started = time.monotonic()
    query.start()
    time.sleep(0.3)  # let the query get going
    before = status(stack).last_seq
    send_notes(stack, 500, run="during")
    during = wait_caught_up(stack)[1]
    still_running = query.is_alive()
    query.join(60)
    assert still_running, "the query finished too soon to show anything; make it heavier"
    assert during >= before + 500
    assert answers and answers[0].rows == [[40000 * 39999 // 2]]  # type: ignore[attr-defined]
    assert time.monotonic() - started < 60
    assert_epoch_complete(stack, epoch)
    assert recorder.stop() == 0


def test_given_heavy_writes_then_analyst_queries_answer_and_nothing_is_lost(
    stack: Stack, gateway: Proc
) -> None:
    recorder = start_recorder(stack)
    senders = [NoteSender(stack, 4000, run=f"heavy{i}", window=64).start() for i in range(2)]
    answered = 0
    queries = [
        "SELECT type, count(*) FROM events GROUP BY type",
        "SELECT * FROM orders_today",
        "SELECT count(*) FROM notes WHERE data->>'run' LIKE 'heavy%'",
        "SELECT * FROM asset_curve",
        "SELECT max(seq) FROM events",
    ]
    with RecorderClient(stack.query_address, timeout=10, retries=0) as client:
        while any(s.thread.is_alive() for s in senders):
            for q in queries:
                client.sql(q)
                answered += 1
    assert [s.join() for s in senders] == [4000, 4000]
    assert answered >= len(queries)
    epoch, _ = wait_caught_up(stack)
    assert_epoch_complete(stack, epoch)
    rows = sql(stack, "SELECT count(*) FROM notes WHERE data->>'run' LIKE 'heavy%'")
    assert rows == [[8000]]
    assert recorder.stop() == 0


def test_given_the_recorder_running_then_its_snapshot_opens_read_only_elsewhere(
    stack: Stack, gateway: Proc
) -> None:
    stack.write_config(recorder={"snapshot_interval": 0.5})
    recorder = start_recorder(stack)
    send_notes(stack, 200, run="snap")
    wait_caught_up(stack)
    snapshot = Path(stack.config()["recorder"]["snapshot_path"])

    def count_in_snapshot() -> int:
        # another process, as an analyst's duckdb CLI or notebook would be
        code = (
            "import duckdb, sys\n"
            "c = duckdb.connect(sys.argv[1], read_only=True)\n"
            "print(c.execute(\"SELECT count(*) FROM notes WHERE data->>'run' LIKE 'snap%'\")"
            ".fetchall()[0][0])\n"
            "print(c.execute('SELECT count(*) FROM orders_today').fetchall()[0][0])\n"
            "n, top = c.execute('SELECT count(*), max(seq) FROM events').fetchall()[0]\n"
            "assert n == (top or 0), (n, top)  # a whole, gap-free copy\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, str(snapshot)], capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stderr
        return int(out.stdout.split()[0])

    wait_for(lambda: snapshot.exists() and count_in_snapshot() == 200, 20, "first snapshot")
    send_notes(stack, 100, run="snap2")
    wait_for(lambda: count_in_snapshot() == 300, 20, "refreshed snapshot")
    assert recorder.alive()
    assert recorder.stop() == 0
