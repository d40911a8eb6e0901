"""The `qmtbus` command, run as a real subprocess against a real gateway."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from qmtbus import protocol
from qmtbus.config import SimConfig
from qmtbus.gateway.ashare import round_price, sell_volume_error
from qmtbus.gateway.broker.sim.market import initial_price
from tests.support import NOBODY, ROOT, Proc, Stack, start_gateway, wait_for

CODE = "600000.SH"
PYTHON_START = 1.5  # a loaded machine may take this long to start the interpreter


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
    stack: Stack | None,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 30,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m qmtbus.cli [--config FILE] ARGS`; never a traceback, whatever happens."""
    config = ["--config", str(stack.config_path)] if stack is not None else []
    environ = {k: v for k, v in os.environ.items() if k != "QMTBUS_CONFIG"}
    done = subprocess.run(
        [sys.executable, "-m", "qmtbus.cli", *config, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**environ, **(env or {})},
        cwd=cwd,
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
    done = qmtbus(stack, "tail", "--type", "heartbeat", "--count", "2", "--json", "--silence", "0")
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
    done = qmtbus(stack, "ticks", CODE, "--count", "2", "--json", "--silence", "0")
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


# -- a newcomer's first hour ---------------------------------------------------------


def test_given_qmtbus_toml_in_the_current_folder_then_the_cli_uses_it_and_config_says_so(
    stack: Stack, gateway: Proc
) -> None:
    status = qmtbus(None, "--json", "status", cwd=stack.dir)
    assert parsed(status, protocol.Status).state == "ready"
    shown = qmtbus(None, "config", cwd=stack.dir)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == (
        f"# config file: {stack.config_path} (the current folder)"
    )
    assert f'commands_address = "{stack.commands_address}"' in shown.stdout
    as_json = parsed(qmtbus(None, "--json", "config", cwd=stack.dir))
    assert as_json["file"] == str(stack.config_path)
    assert as_json["config"]["gateway"]["commands_address"] == stack.commands_address
    # --config, then $QMTBUS_CONFIG, win over the file in the folder
    elsewhere = stack.dir / "elsewhere.toml"
    elsewhere.write_text('[gateway]\naccount_id = "FROM_ENV"\n')
    env = {"QMTBUS_CONFIG": str(elsewhere)}
    from_env = parsed(qmtbus(None, "--json", "config", cwd=stack.dir, env=env))
    assert from_env["source"] == "$QMTBUS_CONFIG"
    assert from_env["config"]["gateway"]["account_id"] == "FROM_ENV"
    flag = parsed(qmtbus(stack, "--json", "config", cwd=stack.dir, env=env))
    assert flag["source"] == "--config" and flag["file"] == str(stack.config_path)


def test_given_nothing_running_then_every_command_says_so_within_2_s_with_exit_3(
    stack: Stack,
) -> None:
    stack.nobody_listens()
    stack.write_config(client={"timeout": 5.0, "retries": 3})  # the defaults: 20 s of retries
    for args in (
        ["status"],
        ["buy", CODE, "100", "--price-type", "5"],
        ["tail", "--count", "1"],
        ["tail", "--type", "tick"],
        ["ticks", CODE],
        ["sql", "SELECT 1"],
    ):
        started = time.monotonic()
        done = qmtbus(stack, *args)
        took = time.monotonic() - started
        assert done.returncode == 3, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and "not reachable" in done.stderr, done.stderr
        assert took < 2.0 + PYTHON_START, (args, took)


def test_given_tail_when_the_gateway_dies_then_one_message_and_exit_3_after_the_silence(
    stack: Stack, gateway: Proc
) -> None:
    status = parsed(qmtbus(stack, "--json", "status"), protocol.Status)
    seq = parsed(qmtbus(stack, "--json", "note", "before-death"))["seq"]
    position = f"{status.epoch}:{status.last_seq}"
    cli = [sys.executable, "-m", "qmtbus.cli", "--config", str(stack.config_path)]
    with subprocess.Popen(
        [*cli, "tail", "--type", "note", "--silence", "4", "--from", position],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as tail:
        assert tail.stdout is not None and tail.stderr is not None
        line = tail.stdout.readline()
        assert f"{seq}  note" in line, line + tail.stderr.read()  # it listens
        gateway.kill()
        assert tail.wait(30) == 3
        err = tail.stderr.read()
        assert err.count("\n") == 1 and "for 4.0 s" in err and "is it running?" in err, err


def test_given_cancel_of_a_filled_or_an_unknown_order_then_exit_1_saying_why(
    stack: Stack, gateway: Proc
) -> None:
    filled = parsed(
        qmtbus(stack, "--json", "buy", CODE, "100", "--price-type", "5", "--id", "done-1"),
        protocol.OrderAck,
    )
    assert filled.status == "accepted"
    wait_for(
        lambda: any(
            o.order_remark == "done-1" and o.order_status == protocol.ORDER_SUCCEEDED
            for o in parsed(qmtbus(stack, "--json", "orders"), list[protocol.Order])
        ),
        20,
        "the market order to fill",
    )
    final = qmtbus(stack, "cancel", "done-1")
    assert final.returncode == 1 and final.stderr.startswith("error: order done-1 was not")
    assert "final" in final.stderr
    unknown = qmtbus(stack, "cancel", "99999")
    assert unknown.returncode == 1 and "not found" in unknown.stderr
    nobody = qmtbus(stack, "cancel", "no-such-order")
    assert nobody.returncode == 1 and "no order with client_order_id" in nobody.stderr


def test_given_typos_then_codes_are_normalised_or_refused_in_the_traders_words(
    stack: Stack, gateway: Proc
) -> None:
    lower = parsed(qmtbus(stack, "--json", "buy", "600000.sh", "100", "--price-type", "5"))
    assert lower["status"] == "accepted"
    for typo in ("600000", "60000.SH", "600000.XX"):
        done = qmtbus(stack, "buy", typo, "100", "--price-type", "5")
        assert done.returncode == 2 and "stock codes look like 600000.SH" in done.stderr
    unknown = qmtbus(stack, "buy", "000001.SH", "100", "--price-type", "5")
    assert unknown.returncode == 1 and "unknown stock code 000001.SH" in unknown.stderr
    for args, rule in (
        (["0", "--price", "1"], "below 1 share"),
        (["ten", "--price", "1"], "not a whole number of shares"),
        (["100", "--price", "-1"], "must be above 0"),
        (["100", "--price", "cheap"], "not a number"),
        (["100", "--price-type", "7"], "price type '7' is not one xtquant knows"),
    ):
        done = qmtbus(stack, "buy", CODE, *args)
        assert done.returncode == 2 and rule in done.stderr, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and "Expected" not in done.stderr


def test_given_price_as_a_quote_level_then_the_limit_is_that_price_of_the_live_quote(
    stack: Stack, gateway: Proc
) -> None:
    [tick] = parsed(qmtbus(stack, "--json", "quote", CODE), list[protocol.TickEvent])
    ack = parsed(
        qmtbus(stack, "--json", "buy", CODE, "100", "--price", "bid5", "--id", "lvl-1"),
        protocol.OrderAck,
    )
    assert ack.status == "accepted"
    [order] = [
        o
        for o in parsed(qmtbus(stack, "--json", "orders"), list[protocol.Order])
        if o.order_remark == "lvl-1"
    ]
    assert order.price == tick.bidPrice[4] < tick.lastPrice  # volatility 0: a resting bid
    assert qmtbus(stack, "cancel", "lvl-1").returncode == 0


def test_given_tail_from_a_position_the_gateway_never_had_then_exit_2_naming_the_real_one(
    stack: Stack, gateway: Proc
) -> None:
    status = parsed(qmtbus(stack, "--json", "status"), protocol.Status)
    done = qmtbus(stack, "tail", "--from", "bogus:1")
    assert done.returncode == 2 and "holds no such position" in done.stderr
    assert f"{status.epoch}:" in done.stderr


def test_given_nobody_holds_ticks_when_tail_type_tick_then_it_says_how_to_subscribe(
    stack: Stack, gateway: Proc
) -> None:
    done = qmtbus(stack, "tail", "--type", "tick")
    assert done.returncode == 2
    assert "no client holds a quote subscription" in done.stderr
    assert "qmtbus ticks 600000.SH" in done.stderr


def test_given_sell_150_of_500_then_the_lot_rule_is_named_without_odd_shares() -> None:
    message = sell_volume_error(CODE, 150, 500)
    assert message == "sell in lots of 100 shares: 150 is not a multiple of 100"
    assert "all 50 odd shares" in (sell_volume_error(CODE, 130, 550) or "")


def test_given_a_running_scheduler_then_jobs_shows_next_run_last_outcome_and_stale_config(
    stack: Stack, gateway: Proc
) -> None:
    marker = stack.dir / "ran.txt"
    every_second = {
        "name": "every_second",
        "cron": "* * * * * *",
        "callable": "tests.scheduler.jobs_for_tests:mark",
        "args": {"marker": str(marker)},
        "trading_days_only": False,
    }
    stack.write_config(scheduler={"jobs": [every_second], "after_close_snapshot": False})
    before = qmtbus(stack, "jobs")
    assert before.returncode == 0 and "the scheduler has not run with this config" in before.stdout
    scheduler = Proc("scheduler", stack, env={"PYTHONPATH": str(ROOT)}).start()
    try:

        def ran() -> Any:
            rows = {r["job"]: r for r in parsed(qmtbus(stack, "--json", "jobs"))}
            return rows if rows["every_second"]["outcome"] == "ok" else None

        rows = wait_for(ran, 30, "the job's first run")
        assert rows["every_second"]["next_run"] and rows["every_second"]["last_run"]
        assert rows["pre_open_check"]["cron"] == "20 9 * * *"
        assert (rows["pre_open_check"]["days"], rows["every_second"]["days"]) == ("trading", "all")
        assert rows["after_close_snapshot"]["enabled"] is False
        assert "job every_second: next run 20" in scheduler.log()  # logged at start
        added = {**every_second, "name": "added_later"}
        stack.write_config(scheduler={"jobs": [every_second, added]})
        table = qmtbus(stack, "jobs").stdout
        [line] = [line for line in table.splitlines() if line.startswith("added_later")]
        assert "restart it to pick up job changes" in line
    finally:
        scheduler.stop()


def test_given_a_snapshot_then_qmtbus_duckdb_runs_sql_on_it_with_the_installed_duckdb(
    stack: Stack, gateway: Proc
) -> None:
    recorder = Proc("recorder", stack).start()
    seq = parsed(qmtbus(stack, "--json", "note", "analyst"))["seq"]
    sql = f"SELECT topic FROM notes WHERE seq = {seq}"
    try:

        def in_snapshot() -> subprocess.CompletedProcess[str] | None:
            done = qmtbus(stack, "duckdb", "-c", sql)
            return done if done.returncode == 0 and "analyst" in done.stdout else None

        one = wait_for(in_snapshot, 60, "the note in the snapshot")
    finally:
        recorder.stop()
    assert one.stdout.splitlines()[0].strip() == "topic" and one.stderr == ""
    shell = subprocess.run(
        [sys.executable, "-m", "qmtbus.cli", "--config", str(stack.config_path), "duckdb"],
        input="SELECT\n 41 + 1 AS answer;\n.tables\nSELECT nope;\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shell.returncode == 0, shell.stderr
    assert "answer" in shell.stdout and "42" in shell.stdout and "orders_today" in shell.stdout
    assert shell.stderr.startswith("error: ") and "nope" in shell.stderr
    missing = qmtbus(stack, "duckdb", str(stack.dir / "none.duckdb"))
    assert missing.returncode == 2 and "no snapshot at" in missing.stderr


def test_given_ticks_when_the_gateway_dies_then_one_message_and_exit_3_after_the_silence(
    stack: Stack, gateway: Proc
) -> None:
    stack.write_config(client={"timeout": 5.0, "retries": 3})  # the defaults: 20 s of retries
    cli = [sys.executable, "-m", "qmtbus.cli", "--config", str(stack.config_path)]
    with subprocess.Popen(
        [*cli, "ticks", CODE, "--silence", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as ticks:
        assert ticks.stdout is not None and ticks.stderr is not None
        line = ticks.stdout.readline()
        assert CODE in line, line + ticks.stderr.read()  # ticking
        gateway.kill()
        killed = time.monotonic()
        assert ticks.wait(30) == 3
        assert time.monotonic() - killed < 3 + 3 + PYTHON_START  # the silence, then out
        err = ticks.stderr.read()
        assert err.count("\n") == 1 and "no tick" in err and "for 3 s" in err, err
