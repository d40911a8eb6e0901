"""Orders a dead gateway wrote down as "sending" but never sent: answered "rejected"."""

from __future__ import annotations

import sqlite3

from qmtbus import protocol as p
from tests.gateway.conftest import order
from tests.support import Stack, start_gateway, wait_for


def test_given_order_left_sending_by_a_dead_gateway_and_unknown_to_broker_then_resend_says_rejected(
    stack: Stack,
) -> None:
    gateway = start_gateway(stack)
    placed = stack.call(order("placed-1"))
    assert isinstance(placed, p.OrderAck) and placed.status == "accepted"
    gateway.kill()
    # what a gateway killed between writing "sending" and its broker call leaves behind
    db = sqlite3.connect(stack.data_dir / "gateway.sqlite")
    day, created = db.execute(
        "SELECT trading_day, created_ns FROM client_orders WHERE client_order_id = 'placed-1'"
    ).fetchone()
    for coid, age_ns in (("lost-1", 60_000_000_000), ("lost-recent", 0)):
        db.execute(
            "INSERT INTO client_orders VALUES (?, ?, 'sending', 0, '600000.SH', 23, 100, 11,"
            " 10.0, '', '', ?)",
            (day, coid, created - age_ns),
        )
    db.commit()
    db.close()
    restarted = start_gateway(stack)
    try:
        again = stack.call(order("lost-1"))
        assert isinstance(again, p.OrderAck) and again.duplicate
        assert again.status == "rejected" and again.error_msg.startswith("not placed")
        assert stack.call(order("placed-1")).status == "accepted"  # what the broker has stays
        # One written down a moment ago might still be on its way into the terminal: it
        # stays pending until the periodic resolution finds it old enough and absent.
        wait_for(lambda: stack.call(order("lost-recent")).status == "rejected", 15, "recent orphan")
    finally:
        restarted.stop()
