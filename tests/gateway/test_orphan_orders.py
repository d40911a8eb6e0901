"""Orders a dead gateway journaled but may not have sent: "unknown", looked up, never guessed."""

from __future__ import annotations

import contextlib

from qmtbus import protocol as p
from tests.gateway.conftest import order
from tests.gateway.trust import journal_events, outcomes
from tests.support import Proc, Stack, start_gateway, wait_ready


def test_given_a_crash_between_intent_and_broker_call_then_the_outcome_is_unknown_not_guessed(
    stack: Stack,
) -> None:
    armed = Proc("gateway", stack, env={"QMTBUS_FAILPOINT": "intent_written:2"}).start()
    wait_ready(stack, armed)
    assert stack.call(order("placed-1")).status == "accepted"
    with contextlib.suppress(TimeoutError):
        stack.call(order("lost-1"), timeout=3.0)
    armed.wait_exit(20)
    restarted = start_gateway(stack)
    try:
        again = stack.call(order("lost-1"))
        assert isinstance(again, p.OrderAck) and again.duplicate
        # the broker shows nothing, but the gateway cannot prove it never sent it:
        # not "not placed — send it again" (which could buy twice), but unknown
        assert again.status == "pending" and again.error_msg.startswith("outcome unknown")
        assert outcomes(journal_events(stack))["lost-1"] == ["sending", "unknown"]
        assert stack.call(order("placed-1")).status == "accepted"  # what the broker has stays
        at_broker = stack.call(p.QueryOrders()).orders
        assert [o.order_remark for o in at_broker] == ["placed-1"]
    finally:
        restarted.stop()
