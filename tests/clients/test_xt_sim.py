"""`qmtbus xt run --sim`: unchanged xtquant scripts against a private in-process simulated
miniQMT, no gateway running (real subprocesses; the simulator is the broker)."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from qmtbus.config import SimConfig
from qmtbus.gateway.broker.sim import terminal
from tests.clients.xt_support import EXAMPLES, QMTBUS_XT_RUN, SIM, XT_RUN, Script
from tests.support import Stack, wait_for

SIM_RUN = (*XT_RUN, "--sim")
QMTBUS_SIM_RUN = (*QMTBUS_XT_RUN, "--sim")
BOT = EXAMPLES / "xtquant_bot.py"
CODE = "600000.SH"
MARKETABLE = "11.00"  # above the 10.81 the sim opens at (seed 351): the bot's buys fill
BOOKS = re.compile(r"books in (\S+)")


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(tmp_path, {"sim": SIM})  # a config file only: no gateway is started


def printed(script: Script, kind: str) -> list[list[str]]:
    return [line.split()[1:] for line in script.lines if line.split()[:1] == [kind]]


def test_given_xtquants_own_demo_with_sim_then_it_orders_cancels_and_queries_without_a_gateway(
    stack: Stack,
) -> None:
    demo = Script(stack, EXAMPLES / "xtquant_demo.py", launcher=SIM_RUN)
    try:
        demo.wait_line("query position:")
        start = demo.wait_line("demo test")
        assert demo.lines[start + 1] == "0"  # connect() found the simulator at its path
        assert "orders: 2" in demo.lines  # both of its orders placed, rest at 10.50
        assert "trades: 0" in demo.lines
        assert "last order:" in demo.lines
        demo.wait_word("54", "on_stock_order: the first order canceled")
        assert "connection lost" not in demo.lines
    finally:
        demo.stop()


def test_given_the_bot_with_sim_then_its_orders_fill_and_every_callback_comes(
    stack: Stack,
) -> None:
    bot = Script(stack, BOT, CODE, "3", "0.2", MARKETABLE, launcher=QMTBUS_SIM_RUN)
    try:
        bot.wait_line("jobs done")
        wait_for(lambda: len(printed(bot, "trade")) >= 3, 60, "three fills")
        assert bot.wait_line("start cash 1000000.0") >= 0
        responses = printed(bot, "response")
        assert sorted(r[2] for r in responses) == ["job0", "job1", "job2"]
        assert all(int(r[1]) > 0 for r in responses)  # placed, each with its order id
        trades = printed(bot, "trade")
        assert sorted(t[3] for t in trades) == ["job0", "job1", "job2"]
        assert all(t[2] == "100" for t in trades)
        wait_for(lambda: ["600000.SH", "300"] in printed(bot, "position"), 30, "300 held")
        assert "subscribe failed" not in bot.lines and "disconnected" not in bot.lines
        books = Path(next(m.group(1) for line in bot.lines if (m := BOOKS.search(line))))
        assert books.is_dir()
    finally:
        bot.stop()
    assert bot.popen.returncode == 128 + signal.SIGTERM  # stopped, its books closed
    assert not books.exists()  # the private temp folder is gone with it


def test_given_data_folder_then_a_second_run_starts_from_the_first_runs_books(
    stack: Stack, tmp_path: Path
) -> None:
    data = tmp_path / "books"
    launcher = (*SIM_RUN, "--data", str(data))
    first = Script(stack, BOT, CODE, "1", "0.1", MARKETABLE, launcher=launcher)
    try:
        first.wait_line("jobs done")
        wait_for(lambda: len(printed(first, "trade")) == 1, 60, "one fill")
    finally:
        first.stop()
    second = Script(stack, BOT, CODE, "1", "0.1", MARKETABLE, launcher=launcher)
    try:
        line = second.lines[second.wait_line("start cash")]
        assert float(line.split()[-1]) < 1_000_000.0  # the first run's buy was paid for
        second.wait_line("jobs done")
        wait_for(lambda: len(printed(second, "trade")) == 1, 60, "one fill")
        responses = printed(second, "response")
        assert [int(r[1]) for r in responses] == [2]  # the book's second order
    finally:
        second.stop()


def test_given_another_account_then_the_scripts_subscribe_fails_as_on_miniqmt(
    stack: Stack,
) -> None:
    launcher = (*SIM_RUN, "--account", "OTHER01")
    bot = Script(stack, BOT, CODE, "1", "0.1", MARKETABLE, launcher=launcher)
    try:
        bot.wait_line("subscribe failed")
        assert bot.popen.wait(30) == 1
        assert any("account OTHER01" in line for line in bot.lines)
    finally:
        bot.stop()


def test_given_no_script_then_sim_run_says_so_in_one_sentence(stack: Stack) -> None:
    missing = Script(stack, stack.dir / "nope.py", launcher=SIM_RUN)
    try:
        assert missing.popen.wait(30) == 2
        missing.wait_line("no script at")
    finally:
        missing.stop()


def test_given_a_terminal_serving_any_path_then_lookup_finds_it_until_it_closes(
    tmp_path: Path,
) -> None:
    sim = terminal.SimTerminal(tmp_path, SimConfig(seed=351), "SIM0001")
    try:
        assert terminal.lookup(tmp_path / "userdata_mini") is None  # a path of its own only
        assert terminal.lookup(tmp_path) is sim
        terminal.serve_any_path(sim)
        assert terminal.lookup(r"D:\国金QMT交易端模拟\userdata_mini") is sim
    finally:
        sim.close()
    assert terminal.lookup("userdata_mini") is None
