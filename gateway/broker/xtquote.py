"""Market data from miniQMT's data service through xtdata (Windows only): ticks, quotes, limits.

XtQuantBroker hands in the xtdata module (imported there, once). Ticks come
from `subscribe_quote(code, period="tick")` on xtdata's own thread and go
straight to the sink. A watchdog thread of ours notices a lost connection to
the data service (miniQMT restarted, the daily terminal restart), reconnects
through `xtdata.get_client()`, and subscribes every wanted symbol again; it
also refreshes the day's limit prices, which come from the instrument detail
(a full tick may lack them). xtdata is never called from its own callback.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any

from qmtbus import clock
from qmtbus.clock import SHANGHAI
from qmtbus.gateway.broker import TickSink

log = logging.getLogger(__name__)

CHECK_INTERVAL = 3.0  # seconds between connection checks


def _today() -> str:
    return clock.now().strftime("%Y%m%d")


def _time_ms(tick: dict[str, Any]) -> int:
    """`time` in ms; a full tick may carry only `timetag` ("20231026 10:32:56.950", Shanghai)."""
    value = tick.get("time")
    if isinstance(value, int | float) and value > 0:
        return int(value)
    tag = str(tick.get("timetag") or "")
    for fmt in ("%Y%m%d %H:%M:%S.%f", "%Y%m%d %H:%M:%S"):
        try:
            at = dt.datetime.strptime(tag, fmt).replace(tzinfo=SHANGHAI)
        except ValueError:
            continue
        return int(at.timestamp() * 1000)
    return 0


class XtQuoteFeed:
    def __init__(self, xtdata: Any, check_interval: float = CHECK_INTERVAL) -> None:
        xtdata.enable_hello = False  # no banner on stdout at each (re)connect
        self._xtdata = xtdata
        self._check_interval = check_interval
        self._lock = threading.Lock()
        self._wanted: set[str] = set()
        self._seqs: dict[str, int] = {}  # code -> subscribe_quote's number, while subscribed
        self._limits: dict[str, tuple[float, float]] = {}  # code -> today's (up, down)
        self._limits_day = _today()
        self._client: Any = None
        self._sink: TickSink | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="xtdata-watchdog", daemon=True)
        self._thread.start()

    def set_sink(self, sink: TickSink) -> None:
        self._sink = sink

    # -- called on the gateway's quote thread -----------------------------------------

    def subscribe(self, codes: list[str]) -> list[str]:
        unknown: list[str] = []
        with self._lock:
            if self._client is None:
                self._client = self._xtdata.get_client()  # what the watchdog compares with
            for code in codes:
                if code in self._wanted:
                    continue
                if not self._load_limits(code):
                    unknown.append(code)
                    continue
                self._wanted.add(code)
                self._subscribe_one(code)  # on failure the watchdog tries again
        return unknown

    def unsubscribe(self, codes: list[str]) -> None:
        with self._lock:
            for code in codes:
                self._wanted.discard(code)
                seq = self._seqs.pop(code, None)
                if seq is not None:
                    try:
                        self._xtdata.unsubscribe_quote(seq)
                    except Exception as err:  # the connection is gone: nothing to undo
                        log.warning("xtdata unsubscribe_quote(%s) failed: %s", code, err)

    def quote(self, stock_code: str) -> dict[str, Any] | None:
        with self._lock:
            if not self._load_limits(stock_code):
                return None
        full = self._xtdata.get_full_tick([stock_code]) or {}
        return self._complete(stock_code, dict(full.get(stock_code) or {}))

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(self._check_interval + 5)
        self.unsubscribe(list(self._wanted))

    # -- xtdata's push thread ----------------------------------------------------------

    def _on_data(self, datas: dict[str, Any]) -> None:
        try:
            batch = []
            for code, ticks in datas.items():
                latest = ticks[-1] if isinstance(ticks, list) and ticks else ticks
                if isinstance(latest, dict) and code in self._wanted:
                    batch.append(self._complete(code, dict(latest)))
            sink = self._sink
            if batch and sink is not None:
                sink(batch)
        except Exception:  # xtdata would only print it
            log.exception("handling an xtdata tick push failed")

    def _complete(self, code: str, tick: dict[str, Any]) -> dict[str, Any]:
        tick["stock_code"] = code
        tick["time"] = _time_ms(tick)
        up, down = self._limits.get(code, (0.0, 0.0))
        tick.setdefault("upStopPrice", up)
        tick.setdefault("downStopPrice", down)
        return tick

    # -- under the lock ----------------------------------------------------------------

    def _load_limits(self, code: str) -> bool:
        """Read today's limits from the instrument detail; False when xtdata does not know
        the code."""
        if code in self._limits:
            return True
        detail = self._xtdata.get_instrument_detail(code)
        if not detail:
            return False
        up = float(detail.get("UpStopPrice") or 0.0)
        down = float(detail.get("DownStopPrice") or 0.0)
        self._limits[code] = (up, down)
        return True

    def _subscribe_one(self, code: str) -> None:
        try:
            seq = self._xtdata.subscribe_quote(code, period="tick", count=0, callback=self._on_data)
        except Exception as err:
            log.warning("xtdata subscribe_quote(%s) failed: %s; retrying", code, err)
            return
        if isinstance(seq, int) and seq > 0:
            self._seqs[code] = seq
        else:
            log.warning("xtdata subscribe_quote(%s) returned %r; retrying", code, seq)

    # -- the watchdog thread -----------------------------------------------------------

    def _watch(self) -> None:
        connected = True
        while not self._stopping.wait(self._check_interval):
            try:
                client = self._xtdata.get_client()  # reconnects when the connection is gone
            except Exception as err:
                if connected:
                    log.warning("xtdata: no connection to miniQMT's data service (%s)", err)
                connected = False
                continue
            if not connected:
                log.info("xtdata: connected to miniQMT's data service again")
            connected = True
            with self._lock:
                if client is not self._client:
                    # A new connection holds none of the old subscriptions.
                    self._client = client
                    self._seqs.clear()
                if self._limits_day != _today():
                    self._limits_day = _today()
                    self._limits.clear()
                for code in sorted(self._wanted - set(self._seqs)):
                    self._subscribe_one(code)
                for code in sorted(self._wanted - set(self._limits)):
                    try:
                        self._load_limits(code)
                    except Exception as err:
                        log.warning("xtdata get_instrument_detail(%s) failed: %s", code, err)
