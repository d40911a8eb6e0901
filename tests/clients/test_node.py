"""The Node.js client (clients/node) against a real gateway: the example strategy trades on
the live quote, failures surface as errors, the event stream replays from the journal, the
quote stream gets ticks, the unit suite passes.

`make node` (part of `make test`) runs `npm ci` in clients/node; when node_modules is
missing anyway, the first test here runs it. Only a machine without `node` skips.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qmtbus import protocol
from qmtbus.config import SimConfig
from qmtbus.gateway.broker.sim.ledger import read_ledger
from qmtbus.gateway.broker.sim.market import initial_price
from tests.support import NOBODY, ROOT, Proc, Stack, call, start_gateway, wait_for

NODE_DIR = ROOT / "clients" / "node"
NODE = shutil.which("node")
STOCK = "600000.SH"
# The simulator's opening price of STOCK for the default seed: inside the day's limits.
PRICE = initial_price(SimConfig().seed, STOCK)

pytestmark = pytest.mark.skipif(
    NODE is None, reason="node is not installed: install Node.js 20+ to test clients/node"
)


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """clients/node/node_modules, installed from package-lock.json if absent."""
    modules = NODE_DIR / "node_modules"
    if not (modules / "zeromq").is_dir() or not (modules / "@msgpack" / "msgpack").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("node is installed but npm is not: run `npm ci` in clients/node")
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=110,
        )
        assert done.returncode == 0, f"npm ci in clients/node failed:\n{done.stderr}"
    return modules


@pytest.fixture
def sim_gateway(stack: Stack) -> Iterator[Proc]:
    """A ready gateway whose simulated 600000.SH stands still at PRICE, ticking every 0.1 s."""
    stack.write_config(sim={"volatility": 0.0, "quote_interval": 0.1})
    proc = start_gateway(stack)
    ack = stack.call(protocol.SimSetPrice(stock_code=STOCK, price=PRICE))
    assert isinstance(ack, protocol.SimAck) and "clamped" not in ack.detail, ack
    yield proc
    if proc.alive():
        proc.stop()


def run_node(
    script: str, stack: Stack, *args: str, timeout: float = 60.0, **env: str
) -> subprocess.CompletedProcess[str]:
    assert NODE is not None
    return subprocess.run(
        [NODE, script, *args],
        cwd=NODE_DIR,
        env={
            **os.environ,
            "QMTBUS_COMMANDS": stack.commands_address,
            "QMTBUS_EVENTS": stack.events_address,
            "QMTBUS_QUOTES": stack.quotes_address,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def orders_at_broker(stack: Stack, client_order_id: str) -> list[dict[str, Any]]:
    """Every order request the simulator got for `client_order_id` (its order_remark)."""
    received = read_ledger(stack.data_dir).orders_received
    return [o for o in received if o.get("order_remark") == client_order_id]


def test_given_a_gateway_when_the_node_example_buys_then_it_prints_the_fill_the_gateway_reports(
    node_modules: Path, stack: Stack, sim_gateway: Proc
) -> None:
    done = run_node("example-strategy.js", stack, QMTBUS_TIMEOUT="30")

    assert done.returncode == 0, f"example failed:\n{done.stderr}\n{sim_gateway.log()[-3000:]}"
    [fill] = json_lines(done.stdout)
    coid = fill["client_order_id"]
    assert 1 <= len(coid) <= 24 and coid.isascii() and coid.isprintable()
    assert fill["stock_code"] == STOCK
    assert fill["volume"] == 100
    assert fill["order_status"] == protocol.ORDER_SUCCEEDED
    # The limit came from the live quote: the best ask (the still price), plus 1 %.
    assert fill["reference_price"] == PRICE
    assert fill["quote"]["seq"] > 0 and fill["quote"]["queried"] == PRICE
    assert fill["limit_price"] == round(math.ceil(PRICE * 101 - 1e-6) / 100, 2)

    trades = call(stack.commands_address, protocol.QueryTrades())
    mine = [t for t in trades.trades if t.client_order_id == coid]
    assert mine, f"the gateway reports no trade for {coid}: {trades}"
    assert sum(t.traded_volume for t in mine) == fill["volume"]
    assert {t.stock_code for t in mine} == {fill["stock_code"]}
    assert sorted(t.traded_id for t in mine) == sorted(fill["traded_ids"])
    assert {t.order_id for t in mine} == {fill["order_id"]}
    assert fill["price"] <= fill["limit_price"]

    orders = call(stack.commands_address, protocol.QueryOrders())
    placed = [o for o in orders.orders if o.client_order_id == coid]
    assert len(placed) == 1, "exactly one order reached the broker"
    assert placed[0].order_status == fill["order_status"]
    assert placed[0].order_id == fill["order_id"]


def test_given_an_unknown_stock_when_the_node_example_runs_then_it_fails_with_not_found(
    node_modules: Path, stack: Stack, sim_gateway: Proc
) -> None:
    done = run_node("example-strategy.js", stack, QMTBUS_STOCK="000001.SH", QMTBUS_TIMEOUT="10")

    assert done.returncode == 1, done.stdout
    assert done.stderr.startswith("error: QmtbusError NOT_FOUND: no quote for 000001.SH")
    assert call(stack.commands_address, protocol.QueryOrders()).orders == []


def test_given_live_quotes_when_node_streams_them_then_ticks_of_its_codes_arrive_and_are_released(
    node_modules: Path, stack: Stack, sim_gateway: Proc
) -> None:
    codes = [STOCK, "000001.SZ"]
    done = run_node("scripts/quotes.js", stack, QMTBUS_CODES=",".join(codes), QMTBUS_COUNT="10")

    assert done.returncode == 0, done.stderr
    lines = json_lines(done.stdout)
    queried, ticks = lines[0], lines[1:]
    assert [q["stock_code"] for q in queried["quotes"]] == codes
    assert queried["quotes"][0]["lastPrice"] == PRICE
    assert len(ticks) == 10 and {t["stock_code"] for t in ticks} <= set(codes)
    assert [t["seq"] for t in ticks] == sorted(t["seq"] for t in ticks)
    for t in ticks:
        assert t["type"] == "tick" and len(t["askPrice"]) == 5
        assert t["askPrice"][0] == t["bidPrice"][0] == t["lastPrice"]
        assert t["downStopPrice"] < t["lastPrice"] < t["upStopPrice"]
    # Closed: the stream released its codes, and nobody else holds them.
    ack = call(stack.commands_address, protocol.SubscribeQuotes(stock_codes=["600001.SH"]))
    assert ack.subscribed == ["600001.SH"]


def test_given_bad_requests_when_the_node_client_sends_them_then_each_surfaces_as_an_error(
    node_modules: Path, stack: Stack, sim_gateway: Proc
) -> None:
    dead = NOBODY
    done = run_node("scripts/error-path.js", stack, QMTBUS_DEAD=dead, QMTBUS_PRICE=str(PRICE))

    assert done.returncode == 0, f"a case did not throw:\n{done.stdout}\n{done.stderr}"
    cases = {c["case"]: c for c in json_lines(done.stdout)}
    bad = cases["bad_stock_code"]
    assert (bad["name"], bad["code"], bad["is_qmtbus_error"]) == (
        "QmtbusError",
        "BAD_REQUEST",
        True,
    )
    assert "stock_code" in bad["message"]
    assert cases["unknown_type"]["code"] == "UNKNOWN_TYPE"
    denied = cases["risk_denied"]
    assert (denied["name"], denied["code"], denied["is_qmtbus_error"]) == (
        "RiskDenied",
        "RISK_DENIED",
        True,
    )
    assert denied["rule"], "a risk denial names its rule"
    gone = cases["unreachable"]
    assert (gone["name"], gone["sent"]) == ("GatewayUnreachable", False)
    assert gone["message"] == f"gateway not reachable at {dead} — is it running?"

    # Nothing reached the broker, and the gateway still serves.
    assert call(stack.commands_address, protocol.QueryOrders()).orders == []
    assert call(stack.commands_address, protocol.GetStatus()).state == "ready"


def test_given_a_slow_broker_when_node_times_out_then_its_resent_order_is_placed_once(
    node_modules: Path, stack: Stack, sim_gateway: Proc
) -> None:
    stack.call(protocol.SimFault(fault="delay_callbacks", value=1.5))
    coid = "node-slow-1"

    done = run_node(
        "scripts/order-once.js",
        stack,
        QMTBUS_COID=coid,
        QMTBUS_PRICE=str(round(PRICE * 1.01, 2)),
        QMTBUS_TIMEOUT_MS="300",
        QMTBUS_RETRIES="20",
    )

    assert done.returncode == 0, done.stderr
    [ack] = json_lines(done.stdout)
    assert (ack["type"], ack["client_order_id"], ack["duplicate"]) == ("order_ack", coid, True)
    assert len(orders_at_broker(stack, coid)) == 1


def test_given_a_gateway_killed_mid_order_when_node_retries_then_the_broker_gets_it_once(
    node_modules: Path, stack: Stack, sim_gateway: Proc
) -> None:
    assert NODE is not None
    stack.call(protocol.SimFault(fault="delay_callbacks", value=30))  # no broker answer
    coid = "node-kill-1"
    node = subprocess.Popen(
        [NODE, "scripts/order-once.js"],
        cwd=NODE_DIR,
        env={
            **os.environ,
            "QMTBUS_COMMANDS": stack.commands_address,
            "QMTBUS_COID": coid,
            "QMTBUS_PRICE": str(round(PRICE * 1.01, 2)),
            "QMTBUS_TIMEOUT_MS": "500",
            "QMTBUS_RETRIES": "80",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: orders_at_broker(stack, coid), 10, "the order at the broker")
        sim_gateway.kill()
        restarted = start_gateway(stack)
        try:
            out, err = node.communicate(timeout=60)
        finally:
            restarted.stop()
    finally:
        if node.poll() is None:
            node.kill()
            node.wait(5)

    assert node.returncode == 0, err
    [ack] = json_lines(out)
    assert (ack["client_order_id"], ack["duplicate"]) == (coid, True)
    assert len(orders_at_broker(stack, coid)) == 1


def test_given_a_resume_point_when_node_tails_then_every_event_since_comes_once_in_seq_order(
    node_modules: Path, stack: Stack, sim_gateway: Proc
) -> None:
    stack.call(protocol.PublishNote(topic="node-test", data={"n": 1}))
    status = call(stack.commands_address, protocol.GetStatus())

    done = run_node(
        "tail.js", stack, "--since", f"{status.epoch}:0", "--count", str(status.last_seq)
    )

    assert done.returncode == 0, done.stderr
    events = json_lines(done.stdout)
    assert [e["seq"] for e in events] == list(range(1, status.last_seq + 1))
    assert {e["epoch"] for e in events} == {status.epoch}
    assert all(int(e["ts"]) > 1_600_000_000 * 10**9 for e in events), "ts in exact nanoseconds"
    note = next(e for e in events if e["type"] == "note")
    assert (note["topic"], note["data"]) == ("node-test", {"n": 1})


def test_node_client_unit_suite_passes(node_modules: Path) -> None:
    assert NODE is not None
    done = subprocess.run(
        [NODE, "--test", "test/"], cwd=NODE_DIR, capture_output=True, text=True, timeout=100
    )
    assert done.returncode == 0, f"node --test failed:\n{done.stdout[-4000:]}\n{done.stderr}"
    assert "# fail 0" in done.stdout
