"""What `qmtbus xt run` carries and refuses, told to an unchanged xtquant script by a real
gateway: connect and subscribe results, calls the bus does not carry, xtdata's ticks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qmtbus import protocol
from tests.clients.xt_support import PLAIN, SIM, Script
from tests.support import Stack, start_gateway, wait_for


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(tmp_path, {"sim": SIM})


PROBE = """
import json
from xtquant import xtdata
from xtquant.xttrader import XtQuantTrader
from xtquant.xttype import StockAccount

trader = XtQuantTrader("userdata_mini", 7)
trader.start()
print("connect", trader.connect(), flush=True)
acc = StockAccount("SIM0001")
# nothing can be sent: every call answers at once, none waits for ever
print("subscribe", trader.subscribe(acc), flush=True)
print("order", trader.order_stock(acc, "600000.SH", 23, 100, 11, 10.5), flush=True)
print("asset", trader.query_stock_asset(acc), flush=True)
"""


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "probe.py"
    path.write_text(body)
    return path


def test_given_no_gateway_then_connect_and_every_call_answer_at_once_as_failed(
    stack: Stack, tmp_path: Path
) -> None:
    stack.nobody_listens("gateway")
    stack.write_config(client={"timeout": 0.5, "retries": 0})
    script = Script(stack, write(tmp_path, PROBE))
    try:
        assert script.popen.wait(60) == 0, script.output
        said = ("connect ", "subscribe ", "order ", "asset ")
        assert [line for line in script.lines if line.startswith(said)] == [
            "connect -1",
            "subscribe -1",
            "order -1",
            "asset None",
        ]
        assert "is it running?" in script.output  # the warning says why
    finally:
        script.stop()


CALLS = """
import json
from xtquant import xtdata
from xtquant.xttrader import XtQuantTrader
from xtquant.xttype import StockAccount

trader = XtQuantTrader("userdata_mini", 7)
trader.start()
print("connect", trader.connect(), flush=True)
print("subscribe other", trader.subscribe(StockAccount("OTHER01")), flush=True)
acc = StockAccount("SIM0001")
print("subscribe", trader.subscribe(acc), flush=True)
for call in (
    lambda: trader.query_credit_detail(acc),
    lambda: trader.fund_transfer(acc, 1, 100.0),
    lambda: trader.query_smart_algo_task(acc),
    lambda: xtdata.get_financial_data(["600000.SH"]),
):
    try:
        call()
        print("carried?", flush=True)
    except NotImplementedError as err:
        print("refused:", err, flush=True)
print("status", [(s.account_id, s.status) for s in trader.query_account_status()], flush=True)
print("bad order", trader.order_stock(acc, "600000.SH", 23, 0, 11, 10.5), flush=True)
order_id = trader.order_stock(acc, "600000.SH", 23, 100, 11, 10.5, "probe", "rest")
sysid = trader.query_stock_order(acc, order_id).order_sysid
print("cancel by sysid", trader.cancel_order_stock_sysid(acc, "SH", sysid), flush=True)
print("tick", json.dumps(xtdata.get_full_tick(["600000.SH"])), flush=True)
trader.stop()
print("stopped", flush=True)
"""


@pytest.mark.timeout(120)
def test_given_a_script_then_the_bridge_answers_as_miniqmt_and_refuses_what_it_does_not_carry(
    stack: Stack, tmp_path: Path
) -> None:
    gateway = start_gateway(stack)
    script = Script(stack, write(tmp_path, CALLS))
    try:
        script.wait_line("stopped")
        assert script.popen.wait(15) == 0, script.output
        assert "connect 0" in script.lines
        assert "subscribe other -1" in script.lines  # not the gateway's account
        assert "subscribe 0" in script.lines
        refused = [line for line in script.lines if line.startswith("refused:")]
        assert len(refused) == 4, script.output
        for name, line in zip(
            ("query_credit_detail", "fund_transfer", "query_smart_algo_task", "get_financial_data"),
            refused,
            strict=True,
        ):
            assert name in line and "not carried" in line
        assert "status [('SIM0001', 0)]" in script.lines  # ready: miniQMT's "ok"
        assert "bad order -1" in script.lines  # refused by the gateway, in miniQMT's words
        assert "cancel by sysid 0" in script.lines

        def cancelled() -> bool:
            orders: protocol.OrdersReply = stack.call(protocol.QueryOrders())
            (rested,) = [o for o in orders.orders if o.strategy_name == "probe"]
            return rested.order_status == protocol.ORDER_CANCELED

        wait_for(cancelled, 30, "the order cancelled by its sysid")
        tick = json.loads(script.lines[script.wait_line("tick ")].removeprefix("tick "))
        quotes: protocol.QuotesReply = stack.call(protocol.QueryQuote(stock_codes=["600000.SH"]))
        assert tick["600000.SH"]["lastClose"] == quotes.quotes[0].lastClose
        assert tick["600000.SH"]["lastPrice"] == quotes.quotes[0].lastPrice
    finally:
        script.stop()
        gateway.stop()


INSTALLED = """
import qmtbus.xt

qmtbus.xt.install()
from xtquant.xttrader import XtQuantTrader
from xtquant.xttype import StockAccount

