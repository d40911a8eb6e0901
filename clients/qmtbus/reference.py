"""Generates docs/protocol.schema.json and docs/PROTOCOL-REFERENCE.md from the protocol types;
`python -m qmtbus.reference` writes them, `--check` exits 1 when either is stale."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec
from msgspec import inspect as mi

from qmtbus import protocol as p
from qmtbus.config import Config

DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"
SCHEMA_FILE = "protocol.schema.json"
REFERENCE_FILE = "PROTOCOL-REFERENCE.md"
REGENERATE = "python -m qmtbus.reference"
# Field names, types, defaults, constraints and the JSON examples all come from the Structs
# (examples are built from them with SAMPLES, then validated). The tables below only add
# prose where protocol.py has none; tests fail when they miss a type or a code.

REPLY_OF = p.REPLY_OF
RECORDER_COMMAND_TYPES: tuple[type[Any], ...] = p.RecorderCommand.__args__
RECORDER_REPLY_TYPES: tuple[type[Any], ...] = p.RecorderReply.__args__
RECORDS: tuple[type[Any], ...] = (
    p.Asset,
    p.Order,
    p.Trade,
    p.Position,
    p.HeldEpoch,
    p.Lost,
    p.Bar,
)
UNIONS: dict[str, Any] = {
    "Command": p.Command,
    "Reply": p.Reply,
    "Event": p.Event,
    "RecorderCommand": p.RecorderCommand,
    "RecorderReply": p.RecorderReply,
}

# What a message is for, where its class has no docstring (a docstring always wins).
SUMMARY: dict[str, str] = {
    "Ping": "Liveness check; answered by the gateway itself, also when the broker is down.",
    "GetStatus": "The gateway's state, epoch, last seq and trading state.",
    "PlaceOrder": "Place an order. Resending the same `client_order_id` never places it twice.",
    "QueryAsset": "Query the account's asset from the broker.",
    "QueryOrders": "Query today's orders from the broker.",
    "QueryTrades": "Query today's trades from the broker.",
    "QueryPositions": "Query positions from the broker.",
    "Replay": "Events of an epoch from `from_seq` on, read from the gateway's journal.",
    "Halt": "Stop trading: new orders are refused (cancels always pass).",
    "ReduceOnly": "Only orders that reduce a position pass (sells); cancels always pass.",
    "Resume": "Trade normally again.",
    "PublishNote": "Publish a client's own record as a `note` event on the bus.",
    "Pong": "Answer to `ping`.",
    "Status": "The gateway's state; answers `status`, `halt`, `reduce_only` and `resume`.",
    "AssetReply": "Answer to `query_asset`: the asset fields, flat.",
    "OrdersReply": "Answer to `query_orders`.",
    "TradesReply": "Answer to `query_trades`.",
    "PositionsReply": "Answer to `query_positions`.",
    "NoteAck": "The `note` was published; `seq` is its event's seq.",
    "SimAck": "The simulator applied the fault or price.",
    "ErrorReply": "The command failed; `code` says why (see Error codes), `message` says it "
    "in words, `rule` names the risk rule for RISK_DENIED, `lost` (on NOT_FOUND for "
    "`replay`) names the seqs gone and why.",
    "AccountStatusEvent": "xtquant on_account_status.",
    "AssetEvent": "xtquant on_stock_asset, and every asset the gateway queries.",
    "OrderEvent": "xtquant on_stock_order, and orders found by reconciliation; carries "
    "`client_order_id` when the order came through the gateway.",
    "TradeEvent": "xtquant on_stock_trade, and fills found by reconciliation (deduplicated "
    "on `traded_id`); carries `client_order_id` likewise.",
    "PositionEvent": "xtquant on_stock_position, and positions found by reconciliation.",
    "OrderErrorEvent": "xtquant on_order_error: the broker refused an order.",
    "CancelErrorEvent": "xtquant on_cancel_error: a cancel could not be done.",
    "OrderResponseEvent": "xtquant on_order_stock_async_response: the broker's answer to an order.",
    "CancelResponseEvent": "xtquant on_cancel_order_stock_async_response.",
    "RecorderStatusQuery": "What the recorder has stored.",
    "Asset": "xtquant XtAsset.",
    "Order": "xtquant XtOrder, plus `client_order_id`.",
    "Trade": "xtquant XtTrade, plus `client_order_id`.",
    "Position": "xtquant XtPosition.",
}

# Field descriptions where the type carries no Meta description ("Class.field" first).
FIELD_NOTES: dict[str, str] = {
    "account_id": "the broker account",
    "epoch": "the gateway run that published the event; new at every gateway start",
    "seq": "1, 2, 3, … per epoch, without holes",
    "ts": "when the gateway made the event, integer ns since the Unix epoch (UTC)",
    "state": "the gateway's connection state",
    "session_id": "the XtQuantTrader session id in use",
    "last_seq": "seq of the newest event of the epoch",
    "stock_code": 'code and exchange, e.g. "600000.SH"',
    "order_id": "the terminal's order id (0 until known)",
    "order_sysid": "the exchange contract number, known once the order is reported",
    "order_type": "23 buy, 24 sell (see xtquant codes)",
    "order_volume": "shares ordered",
    "price_type": "11 limit, 5 latest, 42-48 market types (see xtquant codes)",
    "price": "order price (limit orders)",
    "traded_volume": "shares filled",
    "traded_price": "fill price (average for an order)",
    "traded_amount": "fill value (price × volume)",
    "traded_id": "the fill's id; unique per fill, use it to deduplicate",
    "order_status": "see xtquant codes; 53, 54, 56, 57 are final",
    "status_msg": "the broker's text for the status (the reason of a junk order)",
    "strategy_name": "free text passed through to the broker",
    "order_remark": "xtquant remark; the gateway sends `client_order_id` here",
    "client_order_id": "the client's id of the order (1-24 printable ASCII, unique per day)",
    "direction": "48 long, 49 short",
    "offset_flag": "48 open (buy), 49 close (sell)",
    "error_id": "the broker's error number",
    "error_msg": "the broker's error text",
    "async_seq": "xtquant's request seq of an async call (renamed: `seq` is the bus seq)",
    "cancel_result": "0 sent, -1 failed; the outcome comes as an order or cancel_error event",
    "market": "0 SH, 1 SZ, or the exchange as text",
    "reason": "why, in words",
    "cash": "available cash",
    "frozen_cash": "cash frozen by working orders",
    "market_value": "market value of the holdings",
    "total_asset": "total asset: cash plus holdings",
    "fetch_balance": "cash that can be withdrawn",
    "volume": "shares held",
    "can_use_volume": "shares that can be sold now (T+1)",
    "open_price": "opening price",
    "frozen_volume": "shares frozen by working sell orders",
    "on_road_volume": "shares in transit",
    "yesterday_volume": "shares held at the previous close",
    "avg_price": "average cost price",
    "last_price": "latest price",
    "profit_rate": "profit ratio of the position",
    "commission": "commission charged",
    "order_time": "order time as xtquant reports it",
    "traded_time": "fill time as xtquant reports it",
    "secu_account": "the exchange shareholder account",
    "instrument_name": "the security's name",
    "OrdersReply.orders": "the orders",
    "TradesReply.trades": "the trades",
    "PositionsReply.positions": "the positions",
    "SimAck.detail": "what the simulator did",
    "RecorderStatus.events": "events stored",
    "RecorderStatus.gateway_last_seq": "the newest seq the gateway announced (heartbeat/status)",
    "RecorderStatus.bad_events": "events that could not be decoded (kept, counted apart)",
    "rule": "the risk rule that denied the order",
    "CancelOrder.order_id": "the order to cancel, by terminal id",
    "CancelOrder.client_order_id": "the order to cancel, by the client's id",
    "QueryOrders.cancelable_only": "only orders that can still be cancelled",
    "Replay.epoch": "the epoch to read",
    "Replay.from_seq": "first seq wanted",
    "Replay.limit": "most events in one reply; ask again from last returned + 1 while `more`",
    "ReplayReply.events": "the events from `from_seq` on, in order",
    "ReplayReply.last_seq": "the last seq the journal holds for the epoch",
    "ReplayReply.more": "true when the epoch holds events after the last one returned",
    "EpochsReply.epochs": "every epoch the journal holds, oldest first",
    "EpochsReply.current": "the running gateway's epoch (the last one listed)",
    "HeldEpoch.epoch": "the epoch's name (sorts in start order)",
    "HeldEpoch.first_seq": "first seq held (later than 1 when the start was trimmed)",
    "HeldEpoch.last_seq": "last seq held",
    "ErrorReply.lost": "on NOT_FOUND for `replay`: which seqs are gone and why",
    "Lost.epoch": "the epoch asked for",
    "Lost.from_seq": "first seq lost (the `from_seq` asked for)",
    "Lost.to_seq": "last seq lost; replay on from `to_seq + 1`. null: the rest of the epoch",
    "Lost.reason": "trimmed, damaged or not_held",
    "Lost.first_seq": "first seq the journal still holds of the epoch (0: none)",
    "Lost.last_seq": "last seq the journal holds of the epoch (0: none)",
    "PublishNote.topic": "short printable ASCII label, e.g. job.morning",
    "PublishNote.data": "a small map, published as is",
    "NoteEvent.topic": "the note's label",
    "NoteEvent.data": "the note's map",
    "HeartbeatEvent.last_seq": "seq of the newest event before this heartbeat: a gap check",
    "AccountStatusEvent.status": "xtquant account status: 0 ok, others see XtAccountStatus",
    "AccountStatusEvent.account_type": "xtquant account type (2 stock)",
    "Status.protocol": "protocol version; bumped only on incompatible change",
    "Status.epoch": "the current epoch",
    "Status.last_seq": "seq of the newest event published",
    "Status.broker": '"sim" (embedded simulator) or "xtquant" (real miniQMT)',
    "Status.trading": "trading state set by halt / reduce_only / resume",
    "Status.trading_reason": "the reason given with the last trading-state change",
    "Status.state_reason": "why the gateway is in its state",
    "Status.calendar_last_day": "the trading calendar's last known day, YYYY-MM-DD; empty when "
    "the window uses no calendar",
    "Status.disk_full": "why the journal cannot be written (new orders refused); empty when it can",
    "OrderAck.duplicate": "true when this client_order_id was already accepted: nothing sent",
    "OrderAck.status": "accepted, pending or rejected (see above)",
    "OrderAck.error_msg": "the broker's reason when rejected",
    "CancelAck.error_msg": "why the cancel failed when cancel_result is not 0",
    "NoteAck.seq": "seq of the published note event",
    "ErrorReply.code": "UPPER_SNAKE error code (see Error codes); accept unknown codes",
    "ErrorReply.message": "human-readable sentence",
    "ErrorReply.rule": "the risk rule, for RISK_DENIED",
    "RiskDeniedEvent.message": "what broke the rule, with the numbers",
    "ClientOrderEvent.status": "sending (the intent, before the broker call), accepted, "
    "rejected, not_placed (provably never sent) or unknown (looked up until resolved)",
    "ClientOrderEvent.trading_day": "the Asia/Shanghai date the client_order_id belongs to",
    "ClientOrderEvent.notional": "what the risk gate counted for this order (CNY)",
    "ClientOrderEvent.error_msg": "why, for rejected, not_placed and unknown",
    "SimFault.fault": "the fault to inject",
    "SimFault.value": (
        "seconds for delay_callbacks and slow_xtdata; 1/0 for the on/off faults; "
        "the status for account_status"
    ),
    "SimSetPrice.price": "the new last price",
    "SqlQuery.sql": "one read-only SQL statement",
    "SqlQuery.limit": "most rows returned",
    "SqlResult.columns": "column names",
    "SqlResult.types": "DuckDB type names, one per column",
    "SqlResult.rows": "rows as lists in column order",
    "SqlResult.truncated": "true when more rows than `limit` matched",
    "RecorderStatus.epoch": "epoch of the newest stored event",
    "RecorderStatus.last_seq": "seq of the newest stored event",
    "RecorderStatus.last_commit_ts": "when the recorder last committed, ns since the Unix epoch",
}

ERROR_NOTES: dict[str, str] = {
    "BAD_REQUEST": "undecodable payload, wrong field types, missing or invalid fields",
    "UNKNOWN_TYPE": "`type` names no command this endpoint serves",
    "NOT_CONNECTED": "the gateway is not `ready` (outside the window, connecting, reconciling)",
    "RISK_DENIED": "the risk gate refused the order before the broker; `rule` names the rule",
    "BROKER_ERROR": "the broker call failed",
    "NOT_FOUND": "no such order, or the replayed epoch/seq is no longer held (see `lost`)",
    "TOO_LARGE": "the request is larger than the gateway accepts",
    "BUSY": "too many requests in flight from this client; retry later",
    "INTERNAL": "an unexpected fault while serving the request; the gateway keeps running",
    "DISK_FULL": "the gateway cannot write its journal: new orders and notes are refused, "
    "nothing was sent; status, queries, cancels and replay still work; it recovers by itself",
}
ORDER_TYPE_NOTES = {p.STOCK_BUY: "buy (STOCK_BUY)", p.STOCK_SELL: "sell (STOCK_SELL)"}
PRICE_TYPE_NOTES = {
    p.LATEST_PRICE: "latest price (LATEST_PRICE)",
    p.FIX_PRICE: "limit price (FIX_PRICE)",
    42: "market: SH best five, rest cancelled",
    43: "market: SH best five, rest as limit",
    44: "market: counterparty best price",
    45: "market: own-side best price",
    46: "market: SZ immediate or cancel",
    47: "market: SZ best five, rest cancelled",
    48: "market: SZ fill or kill",
}
ORDER_STATUS_NOTES = {
    p.ORDER_UNREPORTED: "unreported",
    p.ORDER_WAIT_REPORTING: "waiting to be reported",
    p.ORDER_REPORTED: "reported (working)",
    p.ORDER_REPORTED_CANCEL: "reported, cancel pending",
    p.ORDER_PARTSUCC_CANCEL: "part filled, cancel pending",
    p.ORDER_PART_CANCEL: "part cancelled (rest filled)",
    p.ORDER_CANCELED: "cancelled",
    p.ORDER_PART_SUCC: "part filled",
    p.ORDER_SUCCEEDED: "filled",
    p.ORDER_JUNK: "junk (rejected)",
    p.ORDER_UNKNOWN: "unknown",
}

# Sample values for the examples, by field name ("Class.field" first). A field without one
# shows its default; a required field without one gets the smallest valid value of its type.
SAMPLES: dict[str, Any] = {
    "account_id": "SIM0001",
    "stock_codes": ["600000.SH", "000001.SZ"],
    "subscribed": ["600000.SH", "000001.SZ"],
    "client_id": "strategy-1",
    "time": 1795483800000,
    "lastPrice": 10.52,
    "open": 10.4,
    "high": 10.6,
    "low": 10.38,
    "lastClose": 10.41,
    "amount": 52_600_000.0,
    "askPrice": [10.53, 10.54, 10.55, 10.56, 10.57],
    "bidPrice": [10.52, 10.51, 10.5, 10.49, 10.48],
    "askVol": [120, 300, 80, 500, 210],
    "bidVol": [90, 410, 260, 700, 150],
    "upStopPrice": 11.45,
    "downStopPrice": 9.37,
    "epoch": "20261124T013000Z-3fa9c1",
    "seq": 42,
    "ts": 1795483800123456789,
    "last_seq": 41,
    "state": "ready",
    "session_id": 100001,
    "stock_code": "600000.SH",
    "instrument_name": "浦发银行",
    "order_id": 1082130433,
    "order_sysid": "2011",
    "order_time": 1795483800,
    "traded_time": 1795483801,
    "order_type": p.STOCK_BUY,
    "order_volume": 100,
    "price_type": p.FIX_PRICE,
    "price": 10.5,
    "traded_volume": 100,
    "traded_price": 10.5,
    "traded_amount": 1050.0,
    "traded_id": "T0001",
    "commission": 5.0,
    "order_status": p.ORDER_SUCCEEDED,
    "strategy_name": "demo",
    "client_order_id": "demo-0001",
    "order_remark": "demo-0001",
    "direction": 48,
    "offset_flag": 48,
    "cash": 998945.0,
    "market_value": 1052.0,
    "total_asset": 999997.0,
    "fetch_balance": 998945.0,
    "volume": 100,
    "yesterday_volume": 0,
    "open_price": 10.5,
    "avg_price": 10.5,
    "last_price": 10.52,
    "profit_rate": 0.0019,
    "async_seq": 7,
    "account_type": 2,
    "from_seq": 1,
    "topic": "job.morning",
    "data": {"job": "morning_rebalance", "ok": True},
    "rule": "max_order_notional",
    "message": "order notional 1050.00 exceeds max_order_notional 1000.00",
    "PlaceOrder.price": 10.5,
    "ErrorReply.code": p.RISK_DENIED,
    "OrderErrorEvent.error_id": -61,
    "OrderErrorEvent.error_msg": "insufficient cash",
    "CancelErrorEvent.error_id": -62,
    "CancelErrorEvent.error_msg": "order already filled",
    "SimFault.fault": "disconnect",
    "SimSetPrice.price": 10.52,
    "SqlQuery.sql": "SELECT 42 AS answer",
    "SqlResult.columns": ["answer"],
    "SqlResult.types": ["INTEGER"],
    "SqlResult.rows": [[42]],
    "RecorderStatus.events": 42,
    "RecorderStatus.gateway_last_seq": 42,
    "RecorderStatus.last_commit_ts": 1795483801000000000,
    "Status.last_seq": 42,
    "ReplayReply.last_seq": 42,
    "RecorderStatus.last_seq": 42,
    "CancelOrder.order_id": 0,
    "SimAck.detail": "disconnect injected",
}


# ------------------------------------------------------------------------ helpers


def tag(cls: type[Any]) -> str:
    return str(cls.__struct_config__.tag)


def doc(cls: type[Any]) -> str:
    own = cls.__dict__.get("__doc__")
    return inspect.cleandoc(own) if own else SUMMARY.get(cls.__name__, "")


def _lookup(table: dict[str, Any], cls: type[Any], name: str) -> Any:
    return table.get(f"{cls.__name__}.{name}", table.get(name))


def _unwrap(t: Any) -> tuple[Any, str]:
    if isinstance(t, mi.Metadata):
        return t.type, str((t.extra_json_schema or {}).get("description", ""))
    return t, ""


def type_text(t: Any) -> str:
    """A JSON-ish type name a non-Python reader understands."""
    t, _ = _unwrap(t)
    if isinstance(t, mi.StrType):
        return "string"
    if isinstance(t, mi.BoolType):
        return "boolean"
    if isinstance(t, mi.IntType):
        return "integer"
    if isinstance(t, mi.FloatType):
        return "number"
    if isinstance(t, mi.AnyType):
        return "any"
    if isinstance(t, mi.NoneType):
        return "null"
    if isinstance(t, mi.LiteralType):
        return " | ".join(json.dumps(v, ensure_ascii=False) for v in t.values)
    if isinstance(t, mi.ListType):
        return f"array of {type_text(t.item_type)}"
    if isinstance(t, mi.DictType):
        return f"map of {type_text(t.key_type)} to {type_text(t.value_type)}"
    if isinstance(t, mi.StructType):
        return f"[{t.cls.__name__}](#{anchor(t.cls)})"
    if isinstance(t, mi.UnionType):
        classes = {s.cls for s in t.types if isinstance(s, mi.StructType)}
        if classes == set(p.EVENT_TYPES):
            return "[event](#events) (any event map)"
        return " or ".join(type_text(s) for s in t.types)
    raise TypeError(f"reference: no rendering for {t!r}; extend qmtbus.reference.type_text")


def constraints_text(t: Any) -> str:
    t, _ = _unwrap(t)
    bounds = [("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")]
    names = [("min_length", "min length"), ("max_length", "max length")]
    parts = [f"{sym} {getattr(t, a)}" for a, sym in bounds if getattr(t, a, None) is not None]
    parts += [f"{label} {getattr(t, a)}" for a, label in names if getattr(t, a, None) is not None]
    if getattr(t, "multiple_of", None) is not None:
        parts.append(f"multiple of {t.multiple_of}")
    if getattr(t, "pattern", None):
        parts.append(f"pattern `{t.pattern}`")
    return ", ".join(parts)


def field_note(cls: type[Any], f: mi.Field) -> str:
    _, described = _unwrap(f.type)
    return described or _lookup(FIELD_NOTES, cls, f.name) or ""


def anchor(cls: type[Any]) -> str:
    if cls in RECORDS:
        return f"record-{cls.__name__.lower()}"
    role = role_of(cls)
    return f"{role}-{tag(cls).replace('_', '-')}"


def role_of(cls: type[Any]) -> str:
    for role, types in (
        ("command", p.COMMAND_TYPES),
        ("reply", p.REPLY_TYPES),
        ("event", p.EVENT_TYPES),
        ("recorder-command", RECORDER_COMMAND_TYPES),
        ("recorder-reply", RECORDER_REPLY_TYPES),
    ):
        if cls in types:
            return role
    raise KeyError(cls)


# ------------------------------------------------------------------------ examples


def example(cls: type[Any]) -> Any:
    """An instance of `cls` with sample values, checked against the type's constraints."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    values = {f.name: _sample(cls, f) for f in info.fields}
    instance = cls(**values)
    try:  # constructing does not validate; a round trip does
        msgspec.json.decode(msgspec.json.encode(instance), type=cls)
    except msgspec.ValidationError as err:
        raise ValueError(
            f"reference: the example of {cls.__name__} is invalid ({err}); add a "
            "valid sample to qmtbus.reference.SAMPLES"
        ) from None
    return instance


