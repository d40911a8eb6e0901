"""`xtquant.xtdata` over the bus, the part strategies use first: full ticks and tick
subscriptions, from the gateway's quote commands (docs/quotes.md); bars (1m, 5m, 1d) and
instrument details from query_bars and query_instrument; trading dates from qmtbus's
calendar.

Every other xtdata function raises NotImplementedError naming it, never a silent None.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from qmtbus import protocol
from qmtbus.calendar import TradingCalendar, load_calendar
from qmtbus.client import Gateway
from qmtbus.config import Config, load_config
from qmtbus.errors import GatewayError
from qmtbus.xt import history

log = logging.getLogger("qmtbus.xt.xtdata")

CONFIG: Config | None = None  # set by qmtbus.xt.install()
_BUS_FIELDS = ("account_id", "epoch", "seq", "ts", "stock_code")
_TICK_FIELDS = [n for n in protocol.TickEvent.__struct_fields__ if n not in _BUS_FIELDS]
_lock = threading.Lock()
_gateway: Gateway | None = None
_subscriptions: dict[int, _Subscription] = {}
_seqs = itertools.count(1)


def _client() -> Gateway:
    global _gateway
    with _lock:
        if _gateway is None:
            _gateway = Gateway.from_config(CONFIG if CONFIG is not None else load_config(None))
        return _gateway


def _tick(ev: protocol.TickEvent) -> dict[str, Any]:
    fields = msgspec.structs.asdict(ev)
    return {name: fields[name] for name in _TICK_FIELDS}


def get_full_tick(code_list: Iterable[str]) -> dict[str, dict[str, Any]]:
    """{stock_code: tick} for each code, as xtdata.get_full_tick answers."""
    codes = [code_list] if isinstance(code_list, str) else list(code_list)
    if not codes:
        return {}
    return {t.stock_code: _tick(t) for t in _client().quotes(codes)}


class _Subscription:
    def __init__(self, code: str, callback: Callable[[dict[str, Any]], None] | None) -> None:
        self.callback = callback
        self.stream = _client().quote_stream(code)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"qmtbus-xtdata-{code}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                tick = self.stream.next(timeout=0.2)
            except TimeoutError:
                continue
            if tick is not None and self.callback is not None:
                try:
                    self.callback({tick.stock_code: [_tick(tick)]})
                except Exception:
                    log.exception("subscribe_quote callback raised")

    def close(self) -> None:
        self._stop.set()
        if self.thread is not threading.current_thread():
            self.thread.join(5)
        self.stream.close()


def subscribe_quote(
    stock_code: str,
    period: str = "1d",
    start_time: str = "",
    end_time: str = "",
    count: int = 0,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """Ticks of `stock_code` to `callback({stock_code: [tick]})` on a thread of its own;
    returns the subscription number for unsubscribe_quote. Only `period='tick'` is carried
    (bars are not on the bus yet)."""
    if period != "tick":
        raise NotImplementedError(
            f"xtdata.subscribe_quote(period={period!r}) is not carried by the qmtbus bus: "
            "only period='tick' is"
        )
    sub = _Subscription(stock_code, callback)
    seq = next(_seqs)
    with _lock:
        _subscriptions[seq] = sub
    return seq


def unsubscribe_quote(seq: int) -> None:
    with _lock:
        sub = _subscriptions.pop(seq, None)
    if sub is not None:
        sub.close()


def _fetch_bars(
    stock_code: str, period: str, count: int, start_ms: int, end_ms: int
) -> list[dict[str, Any]]:
    try:
        bars = _client().bars(stock_code, period, count, start_ms, end_ms)  # type: ignore[arg-type]
    except GatewayError as err:
        if err.code == protocol.NOT_FOUND:
            return []  # xtdata answers a code it does not know with no bars
        raise
    return [msgspec.structs.asdict(bar) for bar in bars]


# {stock_code: DataFrame of bars} and {field: DataFrame, codes by times}, from the
# gateway's query_bars (1m, 5m, 1d; unadjusted), with xtdata's signatures
get_market_data_ex, get_market_data = history.bind(_fetch_bars)


def get_instrument_detail(stock_code: str, iscomplete: bool = False) -> dict[str, Any] | None:
    """The gateway's query_instrument, as xtdata's dict; None for a code it does not know."""
    try:
        reply = _client().instrument(stock_code)
    except GatewayError as err:
        if err.code == protocol.NOT_FOUND:
            return None
        raise
    fields = msgspec.structs.asdict(reply)
    fields.pop("stock_code", None)
    return fields


_calendar: TradingCalendar | None = None


def get_trading_dates(
    market: str, start_time: str = "", end_time: str = "", count: int = -1
) -> list[int]:
    """Trading days from qmtbus's calendar (exchange_calendars XSHG and [calendar] of the
    config), as epoch ms of Shanghai midnights; A-share markets only."""
    global _calendar
    with _lock:
        if _calendar is None:
            config = CONFIG if CONFIG is not None else load_config(None)
            # xtquant.xtdata is this module here: no miniQMT calendar lies below it
            gateway = msgspec.structs.replace(config.gateway, broker="sim")
            _calendar = load_calendar(msgspec.structs.replace(config, gateway=gateway))
        calendar = _calendar
    return history.trading_dates(
        calendar.is_trading_day, calendar.first_day, market, start_time, end_time, count
    )


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)

    def not_carried(*_: Any, **__: Any) -> Any:
        raise NotImplementedError(
            f"xtdata.{name} is not carried by the qmtbus bus (get_full_tick, "
            "subscribe_quote(period='tick'), unsubscribe_quote, get_market_data(_ex), "
            "get_instrument_detail and get_trading_dates are)"
        )

    return not_carried
