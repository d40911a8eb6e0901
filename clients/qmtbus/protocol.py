"""The qmtbus wire format: every command, reply and event as msgspec Structs.

This module is the single source of the protocol. Every process imports it; the
JSON Schema (docs/protocol.schema.json) and the protocol reference
(docs/PROTOCOL-REFERENCE.md) are generated from it.

Schema evolution: a new field gets a default and goes at the end of its class;
nothing listed in shared/PROTOCOL.md is renamed or removed without bumping
PROTOCOL_VERSION. Field names follow xtquant. One deliberate exception:
xtquant's async request number `seq` (XtOrderResponse, XtCancelOrderResponse,
XtOrderError) travels as `async_seq`, because `seq` is the bus sequence.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

PROTOCOL_VERSION = 1

# xtconstant values, written out so that importing the protocol never imports
# xtquant (whose package import runs a network update check).
STOCK_BUY = 23
STOCK_SELL = 24
FIX_PRICE = 11
LATEST_PRICE = 5
MARKET_PRICE_TYPES = (42, 43, 44, 45, 46, 47, 48)
# xtconstant's price types for stocks: LATEST_PRICE, FIX_PRICE and the exchanges'
# market orders (18-24 are futures-only)
StockPriceType = Literal[5, 11, 42, 43, 44, 45, 46, 47, 48]

# Bounds of the numbers a client may send: every integer fits the wire's int64,
# and nothing beyond what an A-share order can be reaches the risk gate.
INT64_MAX = 2**63 - 1
MAX_ORDER_VOLUME = 100_000_000  # shares; the exchanges cap one order at 1,000,000
MAX_PRICE = 1_000_000.0  # yuan per share; no A-share trades anywhere near it

ORDER_UNREPORTED = 48
ORDER_WAIT_REPORTING = 49
ORDER_REPORTED = 50
ORDER_REPORTED_CANCEL = 51
ORDER_PARTSUCC_CANCEL = 52
ORDER_PART_CANCEL = 53
ORDER_CANCELED = 54
ORDER_PART_SUCC = 55
ORDER_SUCCEEDED = 56
ORDER_JUNK = 57
ORDER_UNKNOWN = 255
FINAL_ORDER_STATUSES = frozenset({ORDER_PART_CANCEL, ORDER_CANCELED, ORDER_SUCCEEDED, ORDER_JUNK})

# Error codes of the `error` reply. Clients must accept codes not listed here.
BAD_REQUEST = "BAD_REQUEST"
UNKNOWN_TYPE = "UNKNOWN_TYPE"
NOT_CONNECTED = "NOT_CONNECTED"
RISK_DENIED = "RISK_DENIED"
BROKER_ERROR = "BROKER_ERROR"
NOT_FOUND = "NOT_FOUND"
TOO_LARGE = "TOO_LARGE"
BUSY = "BUSY"
INTERNAL = "INTERNAL"
DISK_FULL = "DISK_FULL"

GatewayState = Literal[
    "starting",
    "outside_window",
    "connecting",
    "connected",
    "reconciling",
    "ready",
    "disconnected",
    "halted",
    "stopping",
]
TradingState = Literal["active", "reduce_only", "halted"]

ClientOrderId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=24,
        pattern=r"^[\x21-\x7e]+$",
        description="1-24 printable ASCII characters, unique per account and trading day",
    ),
]
StockCode = Annotated[str, Meta(pattern=r"^[0-9]{6}\.(SH|SZ|BJ)$", description='e.g. "600000.SH"')]
NoteTopic = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
Reason = Annotated[str, Meta(max_length=256)]


def now_ns() -> int:
    """Nanoseconds since the Unix epoch (UTC): the `ts` of every event."""
    return time.time_ns()


class _Msg(Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every tagged message."""


# --------------------------------------------------------------------------
# Broker records (xttype field names). Replies carry them in lists; the
# matching events subclass them and add the bus header (epoch, seq, ts).
# --------------------------------------------------------------------------


class Asset(Struct, frozen=True, kw_only=True):
    account_id: str = ""
    cash: float = 0.0
    frozen_cash: float = 0.0
    market_value: float = 0.0
    total_asset: float = 0.0
    fetch_balance: float = 0.0