def _sample(cls: type[Any], f: mi.Field) -> Any:
    given = _lookup(SAMPLES, cls, f.name)
    if given is not None:
        return given
    t, _ = _unwrap(f.type)
    if isinstance(t, mi.ListType):
        item, _ = _unwrap(t.item_type)
        if isinstance(item, mi.UnionType):
            item = item.types[0]
        if isinstance(item, mi.StructType):
            return [example(item.cls)]
    if not f.required:
        return f.default if f.default is not msgspec.NODEFAULT else f.default_factory()
    if isinstance(t, mi.LiteralType):
        return t.values[0]
    if isinstance(t, mi.StrType):
        return "x" * (t.min_length or 1)
    if isinstance(t, mi.IntType | mi.FloatType):
        low = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else 0)
        return low if isinstance(t, mi.IntType) else float(low)
    raise ValueError(f"reference: add a sample for required field {cls.__name__}.{f.name}")


def example_json(cls: type[Any]) -> str:
    data = msgspec.to_builtins(example(cls))
    return json.dumps(data, indent=2, ensure_ascii=False)


# ------------------------------------------------------------------------ schema


def build_schema() -> dict[str, Any]:
    """msgspec's JSON Schema of every union, with an index of which type plays which role."""
    names = list(UNIONS)
    # The records go in too: Asset is nested nowhere, but a client may want its schema.
    schemas, components = msgspec.json.schema_components(
        [*(UNIONS[n] for n in names), *RECORDS], ref_template="#/$defs/{name}"
    )
    defs: dict[str, Any] = dict(components)
    for name, schema in zip(names, schemas[: len(names)], strict=True):
        defs[name] = schema
    # Add the reference's summaries and field notes where msgspec had no description.
    for cls in _all_types():
        component = defs[cls.__name__]
        if doc(cls):  # cleaned: msgspec keeps the docstring's indentation
            component["description"] = doc(cls)
        info = mi.type_info(cls)
        assert isinstance(info, mi.StructType)
        for f in info.fields:
            prop = component["properties"][f.encode_name]
            note = field_note(cls, f)
            if note and "description" not in prop:
                prop["description"] = note

    def ref(cls: type[Any]) -> str:
        return f"#/$defs/{cls.__name__}"

    def listing(types: Iterable[type[Any]]) -> dict[str, Any]:
        return {tag(c): ref(c) for c in types}

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"qmtbus wire protocol {p.PROTOCOL_VERSION}",
        "description": (
            f"Generated by `{REGENERATE}` from clients/qmtbus/protocol.py; do not edit. "
            "Every message is a map whose `type` names it. See PROTOCOL-REFERENCE.md."
        ),
        "x-qmtbus": {
            "protocol": p.PROTOCOL_VERSION,
            "commands": {
                tag(c): {"schema": ref(c), "reply": ref(REPLY_OF[c])} for c in p.COMMAND_TYPES
            },
            "replies": listing(p.REPLY_TYPES),
            "events": listing(p.EVENT_TYPES),
            "recorder_commands": {
                tag(c): {"schema": ref(c), "reply": ref(REPLY_OF[c])}
                for c in RECORDER_COMMAND_TYPES
            },
            "recorder_replies": listing(RECORDER_REPLY_TYPES),
            "error_codes": list(error_codes()),
        },
        "anyOf": [{"$ref": f"#/$defs/{n}"} for n in names],
        "$defs": defs,
    }


