"""Faults: junk on the bus, a failing disk, a locked database file, a bad config."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import zmq

from qmtbus import endpoints, protocol
from tests.recorder.helpers import (
    assert_epoch_complete,
    send_notes,
    sql,
    start_recorder,
    status,
    wait_caught_up,
    wait_recorded,
)
from tests.support import ANY_PORT, Proc, Stack, wait_for

EPOCH = "20261124T010000Z-test00"


def note(seq: int, **data: object) -> bytes:
    return protocol.msgpack_encoder.encode(
        protocol.NoteEvent(account_id="T1", epoch=EPOCH, seq=seq, ts=protocol.now_ns(), data=data)
    )


def test_given_junk_and_unknown_events_then_they_go_to_bad_events_and_recording_goes_on(
    stack: Stack,
) -> None:
    # The test plays the gateway's publishing side: it binds a real PUB socket at
    # the configured events address, so the recorder subscribes to it exactly as to
    # a gateway; nothing answers commands, so the stream must be gap-free by itself.
    stack.write_config(client={"timeout": 0.5})
    pub: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    stack.nobody_listens("gateway")
    stack.pin("gateway", {"events": endpoints.bind(pub, ANY_PORT)})
    recorder = start_recorder(stack)
    try:
        first = note(1, i=1)

        def subscribed() -> bool:  # repeat seq 1 until it is in: repeats are skipped
            pub.send_multipart([b"note.T1", first])
            return status(stack).last_seq == 1

        wait_for(subscribed, 20, "recorder subscribed")
        unknown = msgspec.msgpack.encode(
            {"type": "margin_call", "epoch": EPOCH, "seq": 2, "ts": 5, "account_id": "T1"}
        )
        invalid = msgspec.msgpack.encode(
            {"type": "order", "epoch": EPOCH, "seq": 3, "ts": 6, "order_id": "not a number"}
        )
        for topic, payload in [
            (b"note.T1", b"\xc1 not msgpack at all"),
            (b"note.T1", msgspec.msgpack.encode([1, 2, 3])),
            (b"note.T1", msgspec.msgpack.encode({"type": "note", "seq": 9})),  # no epoch
            (b"margin_call.T1", unknown),
            (b"order.T1", invalid),
            (b"note.T1", note(4, i=4)),
            (b"note.T1", note(4, i=999)),  # redelivered seq 4 with other content
            (b"margin_call.T1", unknown),  # and seq 2 again
        ]:
            pub.send_multipart([topic, payload])
        wait_for(lambda: status(stack).bad_events >= 5, 10, "bad events recorded")
        wait_recorded(stack, EPOCH, 4)
        reasons = [r[0] for r in sql(stack, "SELECT reason FROM bad_events ORDER BY received_at")]
        assert len(reasons) == 5, reasons
        assert reasons[0].startswith("undecodable")
        assert any("unknown event type 'margin_call'" in r for r in reasons)
        assert any(r.startswith("invalid order event") for r in reasons)
        raw = sql(stack, "SELECT payload FROM bad_events ORDER BY received_at LIMIT 1")[0][0]
        assert raw == b"\xc1 not msgpack at all"  # kept byte for byte
        # the unknown and invalid events still take their seq in `events`: no hole
        assert_epoch_complete(stack, EPOCH)
        assert sql(stack, "SELECT seq, type FROM events ORDER BY seq") == [
            [1, "note"],
            [2, "margin_call"],
            [3, "order"],
            [4, "note"],
        ]
        # the redelivered seq 4 changed nothing
        assert sql(stack, "SELECT data->>'i' FROM notes WHERE seq = 4") == [["4"]]
        assert recorder.alive()
        assert recorder.stop() == 0
    finally:
        pub.close()


def test_given_a_write_failure_then_one_log_line_retries_and_nothing_is_lost(
    stack: Stack, gateway: Proc
) -> None:
    stack.write_config(recorder={"write_retry_seconds": 0.2})
    recorder = start_recorder(stack)
    send_notes(stack, 300, run="before")
    epoch, _ = wait_caught_up(stack)
    # A file-size limit on the running recorder: every write past it fails with
    # EFBIG, as on a full disk. Nothing in the recorder is told about it.
    data = Path(stack.config()["recorder"]["database"])
    sizes = [p.stat().st_size for p in (data.with_name(data.name + ".wal"), recorder.log_path)]
    limit = max(sizes) + 32 * 1024
    _, hard = resource.prlimit(recorder.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(recorder.pid, resource.RLIMIT_FSIZE, (limit, hard))
    try:
        send_notes(stack, 3000, run="during")
        wait_for(lambda: "cannot write to" in recorder.log(), 20, "the write error in the log")
        stuck = status(stack)
        assert stuck.last_seq < stack.call(protocol.GetStatus()).last_seq
        assert sql(stack, "SELECT 1") == [[1]]  # analysts are still served
    finally:
        resource.prlimit(recorder.pid, resource.RLIMIT_FSIZE, (hard, hard))
    wait_caught_up(stack)
    assert_epoch_complete(stack, epoch)
    rows = sql(stack, "SELECT data->>'run', count(*) FROM notes GROUP BY 1 ORDER BY 1")
    assert rows == [["before", 300], ["during", 3000]]
    log = recorder.log()
    assert log.count("cannot write to") == 1, log  # one clear line, not one per retry
    assert "works again; nothing was lost" in log
    assert recorder.stop() == 0


def test_given_the_database_locked_by_another_process_then_one_sentence_and_exit_2(
    stack: Stack,
) -> None:
    database = Path(stack.config()["recorder"]["database"])
    database.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
            " time.sleep(60)",
            str(database),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        recorder = Proc("recorder", stack).start()
        assert recorder.wait_exit(30) == 2
        lines = recorder.log().strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("error: the DuckDB file ") and "locked by another" in lines[0]
        assert f"PID {holder.pid}" in lines[0]
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_given_a_query_address_beyond_loopback_then_it_refuses_to_start(stack: Stack) -> None:
    stack.write_config(recorder={"query_address": "tcp://0.0.0.0:17103"})
    recorder = Proc("recorder", stack).start()
    assert recorder.wait_exit(30) == 2
    log = recorder.log().strip()
    assert log.startswith("error: recorder.query_address") and "\n" not in log


def test_given_an_unknown_config_key_then_error_sentence_and_exit_2(stack: Stack) -> None:
    stack.write_config(recorder={"batch_size": 5})
    recorder = Proc("recorder", stack).start()
    assert recorder.wait_exit(30) == 2
    assert recorder.log().strip().startswith("error: ") and "recorder.batch_size" in recorder.log()
