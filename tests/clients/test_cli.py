"""The `qmtbus` command, run as a real subprocess against a real gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from qmtbus import protocol
from qmtbus.config import SimConfig
from qmtbus.gateway.ashare import round_price
from qmtbus.gateway.broker.sim.market import initial_price
from tests.support import NOBODY, Proc, Stack, start_gateway, wait_for

CODE = "600000.SH"


def last_price() -> float:
    return round_price(initial_price(SimConfig().seed, CODE), 0.01)


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(
        tmp_path,
        {
            "sim": {"volatility": 0.0, "quote_interval": 0.05},
            "client": {"timeout": 1.0, "retries": 1},
        },
    )


@pytest.fixture
def gateway(stack: Stack) -> Iterator[Proc]:
    proc = start_gateway(stack)
    yield proc
    if proc.alive():
        proc.stop()


def qmtbus(
    stack: Stack | None, *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run `python -m qmtbus.cli [--config FILE] ARGS`; never a traceback, whatever happens."""
    config = ["--config", str(stack.config_path)] if stack is not None else []
    done = subprocess.run(
        [sys.executable, "-m", "qmtbus.cli", *config, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def parsed(done: subprocess.CompletedProcess[str], type: Any = Any) -> Any:
    assert done.returncode == 0, done.stderr
    return msgspec.json.decode(done.stdout, type=type)


def test_given_gateway_when_status_then_a_readable_table_says_ready(
    stack: Stack, gateway: Proc
) -> None:
    done = qmtbus(stack, "status")
    assert done.returncode == 0, done.stderr
    rows = dict(line.split(None, 1) for line in done.stdout.splitlines())
    assert rows["state"] == "ready"
    assert rows["broker"] == "sim"
    assert rows["trading"] == "active"


def test_given_json_flag_before_or_after_the_command_then_status_parses_back(
    stack: Stack, gateway: Proc
) -> None:
    before = parsed(qmtbus(stack, "--json", "status"), protocol.Status)
    after = parsed(qmtbus(stack, "status", "--json"), protocol.Status)
    assert before.state == after.state == "ready"
    assert before.epoch == after.epoch


def test_given_buy_then_json_ack_and_the_order_shows_in_orders_trades_positions_asset(
    stack: Stack, gateway: Proc
) -> None:
    ack = parsed(
        qmtbus(stack, "--json", "buy", CODE, "200", "--price", str(last_price()), "--id", "cli-1"),
        protocol.OrderAck,
    )
    assert (ack.client_order_id, ack.status, ack.duplicate) == ("cli-1", "accepted", False)

    orders = parsed(qmtbus(stack, "--json", "orders"), list[protocol.Order])
    assert [o.order_id for o in orders if o.order_remark == "cli-1"] == [ack.order_id]
    table = qmtbus(stack, "orders").stdout
    assert "cli-1" in table and CODE in table and "buy" in table
    header = table.splitlines()[0].split()
    assert header[:4] == ["time", "order_id", "client_order_id", "code"]

    trades = parsed(qmtbus(stack, "--json", "trades"), list[protocol.Trade])
    assert sum(t.traded_volume for t in trades if t.order_id == ack.order_id) == 200
    positions = parsed(qmtbus(stack, "--json", "positions"), list[protocol.Position])
    assert [p.volume for p in positions if p.stock_code == CODE] == [200]
    assert CODE in qmtbus(stack, "positions").stdout
    asset = parsed(qmtbus(stack, "--json", "asset"), protocol.AssetReply)
    assert asset.market_value > 0
    assert "cash" in qmtbus(stack, "asset").stdout


def test_given_resting_order_when_cancel_by_client_order_id_then_exit_0_and_order_not_open(
    stack: Stack, gateway: Proc
) -> None:
    low = str(round_price(last_price() * 0.98, 0.01))
    assert qmtbus(stack, "buy", CODE, "100", "--price", low, "--id", "rest-1").returncode == 0
    open_orders = parsed(qmtbus(stack, "--json", "orders", "--open"), list[protocol.Order])
    assert [o.order_remark for o in open_orders] == ["rest-1"]
    cancel = parsed(qmtbus(stack, "--json", "cancel", "rest-1"), protocol.CancelAck)
    assert cancel.order_id == open_orders[0].order_id
    by_order_id = qmtbus(stack, "cancel", str(cancel.order_id))
    assert by_order_id.returncode in (0, 1)  # sent again, or refused as already final


def test_given_halted_gateway_when_buy_then_exit_1_with_one_line_naming_risk_denied(
    stack: Stack, gateway: Proc
) -> None:
    halted = parsed(qmtbus(stack, "--json", "halt", "maintenance"), protocol.Status)
    assert (halted.trading, halted.trading_reason) == ("halted", "maintenance")
    done = qmtbus(stack, "buy", CODE, "100", "--price", str(last_price()))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: the gateway refused:")
    assert "RISK_DENIED" in done.stderr
    assert parsed(qmtbus(stack, "--json", "reduce-only"), protocol.Status).trading == "reduce_only"
    assert parsed(qmtbus(stack, "--json", "resume", "done"), protocol.Status).trading == "active"


def test_given_note_with_json_data_then_its_seq_is_printed_and_bad_json_is_a_usage_error(
    stack: Stack, gateway: Proc
) -> None:
    ack = parsed(qmtbus(stack, "--json", "note", "signal", '{"side": "buy"}'))
    assert ack["type"] == "note_ack" and ack["seq"] > 0
    assert "published note signal as seq" in qmtbus(stack, "note", "signal").stdout
    bad = qmtbus(stack, "note", "signal", "[1, 2]")
    assert bad.returncode == 2 and "JSON object" in bad.stderr


def test_given_tail_with_count_and_json_then_lines_parse_back_as_events_in_seq_order(
    stack: Stack, gateway: Proc
) -> None:
    done = qmtbus(stack, "tail", "--type", "heartbeat", "--count", "2", "--json")
    assert done.returncode == 0, done.stderr
    events = [protocol.event_json_decoder.decode(line) for line in done.stdout.splitlines()]
    assert [type(e) for e in events] == [protocol.HeartbeatEvent] * 2
    assert events[0].seq < events[1].seq


def test_given_tail_from_an_earlier_position_then_replayed_events_print_as_lines(
    stack: Stack, gateway: Proc
) -> None:
    status = parsed(qmtbus(stack, "--json", "status"), protocol.Status)
    qmtbus(stack, "note", "replayed", '{"n": 1}')
    done = qmtbus(
        stack,
        "tail",
        "--type",
        "note",
        "--count",
        "1",
        "--from",
        f"{status.epoch}:{status.last_seq}",
    )
    assert done.returncode == 0, done.stderr
    assert " note " in done.stdout and "topic=replayed" in done.stdout


def test_given_quote_and_ticks_then_latest_tick_and_streamed_ticks_parse_back(
    stack: Stack, gateway: Proc
) -> None:
    [tick] = parsed(qmtbus(stack, "--json", "quote", CODE), list[protocol.TickEvent])
    assert tick.stock_code == CODE and tick.lastPrice == last_price()
    table = qmtbus(stack, "quote", CODE).stdout
    assert table.splitlines()[0].split()[:3] == ["code", "time", "last"] and CODE in table
    done = qmtbus(stack, "ticks", CODE, "--count", "2", "--json")
    ticks = [protocol.event_json_decoder.decode(line) for line in done.stdout.splitlines()]
    assert [(type(t), t.stock_code) for t in ticks] == [(protocol.TickEvent, CODE)] * 2


def test_given_ticks_held_by_a_client_when_tail_type_tick_then_they_print_and_nothing_is_held(
    stack: Stack, gateway: Proc
) -> None:
    other = "000001.SZ"
    held = stack.call(protocol.SubscribeQuotes(stock_codes=[CODE, other], client_id="strategy"))
    assert held.subscribed == sorted([CODE, other])

    done = qmtbus(stack, "--json", "tail", "--type", "tick", "--code", CODE, "--count", "3")
    assert done.returncode == 0, done.stderr
    ticks = [protocol.event_json_decoder.decode(line) for line in done.stdout.splitlines()]
    assert [(type(t), t.stock_code) for t in ticks] == [(protocol.TickEvent, CODE)] * 3
    every = qmtbus(stack, "tail", "--type", "tick", "--count", "4").stdout.splitlines()
    assert len(every) == 4 and all(CODE in line or other in line for line in every)
    # Only listened: the strategy is still the only holder, and tail released nothing.
    again = stack.call(protocol.SubscribeQuotes(stock_codes=[other], client_id="probe"))
    assert again.subscribed == sorted([CODE, other])

    mixed = qmtbus(stack, "tail", "--type", "tick", "--type", "trade")
    assert mixed.returncode == 2 and "on their own" in mixed.stderr
    assert qmtbus(stack, "tail", "--code", CODE).returncode == 2


def test_given_ping_then_pong_with_round_trip(stack: Stack, gateway: Proc) -> None:
    done = qmtbus(stack, "ping")
    assert done.returncode == 0 and done.stdout.startswith(f"pong from {stack.commands_address}")
    assert parsed(qmtbus(stack, "ping", "--json"))["round_trip_us"] > 0


def test_given_config_in_environment_then_it_is_used_without_the_flag(
    stack: Stack, gateway: Proc
) -> None:
    done = qmtbus(None, "--json", "status", env={"QMTBUS_CONFIG": str(stack.config_path)})
    assert parsed(done, protocol.Status).state == "ready"


def test_given_no_gateway_then_exit_3_and_one_sentence_asking_if_it_runs(stack: Stack) -> None:
    stack.nobody_listens()
    done = qmtbus(stack, "status")
    assert done.returncode == 3
    assert done.stderr == (
        f"error: gateway not reachable at {stack.commands_address} — is it running?\n"
    )


def test_given_recorder_when_sql_then_rows_print_as_a_table_and_as_json(
    stack: Stack, gateway: Proc
) -> None:
    recorder = Proc("recorder", stack).start()
    try:
        seq = int(parsed(qmtbus(stack, "--json", "note", "recorded", '{"k": 7}'))["seq"])
        sql = f"SELECT topic, seq FROM notes WHERE seq = {seq}"

        def recorded() -> Any:
            done = qmtbus(stack, "--json", "sql", sql)
            if done.returncode != 0:
                assert done.returncode == 3 and recorder.alive(), done.stderr + recorder.log()
                return None
            result = msgspec.json.decode(done.stdout, type=protocol.SqlResult)
            return result if result.rows else None

        result = wait_for(recorded, 30, "the recorder to store the note")
        assert result.columns == ["topic", "seq"] and result.rows == [["recorded", seq]]
        table = qmtbus(stack, "sql", sql).stdout.splitlines()
        assert table[0].split() == ["topic", "seq"] and table[2].split() == ["recorded", str(seq)]
        bad = qmtbus(stack, "sql", "SELECT * FROM no_such_table")
        assert bad.returncode == 1 and bad.stderr.startswith("error: the recorder refused:")
        assert bad.stderr.count("\n") == 1
    finally:
        recorder.stop()


def test_given_no_recorder_when_sql_then_exit_3_naming_the_recorder(stack: Stack) -> None:
    stack.nobody_listens()
    done = qmtbus(stack, "sql", "SELECT 1")
    assert done.returncode == 3
    assert done.stderr.startswith(f"error: recorder not reachable at {stack.query_address}")


def test_given_bad_config_then_exit_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway]\nno_such_key = 1\n")
    done = qmtbus(None, "--config", str(bad), "status")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no_such_key" in done.stderr


def test_given_usage_errors_then_exit_2(stack: Stack) -> None:
    assert qmtbus(stack, "buy", CODE).returncode == 2  # no volume
    assert qmtbus(stack, "frobnicate").returncode == 2
    no_price = qmtbus(stack, "buy", CODE, "100")
    assert no_price.returncode == 2 and "--price" in no_price.stderr
    assert qmtbus(stack, "tail", "--from", "nonsense").returncode == 2


def test_given_keys_new_then_key_files_are_written(stack: Stack, tmp_path: Path) -> None:
    done = qmtbus(stack, "keys", "new", "strategy1", "--dir", str(tmp_path / "keys"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "keys" / "strategy1.key").exists()
    assert (tmp_path / "keys" / "strategy1.key_secret").exists()


def test_given_main_called_in_process_then_it_returns_the_exit_code(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    from qmtbus.cli import main

    assert main(["--config", str(stack.config_path), "--help"]) == 0
    assert main(["--config", str(stack.config_path), "sql"]) == 2
    unreachable = NOBODY
    stack.write_config(gateway={"commands_address": unreachable})
    assert main(["--config", str(stack.config_path), "ping"]) == 3
    assert unreachable in capsys.readouterr().err
