"""The defects found by reading xttrader.py, each as a story through a real gateway whose
trader is xtquant's own XtQuantTrader over the simulated native module."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time

from qmtbus import protocol as p
from tests.gateway.conftest import CODE, order, price, start_listened
from tests.support import Proc, Stack, Subscriber, wait_for


def _cli_buy(stack: Stack, price_type: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qmtbus.cli", "--config", str(stack.config_path),
         "buy", CODE, "100", "--price", str(price()), "--price-type", str(price_type)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _order_with(client_order_id: str, price_type: int) -> p.PlaceOrder:
    return p.PlaceOrder(
        client_order_id=client_order_id, stock_code=CODE, order_type=p.STOCK_BUY,
        order_volume=100, price_type=price_type, price=price(),
    )  # fmt: skip


def test_given_price_type_99_then_it_is_refused_at_the_edge_and_the_cli_exits_non_zero(
    stack: Stack, gateway: Proc
) -> None:
    # The issue's own example: 99 is no xtquant price type, so it never gets past the decoder.
    reply = stack.call(_order_with("pt99-edge", 99))
    assert isinstance(reply, p.ErrorReply) and reply.code == p.BAD_REQUEST, reply
    assert "`$.price_type`" in reply.message
    done = _cli_buy(stack, 99)
    assert done.returncode != 0, (done.stdout, done.stderr)
    assert "accepted" not in done.stdout and "price" in done.stderr


def test_given_a_sz_market_type_on_sh_then_the_risk_gate_refuses_it_naming_the_rule(
    stack: Stack, gateway: Proc
) -> None:
    reply = stack.call(_order_with("pt46-gate", 46))
    assert isinstance(reply, p.ErrorReply) and reply.rule == "price_type", reply
    done = _cli_buy(stack, 46)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "accepted" not in done.stdout and "price_type 46" in done.stderr


def test_given_a_wrong_price_type_past_the_gate_then_the_first_reply_is_the_brokers_rejection(
    stack: Stack, events: Subscriber
) -> None:
    # With the gate off the order reaches the terminal, which gives the junk order an id and
    # puts the reason in the response's error_msg: that is a rejection, not "accepted".
    stack.write_config(risk={"enabled": False})
    proc = start_listened(stack, events)
    try:
        ack = stack.call(_order_with("pt46-broker", 46))
        assert isinstance(ack, p.OrderAck), ack
        assert (ack.status, ack.duplicate) == ("rejected", False)
        assert ack.error_msg == "price_type 46 is not taken on SH (use one of 5, 11, 42, 43)"
        done = _cli_buy(stack, 46)
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert "accepted" not in done.stdout
        assert "the broker rejected order" in done.stderr and "price_type 46" in done.stderr
    finally:
        proc.stop()


def test_given_order_error_before_the_response_then_the_first_reply_is_rejected(
    stack: Stack, gateway: Proc, events: Subscriber
) -> None:
    # xttrader holds the early on_order_error and delivers it right after the (clean) response.
    assert isinstance(stack.call(p.SimFault(fault="reject_next_error_first")), p.SimAck)
    ack = stack.call(order("early-err-1"))
    assert isinstance(ack, p.OrderAck), ack
    assert ack.status == "rejected" and "reject_error_first" in ack.error_msg
    error = events.wait(lambda e: isinstance(e, p.OrderErrorEvent), 10, "order_error")
    assert error.client_order_id == "early-err-1"


def test_given_response_with_error_msg_then_the_first_reply_is_rejected_with_it(
    stack: Stack, gateway: Proc, events: Subscriber
) -> None:
    stack.call(p.SimFault(fault="reject_next"))
    ack = stack.call(order("resp-err-1"))
    assert isinstance(ack, p.OrderAck), ack
    assert ack.status == "rejected" and "reject_next" not in ack.error_msg
    assert ack.error_msg == "rejected by the reject fault"
    response = events.wait(lambda e: isinstance(e, p.OrderResponseEvent), 10, "response")
    assert response.order_id == ack.order_id > 0 and response.error_msg == ack.error_msg


def test_given_an_order_nobody_answers_then_it_is_found_by_its_remark_and_that_is_an_event(
    stack: Stack, events: Subscriber
) -> None:
    stack.write_config(gateway={"order_reply_timeout": 0.5})
    proc = start_listened(stack, events)
    try:
        stack.call(p.SimFault(fault="mute_next_order"))
        ack = stack.call(order("mute-1", factor=0.98))
        assert isinstance(ack, p.OrderAck) and ack.status == "pending"
        found = events.wait(
            lambda e: isinstance(e, p.OrderEvent) and e.client_order_id == "mute-1", 30, "found"
        )
        assert found.order_status == 50 and found.order_id > 0
        later = stack.call(order("mute-1", factor=0.98))
        assert later.duplicate and later.status == "accepted" and later.order_id == found.order_id
    finally:
        proc.stop()


def _state(stack: Stack) -> str:
    try:
        return str(stack.call(p.GetStatus(), timeout=2.0).state)
    except Exception:
        return "unreachable"


def test_given_the_broker_stops_answering_queries_then_the_gateway_leaves_ready_and_comes_back(
    stack: Stack, events: Subscriber
) -> None:
    stack.write_config(gateway={"broker_timeout": 1.0, "probe_interval": 1.0})
    proc = start_listened(stack, events)
    try:
        stack.call(p.SimFault(fault="mute_queries", value=1))
        left = events.wait(
            lambda e: isinstance(e, p.GatewayEvent) and e.state == "disconnected", 15, "left ready"
        )
        assert "query_stock" in left.reason, left
        stack.call(p.SimFault(fault="mute_queries", value=0))
        wait_for(lambda: _state(stack) == "ready", 30, "ready again")
    finally:
        proc.stop()


def test_given_the_broker_thread_dies_then_the_gateway_exits_non_zero_for_supervisord(
    stack: Stack, events: Subscriber
) -> None:
    stack.write_config(gateway={"probe_interval": 0.5})
    proc = start_listened(stack, events)
    try:
        stack.call(p.SimFault(fault="raise_in_queries", value=1))
        said = events.wait(
            lambda e: isinstance(e, p.GatewayEvent) and e.state == "stopping", 15, "stopping"
        )
        assert "the broker thread died (RuntimeError" in said.reason
        assert proc.wait_exit(30) == 1
        assert "the broker thread died" in proc.log()
    finally:
        if proc.alive():
            proc.kill()


def _buy(client_order_id: str, code: str, at: float) -> p.PlaceOrder:
    return p.PlaceOrder(
        client_order_id=client_order_id, stock_code=code, order_type=p.STOCK_BUY,
        order_volume=100, price_type=p.FIX_PRICE, price=at,
    )  # fmt: skip


def test_given_slow_market_data_then_an_order_is_answered_at_once_and_heartbeats_keep_time(
    stack: Stack, gateway: Proc, events: Subscriber
) -> None:
    code = "600036.SH"
    stack.call(p.SimFault(fault="slow_xtdata", value=2.5))
    started = time.monotonic()
    reply = stack.call(_buy("slow-1", code, price(code=code)), timeout=10)
    took = time.monotonic() - started
    assert isinstance(reply, p.ErrorReply) and reply.code == p.RISK_DENIED, reply
    assert "still loading" in reply.message
    assert took < 2.0, f"the I/O thread waited {took:.1f} s on market data"
    beats = [e for e in events.drain() if isinstance(e, p.HeartbeatEvent)]
    gaps = [(b.ts - a.ts) / 1e9 for a, b in itertools.pairwise(beats)]
    assert all(gap < 2.0 for gap in gaps), gaps
    # once loaded, the next order on it passes the gate
    stack.call(p.SimFault(fault="slow_xtdata", value=0))
    ok = wait_for(
        lambda: (
            isinstance(
                r := stack.call(_buy(f"slow-{time.monotonic_ns()}", code, price(code=code))),
                p.OrderAck,
            )
            and r
        ),
        15,
        "the instrument loaded",
    )
    assert ok.status == "accepted"


def test_given_failing_market_data_then_an_order_is_refused_in_one_clear_sentence(
    stack: Stack, gateway: Proc
) -> None:
    code = "000001.SZ"
    stack.call(p.SimFault(fault="fail_xtdata", value=1))
    reply = stack.call(_buy("fail-1", code, price(code=code)))
    assert isinstance(reply, p.ErrorReply) and reply.code == p.RISK_DENIED, reply
    assert "market data failed (xtdata.get_instrument_detail failed" in reply.message


def test_given_asset_and_position_pushes_never_come_then_the_probe_keeps_cash_and_positions_fresh(
    stack: Stack, events: Subscriber
) -> None:
    stack.write_config(gateway={"probe_interval": 0.5})
    proc = start_listened(stack, events)
    try:
        stack.call(p.SimFault(fault="skip_asset_pushes", value=1))
        before = stack.call(p.QueryAsset())
        ack = stack.call(order("nopush-1"))
        assert isinstance(ack, p.OrderAck) and ack.status == "accepted"
        events.wait(lambda e: isinstance(e, p.OrderEvent) and e.order_status == 56, 10, "filled")
        asset = events.wait(
            lambda e: isinstance(e, p.AssetEvent) and e.cash < before.cash, 15, "fresh cash"
        )
        held = events.wait(
            lambda e: isinstance(e, p.PositionEvent) and e.stock_code == CODE, 15, "position"
        )
        assert held.volume == 100
        assert asset.cash == stack.call(p.QueryAsset()).cash
    finally:
        proc.stop()


def test_given_the_account_status_turns_closed_then_the_gateway_reconnects_and_reconciles(
    stack: Stack, gateway: Proc, events: Subscriber
) -> None:
    first = stack.call(p.GetStatus())
    stack.call(p.SimFault(fault="account_status", value=6))
    status = events.wait(
        lambda e: isinstance(e, p.AccountStatusEvent) and e.status == 6, 10, "account closed"
    )
    assert status.account_id == "SIM0001"  # its own account, as the broker said
    left = events.wait(
        lambda e: isinstance(e, p.GatewayEvent) and e.state == "disconnected", 10, "dropped"
    )
    assert left.reason == "account SIM0001 status 6 (closed)"
    again = wait_for(
        lambda: (s := stack.call(p.GetStatus())).state == "ready" and s, 30, "ready again"
    )
    assert again.session_id != first.session_id