def _all_types() -> list[type[Any]]:
    seen: dict[type[Any], None] = {}
    for group in (
        p.COMMAND_TYPES,
        p.REPLY_TYPES,
        p.EVENT_TYPES,
        RECORDER_COMMAND_TYPES,
        RECORDER_REPLY_TYPES,
        RECORDS,
    ):
        seen.update(dict.fromkeys(group))
    return list(seen)


def error_codes() -> dict[str, str]:
    """The error-code constants of protocol.py, in the order they are defined there."""
    codes = [k for k, v in vars(p).items() if isinstance(v, str) and k == v and k.isupper()]
    return {code: ERROR_NOTES.get(code, "") for code in codes}


# ------------------------------------------------------------------------ markdown


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default_text(f: mi.Field) -> str:
    if f.required:
        return "required"
    value = f.default if f.default is not msgspec.NODEFAULT else f.default_factory()
    return f"default `{json.dumps(msgspec.to_builtins(value), ensure_ascii=False)}`"


def _declared_literal(cls: type[Any], name: str) -> str | None:
    """A Literal's values in the order the protocol declares them (msgspec sorts them)."""
    hint = typing.get_type_hints(cls).get(name)
    if typing.get_origin(hint) is not typing.Literal:
        return None
    return " | ".join(json.dumps(v, ensure_ascii=False) for v in typing.get_args(hint))