class Order(Struct, frozen=True, kw_only=True):
    account_id: str = ""
    stock_code: str = ""
    order_id: int = 0
    order_sysid: str = ""
    order_time: int = 0
    order_type: int = 0
    order_volume: int = 0
    price_type: int = 0
    price: float = 0.0
    traded_volume: int = 0
    traded_price: float = 0.0
    order_status: int = ORDER_UNKNOWN
    status_msg: str = ""
    strategy_name: str = ""
    order_remark: str = ""
    direction: int = 0
    offset_flag: int = 0
    secu_account: str = ""
    instrument_name: str = ""
    client_order_id: str = ""


class Trade(Struct, frozen=True, kw_only=True):
    account_id: str = ""
    stock_code: str = ""
    order_type: int = 0
    traded_id: str = ""
    traded_time: int = 0
    traded_price: float = 0.0
    traded_volume: int = 0
    traded_amount: float = 0.0
    order_id: int = 0
    order_sysid: str = ""
    strategy_name: str = ""
    order_remark: str = ""
    direction: int = 0
    offset_flag: int = 0
    commission: float = 0.0
    secu_account: str = ""
    instrument_name: str = ""
    client_order_id: str = ""


class Position(Struct, frozen=True, kw_only=True):
    account_id: str = ""
    stock_code: str = ""
    volume: int = 0
    can_use_volume: int = 0
    open_price: float = 0.0
    market_value: float = 0.0
    frozen_volume: int = 0
    on_road_volume: int = 0
    yesterday_volume: int = 0
    avg_price: float = 0.0
    direction: int = 0
    last_price: float = 0.0
    profit_rate: float = 0.0
    secu_account: str = ""
    instrument_name: str = ""


# --------------------------------------------------------------------------
# Events (PUB). Topic: "<type>.<account_id>".
# --------------------------------------------------------------------------


class GatewayEvent(_Msg, tag="gateway", frozen=True, kw_only=True):
    """The gateway's connection state changed."""

    account_id: str = ""
    epoch: str = ""
    seq: int = 0
    ts: int = 0
    state: GatewayState = "starting"
    session_id: int = 0
    reason: str = ""


class HeartbeatEvent(_Msg, tag="heartbeat", frozen=True, kw_only=True):
    """Every second; `last_seq` is the seq of the newest event before it."""

    account_id: str = ""
    epoch: str = ""
    seq: int = 0
    ts: int = 0
    last_seq: int = 0
    state: GatewayState = "starting"


class AccountStatusEvent(_Msg, tag="account_status", frozen=True, kw_only=True):
    account_id: str = ""
    epoch: str = ""
    seq: int = 0
    ts: int = 0
    account_type: int = 0
    status: int = 0


class AssetEvent(Asset, _Msg, tag="asset", frozen=True, kw_only=True):
    epoch: str = ""
    seq: int = 0
    ts: int = 0


class OrderEvent(Order, _Msg, tag="order", frozen=True, kw_only=True):
    epoch: str = ""
    seq: int = 0
    ts: int = 0


class TradeEvent(Trade, _Msg, tag="trade", frozen=True, kw_only=True):
    epoch: str = ""
    seq: int = 0
    ts: int = 0


class PositionEvent(Position, _Msg, tag="position", frozen=True, kw_only=True):
    epoch: str = ""
    seq: int = 0
    ts: int = 0


class OrderErrorEvent(_Msg, tag="order_error", frozen=True, kw_only=True):
    account_id: str = ""
    epoch: str = ""
    seq: int = 0
    ts: int = 0
    order_id: int = 0
    error_id: int = 0
    error_msg: str = ""
    strategy_name: str = ""
    order_remark: str = ""
    async_seq: int = 0
    client_order_id: str = ""


class CancelErrorEvent(_Msg, tag="cancel_error", frozen=True, kw_only=True):
    account_id: str = ""
    epoch: str = ""
    seq: int = 0
    ts: int = 0
    order_id: int = 0
    market: int | str = 0
    order_sysid: str = ""
    error_id: int = 0
    error_msg: str = ""
    client_order_id: str = ""


class OrderResponseEvent(_Msg, tag="order_response", frozen=True, kw_only=True):
    account_id: str = ""
    epoch: str = ""
    seq: int = 0
    ts: int = 0
    order_id: int = 0
    strategy_name: str = ""
    order_remark: str = ""
    error_msg: str = ""
    async_seq: int = 0
    client_order_id: str = ""


