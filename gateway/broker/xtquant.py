"""The real broker: xtquant's XtQuantTrader next to a running miniQMT (Windows only).

`XtTraders` is the trader half of the seam that both brokers share: xtquant's
own `XtQuantTrader` class, from the installed xttrader.py, over a native module
(the real .pyd here, the simulated miniQMT in gateway/broker/sim). xtquant is
imported once, when a broker is chosen, without its network update check (see
gateway/broker/xtload.py). Market data (ticks, quotes) goes through xtdata in
gateway/broker/xtquote.py.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from qmtbus.gateway.broker import BrokerUnavailable, Instrument, NotSupported, TickSink, xtbars
from qmtbus.gateway.broker.instruments import InstrumentCache
from qmtbus.gateway.broker.sessions import SessionIds
from qmtbus.gateway.broker.xtload import load_xttrader
from qmtbus.gateway.broker.xtquote import XtQuoteFeed
from qmtbus.gateway.window import trading_day

if TYPE_CHECKING:
    from qmtbus.config import Config
    from qmtbus.protocol import SimFault, SimSetPrice

UNAVAILABLE = (
    "the xtquant broker runs only on Windows next to a running miniQMT "
    '(xtquant.xttrader needs its Windows .pyd); use broker = "sim" here'
)


class XtTraders:
    """xtquant's own XtQuantTrader over `native` (None: the real .pyd), for one account."""

    def __init__(self, native: ModuleType | None, path: str, account_id: str, base: int) -> None:
        self.xttrader: Any = load_xttrader(native)
        from xtquant import xttype

        self._xttype: Any = xttype
        self.path = path
        self.account_id = account_id
        self._ids = SessionIds(base)

    def new_trader(self, session_id: int) -> Any:
        """An XtQuantTrader, not started."""
        return self.xttrader.XtQuantTrader(self.path, session_id)

    def account(self) -> Any:
        return self._xttype.StockAccount(self.account_id, "STOCK")

    def new_session_id(self, live: Collection[int] = ()) -> int:
        # Other programs' sessions on the same miniQMT are invisible to us; the
        # random draw over a large range keeps a collision unlikely, and connect()
        # returning non-zero makes the gateway draw again.
        return self._ids.next(live)


def release(trader: Any) -> None:
    """Stop an XtQuantTrader and close the event loop its constructor made (xttrader never
    closes it: one leaked selector per session otherwise). Raises what stop() raises."""
    try:
        trader.stop()
    finally:
        loop = getattr(trader, "loop", None)
        if loop is not None and not loop.is_running() and not loop.is_closed():
            loop.close()


class XtQuantBroker:
    name: Literal["xtquant"] = "xtquant"

    def __init__(self, config: Config) -> None:
        if sys.platform != "win32":
            raise BrokerUnavailable(UNAVAILABLE)
        path = config.xtquant.userdata_mini
        try:
            traders = XtTraders(None, path, config.gateway.account_id, config.xtquant.session_base)
            from xtquant import xtdata
        except BrokerUnavailable:
            raise
        except Exception as err:  # ImportError, or the .pyd failing to load
            raise BrokerUnavailable(UNAVAILABLE) from err
        if not os.path.isdir(path):
            raise BrokerUnavailable(
                f"miniQMT's userdata_mini folder {path!r} does not exist; set "
                "xtquant.userdata_mini to the userdata_mini folder of the running miniQMT"
            )
        self._traders: XtTraders = traders
        self._xtdata: Any = xtdata
        self._quotes: XtQuoteFeed = XtQuoteFeed(xtdata)
        # xtdata answers in seconds when miniQMT is busy: never on the I/O thread.
        self._instruments: InstrumentCache = InstrumentCache(self._load_instrument, trading_day)

    def new_trader(self, session_id: int) -> Any:
        return self._traders.new_trader(session_id)

    def account(self) -> Any:
        return self._traders.account()

    def new_session_id(self) -> int:
        return self._traders.new_session_id()

    def instrument(self, stock_code: str) -> Instrument | None:
        return self._instruments.get(stock_code)

    def instrument_note(self, stock_code: str) -> str:
        return self._instruments.note(stock_code)

    def prefetch(self, codes: list[str]) -> None:
        self._instruments.prefetch(codes)

    def _load_instrument(self, stock_code: str) -> Instrument | None:
        """On the cache's thread: two xtdata calls."""
        detail = self._xtdata.get_instrument_detail(stock_code)
        if not detail:
            return None
        tick = (self._xtdata.get_full_tick([stock_code]) or {}).get(stock_code) or {}
        prev_close = float(detail.get("PreClose") or 0.0)
        return Instrument(
            stock_code=stock_code,
            instrument_name=str(detail.get("InstrumentName") or ""),
            last_price=float(tick.get("lastPrice") or prev_close),
            prev_close=prev_close,
            up_stop_price=float(detail.get("UpStopPrice") or 0.0),
            down_stop_price=float(detail.get("DownStopPrice") or 0.0),
            price_tick=float(detail.get("PriceTick") or 0.01),
        )

    def sim_command(self, command: SimFault | SimSetPrice) -> NoReturn:
        raise NotSupported('only the simulator takes faults and prices; use broker = "sim"')

    def set_tick_sink(self, sink: TickSink) -> None:
        self._quotes.set_sink(sink)

    def subscribe_quotes(self, codes: list[str]) -> list[str]:
        return self._quotes.subscribe(codes)

    def unsubscribe_quotes(self, codes: list[str]) -> None:
        self._quotes.unsubscribe(codes)

    def quote(self, stock_code: str) -> dict[str, Any] | None:
        return self._quotes.quote(stock_code)

    def bars(
        self, stock_code: str, period: str, count: int, start_ms: int = 0, end_ms: int = 0
    ) -> list[dict[str, Any]] | None:
        return xtbars.bars(self._xtdata, stock_code, period, count, start_ms, end_ms)

    def instrument_detail(self, stock_code: str) -> dict[str, Any] | None:
        return xtbars.instrument_detail(self._xtdata, stock_code)

    def close(self) -> None:
        # Each trader is stopped by the gateway; the quote feed drops its subscriptions.
        self._instruments.close()
        self._quotes.close()
