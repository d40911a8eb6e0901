"""The journal is the gateway's one source of truth: no other file decides what it remembers."""

from __future__ import annotations

from qmtbus import protocol as p
from tests.gateway.conftest import order
from tests.support import Stack, start_gateway


def test_given_a_corrupt_gateway_sqlite_left_by_an_old_version_then_it_is_ignored(
    stack: Stack,
) -> None:
    stack.data_dir.mkdir(parents=True, exist_ok=True)
    (stack.data_dir / "gateway.sqlite").write_bytes(b"this is not a database" * 100)
    gateway = start_gateway(stack)
    try:
        assert stack.call(order("after-junk")).status == "accepted"
        assert "Traceback" not in gateway.log()
    finally:
        gateway.stop()


def test_given_the_daily_order_cap_reached_then_a_restart_counts_from_the_journal_alone(
    stack: Stack,
) -> None:
    stack.write_config(risk={"max_orders_per_day": 2})
    gateway = start_gateway(stack)
    assert stack.call(order("cap-1")).status == "accepted"
    assert stack.call(order("cap-2")).status == "accepted"
    gateway.kill()
    (stack.data_dir / "risk-state.json").unlink(missing_ok=True)  # holds no counters anyway
    again = start_gateway(stack)
    try:
        reply = stack.call(order("cap-3"))
        assert isinstance(reply, p.ErrorReply) and reply.rule == "max_orders_per_day", reply
        assert stack.call(order("cap-1")).duplicate  # and the orders themselves are known
    finally:
        again.stop()