class CancelResponseEvent(_Msg, tag="cancel_response", frozen=True, kw_only=True):
    account_id: str = ""
    epoch: str = ""
    seq: int = 0
    ts: int = 0
    cancel_result: int = 0
    order_id: int = 0
    order_sysid: str = ""
    async_seq: int = 0
    error_msg: str = ""
    client_order_id: str = ""


class RiskDeniedEvent(_Msg, tag="risk_denied", frozen=True, kw_only=True):
    """The gateway refused an order before it reached the broker."""

    account_id: str = ""
    epoch: str = ""
    seq: int = 0
    ts: int = 0
    client_order_id: str = ""
    stock_code: str = ""
    order_type: int = 0
    order_volume: int = 0
    price_type: int = 0
    price: float = 0.0
    strategy_name: str = ""
    rule: str = ""
    message: str = ""


class NoteEvent(_Msg, tag="note", frozen=True, kw_only=True):
    """A client's own record (job runs, signals, alerts), published by `note`."""

    account_id: str = ""
    epoch: str = ""
    seq: int = 0
    ts: int = 0
    topic: str = ""
    data: dict[str, Any] = {}


ClientOrderStatus = Literal["sending", "accepted", "rejected", "not_placed", "unknown"]


class ClientOrderEvent(_Msg, tag="client_order", frozen=True, kw_only=True):
    """An order placed through the gateway changed outcome. `sending` is its intent,
    journaled before the broker call; then accepted (the broker gave `order_id`),
    rejected (the broker refused it), not_placed (provably never sent: send it again
    with a new client_order_id) or unknown (the gateway lost the broker's answer; it
    looks the order up by its remark until a later client_order event resolves it)."""

    account_id: str = ""
    epoch: str = ""
    seq: int = 0
    ts: int = 0
    client_order_id: str = ""
    status: ClientOrderStatus = "sending"
    order_id: int = 0
    trading_day: str = ""
    stock_code: str = ""
    order_type: int = 0
    order_volume: int = 0
    price_type: int = 0
    price: float = 0.0
    strategy_name: str = ""
    notional: float = 0.0
    error_msg: str = ""


class TickEvent(_Msg, tag="tick", frozen=True, kw_only=True):
    """The latest full tick of one symbol, on the QUOTES socket (topic "tick.<stock_code>").

    Field names as xtdata names them. `seq` counts the quotes stream of this
    epoch on its own (1, 2, 3 ...): a gap means ticks were dropped under load,
    which is allowed for market data; ticks are not journaled or replayed.
    `time` is the exchange time in milliseconds since the Unix epoch."""

    account_id: str = ""
    epoch: str = ""
    seq: int = 0
    ts: int = 0
    stock_code: str = ""
    time: int = 0
    lastPrice: float = 0.0
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    lastClose: float = 0.0
    amount: float = 0.0
    volume: int = 0
    askPrice: list[float] = []
    bidPrice: list[float] = []
    askVol: list[int] = []
    bidVol: list[int] = []
    upStopPrice: float = 0.0
    downStopPrice: float = 0.0


Event = (
    GatewayEvent
    | HeartbeatEvent
    | AccountStatusEvent
    | AssetEvent
    | OrderEvent
    | TradeEvent
    | PositionEvent
    | OrderErrorEvent
    | CancelErrorEvent
    | OrderResponseEvent
    | CancelResponseEvent
    | RiskDeniedEvent
    | NoteEvent
    | ClientOrderEvent
    | TickEvent
)
EVENT_TYPES: tuple[type[Any], ...] = Event.__args__


def event_type(event: Event) -> str:
    """The `type` tag of an event."""
    return str(type(event).__struct_config__.tag)


def topic(event: Event) -> bytes:
    """The PUB topic frame: b"<type>.<account_id>"."""
    return f"{event_type(event)}.{event.account_id}".encode("ascii")


# --------------------------------------------------------------------------
# Commands (REQ/DEALER -> ROUTER)
# --------------------------------------------------------------------------


class Ping(_Msg, tag="ping", frozen=True, kw_only=True):
    pass