def fields_table(cls: type[Any]) -> list[str]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    rows = [
        "| field | type | required / default | constraints | description |",
        "|---|---|---|---|---|",
    ]
    if info.tag_field:
        rows.append(f'| `{info.tag_field}` | `"{info.tag}"` | required | | names the message |')
    for f in info.fields:
        cells = [
            f"`{f.encode_name}`",
            _declared_literal(cls, f.name) or type_text(f.type),
            _default_text(f),
            constraints_text(f.type),
            field_note(cls, f),
        ]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return rows


def message_section(cls: type[Any], heading: str, extra: Iterable[str] = ()) -> list[str]:
    out = [f'<a id="{anchor(cls)}"></a>', "", heading, ""]
    if doc(cls):
        out += [doc(cls), ""]
    out += list(extra)
    out += [*fields_table(cls), "", "```json", example_json(cls), "```", ""]
    return out


def _first_line(text: str) -> str:
    return text.split("\n\n")[0].replace("\n", " ")


def _link(cls: type[Any]) -> str:
    return f"[`{tag(cls)}`](#{anchor(cls)})"


def _codes_table(title: str, header: str, notes: dict[Any, str]) -> list[str]:
    rows = [f"**{title}**", "", f"| {header} | meaning |", "|---|---|"]
    rows += [f"| {code} | {_cell(text)} |" for code, text in notes.items()]
    return [*rows, ""]


