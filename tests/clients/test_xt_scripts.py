"""xtquant's own demo and the seed-style bot, unchanged, trading through a real gateway
with `qmtbus xt run` (real processes; only the broker is simulated)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from qmtbus import protocol
from tests.clients.xt_support import EXAMPLES, QMTBUS_XT_RUN, SIM, XT_RUN, Script
from tests.support import Proc, Stack, start_gateway, wait_for, wait_ready


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    # a short client timeout and no retry inside the client: the bridge's own resending
    # (same client_order_id until the gateway answers) carries the script over restarts
    return Stack(tmp_path, {"sim": SIM, "client": {"timeout": 1.0, "retries": 0}})


@pytest.fixture
def gateway(stack: Stack) -> Iterator[Proc]:
    proc = start_gateway(stack)
    yield proc
    proc.stop()


def test_given_xtquants_own_demo_then_it_trades_through_the_gateway(
    stack: Stack, gateway: Proc
) -> None:
    demo = Script(stack, EXAMPLES / "xtquant_demo.py")
    try:
        demo.wait_line("query position:")
        start = demo.wait_line("demo test")
        assert demo.lines[start + 1 : start + 3] == ["0", "0"]  # connect, subscribe

        # The demo's prints and its callbacks' (on xtquant's push thread) interleave, down
        # to the character, as they do on miniQMT: what it did is read from the gateway.
        def demo_orders() -> list[protocol.Order]:
            orders: protocol.OrdersReply = stack.call(protocol.QueryOrders())
            return [o for o in orders.orders if o.strategy_name == "strategy_name"]

        def settled() -> list[protocol.Order] | None:
            # the cancel's outcome reaches the broker's book a moment after the demo asks
            placed = demo_orders()
            first = min(placed, key=lambda o: o.order_id, default=None)
            done = first is not None and first.order_status == protocol.ORDER_CANCELED
            return placed if done else None

        placed = wait_for(settled, 20, "the demo's first order cancelled")
        assert len(placed) == 2, placed
        # each order got a client_order_id of its own, which the broker holds as its remark
        assert all(o.client_order_id.startswith("xt") for o in placed)
        assert len({o.client_order_id for o in placed}) == 2
        first, second = sorted(placed, key=lambda o: o.order_id)
        assert first.order_status == protocol.ORDER_CANCELED  # cancel_order_stock went through
        assert second.order_status == protocol.ORDER_REPORTED  # rests at 10.50 < 10.81
        # on_stock_order called with the cancel: print(code, status, sysid)
        demo.wait_word(str(protocol.ORDER_CANCELED), "on_stock_order with status 54")
        assert "query position:" in demo.lines  # every query answered
    finally:
        demo.stop()


BOT = EXAMPLES / "xtquant_bot.py"
CODE = "600000.SH"
MARKETABLE = "11.00"  # above the 10.81 the sim opens at: the bot's buys fill


def bot_orders(stack: Stack) -> list[protocol.Order]:
    orders: protocol.OrdersReply = stack.call(protocol.QueryOrders())
    return [o for o in orders.orders if o.strategy_name == "seedbot"]


def printed(script: Script, kind: str) -> list[list[str]]:
    return [line.split()[1:] for line in script.lines if line.split()[:1] == [kind]]


def test_given_the_seed_style_bot_then_its_jobs_orders_are_placed_filled_and_reported(
    stack: Stack, gateway: Proc
) -> None:
    bot = Script(stack, BOT, CODE, "3", "0.2", MARKETABLE, launcher=QMTBUS_XT_RUN)
    try:
        bot.wait_line("jobs done")
        wait_for(lambda: len(printed(bot, "trade")) >= 3, 60, "three fills")
        placed = bot_orders(stack)
        assert len(placed) == 3
        assert bot.wait_line("start cash 1000000.0") >= 0
        responses = printed(bot, "response")
        assert sorted(r[2] for r in responses) == ["job0", "job1", "job2"]  # its own remarks
        assert {int(r[1]) for r in responses} == {o.order_id for o in placed}
        assert {t[3] for t in printed(bot, "trade")} == {"job0", "job1", "job2"}
        assert "disconnected" not in bot.lines
    finally:
        bot.stop()


UNKNOWN = re.compile(r"\(remark '(job\d+)'\): .*outcome unknown")


def unknown_jobs(bot: Script) -> set[str]:
    """Jobs whose order the bridge said the gateway cannot know the outcome of."""
    return {m.group(1) for line in bot.lines if (m := UNKNOWN.search(line))}


def assert_each_order_once_and_every_callback(
    stack: Stack, bot: Script, orders: int, unknown: int = 0, may_be_unknown: int = 0
) -> None:
    """Every job answered once, or said to be of unknown outcome (exactly `unknown` of them,
    or up to `may_be_unknown`: the gateway cannot know whether an order whose intent it
    journaled just before a crash reached the broker, and the bridge never guesses).
    Answered means placed (order_id > 0, at the broker exactly once) or refused (-1, with
    its on_order_error: a resend that reached the restarted gateway before its broker
    was ready is refused, as miniQMT refuses orders while disconnected). Every fill is
    called back once; no on_disconnected (a restart is not a disconnection)."""
    jobs = {f"job{n}" for n in range(orders)}
    bot.wait_line("jobs done", timeout=60)

    def settled() -> bool:
        answered = {r[2] for r in printed(bot, "response")}
        return answered | unknown_jobs(bot) >= jobs

    wait_for(settled, 60, "every job answered or said unknown")
    responses = printed(bot, "response")
    not_answered = jobs - {r[2] for r in responses}
    assert not_answered <= unknown_jobs(bot), bot.output
    assert len(not_answered) == unknown if unknown else len(not_answered) <= may_be_unknown
    sent = {int(s[1]) for s in printed(bot, "sent")}
    assert len(sent) == orders and {int(r[0]) for r in responses} <= sent
    assert len(responses) == len({r[2] for r in responses}), bot.output  # each answered once
    placed_ids = sorted(int(r[1]) for r in responses if int(r[1]) > 0)
    refused = [r for r in responses if int(r[1]) == -1]
    assert len(placed_ids) + len(refused) == len(responses), bot.output
    assert len(printed(bot, "order_error")) == len(refused), bot.output
    # each placed order is at the broker exactly once, and nothing else of the bot is
    placed = bot_orders(stack)
    assert sorted(o.order_id for o in placed) == placed_ids, placed
    assert len({o.client_order_id for o in placed}) == len(placed)
    assert placed, bot.output
    trades: protocol.TradesReply = stack.call(protocol.QueryTrades())
    fills = {t.traded_id for t in trades.trades if t.strategy_name == "seedbot"}
    wait_for(lambda: {t[0] for t in printed(bot, "trade")} >= fills, 60, "every fill")
    seen = [t[0] for t in printed(bot, "trade")]
    assert sorted(seen) == sorted(fills), bot.output  # every fill called back, each once
    assert "disconnected" not in bot.lines


def test_given_the_gateway_killed_mid_script_then_no_callback_is_lost_and_no_order_sent_twice(
    stack: Stack, gateway: Proc
) -> None:
    orders = 6
    bot = Script(stack, BOT, CODE, str(orders), "0.5", MARKETABLE)
    try:
        bot.wait_line("sent 1")
        gateway.kill()  # kill -9, between two of the bot's orders
        bot.wait_line("sent 2")  # sent while no gateway runs: resent until one answers
        restarted = start_gateway(stack)
        try:
            # the order in flight at the kill may have its intent journaled and no broker
            # call: unknown for the day, said and never answered
            assert_each_order_once_and_every_callback(stack, bot, orders, may_be_unknown=1)
        finally:
            restarted.stop()
    finally:
        bot.stop()


@pytest.mark.parametrize(
    ("failpoint", "unknown"),
    [
        # the intent is journaled, the broker never called: the gateway cannot prove the
        # call did not go out, so the order stays unknown for the day and is never answered
        ("intent_written", 1),
        ("broker_called", 0),
        ("events_journaled", 0),
        ("events_published", 0),
        ("order_replied", 0),
    ],
)
def test_given_the_gateway_crashing_at_a_boundary_of_an_order_then_the_script_loses_nothing(
    stack: Stack, failpoint: str, unknown: int
) -> None:
    """The gateway crashes (SIGKILL of itself) at each named boundary of the bot's second
    order, and restarts: the order the script was waiting on is placed once and answered
    (or, when the gateway cannot know its outcome, left unanswered, never guessed)."""
    orders = 4
    crashing = Proc("gateway", stack, env={"QMTBUS_FAILPOINT": f"{failpoint}:2"}).start()
    wait_ready(stack, crashing)
    bot = Script(stack, BOT, CODE, str(orders), "0.3", MARKETABLE)
    try:
        crashing.wait_exit(60)
        assert f"failpoint {failpoint}: crashing" in crashing.log()
        restarted = start_gateway(stack)
        try:
            assert_each_order_once_and_every_callback(stack, bot, orders, unknown)
        finally:
            restarted.stop()
    finally:
        bot.stop()


def test_given_the_gateway_gone_for_good_then_the_script_gets_on_disconnected(
    stack: Stack, gateway: Proc
) -> None:
    gone_after = (*XT_RUN, "--gone-after", "2")
    bot = Script(stack, BOT, CODE, "1", "0.1", MARKETABLE, launcher=gone_after)
    try:
        bot.wait_line("jobs done")
        assert "disconnected" not in bot.lines
        gateway.kill()
        bot.wait_line("disconnected", timeout=30)
        assert bot.popen.wait(15) == 0  # the bot ends as it does when miniQMT goes
    finally:
        bot.stop()