class GetStatus(_Msg, tag="status", frozen=True, kw_only=True):
    pass


class PlaceOrder(_Msg, tag="order", frozen=True, kw_only=True):
    client_order_id: ClientOrderId
    stock_code: StockCode
    order_type: Literal[23, 24]
    order_volume: Annotated[int, Meta(gt=0, le=MAX_ORDER_VOLUME)]
    price_type: StockPriceType = 11  # FIX_PRICE
    price: Annotated[
        float,
        Meta(ge=0, le=MAX_PRICE, description="order price: > 0 for FIX_PRICE (limit orders)"),
    ] = 0.0
    strategy_name: Annotated[str, Meta(max_length=64)] = ""


class CancelOrder(_Msg, tag="cancel", frozen=True, kw_only=True):
    """Give exactly one of `order_id` and `client_order_id`."""

    order_id: Annotated[int, Meta(ge=0, le=INT64_MAX)] = 0
    client_order_id: Annotated[str, Meta(max_length=24)] = ""


class QueryAsset(_Msg, tag="query_asset", frozen=True, kw_only=True):
    pass


class QueryOrders(_Msg, tag="query_orders", frozen=True, kw_only=True):
    cancelable_only: bool = False


class QueryTrades(_Msg, tag="query_trades", frozen=True, kw_only=True):
    pass


class QueryPositions(_Msg, tag="query_positions", frozen=True, kw_only=True):
    pass


class Replay(_Msg, tag="replay", frozen=True, kw_only=True):
    epoch: Annotated[str, Meta(max_length=64)]
    from_seq: Annotated[int, Meta(ge=1, le=INT64_MAX)]
    limit: Annotated[int, Meta(ge=1, le=10_000)] = 1000


class ListEpochs(_Msg, tag="epochs", frozen=True, kw_only=True):
    """Which epochs the gateway's journal holds, with the seq range of each."""


class Halt(_Msg, tag="halt", frozen=True, kw_only=True):
    reason: Reason = ""


class ReduceOnly(_Msg, tag="reduce_only", frozen=True, kw_only=True):
    reason: Reason = ""


class Resume(_Msg, tag="resume", frozen=True, kw_only=True):
    reason: Reason = ""


class PublishNote(_Msg, tag="note", frozen=True, kw_only=True):
    topic: NoteTopic
    data: dict[str, Any] = {}


class SimFault(_Msg, tag="sim_fault", frozen=True, kw_only=True):
    """Simulator only: inject a broker fault at xtquant's native boundary (tests and demos).

    fault: disconnect (now), reject_next (response with error_msg, then
    on_order_error), reject_next_error_first (on_order_error before a clean
    response), silent_reject_next, mute_next_order (placed, nobody told),
    mute_queries / skip_asset_pushes / fail_xtdata / raise_in_queries
    (value = 1 on, 0 off),
    slow_xtdata (value = seconds), account_status (value = the status pushed),
    delay_callbacks (value = seconds), reorder_callbacks (value = 1 on, 0 off),
    clear (undo them all).
    """

    fault: Literal[
        "disconnect",
        "reject_next",
        "silent_reject_next",
        "delay_callbacks",
        "reorder_callbacks",
        "clear",
        "reject_next_error_first",
        "mute_next_order",
        "mute_queries",
        "skip_asset_pushes",
        "slow_xtdata",
        "fail_xtdata",
        "account_status",
        "raise_in_queries",
    ]
    value: Annotated[float, Meta(ge=0, le=86_400)] = 0.0


class SimSetPrice(_Msg, tag="sim_set_price", frozen=True, kw_only=True):
    """Simulator only: move a symbol's last price (tests and demos)."""

    stock_code: StockCode
    price: Annotated[float, Meta(gt=0, le=1_000_000)]


class SubscribeQuotes(_Msg, tag="subscribe_quotes", frozen=True, kw_only=True):
    """Ask for `tick` events of these codes on the quotes socket. The gateway keeps
    the union of what its clients asked for; a symbol nobody renewed within
    gateway.quote_lease seconds is dropped, so re-send this to keep it.
    `client_id` names the asker (default: the request's socket)."""

    stock_codes: Annotated[list[StockCode], Meta(min_length=1, max_length=1000)]
    client_id: Annotated[str, Meta(max_length=64)] = ""