def build_reference() -> str:
    cfg = Config()
    g = cfg.gateway
    out = [
        "# qmtbus protocol reference",
        "",
        f"<!-- Generated by `{REGENERATE}` from clients/qmtbus/protocol.py; do not edit. -->",
        "",
        f"Protocol version **{p.PROTOCOL_VERSION}** (the `protocol` field of the `status` "
        "reply). This page and the JSON Schema next to it ([protocol.schema.json]"
        "(protocol.schema.json)) are generated from the msgspec types the gateway itself "
        "uses, so they cannot drift from it. They are all you need to write a client in any "
        "language that has ZeroMQ and MessagePack (or only JSON).",
        "",
        "- [Sockets and framing](#sockets-and-framing)",
        "- [Encoding](#encoding)",
        "- [Rules for clients](#rules-for-clients)",
        "- [Error codes](#error-codes)",
        "- [xtquant codes](#xtquant-codes)",
        "- [Commands](#commands)",
        "- [Replies](#replies)",
        "- [Events](#events)",
        "- [Records](#records)",
        "- [Recorder query endpoint](#recorder-query-endpoint)",
        "",
        "## Sockets and framing",
        "",
        "| endpoint | server socket | default address | client socket | message frames |",
        "|---|---|---|---|---|",
        f"| gateway events | PUB | `{g.events_address}` | SUB | `[topic, payload]` |",
        f"| gateway commands | ROUTER | `{g.commands_address}` | REQ or DEALER | `[payload]` |",
        f"| recorder queries | ROUTER | `{cfg.recorder.query_address}` | REQ or DEALER "
        "| `[payload]` |",
        "",
        "- **Events**: every message has two frames, `[topic, payload]`. `topic` is ASCII "
        '`"<type>.<account_id>"`, e.g. `trade.SIM0001`. Subscribe by prefix: `trade.` for '
        "fills (the dot keeps `order.` from matching `order_error.`), the empty prefix for "
        "everything. The payload is always MessagePack.",
        "- **Commands**: one request, one reply, each a single frame. A REQ socket sends "
        '`[payload]`. A DEALER socket sends `[b"", payload]` (the empty delimiter frame '
        'a REQ socket adds itself) and receives `[b"", reply]`; a bare `[payload]` works '
        "too and is answered by `[reply]`. A REQ socket that got "
        "no reply in time cannot send again: close it, open a new one and resend.",
        "- Both endpoints bind to loopback unless configured otherwise; anything else "
        "requires CURVE: the client needs the server's public key and its own key pair, "
        "whose public key is on the gateway's allow-list.",
        f"- The gateway's limit on the size of a request is `gateway.max_message_size` "
        f"(default {g.max_message_size} bytes).",
        "",
        "## Encoding",
        "",
        "- Every payload is one map with a string field `type` that names the message.",
        "- MessagePack by default. A request whose first byte is `{` is read as JSON, and "
        "its reply is JSON too; events are always MessagePack. Field names and values are "
        "the same in both encodings; the examples below are JSON.",
        "- Integers are integers, floats are IEEE doubles, strings are UTF-8. `ts` is an "
        "integer of nanoseconds since the Unix epoch (UTC), about 1.8e18: beyond 2^53, so "
        "JavaScript needs BigInt (e.g. `useBigInt64` in @msgpack/msgpack) to keep it exact.",
        "- A field that is not required may be left out of a request: it takes its default.",
        "",
        "## Rules for clients",
        "",
        "- Ignore fields you do not know, and events whose `type` you do not know: the "
        "protocol grows by adding types and fields (new fields get defaults), never by "
        "renaming. A change that breaks this bumps `protocol`.",
        "- `epoch` changes each time the gateway starts; `seq` runs 1, 2, 3, … within an "
        "epoch without holes. A hole, or a `heartbeat` whose `last_seq` is ahead of the "
        "last seq you saw, means you missed events: ask for them with `replay`.",
        "- `replay` returns at most `limit` events; while `more` is true, ask again from "
        "the last seq returned + 1. `NOT_FOUND` means that epoch or seq is no longer held: "
        "its `lost` field names the seqs gone (`from_seq`..`to_seq`) and why (`trimmed`, "
        "`damaged`, `not_held`); write the loss down and replay on from `to_seq + 1`. "
        "`epochs` lists every epoch the journal holds, to fetch the ones you missed.",
        "- Orders are idempotent by `client_order_id`: after a timeout, resend the same "
        "`order` with the same id; the reply has `duplicate: true` and nothing is placed "
        "twice, also across a gateway restart on the same trading day.",
        "- An order's outcome arrives as events (`order`, `trade`, `order_error`, ...), "
        "all carrying its `client_order_id`; the `order_ack` only says it was sent.",
        "",
        "## Error codes",
        "",
        "A command that fails is answered by an [`error`](#reply-error) reply with one of "
        "these codes. Accept codes not listed here.",
        "",
        "| code | meaning |",
        "|---|---|",
        *[f"| `{code}` | {_cell(text)} |" for code, text in error_codes().items()],
        "",
        "## xtquant codes",
        "",
        "Codes follow xtquant's `xtconstant`.",
        "",
        *_codes_table("order_type", "code", ORDER_TYPE_NOTES),
        *_codes_table("price_type", "code", PRICE_TYPE_NOTES),
        *_codes_table(
            "order_status",
            "code",
            {
                code: text + (" — final" if code in p.FINAL_ORDER_STATUSES else "")
                for code, text in ORDER_STATUS_NOTES.items()
            },
        ),
        *_codes_table("direction", "code", {48: "long", 49: "short"}),
        *_codes_table("offset_flag", "code", {48: "open (buy)", 49: "close (sell)"}),
        "## Commands",
        "",
        "Sent to the gateway's command socket. Each is answered by the reply named here, "
        "or by an [`error`](#reply-error).",
        "",
        "| request `type` | reply `type` | what |",
        "|---|---|---|",
        *[
            f"| {_link(c)} | {_link(REPLY_OF[c])} | {_cell(_first_line(doc(c)))} |"
            for c in p.COMMAND_TYPES
        ],
        "",
    ]
    for c in p.COMMAND_TYPES:
        out += message_section(c, f"### `{tag(c)}` → {_link(REPLY_OF[c])}")
    out += ["## Replies", ""]
    for c in p.REPLY_TYPES:
        answers = [_link(k) for k in p.COMMAND_TYPES if REPLY_OF[k] is c]
        extra = [f"Answers {', '.join(answers)}.", ""] if answers else []
        out += message_section(c, f"### `{tag(c)}`", extra)
    out += [
        "## Events",
        "",
        "Published on the events socket with topic `<type>.<account_id>`. Every event "
        "carries `type`, `epoch`, `seq`, `ts` and `account_id`.",
        "",
    ]
    for c in p.EVENT_TYPES:
        out += message_section(c, f"### `{tag(c)}`", [f"Topic: `{tag(c)}.<account_id>`", ""])
    out += [
        "## Records",
        "",
        "Maps nested in replies (the matching events carry the same "
        "fields, flat, plus the event header).",
        "",
    ]
    for c in RECORDS:
        out += message_section(c, f"### {c.__name__}")
    out += [
        "## Recorder query endpoint",
        "",
        f"The recorder serves read-only queries of its DuckDB file on "
        f"`{cfg.recorder.query_address}` (ROUTER), with the same framing and encodings as "
        "the gateway's command socket. Errors come as the gateway's "
        "[`error`](#reply-error) reply.",
        "",
    ]
    for c in RECORDER_COMMAND_TYPES:
        out += message_section(c, f"### `{tag(c)}` → {_link(REPLY_OF[c])}")
    for c in RECORDER_REPLY_TYPES:
        if c is not p.ErrorReply:
            out += message_section(c, f"### `{tag(c)}` (reply)")
    return "\n".join(out).rstrip("\n") + "\n"


