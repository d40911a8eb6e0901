"""The mark-to-market curve: the account valued every recorder.mark_interval seconds.

A thread of the recorder asks the gateway for the broker's asset and positions
(`query_asset`, `query_positions`, through the client library) on each
interval boundary (09:31:00, 09:32:00, ... for 60 s) and writes one
`equity_marks` row and one `position_marks` row per held stock, so the equity
curve has a point every interval, not only when something trades.

When: during A-share sessions (09:30-11:30, 13:00-15:00 Asia/Shanghai) on XSHG
trading days, with the real trader or a simulator that keeps market hours;
always with the simulator otherwise (it trades around the clock). A gateway
that is away or not ready costs those marks (logged once per outage), never
the recorder.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import TYPE_CHECKING

import duckdb

from qmtbus import Gateway, protocol
from qmtbus.calendar import CalendarExpired, TradingCalendar
from qmtbus.client import client_curve
from qmtbus.config import Config
from qmtbus.errors import GatewayError, GatewaySilent, GatewayUnreachable
from qmtbus.sessions import hours_apply, within

if TYPE_CHECKING:
    from qmtbus.recorder.writer import Database

log = logging.getLogger("recorder.marks")

ASK_TIMEOUT = 2.0  # seconds for each of the two questions of a mark
EQUITY_MARKS = "equity_marks"
POSITION_MARKS = "position_marks"

DDL = [
    f"""CREATE TABLE IF NOT EXISTS {EQUITY_MARKS} (
  time TIMESTAMPTZ NOT NULL,     -- when the recorder asked the gateway
  account_id VARCHAR NOT NULL,
  cash DOUBLE,
  frozen_cash DOUBLE,
  market_value DOUBLE,
  total_asset DOUBLE,
  positions INTEGER              -- stocks held at that moment
)""",
    f"""CREATE TABLE IF NOT EXISTS {POSITION_MARKS} (
  time TIMESTAMPTZ NOT NULL,
  account_id VARCHAR NOT NULL,
  stock_code VARCHAR NOT NULL,
  volume BIGINT,
  can_use_volume BIGINT,
  avg_price DOUBLE,              -- the broker's average cost, buy fees included
  last_price DOUBLE,
  market_value DOUBLE
)""",
]


def create(con: duckdb.DuckDBPyConnection) -> None:
    for ddl in DDL:
        con.execute(ddl)


class Marker(threading.Thread):
    """Writes a mark every `config.recorder.mark_interval` seconds until `stop()`."""

    def __init__(self, config: Config, db: Database) -> None:
        super().__init__(name="marks", daemon=True)
        self.config = config
        self.db = db
        self.interval = config.recorder.mark_interval
        self.stopping = threading.Event()
        self.written = 0
        self._away = False
        self._expired = False
        self._calendar: TradingCalendar | None = None
        self._sessions = hours_apply(config)

    def stop(self, timeout: float = 2 * ASK_TIMEOUT + 1.0) -> None:
        self.stopping.set()
        self.join(timeout)

    def run(self) -> None:
        if self._sessions:
            try:
                self._calendar = TradingCalendar.load()
            except Exception as err:  # weekends still hold without the calendar
                log.warning("no trading calendar (%s); marking on weekdays in session hours", err)
        g = self.config.gateway
        # short and single tries: a mark is a sample, and a stop must not wait on a dead gateway
        gateway = Gateway(
            g.commands_address,
            g.events_address,
            ASK_TIMEOUT,
            0,
            quotes_address=g.quotes_address,
            curve=client_curve(self.config),
        )
        log.info("marking the account every %g s", self.interval)
        try:
            while not self.stopping.wait(self._until_next()):
                self.mark_once(gateway)
        finally:
            gateway.close()

    def _until_next(self) -> float:
        now = time.time()
        return self.interval - (now % self.interval)

    def mark_once(self, gateway: Gateway) -> bool:
        """One mark now, if in session and the gateway answers; True when written."""
        now = dt.datetime.now(dt.UTC)
        if self._sessions:
            try:
                if not within(now, self._calendar):
                    return False
            except CalendarExpired as err:
                if not self._expired:  # once, not every interval
                    log.error("not marking: %s", err)
                    self._expired = True
                return False
        try:
            asset = gateway.asset()
            positions = gateway.positions()
        except (GatewayError, GatewayUnreachable, GatewaySilent, TimeoutError) as err:
            if not self._away:
                log.warning("no mark-to-market while the gateway cannot answer: %s", err)
                self._away = True
            return False
        if self._away:
            log.info("marking again")
            self._away = False
        self._write(now, asset, positions)
        return True

    def _write(
        self, now: dt.datetime, asset: protocol.AssetReply, positions: list[protocol.Position]
    ) -> None:
        held = [p for p in positions if p.volume > 0]
        account = asset.account_id or self.config.gateway.account_id
        try:
            with self.db.cursor() as cur:
                cur.execute("BEGIN")
                cur.execute(
                    f"INSERT INTO {EQUITY_MARKS} VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        now,
                        account,
                        asset.cash,
                        asset.frozen_cash,
                        asset.market_value,
                        asset.total_asset,
                        len(held),
                    ],
                )
                if held:
                    cur.executemany(
                        f"INSERT INTO {POSITION_MARKS} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            [
                                now,
                                p.account_id or account,
                                p.stock_code,
                                p.volume,
                                p.can_use_volume,
                                p.avg_price,
                                p.last_price,
                                p.market_value,
                            ]
                            for p in held
                        ],
                    )
                cur.execute("COMMIT")
        except duckdb.Error as err:  # a mark is a sample: lose this one, say so
            log.warning("lost the mark of %s: %s", now.isoformat(), err)
            return
        self.written += 1
