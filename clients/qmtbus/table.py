"""Plain-text rendering for the CLI: aligned tables, key/value blocks, one-line events."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import msgspec

from qmtbus import protocol
from qmtbus.clock import SHANGHAI

ORDER_STATUS_NAMES = {
    protocol.ORDER_UNREPORTED: "unreported",
    protocol.ORDER_WAIT_REPORTING: "wait_reporting",
    protocol.ORDER_REPORTED: "reported",
    protocol.ORDER_REPORTED_CANCEL: "cancel_pending",
    protocol.ORDER_PARTSUCC_CANCEL: "part_filled_cancel_pending",
    protocol.ORDER_PART_CANCEL: "part_cancelled",
    protocol.ORDER_CANCELED: "cancelled",
    protocol.ORDER_PART_SUCC: "part_filled",
    protocol.ORDER_SUCCEEDED: "filled",
    protocol.ORDER_JUNK: "junk",
    protocol.ORDER_UNKNOWN: "unknown",
}
SIDE_NAMES = {protocol.STOCK_BUY: "buy", protocol.STOCK_SELL: "sell"}
_TOML_TIME = re.compile(r"^\d\d:\d\d:\d\d$")
_CHINA = SHANGHAI  # the one Shanghai clock: qmtbus.clock


def cell(value: Any) -> str:
    """One value as table text: floats without float noise, None and "" as "-"."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        # prices need 3 decimals (fund ticks are 0.001), ratios 4
        text = f"{value:,.{4 if abs(value) < 1 else 3}f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    if isinstance(value, dict | list):
        return msgspec.json.encode(value).decode()
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An aligned table; numbers right-aligned, text left-aligned."""
    text = [[cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    numeric = [
        bool(rows)
        and all(isinstance(r[i], int | float) and not isinstance(r[i], bool) for r in rows)
        for i in range(len(headers))
    ]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(row) for row in text)
    if not rows:
        out.append("(none)")
    return "\n".join(out)


def key_values(pairs: Sequence[tuple[str, Any]]) -> str:
    width = max((len(k) for k, _ in pairs), default=0)
    return "\n".join(f"{k.ljust(width)}  {cell(v)}" for k, v in pairs)


def struct_pairs(obj: msgspec.Struct, skip: Sequence[str] = ()) -> list[tuple[str, Any]]:
    return [(f, getattr(obj, f)) for f in obj.__struct_fields__ if f not in skip]


def clock(ns_or_xt: int) -> str:
    """A time for people: `ts` nanoseconds, or xtquant's seconds (order_time, traded_time)."""
    if not ns_or_xt:
        return "-"
    seconds = ns_or_xt / 1e9 if ns_or_xt > 10**12 else float(ns_or_xt)
    return dt.datetime.fromtimestamp(seconds, _CHINA).strftime("%H:%M:%S")


def orders_table(orders: Sequence[protocol.Order]) -> str:
    headers = [
        "time",
        "order_id",
        "client_order_id",
        "code",
        "side",
        "volume",
        "price",
        "traded",
        "avg_price",
        "status",
        "strategy",
    ]
    rows = [
        [
            clock(o.order_time),
            o.order_id,
            o.client_order_id or o.order_remark,
            o.stock_code,
            SIDE_NAMES.get(o.order_type, o.order_type),
            o.order_volume,
            o.price,
            o.traded_volume,
            o.traded_price,
            ORDER_STATUS_NAMES.get(o.order_status, o.order_status),
            o.strategy_name,
        ]
        for o in orders
    ]
    return table(headers, rows)


def trades_table(trades: Sequence[protocol.Trade]) -> str:
    headers = [
        "time",
        "traded_id",
        "order_id",
        "client_order_id",
        "code",
        "side",
        "volume",
        "price",
        "amount",
        "commission",
    ]
    rows = [
        [
            clock(t.traded_time),
            t.traded_id,
            t.order_id,
            t.client_order_id or t.order_remark,
            t.stock_code,
            SIDE_NAMES.get(t.order_type, t.order_type),
            t.traded_volume,
            t.traded_price,
            t.traded_amount,
            t.commission,
        ]
        for t in trades
    ]
    return table(headers, rows)


def positions_table(positions: Sequence[protocol.Position]) -> str:
    headers = [
        "code",
        "name",
        "volume",
        "can_use",
        "frozen",
        "open_price",
        "last_price",
        "market_value",
        "profit_rate",
    ]
    rows = [
        [
            p.stock_code,
            p.instrument_name,
            p.volume,
            p.can_use_volume,
            p.frozen_volume,
            p.open_price,
            p.last_price,
            p.market_value,
            p.profit_rate,
        ]
        for p in positions
    ]
    return table(headers, rows)


_HEADER = ("type", "epoch", "seq", "ts", "account_id")


def event_line(ev: protocol.Event) -> str:
    """`HH:MM:SS  seq  type  field=value ...` with the fields that carry news."""
    fields = []
    for name in ev.__struct_fields__:
        value = getattr(ev, name)
        if name in _HEADER or value in ("", 0, 0.0, {}, []):
            continue
        if name == "order_status":
            value = ORDER_STATUS_NAMES.get(value, value)
        elif name == "order_type":
            value = SIDE_NAMES.get(value, value)
        fields.append(f"{name}={cell(value)}")
    return f"{clock(ev.ts)}  {ev.seq:>6}  {protocol.event_type(ev):<15} {' '.join(fields)}".rstrip()


def quotes_table(ticks: Sequence[protocol.TickEvent]) -> str:
    headers = [
        "code",
        "time",
        "last",
        "open",
        "high",
        "low",
        "last_close",
        "bid1",
        "ask1",
        "volume",
        "amount",
    ]
    rows = [
        [
            t.stock_code,
            clock(t.time * 1_000_000),
            t.lastPrice,
            t.open,
            t.high,
            t.low,
            t.lastClose,
            t.bidPrice[0] if t.bidPrice else None,
            t.askPrice[0] if t.askPrice else None,
            t.volume,
            t.amount,
        ]
        for t in ticks
    ]
    return table(headers, rows)


def tick_line(t: protocol.TickEvent) -> str:
    """`HH:MM:SS  code  last  bid1/ask1  volume` for `qmtbus ticks`."""
    bid = cell(t.bidPrice[0]) if t.bidPrice else "-"
    ask = cell(t.askPrice[0]) if t.askPrice else "-"
    return (
        f"{clock(t.time * 1_000_000)}  {t.stock_code}  last={cell(t.lastPrice)}  "
        f"bid/ask={bid}/{ask}  volume={t.volume}"
    )


def toml_text(sections: dict[str, Any]) -> str:
    """A config as TOML text (`qmtbus config`): sections, sub-tables and [[arrays of tables]]."""
    out: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, str) and _TOML_TIME.match(v):
            return v  # a TOML local time, as in the file
        return msgspec.json.encode(v).decode()

    def section(name: str, body: dict[str, Any], header: str) -> None:
        out.append(f"\n{header}")
        nested = []
        for k, v in body.items():
            if isinstance(v, dict) and k not in ("args",):
                nested.append((f"{name}.{k}", v, f"[{name}.{k}]"))
            elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                nested.extend((f"{name}.{k}", x, f"[[{name}.{k}]]") for x in v)
            else:
                out.append(f"{k} = {value(v)}")
        for sub in nested:
            section(*sub)

    for name, body in sections.items():
        section(name, body, f"[{name}]")
    return "\n".join(out).lstrip("\n") + "\n"
