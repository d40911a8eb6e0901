"""What the bus's native client hands xttrader.py: objects with the compiled client's names.

Pushes and query answers are plain objects with xttype's attribute names (the real
client's are native objects, never xttype instances); responses to orders and cancels
and account statuses carry the native `m_…` names that xttrader.py converts itself.
Every object built from a bus order or trade also keeps its `client_order_id`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from qmtbus import protocol

# miniQMT account status codes (xtconstant): 0 ok, 2 logging in, 6 closed.
ACCOUNT_OK, ACCOUNT_LOGGING_IN, ACCOUNT_CLOSED = 0, 2, 6
_STATUS_OF_STATE = {
    "ready": ACCOUNT_OK,
    "reconciling": ACCOUNT_OK,
    "connected": ACCOUNT_OK,
    "starting": ACCOUNT_LOGGING_IN,
    "connecting": ACCOUNT_LOGGING_IN,
}
STOCK_ACCOUNT = 2  # xtconstant.SECURITY_ACCOUNT, StockAccount(..., 'STOCK').account_type


class Native:
    """An object with the given attributes, as the compiled client hands them."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__dict__!r})"


class XtAsset(Native):
    pass


class XtOrder(Native):
    pass


class XtTrade(Native):
    pass


class XtPosition(Native):
    pass


class XtOrderError(Native):
    pass


class XtCancelError(Native):
    pass


class XtAccountInfo(Native):
    pass


class AccountStatus(Native):
    pass


class OrderStockResp(Native):
    pass


class CancelOrderStockResp(Native):
    pass


def _fields(value: Any, base: type[msgspec.Struct]) -> dict[str, Any]:
    return {name: getattr(value, name) for name in base.__struct_fields__}


def asset(value: protocol.Asset) -> XtAsset:
    return XtAsset(**_fields(value, protocol.Asset))


def order(value: protocol.Order, remark: str | None) -> XtOrder:
    fields = _fields(value, protocol.Order)
    if remark is not None:
        fields["order_remark"] = remark
    return XtOrder(**fields)


def trade(value: protocol.Trade, remark: str | None) -> XtTrade:
    fields = _fields(value, protocol.Trade)
    if remark is not None:
        fields["order_remark"] = remark
    return XtTrade(**fields)


def position(value: protocol.Position) -> XtPosition:
    return XtPosition(**_fields(value, protocol.Position))


def order_error(
    account_id: str,
    order_id: int,
    error_id: int,
    error_msg: str,
    strategy_name: str,
    order_remark: str,
    seq: int,
    client_order_id: str,
) -> XtOrderError:
    return XtOrderError(
        account_id=account_id,
        order_id=order_id,
        error_id=error_id,
        error_msg=error_msg,
        strategy_name=strategy_name,
        order_remark=order_remark,
        seq=seq,
        client_order_id=client_order_id,
    )


def cancel_error(ev: protocol.CancelErrorEvent) -> XtCancelError:
    return XtCancelError(
        account_id=ev.account_id,
        order_id=ev.order_id,
        market=ev.market,
        order_sysid=ev.order_sysid,
        error_id=ev.error_id,
        error_msg=ev.error_msg,
        client_order_id=ev.client_order_id,
    )


def account_status(account_id: str, status: int) -> AccountStatus:
    """Native names (xttrader.py converts pushes) and xttype's (query answers are handed
    to the script as they are)."""
    return AccountStatus(
        m_strAccountID=account_id,
        m_nAccountType=STOCK_ACCOUNT,
        m_nStatus=status,
        account_id=account_id,
        account_type=STOCK_ACCOUNT,
        status=status,
    )


def status_of_state(state: str) -> int:
    """The miniQMT account status that the gateway's connection state amounts to."""
    return _STATUS_OF_STATE.get(state, ACCOUNT_CLOSED)


def order_response(
    account_id: str, order_id: int, strategy_name: str, remark: str, error_msg: str
) -> OrderStockResp:
    return OrderStockResp(
        m_strAccountID=account_id,
        m_nOrderID=order_id,
        m_strStrategyName=strategy_name,
        m_strOrderRemark=remark,
        m_strErrorMsg=error_msg,
    )


def cancel_response(
    account_id: str, result: int, order_id: int, order_sysid: str, error_msg: str
) -> CancelOrderStockResp:
    return CancelOrderStockResp(
        m_strAccountID=account_id,
        m_nCancelResult=result,
        m_nOrderID=order_id,
        m_strOrderSysID=order_sysid,
        m_strErrorMsg=error_msg,
    )
