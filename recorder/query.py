"""The analysts' SQL endpoint: a ROUTER on recorder.query_address answering SqlQuery and
RecorderStatusQuery, each query run read-only on its own cursor in a worker thread.

What an analyst can do here is read the recorder's tables and views, nothing else:

- the database itself has external access off and its configuration locked
  (recorder/writer.py): no file but its own can be read or written, no
  setting changed, no extension installed or loaded, nothing attached;
- a statement must parse (DuckDB's own parser, `extract_statements`) as exactly
  one SELECT-type statement (SELECT, WITH, VALUES, SHOW, DESCRIBE, SUMMARIZE,
  FROM ...), or EXPLAIN [ANALYZE] of one; the EXPLAIN we run is rebuilt from
  the SELECT we checked;
- its parse tree (`json_serialize_sql`) may call only table functions in
  TABLE_FUNCTIONS (no read_csv, read_text, glob, query, checkpoint ...) and name
  no file as a table;
- it runs inside `BEGIN TRANSACTION READ ONLY`, in which DuckDB refuses any
  write (even `nextval`).

A read-only open of the file is impossible in-process (DuckDB allows one
configuration per file), and a snapshot would be seconds old. Queries never
block the writer: DuckDB readers work on their own MVCC snapshot. A query
running longer than QUERY_TIMEOUT is interrupted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import duckdb
import msgspec
import zmq

from qmtbus import endpoints, protocol
from qmtbus.config import Config
from qmtbus.recorder.state import Committed
from qmtbus.recorder.writer import Database
from qmtbus.security import secure_server

log = logging.getLogger(__name__)

QUERY_TIMEOUT = 60.0  # seconds before a query is interrupted
WORKERS = 2  # queries running at once (the machine has few cores; ingest comes first)
MAX_WAITING = 16  # queries queued beyond that are answered BUSY
OUTBOX_TIMEOUT_MS = 2000  # a reply waits this long for the endpoint thread to take it

# Table functions that only compute or describe the database; everything else (file
# readers, glob, query/query_table's SQL in a string, checkpoint, logging, secrets) is refused.
TABLE_FUNCTIONS = frozenset(
    {
        "range",
        "generate_series",
        "unnest",
        "repeat",
        "repeat_row",
        "json_each",
        "json_tree",
        "histogram",
        "histogram_values",
        "duckdb_columns",
        "duckdb_constraints",
        "duckdb_databases",
        "duckdb_dependencies",
        "duckdb_functions",
        "duckdb_indexes",
        "duckdb_keywords",
        "duckdb_memory",
        "duckdb_schemas",
        "duckdb_sequences",
        "duckdb_settings",
        "duckdb_tables",
        "duckdb_types",
        "duckdb_views",
        "pragma_table_info",
        "table_info",
        "pragma_show",
        "show",
        "show_tables",
        "show_tables_expanded",
        "show_databases",
        "summary",
        "pragma_database_size",
        "database_size",
        "pragma_storage_info",
        "storage_info",
        "pragma_version",
        "version",
        "pragma_platform",
        "platform",
        "pragma_collations",
        "collations",
        "icu_calendar_names",
        "pg_timezone_names",
    }
)
# EXPLAIN [ANALYZE] after any leading comments; the rest must be one SELECT
_EXPLAIN = re.compile(
    r"\A(?:\s|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*EXPLAIN\s+(?:(ANALY[SZ]E)\s+)?(.*)\Z",
    re.IGNORECASE | re.DOTALL,
)
_TEMPORAL = ("TIMESTAMP", "DATE", "TIME", "INTERVAL")
_AS_TEXT = ("UUID", "INTERVAL", "BIT", "ENUM", "VARINT", "BIGNUM", "UNION")
_BIG_INTS = ("HUGEINT", "UHUGEINT", "UBIGINT")


class QueryServer:
    """Owns the ROUTER socket on its own thread; SQL runs on a small worker pool."""

    def __init__(
        self,
        config: Config,
        db: Database,
        committed: Committed,
        context: zmq.Context[Any] | None = None,
    ) -> None:
        self.db = db
        self.committed = committed
        self.row_limit = config.recorder.query_row_limit
        self.ctx = context or zmq.Context.instance()
        self.router: zmq.Socket[Any] = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        secure_server(self.router, config)  # CURVE when security.curve is on
        # bound here, on the caller's thread, so "address in use" ends the start-up
        self.endpoint = endpoints.bind(self.router, config.recorder.query_address)
        self._inbox_address = f"inproc://recorder-query-{id(self)}"
        self._inbox: zmq.Socket[Any] = self.ctx.socket(zmq.PULL)
        self._inbox.bind(self._inbox_address)
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="recorder-query")
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recorder-endpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the socket thread ------------------------------------------------------------------
    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self._inbox, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll(250))
                if self._inbox in ready:
                    while self._inbox.poll(0):
                        self.router.send_multipart(self._inbox.recv_multipart())
                if self.router in ready:
                    while self.router.poll(0):
                        self._take(self.router.recv_multipart())
        finally:
            self.router.close(0)
            self._inbox.close(0)

    def _take(self, frames: list[bytes]) -> None:
        envelope, payload = frames[:-1], frames[-1]
        as_json = protocol.is_json(payload)
        try:
            request = (
                protocol.recorder_command_json_decoder.decode(payload)
                if as_json
                else protocol.recorder_command_msgpack_decoder.decode(payload)
            )
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            code = protocol.UNKNOWN_TYPE if "`$.type`" in str(err) else protocol.BAD_REQUEST
            self._send(envelope, as_json, protocol.ErrorReply(code=code, message=str(err)))
            return
        match request:
            case protocol.RecorderStatusQuery():
                self._send(envelope, as_json, self.committed.status())
            case protocol.SqlQuery():
                with self._waiting_lock:
                    busy = self._waiting >= WORKERS + MAX_WAITING
                    if not busy:
                        self._waiting += 1
                if busy:
                    message = "too many queries running; try again shortly"
                    self._send(
                        envelope, as_json, protocol.ErrorReply(code=protocol.BUSY, message=message)
                    )
                    return
                self._pool.submit(self._work, envelope, as_json, request)

    def _send(self, envelope: list[bytes], as_json: bool, reply: Any) -> None:
        self.router.send_multipart([*envelope, protocol.encode(reply, json=as_json)])

    # -- worker threads --------------------------------------------------------------------
    def _work(self, envelope: list[bytes], as_json: bool, request: protocol.SqlQuery) -> None:
        try:
            reply: Any = run_sql(self.db, request.sql, min(request.limit, self.row_limit))
            try:
                payload = protocol.encode(reply, json=as_json)
            except (msgspec.EncodeError, TypeError, ValueError, OverflowError) as err:
                message = f"a value in the result cannot be sent ({err}); CAST it to VARCHAR"
                payload = protocol.encode(
                    protocol.ErrorReply(code=protocol.BAD_REQUEST, message=message), json=as_json
                )
        except Exception as err:  # a bug must cost one reply, not the endpoint
            log.exception("query failed")
            reply = protocol.ErrorReply(code=protocol.INTERNAL, message=str(err))
            payload = protocol.encode(reply, json=as_json)
        finally:
            with self._waiting_lock:
                self._waiting -= 1
        try:
            self._outbox().send_multipart([*envelope, payload])
        except zmq.Again:  # the endpoint thread has stopped: nobody is left to answer
            log.info("a query finished after the endpoint stopped; its reply is dropped")

    def _outbox(self) -> zmq.Socket[Any]:
        sock = getattr(self._local, "push", None)
        if sock is None:
            sock = self.ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 0)
            # once the endpoint thread closed the inbox a send would wait forever, and the
            # process's exit waits for this worker thread
            sock.setsockopt(zmq.SNDTIMEO, OUTBOX_TIMEOUT_MS)
            sock.connect(self._inbox_address)
            self._local.push = sock
        return sock


def run_sql(db: Database, sql: str, limit: int) -> protocol.SqlResult | protocol.ErrorReply:
    """Run one read-only statement; at most `limit` rows, `truncated` when there were more."""
    with db.cursor() as cur:
        checked = check_read(cur, sql)
        if isinstance(checked, protocol.ErrorReply):
            return checked
        timer = threading.Timer(QUERY_TIMEOUT, cur.interrupt)
        timer.daemon = True
        try:
            cur.execute("BEGIN TRANSACTION READ ONLY")
            timer.start()
            rel = cur.sql(checked)
            columns = list(rel.columns)
            types = [str(t) for t in rel.types]
            exprs = [
                _wire_expr(i + 1, name, t)
                for i, (name, t) in enumerate(zip(columns, types, strict=True))
            ]
            rows = rel.project(", ".join(exprs)).limit(limit + 1).fetchall()
        except duckdb.InterruptException:
            return _bad(f"the query ran longer than {QUERY_TIMEOUT:g} s and was cancelled")
        except duckdb.Error as err:
            return _bad(str(err))
        finally:
            timer.cancel()
            with contextlib.suppress(duckdb.Error):
                cur.execute("ROLLBACK")
    truncated = len(rows) > limit
    out = [list(r) for r in rows[:limit]]
    big = [i for i, t in enumerate(types) if t in _BIG_INTS]
    for row in out:
        for i in big:
            if row[i] is not None and not -(2**63) <= row[i] < 2**64:
                row[i] = str(row[i])
    return protocol.SqlResult(columns=columns, types=types, rows=out, truncated=truncated)


ONLY_READS = (
    "only reads of the recorder's tables and views are allowed (SELECT, WITH, FROM, "
    "SHOW, DESCRIBE, SUMMARIZE, EXPLAIN [ANALYZE] SELECT); for more, open the snapshot "
    "file in your own DuckDB (docs/recorder.md)"
)


def check_read(cur: duckdb.DuckDBPyConnection, sql: str) -> str | protocol.ErrorReply:
    """The statement to run when `sql` is one read of the recorder's own data, else the
    BAD_REQUEST that says why not."""
    one = _one_statement(cur, sql)
    if isinstance(one, protocol.ErrorReply):
        return one
    if one.type == duckdb.StatementType.EXPLAIN:
        match = _EXPLAIN.match(one.query)
        inner = _one_statement(cur, match.group(2)) if match else None
        if inner is None or isinstance(inner, protocol.ErrorReply):
            return _bad(f"EXPLAIN [ANALYZE] takes one SELECT; {ONLY_READS}")
        if inner.type != duckdb.StatementType.SELECT:
            return _bad(f"EXPLAIN of {inner.type.name} is refused; {ONLY_READS}")
        assert match is not None
        select = inner.query
        # rebuilt, so what runs is exactly the SELECT checked below
        run = f"EXPLAIN ANALYZE {select}" if match.group(1) else f"EXPLAIN {select}"
    elif one.type == duckdb.StatementType.SELECT:
        select = run = one.query
    else:
        return _bad(f"{one.type.name} is refused; {ONLY_READS}")
    refused = _outside_reads(cur, select)
    return _bad(f"{refused}; {ONLY_READS}") if refused else run


def _one_statement(cur: duckdb.DuckDBPyConnection, sql: str) -> Any:
    try:
        statements = cur.extract_statements(sql)
    except duckdb.Error as err:
        return _bad(str(err))
    if len(statements) != 1:
        return _bad(f"send exactly one SQL statement per query (got {len(statements)})")
    return statements[0]


def _outside_reads(cur: duckdb.DuckDBPyConnection, select: str) -> str:
    """What in the SELECT's parse tree reaches beyond the recorder's tables ("" if nothing)."""
    try:
        text = cur.execute("SELECT json_serialize_sql(?)", [select]).fetchall()[0][0]
        tree = json.loads(text)
    except (duckdb.Error, ValueError) as err:
        return f"the statement cannot be checked ({err})"
    if tree.get("error"):
        return f"the statement cannot be checked ({tree.get('error_message', '')})"
    stack: list[Any] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            name = str((node.get("function") or {}).get("function_name", "")).lower()
            if name not in TABLE_FUNCTIONS:
                return f"the table function {name}() is refused"
        elif kind in ("BASE_TABLE", "SHOW_REF"):
            name = str(node.get("table_name", ""))
            if any(c in name for c in "/\\:."):
                return f"{name!r} names a file, not one of the recorder's tables"
        stack.extend(node.values())
    return ""


def _wire_expr(position: int, name: str, kind: str) -> str:
    """The projection that turns column `position` into a MessagePack/JSON-friendly value:
    timestamps as ISO-8601 text, decimals as floats, exotic types as text."""
    ref = f"#{position}"
    alias = '"' + name.replace('"', '""') + '"'
    nested = "[" in kind or kind.startswith(("STRUCT", "MAP"))
    if nested:
        if any(t in kind for t in (*_TEMPORAL, "DECIMAL", *_AS_TEXT, *_BIG_INTS)):
            return f"CAST(to_json({ref}) AS VARCHAR) AS {alias}"
        return f"{ref} AS {alias}"
    if kind.startswith("TIMESTAMP"):
        return f"replace(CAST({ref} AS VARCHAR), ' ', 'T') AS {alias}"
    if kind.startswith(("DATE", "TIME")):
        return f"CAST({ref} AS VARCHAR) AS {alias}"
    if kind.startswith("DECIMAL"):
        return f"CAST({ref} AS DOUBLE) AS {alias}"
    if kind.startswith(_AS_TEXT):
        return f"CAST({ref} AS VARCHAR) AS {alias}"
    return f"{ref} AS {alias}"


def _bad(message: str) -> protocol.ErrorReply:
    return protocol.ErrorReply(code=protocol.BAD_REQUEST, message=message)
