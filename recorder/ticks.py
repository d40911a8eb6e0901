"""Ticks into DuckDB when asked: the `ticks` table, per symbol (recorder.tick_symbols).

Off by default. A thread of its own holds the symbols at the gateway (client
id "recorder-<account>", renewed within the quote lease), reads their ticks
from the quotes socket and writes them in batches (recorder.batch_rows or
batch_seconds, whichever first) through a cursor of its own. The events
path never waits for it: while a batch is being written, ticks wait in the
socket, and what does not fit there is dropped (market data is superseded
by the next tick), never queued without bound. Ticks are not replayed, so
the table holds what the recorder saw while it ran.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import duckdb
import msgspec

from qmtbus import Gateway, protocol
from qmtbus.config import Config
from qmtbus.recorder.disk import disk_full
from qmtbus.recorder.schema import LINES, duck_type, q

if TYPE_CHECKING:
    from qmtbus.recorder.writer import Database

log = logging.getLogger("recorder.ticks")

TABLE = "ticks"
HEADER = ("epoch", "seq", "ts", "account_id")
# Exchange time (ms) as an instant; `ts` (gateway receipt, ns) stays a number.
TIME_EXPR = "timezone('UTC', make_timestamp(time * 1000))"


def _columns() -> list[tuple[str, str]]:
    """(column, DuckDB type) of every TickEvent field; lists of numbers stay typed lists."""
    out = []
    for f in msgspec.structs.fields(protocol.TickEvent):
        kind = duck_type(f.type)
        if kind == "JSON":  # list[float] / list[int]: the five book levels
            kind = "DOUBLE[]" if f.type == list[float] else "BIGINT[]"
        out.append((f.name, "TIMESTAMPTZ" if f.name == "time" else kind))
    first = sorted((c for c in out if c[0] in ("time", "stock_code")), key=lambda c: c[0])
    first.reverse()  # time, stock_code
    header = [c for c in out if c[0] in HEADER]
    rest = [c for c in out if c not in first and c not in header]
    return [*first, *rest, *header]


COLUMNS = _columns()


def ddl() -> str:
    cols = [f"{q(c)} {t}{' NOT NULL' if c in ('time', 'stock_code') else ''}" for c, t in COLUMNS]
    return f"CREATE TABLE IF NOT EXISTS {TABLE} (\n  " + ",\n  ".join(cols) + "\n)"


def insert() -> str:
    """INSERT of a batch given as one string of newline-separated JSON ticks."""
    structure: dict[str, Any] = {}
    for column, kind in COLUMNS:
        if column == "time":
            structure[column] = "BIGINT"
        elif kind.endswith("[]"):
            structure[column] = [kind[:-2]]
        else:
            structure[column] = kind
    names = ", ".join(q(c) for c, _ in COLUMNS)
    source = ", ".join(TIME_EXPR if c == "time" else q(c) for c, _ in COLUMNS)
    shape = msgspec.json.encode(structure).decode()
    return (
        f"INSERT INTO {TABLE} ({names}) SELECT {source} "
        f"FROM (SELECT unnest(json_transform(line, '{shape}')) FROM {LINES})"
    )


def create(con: duckdb.DuckDBPyConnection) -> None:
    """The table, and columns the protocol added since it was made."""
    con.execute(ddl())
    have = {
        row[0]
        for row in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [TABLE]
        ).fetchall()
    }
    for column, kind in COLUMNS:
        if column not in have:
            con.execute(f"ALTER TABLE {TABLE} ADD COLUMN {q(column)} {kind}")


class TickRecorder(threading.Thread):
    """Records the ticks of `config.recorder.tick_symbols` until `stop()`."""

    def __init__(self, config: Config, db: Database):
        super().__init__(name="ticks", daemon=True)
        rc = config.recorder
        self.symbols = list(dict.fromkeys(rc.tick_symbols))
        self.batch_rows = rc.batch_rows
        self.batch_seconds = rc.batch_seconds
        self.config = config
        self.db = db
        self.stopping = threading.Event()
        self.written = 0
        self._disk_full = False  # said once per spell, not once per batch
        self._insert = insert()
        with db.cursor() as cur:
            create(cur)

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.join(timeout)

    def run(self) -> None:
        gateway = Gateway.from_config(self.config)
        gateway.client_id = f"recorder-{self.config.gateway.account_id}"  # the same after restarts
        try:
            while not self.stopping.is_set():
                try:
                    self._record(gateway)
                except Exception as err:  # the gateway is away, or refused a code
                    log.warning("recording ticks of %s: %s; trying again", self.symbols, err)
                    self.stopping.wait(5.0)
        finally:
            gateway.close()

    def _record(self, gateway: Gateway) -> None:
        lines: list[bytes] = []
        first = 0.0
        encode = msgspec.json.encode
        with gateway.quote_stream(*self.symbols) as stream:
            log.info("recording ticks of %s into %s", ", ".join(self.symbols), TABLE)
            while not self.stopping.is_set():
                tick = stream.next(timeout=0.2)
                if tick is not None:
                    if not lines:
                        first = time.monotonic()
                    lines.append(encode(tick))
                due = bool(lines) and time.monotonic() - first >= self.batch_seconds
                if len(lines) >= self.batch_rows or due:
                    self._write(lines)
                    lines = []
            if lines:
                self._write(lines)

    def _write(self, lines: list[bytes]) -> None:
        try:
            # A cursor per batch: the events writer keeps its own connection, and DuckDB
            # appends to two tables from two cursors without either waiting.
            with self.db.cursor() as cur:
                cur.execute(self._insert, [b"\n".join(lines).decode()])
        except duckdb.Error as err:  # ticks are not replayed: lose this batch, say so
            if not disk_full(err):
                log.warning("lost %d ticks: %s", len(lines), err)
            elif not self._disk_full:
                log.warning("disk full: ticks are dropped (not replayed) until space is freed")
            self._disk_full = disk_full(err)
            return
        self._disk_full = False
        self.written += len(lines)
