"""Look-alikes of xtquant's xttype objects and xtconstant codes, without importing xtquant.

Attribute names and constructor order are xttype's, so code that reads the
real objects reads these unchanged (it must read attributes, never isinstance).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qmtbus.protocol import (  # noqa: F401 - re-exported to the simulator's modules
    FINAL_ORDER_STATUSES,
    ORDER_CANCELED,
    ORDER_JUNK,
    ORDER_PART_CANCEL,
    ORDER_PART_SUCC,
    ORDER_PARTSUCC_CANCEL,
    ORDER_REPORTED,
    ORDER_REPORTED_CANCEL,
    ORDER_SUCCEEDED,
    ORDER_UNREPORTED,
    ORDER_WAIT_REPORTING,
)

SECURITY_ACCOUNT = 2

STOCK_BUY = 23
STOCK_SELL = 24

LATEST_PRICE = 5
FIX_PRICE = 11
# Market price types: 42 SH best-5-then-cancel, 43 SH best-5-then-limit,
# 44 counterparty best, 45 own-side best, 46 SZ immediate-or-cancel,
# 47 SZ best-5-then-cancel, 48 SZ fill-or-kill.
MARKET_PRICE_TYPES = frozenset({42, 43, 44, 45, 46, 47, 48})
# Market types whose unfilled remainder is cancelled at once rather than resting.
CANCEL_REST_PRICE_TYPES = frozenset({42, 46, 47, 48})
FILL_OR_KILL = 48

FINAL_STATUSES = FINAL_ORDER_STATUSES
RESTING_STATUSES = frozenset({ORDER_REPORTED, ORDER_PART_SUCC})

DIRECTION_FLAG_LONG = 48
OFFSET_FLAG_OPEN = 48
OFFSET_FLAG_CLOSE = 49

ACCOUNT_STATUS_OK = 0

# xtconstant's market enums, for cancel_order_stock_sysid and XtCancelError.market.
MARKET_ENUM = {"SH": 0, "SZ": 1, "BJ": 70}

# Every callback of XtQuantTraderCallback the simulator calls (on_connected never is).
PUSHED_CALLBACKS = (
    "on_disconnected",
    "on_account_status",
    "on_stock_asset",
    "on_stock_order",
    "on_stock_trade",
    "on_stock_position",
    "on_order_error",
    "on_cancel_error",
    "on_order_stock_async_response",
    "on_cancel_order_stock_async_response",
)


class StockAccount:
    """StockAccount(account_id, 'STOCK'): .account_id and .account_type (2)."""

    __slots__ = ("account_id", "account_type")

    def __init__(self, account_id: str, account_type: str = "STOCK") -> None:
        if account_type.upper() != "STOCK":
            raise ValueError(f"the simulator has only STOCK accounts, not {account_type!r}")
        self.account_id = account_id
        self.account_type = SECURITY_ACCOUNT

    def __repr__(self) -> str:
        return f"StockAccount({self.account_id!r}, 'STOCK')"


@dataclass(slots=True)
class XtAsset:
    account_type: int = field(default=SECURITY_ACCOUNT, init=False)
    account_id: str
    cash: float
    frozen_cash: float
    market_value: float
    total_asset: float
    fetch_balance: float


@dataclass(slots=True)
class XtOrder:
    account_type: int = field(default=SECURITY_ACCOUNT, init=False)
    account_id: str
    stock_code: str
    order_id: int
    order_sysid: str
    order_time: int
    order_type: int
    order_volume: int
    price_type: int
    price: float
    traded_volume: int
    traded_price: float
    order_status: int
    status_msg: str
    strategy_name: str
    order_remark: str
    direction: int
    offset_flag: int
    secu_account: str
    instrument_name: str


@dataclass(slots=True)
class XtTrade:
    account_type: int = field(default=SECURITY_ACCOUNT, init=False)
    account_id: str
    stock_code: str
    order_type: int
    traded_id: str
    traded_time: int
    traded_price: float
    traded_volume: int
    traded_amount: float
    order_id: int
    order_sysid: str
    strategy_name: str
    order_remark: str
    direction: int
    offset_flag: int
    commission: float
    secu_account: str
    instrument_name: str


@dataclass(slots=True)
class XtPosition:
    account_type: int = field(default=SECURITY_ACCOUNT, init=False)
    account_id: str
    stock_code: str
    volume: int
    can_use_volume: int
    open_price: float
    market_value: float
    frozen_volume: int
    on_road_volume: int
    yesterday_volume: int
    avg_price: float
    direction: int
    last_price: float
    profit_rate: float
    secu_account: str
    instrument_name: str
    # Listed by the docs, not by xttype's constructor.
    float_profit: float = 0.0
    position_profit: float = 0.0
    open_date: str = ""


@dataclass(slots=True)
class XtOrderError:
    account_type: int = field(default=SECURITY_ACCOUNT, init=False)
    account_id: str
    order_id: int
    error_id: int | None = None
    error_msg: str | None = None
    strategy_name: str | None = None
    order_remark: str | None = None
    # The native object carries the async request's seq too.
    seq: int = -1


@dataclass(slots=True)
class XtCancelError:
    account_type: int = field(default=SECURITY_ACCOUNT, init=False)
    account_id: str
    order_id: int
    market: int
    order_sysid: str
    error_id: int | None = None
    error_msg: str | None = None


@dataclass(slots=True)
class XtOrderResponse:
    account_type: int = field(default=SECURITY_ACCOUNT, init=False)
    account_id: str
    order_id: int
    strategy_name: str
    order_remark: str
    error_msg: str
    seq: int


@dataclass(slots=True)
class XtCancelOrderResponse:
    account_type: int = field(default=SECURITY_ACCOUNT, init=False)
    account_id: str
    cancel_result: int
    order_id: int
    order_sysid: str
    seq: int
    error_msg: str


@dataclass(slots=True)
class XtAccountStatus:
    account_id: str
    account_type: int
    status: int