class UnsubscribeQuotes(_Msg, tag="unsubscribe_quotes", frozen=True, kw_only=True):
    """Drop this client's interest in these codes; a code nobody holds stops ticking."""

    stock_codes: Annotated[list[StockCode], Meta(min_length=1, max_length=1000)]
    client_id: Annotated[str, Meta(max_length=64)] = ""


class QueryQuote(_Msg, tag="query_quote", frozen=True, kw_only=True):
    """The latest full tick of each code; NOT_FOUND names a code with no quote."""

    stock_codes: Annotated[list[StockCode], Meta(min_length=1, max_length=1000)]


BarPeriod = Literal["1m", "5m", "1d"]


class QueryBars(_Msg, tag="query_bars", frozen=True, kw_only=True):
    """The last `count` bars of `stock_code` (1m, 5m or 1d), oldest first, as xtdata's
    get_market_data_ex gives them; the simulator's come from the prices its orders fill at.
    `start_time`/`end_time` (epoch ms of a bar's start, 0: open) keep the bars of that time
    range only (the last `count` of them). NOT_FOUND names a code the broker does not know."""

    stock_code: StockCode
    period: BarPeriod = "1d"
    count: Annotated[int, Meta(ge=1, le=5000)] = 20
    start_time: Annotated[int, Meta(ge=0)] = 0
    end_time: Annotated[int, Meta(ge=0)] = 0


class QueryInstrument(_Msg, tag="query_instrument", frozen=True, kw_only=True):
    """The instrument detail of `stock_code` (xtdata.get_instrument_detail's fields);
    NOT_FOUND names a code the broker does not know."""

    stock_code: StockCode


Command = (
    Ping
    | GetStatus
    | PlaceOrder
    | CancelOrder
    | QueryAsset
    | QueryOrders
    | QueryTrades
    | QueryPositions
    | Replay
    | Halt
    | ReduceOnly
    | Resume
    | PublishNote
    | SimFault
    | SimSetPrice
    | SubscribeQuotes
    | UnsubscribeQuotes
    | QueryQuote
    | ListEpochs
    | QueryBars
    | QueryInstrument
)
COMMAND_TYPES: tuple[type[Any], ...] = Command.__args__


# --------------------------------------------------------------------------
# Replies
# --------------------------------------------------------------------------


class Pong(_Msg, tag="pong", frozen=True, kw_only=True):
    pass


class Status(_Msg, tag="status", frozen=True, kw_only=True):
    protocol: int = PROTOCOL_VERSION
    epoch: str = ""
    last_seq: int = 0
    state: GatewayState = "starting"
    broker: Literal["sim", "xtquant"] = "sim"
    account_id: str = ""
    session_id: int = 0
    trading: TradingState = "active"
    trading_reason: str = ""
    state_reason: str = ""
    # the trading calendar's last known day ("YYYY-MM-DD"); "" when the gateway's
    # window does not use the calendar (always_open, or trading_days_only = false)
    calendar_last_day: str = ""
    # one sentence while the journal cannot write (new orders refused DISK_FULL); "" otherwise
    disk_full: str = ""


class OrderAck(_Msg, tag="order_ack", frozen=True, kw_only=True):
    """`status`: accepted (the broker gave `order_id`), pending (no broker
    answer within the gateway's wait: the order and order_response events will
    carry the outcome), rejected (the broker refused it; see `error_msg`)."""

    client_order_id: str
    order_id: int = 0
    duplicate: bool = False
    status: Literal["accepted", "pending", "rejected"] = "accepted"
    error_msg: str = ""


class CancelAck(_Msg, tag="cancel_ack", frozen=True, kw_only=True):
    """The cancel was sent (`cancel_result` 0); the outcome is an order event
    with status 53/54, or a cancel_error event."""

    order_id: int
    client_order_id: str = ""
    cancel_result: int = 0
    error_msg: str = ""


class AssetReply(Asset, _Msg, tag="asset", frozen=True, kw_only=True):
    pass


class OrdersReply(_Msg, tag="orders", frozen=True, kw_only=True):
    orders: list[Order] = []


class TradesReply(_Msg, tag="trades", frozen=True, kw_only=True):
    trades: list[Trade] = []


class PositionsReply(_Msg, tag="positions", frozen=True, kw_only=True):
    positions: list[Position] = []