trader = XtQuantTrader("userdata_mini", 8)
trader.start()
print("connect", trader.connect(), flush=True)
print("subscribe", trader.subscribe(StockAccount("SIM0001")), flush=True)
print("cash", trader.query_stock_asset(StockAccount("SIM0001")).cash, flush=True)
trader.stop()
"""


def test_given_install_called_first_then_a_plain_python_script_trades_on_the_bus(
    stack: Stack, tmp_path: Path
) -> None:
    gateway = start_gateway(stack)
    script = Script(stack, write(tmp_path, INSTALLED), launcher=PLAIN)
    try:
        assert script.popen.wait(60) == 0, script.output
        assert script.lines[-3:] == ["connect 0", "subscribe 0", "cash 1000000.0"], script.output
    finally:
        script.stop()
        gateway.stop()


TICKS = """
import threading
from xtquant import xtdata

got = []
two = threading.Event()


def on_tick(datas):
    for code, ticks in datas.items():
        got.append((code, ticks[-1]["lastPrice"]))
    if len(got) >= 2:
        two.set()


seq = xtdata.subscribe_quote("600000.SH", period="tick", callback=on_tick)
print("ticks", two.wait(30), got[:2], flush=True)
xtdata.unsubscribe_quote(seq)
try:
    xtdata.subscribe_quote("600000.SH", period="1m", callback=on_tick)
except NotImplementedError as err:
    print("refused:", err, flush=True)
"""


def test_given_subscribe_quote_then_ticks_reach_the_scripts_callback(
    stack: Stack, tmp_path: Path
) -> None:
    gateway = start_gateway(stack)
    script = Script(stack, write(tmp_path, TICKS))
    try:
        assert script.popen.wait(60) == 0, script.output
        last = stack.call(protocol.QueryQuote(stock_codes=["600000.SH"])).quotes[0].lastPrice
        assert f"ticks True [('600000.SH', {last}), ('600000.SH', {last})]" in script.lines
        assert any("period='1m'" in line for line in script.lines if line.startswith("refused"))
    finally:
        script.stop()
        gateway.stop()


RECONNECTING = """
import threading
import time

from xtquant import xtconstant
from xtquant.xttrader import XtQuantTrader, XtQuantTraderCallback
from xtquant.xttype import StockAccount

lost = threading.Event()


class Callback(XtQuantTraderCallback):
    def on_disconnected(self):
        print("disconnected", flush=True)
        lost.set()


def session(n):
    # the hand-written bot's way: a new XtQuantTrader with a new session id after each loss
    while True:
        trader = XtQuantTrader("userdata_mini", 100 + n, Callback())
        trader.start()
        if trader.connect() == 0 and trader.subscribe(acc) == 0:
            return trader
        trader.stop()
        time.sleep(0.5)


acc = StockAccount("SIM0001")
trader = session(0)
print("connected", flush=True)
lost.wait()
trader.stop()
trader = session(1)
for _ in range(60):  # the gateway answers before its broker is ready: the bot tries again
    order_id = trader.order_stock(acc, "600000.SH", xtconstant.STOCK_BUY, 100,
                                  xtconstant.FIX_PRICE, 10.5, "again", "after")
    if order_id > 0:
        break
    time.sleep(0.5)
print("reconnected, order", order_id, flush=True)
trader.stop()
"""


def test_given_the_gateway_gone_and_back_then_a_bot_that_reconnects_trades_again(
    stack: Stack, tmp_path: Path
) -> None:
    gateway = start_gateway(stack)
    script = Script(stack, write(tmp_path, RECONNECTING), env={"QMTBUS_XT_GONE_AFTER": "2"})
    try:
        script.wait_line("connected")
        gateway.kill()
        script.wait_line("disconnected")
        gateway = start_gateway(stack)
        assert script.popen.wait(60) == 0, script.output
        line = script.lines[script.wait_line("reconnected, order")]
        assert int(line.split()[-1]) > 0
        orders: protocol.OrdersReply = stack.call(protocol.QueryOrders())
        assert [o.order_id for o in orders.orders if o.strategy_name == "again"] == [
            int(line.split()[-1])
        ]
    finally:
        script.stop()
        gateway.stop()


def test_given_no_such_script_or_a_failing_one_then_one_sentence_or_its_traceback(
    stack: Stack, tmp_path: Path
) -> None:
    env = {**os.environ, "QMTBUS_CONFIG": str(stack.config_path)}
    run = [sys.executable, "-m", "qmtbus", "xt", "run"]
    missing = subprocess.run(
        [*run, str(tmp_path / "nope.py")], capture_output=True, text=True, env=env, timeout=60
    )
    assert missing.returncode == 2
    assert missing.stderr == (
        f"qmtbus xt: no script at {tmp_path / 'nope.py'}: give the path of a Python file\n"
    )
    failing = write(tmp_path, "raise ValueError('the strategy broke')\n")
    broke = subprocess.run(
        [*run, str(failing)], capture_output=True, text=True, env=env, timeout=60
    )
    assert broke.returncode == 1
    assert "Traceback" in broke.stderr and "ValueError: the strategy broke" in broke.stderr
