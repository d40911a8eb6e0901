"""The recorder's DuckDB schema: every table, view and insert statement, derived from protocol.py.

Typed tables take their columns from the event Structs (xtquant names), so a
field added to the protocol becomes a column at the next start (ALTER TABLE ADD
COLUMN); nothing is ever dropped or renamed.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any

import duckdb
import msgspec

from qmtbus import protocol
from qmtbus.clock import TIME_ZONE_NAME
from qmtbus.recorder import pnl

# The bus header every event carries; typed tables put it first, then `time`.
HEADER = ("epoch", "seq", "ts", "account_id")

# DuckDB stores TIMESTAMPTZ as an instant; this session setting is how it is shown.
TIME_ZONE = TIME_ZONE_NAME

# ts is integer nanoseconds since the Unix epoch (UTC); TIMESTAMPTZ keeps microseconds.
TIME_EXPR = "timezone('UTC', make_timestamp(ts // 1000))"

# A batch travels as one string, one JSON event per line (msgspec escapes newlines
# inside strings): measured 2-3x faster than one JSON array, an appender or a
# DataFrame, because DuckDB parses the lines in parallel.
LINES = "(SELECT unnest(string_split($1, chr(10))) AS line)"

# Stored in `events` only: a heartbeat has nothing an analyst would ask about.
EVENTS_ONLY = frozenset({"heartbeat"})
# Not bus events at all: ticks come on the quotes socket with a seq of their own.
NOT_RECORDED = frozenset({"tick"})

# event type tag -> typed table.
TABLE_OF: dict[str, str] = {
    "gateway": "gateway_states",
    "account_status": "account_statuses",
    "asset": "assets",
    "order": "orders",
    "trade": "trades",
    "position": "positions",
    "order_error": "order_errors",
    "cancel_error": "cancel_errors",
    "order_response": "order_responses",
    "cancel_response": "cancel_responses",
    "risk_denied": "risk_denials",
    "client_order": "client_orders",
    "note": "notes",
}


@dataclass(frozen=True)
class TypedTable:
    """One typed table: its name, its (column, DuckDB type) list and its batch insert."""

    tag: str
    name: str
    columns: tuple[tuple[str, str], ...]  # without `time`, which is computed from ts

    @property
    def ddl(self) -> str:
        cols = [f"{q(c)} {t} NOT NULL" for c, t in self.columns[:3]]
        cols.append("time TIMESTAMPTZ NOT NULL")
        cols += [f"{q(c)} {t}" for c, t in self.columns[3:]]
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n  " + ",\n  ".join(cols) + "\n)"

    @property
    def insert(self) -> str:
        """INSERT of a batch given as one string of newline-separated JSON events."""
        structure = msgspec.json.encode({c: t for c, t in self.columns}).decode()
        names = [q(c) for c, _ in self.columns]
        target = ", ".join([*names[:3], "time", *names[3:]])
        source = ", ".join([*names[:3], TIME_EXPR, *names[3:]])
        return (
            f"INSERT INTO {self.name} ({target}) SELECT {source} "
            f"FROM (SELECT unnest(json_transform(line, '{structure}')) FROM {LINES})"
        )


def q(name: str) -> str:
    """A quoted identifier (xtquant names are plain, but `status`, `market`... read as keywords)."""
    return '"' + name.replace('"', '""') + '"'


def duck_type(annotation: Any) -> str:
    """The DuckDB column type of a protocol field."""
    if annotation is bool:
        return "BOOLEAN"
    if annotation is int:
        return "BIGINT"
    if annotation is float:
        return "DOUBLE"
    if annotation is str:
        return "VARCHAR"
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "VARCHAR"
    if origin in (dict, list):
        return "JSON"
    if origin in (typing.Union, types.UnionType):
        # int | str (cancel_error.market): keep whatever came as text
        return "VARCHAR"
    return "JSON"


def _typed_table(cls: type[Any]) -> TypedTable:
    tag = str(cls.__struct_config__.tag)
    fields = {f.name: duck_type(f.type) for f in msgspec.structs.fields(cls)}
    header = [("epoch", "VARCHAR"), ("seq", "BIGINT"), ("ts", "BIGINT"), ("account_id", "VARCHAR")]
    own = [(name, t) for name, t in fields.items() if name not in HEADER]
    return TypedTable(tag, TABLE_OF[tag], (*header, *own))


TYPED: dict[str, TypedTable] = {
    table.tag: table
    for table in (
        _typed_table(cls) for cls in protocol.EVENT_TYPES if cls.__struct_config__.tag in TABLE_OF
    )
}

EVENTS_DDL = """
CREATE TABLE IF NOT EXISTS events (
  epoch VARCHAR NOT NULL,        -- the gateway process run that stamped the event
  seq BIGINT NOT NULL,           -- 1, 2, 3, ... per epoch, no holes
  type VARCHAR NOT NULL,         -- the event's `type` tag
  ts BIGINT NOT NULL,            -- nanoseconds since the Unix epoch (UTC), raw from the gateway
  time TIMESTAMPTZ NOT NULL,     -- ts as a timestamp (shown in Asia/Shanghai by the recorder)
  account_id VARCHAR NOT NULL,
  payload JSON NOT NULL,         -- the whole event as JSON (protocol field names)
  PRIMARY KEY (epoch, seq)
)"""

# Each line itself becomes `payload`: every event is stored exactly as it came.
EVENTS_INSERT = f"""
INSERT INTO events (epoch, seq, type, ts, time, account_id, payload)
SELECT h.epoch, h.seq, h.type, h.ts, timezone('UTC', make_timestamp(h.ts // 1000)),
       coalesce(h.account_id, ''), line
FROM (SELECT line, json_transform(line, '{{"epoch": "VARCHAR", "seq": "BIGINT",
        "type": "VARCHAR", "ts": "BIGINT", "account_id": "VARCHAR"}}') AS h FROM {LINES})"""

PROGRESS_UPDATE = (
    "UPDATE progress SET last_seq = ?, events = ?, committed_at = now() WHERE epoch = ?"
)
PROGRESS_INSERT = (
    "INSERT INTO progress (last_seq, events, committed_at, epoch) VALUES (?, ?, now(), ?)"
)
# An old epoch fetched to its end, or whose loss is written in `gaps`: never asked for again.
PROGRESS_COMPLETE = "UPDATE progress SET complete = true WHERE epoch = ?"
PROGRESS_COMPLETE_EMPTY = (
    "INSERT INTO progress (last_seq, events, committed_at, epoch, complete) "
    "VALUES (0, 0, now(), ?, true)"
)

OTHER_DDL = [
    # the last committed seq of each epoch, written in the same transaction as the rows;
    # `complete`: an old epoch recorded to its end (or its loss written in `gaps`)
    """CREATE TABLE IF NOT EXISTS progress (
  epoch VARCHAR PRIMARY KEY,
  last_seq BIGINT NOT NULL,
  events BIGINT NOT NULL,
  committed_at TIMESTAMPTZ NOT NULL,
  complete BOOLEAN DEFAULT false
)""",
    # what arrived but could not be stored as an event, with why; nothing is dropped
    """CREATE TABLE IF NOT EXISTS bad_events (
  received_at TIMESTAMPTZ NOT NULL,
  source VARCHAR NOT NULL,       -- live (the PUB stream) or replay
  reason VARCHAR NOT NULL,
  epoch VARCHAR,                 -- when the header could be read
  seq BIGINT,
  topic BLOB,
  payload BLOB NOT NULL          -- the raw bytes as received
)""",
    # seqs the gateway could no longer replay: known, named losses; `reason` starts with
    # trimmed, damaged or not_held (the journal's words), then says more
    """CREATE TABLE IF NOT EXISTS gaps (
  detected_at TIMESTAMPTZ NOT NULL,
  epoch VARCHAR NOT NULL,
  from_seq BIGINT NOT NULL,
  to_seq BIGINT,                 -- NULL: to the end of that epoch, length unknown
  reason VARCHAR NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS order_status_names (
  order_status INTEGER PRIMARY KEY,
  status_name VARCHAR NOT NULL,
  final BOOLEAN NOT NULL
)""",
]

ORDER_STATUS_NAMES = [
    (48, "unreported", False),
    (49, "wait_reporting", False),
    (50, "reported", False),
    (51, "reported_cancel", False),
    (52, "partsucc_cancel", False),
    (53, "part_cancel", True),
    (54, "canceled", True),
    (55, "part_succ", False),
    (56, "succeeded", True),
    (57, "junk", True),
    (255, "unknown", False),
]

# Views name the time zone themselves so they read the same in any session
# (the duckdb CLI on the snapshot file defaults to the machine's zone).
LOCAL = f"timezone('{TIME_ZONE}', time)"
TODAY = f"CAST(timezone('{TIME_ZONE}', now()) AS DATE)"

VIEWS = {
    "order_latest": f"""
SELECT o.*, CAST({LOCAL} AS DATE) AS trading_day, n.status_name,
       coalesce(n.final, false) AS final,
       min(o.time) OVER w AS first_time, count(*) OVER w AS updates
FROM orders o LEFT JOIN order_status_names n USING (order_status)
WINDOW w AS (PARTITION BY o.account_id, CAST({LOCAL} AS DATE), o.order_id)
QUALIFY row_number() OVER (
  PARTITION BY o.account_id, CAST({LOCAL} AS DATE), o.order_id ORDER BY o.epoch DESC, o.seq DESC
) = 1""",
    "orders_today": f"""
SELECT account_id, order_id, client_order_id, order_remark, strategy_name, stock_code,
       instrument_name, CASE order_type WHEN 23 THEN 'buy' WHEN 24 THEN 'sell'
       ELSE CAST(order_type AS VARCHAR) END AS side, order_type, price_type, price,
       order_volume, traded_volume, traded_price,
       round(traded_volume / nullif(order_volume, 0), 4) AS fill_ratio,
       order_status, status_name, final, status_msg, first_time, time AS last_time, updates
FROM order_latest WHERE trading_day = {TODAY}
ORDER BY first_time""",
    "fills": f"""
SELECT time, CAST({LOCAL} AS DATE) AS trading_day, account_id, traded_id, order_id,
       client_order_id, strategy_name, stock_code, instrument_name,
       CASE order_type WHEN 23 THEN 'buy' WHEN 24 THEN 'sell'
       ELSE CAST(order_type AS VARCHAR) END AS side,
       traded_price, traded_volume, traded_amount, commission AS fees,
       CASE order_type WHEN 23 THEN -(traded_amount + commission)
       ELSE traded_amount - commission END AS cash_flow
FROM trades
QUALIFY row_number() OVER (
  PARTITION BY account_id, CAST({LOCAL} AS DATE), traded_id ORDER BY epoch, seq) = 1
ORDER BY time""",
    "asset_curve": f"""
SELECT time, CAST({LOCAL} AS DATE) AS trading_day, account_id, cash, frozen_cash,
       market_value, total_asset, fetch_balance
FROM assets ORDER BY time""",
    "position_history": f"""
SELECT time, CAST({LOCAL} AS DATE) AS trading_day, account_id, stock_code, instrument_name,
       volume, can_use_volume, frozen_volume, on_road_volume, yesterday_volume, avg_price,
       open_price, last_price, market_value, profit_rate
FROM positions ORDER BY time, stock_code""",
}


def create(con: duckdb.DuckDBPyConnection) -> None:
    """Create what is missing (tables, new columns, views); safe on every start."""
    con.execute("BEGIN")
    try:
        con.execute(EVENTS_DDL)
        for ddl in OTHER_DDL:
            con.execute(ddl)
        _add_complete(con)
        for table in TYPED.values():
            con.execute(table.ddl)
            _add_new_columns(con, table)
        con.execute(
            "INSERT OR REPLACE INTO order_status_names VALUES " + _values(ORDER_STATUS_NAMES)
        )
        for name, sql in VIEWS.items():
            con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")
        pnl.create(con)  # the mark tables and the P&L views (recorder/pnl.py)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _add_complete(con: duckdb.DuckDBPyConnection) -> None:
    """A file from before `progress.complete`: its older epochs were fetched to their end
    when the gateway restarted (that recorder did so), so they count as complete."""
    have = con.execute(
        "SELECT count(*) FROM information_schema.columns "
        "WHERE table_name = 'progress' AND column_name = 'complete'"
    ).fetchall()[0][0]
    if not have:
        con.execute("ALTER TABLE progress ADD COLUMN complete BOOLEAN DEFAULT false")
        con.execute(
            "UPDATE progress SET complete = true WHERE epoch < (SELECT max(epoch) FROM progress)"
        )


def _add_new_columns(con: duckdb.DuckDBPyConnection, table: TypedTable) -> None:
    have = {
        row[0]
        for row in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
            [table.name],
        ).fetchall()
    }
    for column, kind in table.columns:
        if column not in have:
            con.execute(f"ALTER TABLE {table.name} ADD COLUMN {q(column)} {kind}")


def _values(rows: list[tuple[int, str, bool]]) -> str:
    return ", ".join(f"({code}, '{name}', {str(final).lower()})" for code, name, final in rows)