class ReplayReply(_Msg, tag="replay", frozen=True, kw_only=True):
    """`events` from `from_seq` on, in order, at most `limit`; `more` is true
    when the epoch holds events after the last one returned."""

    epoch: str
    events: list[Event] = []
    last_seq: int = 0
    more: bool = False


class HeldEpoch(Struct, frozen=True, kw_only=True):
    """One epoch the journal holds: seqs `first_seq`..`last_seq` (none when first > last)."""

    epoch: str
    first_seq: int
    last_seq: int


class EpochsReply(_Msg, tag="epochs", frozen=True, kw_only=True):
    """Every epoch the journal holds, oldest first; `current` is the running one (last)."""

    epochs: list[HeldEpoch] = []
    current: str = ""


class Lost(Struct, frozen=True, kw_only=True):
    """Events the journal cannot replay: seqs `from_seq`..`to_seq` of `epoch` (`to_seq` None:
    to the epoch's end, length unknown). `reason`: trimmed (deleted by age or size),
    damaged (a frame on disk failed its checksum) or not_held (the epoch is unknown).
    `first_seq`..`last_seq` is what the journal still holds of that epoch (0, 0: nothing)."""

    epoch: str
    from_seq: int
    to_seq: int | None = None
    reason: Literal["trimmed", "damaged", "not_held"] = "not_held"
    first_seq: int = 0
    last_seq: int = 0


class NoteAck(_Msg, tag="note_ack", frozen=True, kw_only=True):
    seq: int


class SimAck(_Msg, tag="sim_ack", frozen=True, kw_only=True):
    detail: str = ""


class QuotesAck(_Msg, tag="quotes_ack", frozen=True, kw_only=True):
    """`stock_codes`: what this client now holds; `subscribed`: the union the
    gateway is publishing for all clients; `quote_lease`: seconds a holding
    lasts unless renewed (send subscribe_quotes again well within it)."""

    stock_codes: list[str] = []
    subscribed: list[str] = []
    quote_lease: float = 0.0


class QuotesReply(_Msg, tag="quotes", frozen=True, kw_only=True):
    """Answer to `query_quote`: the latest tick of each code asked for, in order."""

    quotes: list[TickEvent] = []


class Bar(Struct, frozen=True, kw_only=True):
    """One bar, in xtdata's field names: `time` is the bar's start (epoch ms); prices in
    CNY; `volume` in shares; `preClose` the close of the bar before."""

    time: int
    open: float
    high: float
    low: float
    close: float
    volume: int
    amount: float
    preClose: float  # xtdata's names, as on tick events


class BarsReply(_Msg, tag="bars", frozen=True, kw_only=True):
    """Answer to `query_bars`: at most `count` bars, oldest first (fewer when the broker
    holds fewer)."""

    stock_code: str
    period: str
    bars: list[Bar] = []


class InstrumentReply(_Msg, tag="instrument", frozen=True, kw_only=True):
    """Answer to `query_instrument`, in xtdata.get_instrument_detail's field names: today's
    previous close and limit prices, the price tick, the name and the exchange."""

    stock_code: str
    ExchangeID: str = ""  # xtdata's names
    InstrumentID: str = ""
    InstrumentName: str = ""
    PreClose: float = 0.0
    UpStopPrice: float = 0.0
    DownStopPrice: float = 0.0
    PriceTick: float = 0.0
    VolumeMultiple: int = 1
    OpenDate: str = ""
    FloatVolume: float = 0.0
    TotalVolume: float = 0.0


class ErrorReply(_Msg, tag="error", frozen=True, kw_only=True):
    code: str
    message: str
    rule: str = ""
    lost: Lost | None = None


Reply = (
    Pong
    | Status
    | OrderAck
    | CancelAck
    | AssetReply
    | OrdersReply
    | TradesReply
    | PositionsReply
    | ReplayReply
    | NoteAck
    | SimAck
    | QuotesAck
    | QuotesReply
    | EpochsReply
    | BarsReply
    | InstrumentReply
    | ErrorReply
)
REPLY_TYPES: tuple[type[Any], ...] = Reply.__args__


# --------------------------------------------------------------------------
# The recorder's query endpoint (ROUTER on recorder.query_address), same
# framing and encodings as the gateway's command socket.
# --------------------------------------------------------------------------


