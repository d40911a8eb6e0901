"""The bus's native client below xttrader.py, on its own: events in, xttrader's callbacks out
(no gateway: the client's outbox is read directly)."""

from __future__ import annotations

import pytest

from qmtbus import protocol
from qmtbus.xt import native


def client() -> native.XtQuantAsyncClient:
    c = native.XtQuantAsyncClient(b"userdata_mini", "xtquant", 1)
    c._subscribed.add("SIM0001")
    return c


def drained(c: native.XtQuantAsyncClient) -> list[tuple[str, tuple[object, ...]]]:
    out = []
    while not c._outbox.empty():
        item = c._outbox.get_nowait()
        assert item is not None
        out.append(item)
    return out


def test_given_a_call_the_bus_does_not_carry_then_the_error_names_it() -> None:
    with pytest.raises(NotImplementedError, match=r"query_credit_detail is not carried"):
        client().queryCreditDetailWithSeq(1, native.QueryCreditDetailReq())


def test_given_this_scripts_order_then_pushes_show_its_own_remark_and_seq() -> None:
    c = client()
    c._placed["xtA"] = native._Placed(
        seq=7, account_id="SIM0001", strategy_name="s", order_remark="mine"
    )
    c._on_event(
        protocol.OrderEvent(
            account_id="SIM0001", order_id=3, order_remark="xtA", client_order_id="xtA", seq=41
        )
    )
    c._on_event(
        protocol.OrderErrorEvent(
            account_id="SIM0001", order_id=3, error_msg="no", client_order_id="xtA", seq=42
        )
    )
    (order_cb, (order,)), (error_cb, (error,)) = drained(c)
    assert order_cb == "OnStockOrderCallback" and order.order_remark == "mine"  # type: ignore[attr-defined]
    assert order.client_order_id == "xtA"  # type: ignore[attr-defined]
    # xttrader pairs an error with its order response by the request's seq, not the bus's
    assert error_cb == "OnOrderErrorCallback" and error.seq == 7  # type: ignore[attr-defined]


def test_given_another_clients_order_or_another_account_then_as_the_broker_tells_it() -> None:
    c = client()
    c._on_event(
        protocol.OrderEvent(
            account_id="SIM0001", order_id=3, order_remark="q123", client_order_id="q123", seq=5
        )
    )
    c._on_event(protocol.OrderEvent(account_id="OTHER", order_id=4, seq=6))
    c._on_event(protocol.OrderResponseEvent(account_id="SIM0001", order_id=3, seq=7))
    ((_, (order,)),) = drained(c)
    assert order.order_remark == "q123"  # type: ignore[attr-defined]


def test_given_a_pending_order_then_its_resolution_answers_it_once() -> None:
    c = client()
    c._placed["xtB"] = native._Placed(
        seq=9, account_id="SIM0001", strategy_name="s", order_remark="r"
    )
    resolved = protocol.ClientOrderEvent(client_order_id="xtB", status="accepted", order_id=12)
    c._on_event(resolved)
    c._on_event(resolved)  # replayed twice: answered once
    c._answer_order("xtB", 12, "")  # the late ack: already answered
    ((name, (seq, resp)),) = drained(c)
    assert (name, seq, resp.m_nOrderID, resp.m_strOrderRemark) == (  # type: ignore[attr-defined]
        "OnOrderStockRespCallback",
        9,
        12,
        "r",
    )