# ------------------------------------------------------------------------ command line


def generate() -> dict[str, str]:
    """File name -> the text the protocol types generate now."""
    missing = [c.__name__ for c in (*p.COMMAND_TYPES, *RECORDER_COMMAND_TYPES) if c not in REPLY_OF]
    if missing:
        raise ValueError(f"reference: name the reply of {', '.join(missing)} in REPLY_OF")
    schema = json.dumps(build_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return {SCHEMA_FILE: schema, REFERENCE_FILE: build_reference()}


def stale(docs: Path) -> list[Path]:
    """The files under `docs` that differ from what the types generate."""
    out = []
    for name, text in generate().items():
        path = docs / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            out.append(path)
    return out


def main(argv: list[str] | None = None, write: Callable[[str], Any] = print) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qmtbus.reference",
        description="Write docs/protocol.schema.json and docs/PROTOCOL-REFERENCE.md.",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the files are stale")
    parser.add_argument("--docs", type=Path, default=DOCS_DIR, help=f"default: {DOCS_DIR}")
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale(args.docs)
        for path in outdated:
            print(f"error: {path} is stale; run {REGENERATE}", file=sys.stderr)
        return 1 if outdated else 0
    args.docs.mkdir(parents=True, exist_ok=True)
    for name, text in generate().items():
        (args.docs / name).write_text(text, encoding="utf-8", newline="\n")
        write(f"wrote {args.docs / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