class SqlQuery(_Msg, tag="sql", frozen=True, kw_only=True):
    """A read-only SQL statement run against the recorder's DuckDB file."""

    sql: Annotated[str, Meta(min_length=1, max_length=100_000)]
    limit: Annotated[int, Meta(ge=1, le=1_000_000)] = 10_000


class RecorderStatusQuery(_Msg, tag="recorder_status", frozen=True, kw_only=True):
    pass


class SqlResult(_Msg, tag="sql_result", frozen=True, kw_only=True):
    """Rows as lists in column order; `truncated` when more rows than `limit` matched.
    Timestamps are ISO-8601 strings, decimals floats."""

    columns: list[str] = []
    types: list[str] = []
    rows: list[list[Any]] = []
    truncated: bool = False


class RecorderStatus(_Msg, tag="recorder_status", frozen=True, kw_only=True):
    """What the recorder has committed: the newest (epoch, seq) in DuckDB."""

    epoch: str = ""
    last_seq: int = 0
    events: int = 0
    last_commit_ts: int = 0
    gateway_last_seq: int = 0
    bad_events: int = 0


RecorderCommand = SqlQuery | RecorderStatusQuery
RecorderReply = SqlResult | RecorderStatus | ErrorReply


# Which reply answers which command (an `error` reply can answer any of them).
REPLY_OF: dict[type[Any], type[Any]] = {
    Ping: Pong,
    GetStatus: Status,
    PlaceOrder: OrderAck,
    CancelOrder: CancelAck,
    QueryAsset: AssetReply,
    QueryOrders: OrdersReply,
    QueryTrades: TradesReply,
    QueryPositions: PositionsReply,
    Replay: ReplayReply,
    Halt: Status,
    ReduceOnly: Status,
    Resume: Status,
    PublishNote: NoteAck,
    SimFault: SimAck,
    SimSetPrice: SimAck,
    SubscribeQuotes: QuotesAck,
    UnsubscribeQuotes: QuotesAck,
    QueryQuote: QuotesReply,
    ListEpochs: EpochsReply,
    QueryBars: BarsReply,
    QueryInstrument: InstrumentReply,
    SqlQuery: SqlResult,
    RecorderStatusQuery: RecorderStatus,
}


# --------------------------------------------------------------------------
# Codecs: one reused encoder/decoder per direction and format.
# --------------------------------------------------------------------------

msgpack_encoder = msgspec.msgpack.Encoder()
json_encoder = msgspec.json.Encoder()
command_msgpack_decoder = msgspec.msgpack.Decoder(Command)
command_json_decoder = msgspec.json.Decoder(Command)
reply_msgpack_decoder = msgspec.msgpack.Decoder(Reply)
reply_json_decoder = msgspec.json.Decoder(Reply)
event_msgpack_decoder = msgspec.msgpack.Decoder(Event)
event_json_decoder = msgspec.json.Decoder(Event)
recorder_command_msgpack_decoder = msgspec.msgpack.Decoder(RecorderCommand)
recorder_command_json_decoder = msgspec.json.Decoder(RecorderCommand)
recorder_reply_msgpack_decoder = msgspec.msgpack.Decoder(RecorderReply)
recorder_reply_json_decoder = msgspec.json.Decoder(RecorderReply)


def is_json(payload: bytes) -> bool:
    """A command whose first byte is `{` is JSON, and its reply is JSON too."""
    return payload[:1] == b"{"


def encode(msg: Any, json: bool = False) -> bytes:
    return json_encoder.encode(msg) if json else msgpack_encoder.encode(msg)


def decode_event(payload: bytes) -> Event:
    """Decode one event payload (MessagePack); raises msgspec.DecodeError /
    ValidationError on junk."""
    return event_msgpack_decoder.decode(payload)


def decode_reply(payload: bytes) -> Reply:
    return (
        reply_json_decoder.decode(payload)
        if is_json(payload)
        else (reply_msgpack_decoder.decode(payload))
    )


def decode_recorder_reply(payload: bytes) -> RecorderReply:
    if is_json(payload):
        return recorder_reply_json_decoder.decode(payload)
    return recorder_reply_msgpack_decoder.decode(payload)
