"""What the dashboard shows, gathered on one thread every dashboard.refresh seconds.

Read-only by construction: it asks the gateway only `status`, `query_asset`,
`query_positions` and `query_orders`, and the recorder only SELECTs (its SQL
endpoint refuses anything else). However many browsers watch, the gateway and
the recorder see one round of questions per refresh. A part that cannot be had
(the gateway away, the recorder restarting) is shown as such with why; the rest
still shows.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any

import msgspec

from qmtbus import protocol
from qmtbus.calendar import SHANGHAI
from qmtbus.client import Gateway, RecorderClient, client_curve
from qmtbus.config import Config
from qmtbus.errors import GatewayError

log = logging.getLogger("dashboard")

TIMEOUT = 2.0  # seconds per question: a dead part must not freeze the page for long

TODAY = "CAST(timezone('Asia/Shanghai', now()) AS DATE)"
# The P&L views replay the book from every recorded fill (recorder/pnl.py): they run when
# the fills changed, or every PNL_EVERY seconds for the recorded prices; the rest each time.
PNL_EVERY = 15.0
PNL_QUERIES = {
    "pnl": "SELECT stock_code, volume, avg_cost, cost, last_price, market_value, unrealized, "
    "realized_today, fees_today, fills_today FROM pnl_today",
    "daily": "SELECT CAST(trading_day AS VARCHAR) AS day, realized, fees, asset_change, "
    "closing_total_asset FROM pnl_daily ORDER BY trading_day DESC LIMIT 60",
    "strategies": "SELECT strategy_name, fills, fees, realized, market_value, unrealized "
    f"FROM pnl_by_strategy WHERE trading_day = {TODAY} ORDER BY strategy_name",
}
QUERIES = {
    "fills": "SELECT CAST(time AS VARCHAR) AS time, stock_code, side, traded_price, "
    "traded_volume, traded_amount, fees, strategy_name, order_id FROM fills "
    f"WHERE trading_day = {TODAY} ORDER BY time DESC LIMIT 200",
    "denials": "SELECT CAST(time AS VARCHAR) AS time, stock_code, order_volume, price, rule, "
    f"message, strategy_name FROM risk_denials WHERE CAST(timezone('Asia/Shanghai', time) AS "
    f"DATE) = {TODAY} ORDER BY time DESC LIMIT 100",
    "alerts": "SELECT CAST(time AS VARCHAR) AS time, topic, CAST(data AS VARCHAR) AS data "
    "FROM notes WHERE topic LIKE 'alert.%' AND CAST(timezone('Asia/Shanghai', time) AS DATE) "
    f"= {TODAY} ORDER BY time DESC LIMIT 50",
    # the intraday curve: the recorder's marks and every asset event, in time order
    "equity": "SELECT epoch_ms(time) / 1000.0 AS t, total_asset FROM (SELECT time, total_asset "
    "FROM equity_marks UNION ALL SELECT time, total_asset FROM assets) WHERE "
    f"CAST(timezone('Asia/Shanghai', time) AS DATE) = {TODAY} AND total_asset > 0 "
    "ORDER BY t LIMIT 20000",
}


def _struct(obj: msgspec.Struct) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(obj)
    return out


class Collector(threading.Thread):
    """Refreshes `state` (JSON bytes) until `stop()`."""

    def __init__(self, config: Config) -> None:
        super().__init__(name="dashboard-collector", daemon=True)
        self.config = config
        self.interval = config.dashboard.refresh
        self.stopping = threading.Event()
        self.rounds = 0
        self._lock = threading.Lock()
        self._state = msgspec.json.encode({"loading": True})
        curve = client_curve(config)
        g = config.gateway
        self.gateway = Gateway(
            g.commands_address,
            g.events_address,
            TIMEOUT,
            0,
            quotes_address=g.quotes_address,
            curve=curve,
        )
        self.recorder = RecorderClient(config.recorder.query_address, TIMEOUT, 0, curve=curve)
        self._pnl: dict[str, Any] = {}
        self._pnl_key: tuple[Any, ...] | None = None
        self._pnl_at = 0.0

    @property
    def state(self) -> bytes:
        with self._lock:
            return self._state

    def stop(self) -> None:
        self.stopping.set()
        self.join(5.0)
        self.gateway.close()
        self.recorder.close()

    def run(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                encoded = msgspec.json.encode(self.collect())
            except Exception:  # a bug costs a refresh, not the dashboard
                log.exception("could not gather the dashboard's data")
            else:
                with self._lock:
                    self._state = encoded
                self.rounds += 1
            self.stopping.wait(max(0.1, self.interval - (time.monotonic() - started)))

    def collect(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "time": dt.datetime.now(SHANGHAI).isoformat(timespec="seconds"),
            "refresh": self.interval,
        }
        state.update(self._from_gateway())
        state.update(self._from_recorder())
        # live prices over the recorded ones: unrealized at the gateway's last price now
        live = {p["stock_code"]: p for p in state.get("positions") or []}
        for row in state.get("pnl") or []:
            held = live.get(row["stock_code"])
            if held and held["last_price"] > 0 and row["volume"]:
                row["last_price"] = held["last_price"]
                row["market_value"] = round(row["volume"] * held["last_price"], 2)
                row["unrealized"] = round(row["market_value"] - row["cost"], 2)
        return state

    def _from_gateway(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        try:
            status = self.gateway.status()
        except (TimeoutError, GatewayError) as err:
            return {"gateway": {"reachable": False, "error": str(err)}}
        out["gateway"] = {"reachable": True, **_struct(status)}
        try:
            out["asset"] = _struct(self.gateway.asset())
            out["positions"] = [_struct(p) for p in self.gateway.positions()]
            out["open_orders"] = [_struct(o) for o in self.gateway.orders(cancelable_only=True)]
        except (TimeoutError, GatewayError) as err:  # e.g. not connected to the broker
            out["gateway"]["error"] = str(err)
        return out

    def _from_recorder(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        try:
            status: protocol.RecorderStatus = self.recorder.status()
        except (TimeoutError, GatewayError) as err:
            return {"recorder": {"reachable": False, "error": str(err)}}
        out["recorder"] = {"reachable": True, **_struct(status)}
        self._run(QUERIES, out)
        try:
            key = tuple(self.recorder.sql("SELECT count(*), max(seq) FROM trades").rows[0])
        except (TimeoutError, GatewayError):
            key = None
        if key is None or key != self._pnl_key or time.monotonic() - self._pnl_at >= PNL_EVERY:
            self._pnl = {}
            if self._run(PNL_QUERIES, self._pnl):
                self._pnl_key, self._pnl_at = key, time.monotonic()
            else:
                self._pnl_key = None  # try again next round
        out.update({k: v for k, v in self._pnl.items() if k != "recorder"})
        errors = self._pnl.get("recorder", {}).get("errors", {})
        if errors:
            out["recorder"].setdefault("errors", {}).update(errors)
        return out

    def _run(self, queries: dict[str, str], out: dict[str, Any]) -> bool:
        """Each query's rows as dicts into `out`; False when any failed (noted in `out`)."""
        ok = True
        for name, sql in queries.items():
            try:
                result = self.recorder.sql(sql)
            except (TimeoutError, GatewayError) as err:
                out.setdefault("recorder", {}).setdefault("errors", {})[name] = str(err)
                ok = False
                continue
            out[name] = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
        return ok
