"""What an order's response from the broker says: accepted or rejected, and why.

Kept apart from the order desk so that whatever holds the client-order state
machine asks the same question the same way. The real xttrader delivers an
on_order_error that arrived before the response right after it, in the same
push task; gateway/callbacks.py folds that error into the response event, so
one answer here covers both the response's own error_msg and the error.
"""

from __future__ import annotations

from typing import Literal

NO_ORDER_ID = "the broker gave no order_id"


def order_outcome(order_id: int, error_msg: str) -> tuple[Literal["accepted", "rejected"], str]:
    """Accepted only with an order_id and no error: a response that carries an error_msg is a
    rejection even when the terminal gave the order an id (it exists as a junk order)."""
    if error_msg:
        return "rejected", error_msg
    if order_id <= 0:
        return "rejected", NO_ORDER_ID
    return "accepted", ""
