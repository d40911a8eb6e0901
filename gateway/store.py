"""The gateway's durable memory: client orders (idempotency) and what it has already published.

SQLite in WAL mode with synchronous=OFF: every commit reaches the OS before
the call returns, so it survives a kill -9 of the gateway (not a power cut;
the journal's fsync interval bounds that). Used from the I/O thread only.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from qmtbus import protocol as p

# States of a client order, in the order they can happen.
SENDING = "sending"  # written down before the broker call; outcome unknown after a crash
SENT = "sent"  # the broker call returned; waiting for its response
ACCEPTED = "accepted"  # the broker gave an order_id
REJECTED = "rejected"  # the broker refused it (order_id -1 or a call that returned -1)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS client_orders (
    trading_day TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    state TEXT NOT NULL,
    order_id INTEGER NOT NULL DEFAULT 0,
    stock_code TEXT NOT NULL,
    order_type INTEGER NOT NULL,
    order_volume INTEGER NOT NULL,
    price_type INTEGER NOT NULL,
    price REAL NOT NULL,
    strategy_name TEXT NOT NULL,
    error_msg TEXT NOT NULL DEFAULT '',
    created_ns INTEGER NOT NULL,
    PRIMARY KEY (trading_day, client_order_id)
);
CREATE INDEX IF NOT EXISTS client_orders_by_order_id ON client_orders (order_id);
CREATE TABLE IF NOT EXISTS known_orders (
    order_id INTEGER PRIMARY KEY,
    trading_day TEXT NOT NULL,
    order_status INTEGER NOT NULL,
    traded_volume INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS seen_trades (
    traded_id TEXT PRIMARY KEY,
    trading_day TEXT NOT NULL
);
"""


@dataclass(slots=True)
class ClientOrder:
    trading_day: str
    client_order_id: str
    state: str
    order_id: int
    stock_code: str
    order_type: int
    order_volume: int
    price_type: int
    price: float
    strategy_name: str
    error_msg: str
    created_ns: int

    def ack(self, duplicate: bool) -> p.OrderAck:
        """The answer for this order as known now."""
        if self.state == ACCEPTED:
            status = "accepted"
        elif self.state == REJECTED:
            status = "rejected"
        else:
            status = "pending"
        return p.OrderAck(
            client_order_id=self.client_order_id,
            order_id=max(self.order_id, 0),
            duplicate=duplicate,
            status=status,  # type: ignore[arg-type]
            error_msg=self.error_msg,
        )


class Store:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.executescript(_SCHEMA)
        self._in_tx = False

    # -- transactions: the I/O thread batches one per loop turn ------------
    def begin(self) -> None:
        if not self._in_tx:
            self.db.execute("BEGIN")
            self._in_tx = True

    def commit(self) -> None:
        if self._in_tx:
            self.db.execute("COMMIT")
            self._in_tx = False

    def close(self) -> None:
        self.commit()
        self.db.close()

    # -- client orders -------------------------------------------------------
    def client_order(self, trading_day: str, client_order_id: str) -> ClientOrder | None:
        row = self.db.execute(
            "SELECT * FROM client_orders WHERE trading_day = ? AND client_order_id = ?",
            (trading_day, client_order_id),
        ).fetchone()
        return ClientOrder(*row) if row else None

    def client_order_by_order_id(self, order_id: int) -> ClientOrder | None:
        row = self.db.execute(
            "SELECT * FROM client_orders WHERE order_id = ? ORDER BY created_ns DESC LIMIT 1",
            (order_id,),
        ).fetchone()
        return ClientOrder(*row) if row else None

    def add_sending(self, trading_day: str, cmd: p.PlaceOrder, created_ns: int) -> ClientOrder:
        """Write the order down as "sending" and commit, before it goes to the broker."""
        self.commit()
        rec = ClientOrder(
            trading_day,
            cmd.client_order_id,
            SENDING,
            0,
            cmd.stock_code,
            cmd.order_type,
            cmd.order_volume,
            cmd.price_type,
            cmd.price,
            cmd.strategy_name,
            "",
            created_ns,
        )
        self.db.execute(
            "INSERT INTO client_orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                rec.trading_day,
                rec.client_order_id,
                rec.state,
                rec.order_id,
                rec.stock_code,
                rec.order_type,
                rec.order_volume,
                rec.price_type,
                rec.price,
                rec.strategy_name,
                rec.error_msg,
                rec.created_ns,
            ),
        )
        return rec

    def update_client_order(
        self, rec: ClientOrder, state: str, order_id: int | None = None, error_msg: str = ""
    ) -> None:
        rec.state = state
        if order_id is not None:
            rec.order_id = order_id
        if error_msg:
            rec.error_msg = error_msg
        self.db.execute(
            "UPDATE client_orders SET state = ?, order_id = ?, error_msg = ? "
            "WHERE trading_day = ? AND client_order_id = ?",
            (rec.state, rec.order_id, rec.error_msg, rec.trading_day, rec.client_order_id),
        )

    def unresolved(self, trading_day: str) -> list[ClientOrder]:
        """Orders of the day whose broker outcome the gateway does not know yet."""
        rows = self.db.execute(
            "SELECT * FROM client_orders WHERE trading_day = ? AND state IN (?, ?)",
            (trading_day, SENDING, SENT),
        ).fetchall()
        return [ClientOrder(*r) for r in rows]

    # -- what has been published --------------------------------------------
    def known_order(self, order_id: int) -> tuple[int, int] | None:
        row = self.db.execute(
            "SELECT order_status, traded_volume FROM known_orders WHERE order_id = ?", (order_id,)
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def set_known_order(
        self, order_id: int, trading_day: str, order_status: int, traded_volume: int
    ) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO known_orders VALUES (?, ?, ?, ?)",
            (order_id, trading_day, order_status, traded_volume),
        )

    def add_trade(self, traded_id: str, trading_day: str) -> bool:
        """Remember a fill; False when this traded_id was already published."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO seen_trades VALUES (?, ?)", (traded_id, trading_day)
        )
        return cur.rowcount == 1

    def forget_before(self, trading_day: str) -> None:
        """Drop what older trading days left behind (their client_order_ids may be reused)."""
        self.commit()
        for table in ("client_orders", "known_orders", "seen_trades"):
            self.db.execute(f"DELETE FROM {table} WHERE trading_day < ?", (trading_day,))
