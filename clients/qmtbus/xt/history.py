"""xtdata's history calls, shaped as xtdata shapes them, over any source of bars: the bus
(qmtbus.xt.xtdata) or the private simulator of `qmtbus xt run --sim`.

`get_market_data_ex` gives {code: DataFrame}, one row per bar indexed by xtdata's time
text ("20251205" for days, "20251205093000" for minutes); `get_market_data` gives
{field: DataFrame} with codes as rows and those times as columns. Only the periods the
bus carries (1m, 5m, 1d) and unadjusted prices (dividend_type "none") are served; anything
else raises NotImplementedError naming it. `get_trading_dates` answers from the trading
calendar (qmtbus.calendar) in xtdata's form: epoch milliseconds of Shanghai midnights.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from qmtbus.clock import SHANGHAI

BAR_FIELDS = ["time", "open", "high", "low", "close", "volume", "amount", "preClose"]
PERIODS = ("1m", "5m", "1d")
MAX_BARS = 5000  # the most one query_bars carries
A_SHARE_MARKETS = ("SH", "SZ", "BJ")

# (stock_code, period, count, start_ms, end_ms) -> bars as dicts of protocol.Bar's fields,
# oldest first (the last `count` of those starting from start_ms to end_ms; 0: open)
BarSource = Callable[[str, str, int, int, int], list[dict[str, Any]]]


def _codes(stock_list: Iterable[str] | str) -> list[str]:
    return [stock_list] if isinstance(stock_list, str) else list(stock_list)


def _time_text(ms: int, period: str) -> str:
    at = dt.datetime.fromtimestamp(ms / 1000, SHANGHAI)
    return at.strftime("%Y%m%d" if period == "1d" else "%Y%m%d%H%M%S")


def _ms(text: str) -> int:
    """A bound of _bound as epoch ms (0: open)."""
    if not text or text.startswith("9999"):
        return 0
    at = dt.datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=SHANGHAI)
    return int(at.timestamp() * 1000)


def _bound(text: str, end: bool) -> str:
    """xtdata's start/end ("20251205" or "20251205093000") as comparable time text."""
    text = str(text or "")
    if not text:
        return "99999999999999" if end else ""
    if not text.isdigit() or len(text) not in (8, 14):
        raise ValueError(f"time {text!r} is not YYYYMMDD or YYYYMMDDhhmmss")
    return text + ("235959" if end else "000000") if len(text) == 8 else text


def _check(period: str, dividend_type: str) -> None:
    if period not in PERIODS:
        raise NotImplementedError(
            f"xtdata period {period!r} is not carried by qmtbus: only {', '.join(PERIODS)} are"
        )
    if dividend_type not in ("none", ""):
        raise NotImplementedError(
            f"xtdata dividend_type={dividend_type!r} is not carried by qmtbus: bars are "
            "unadjusted (dividend_type='none')"
        )


def market_data_ex(
    fetch: BarSource,
    field_list: Iterable[str] = (),
    stock_list: Iterable[str] | str = (),
    period: str = "1d",
    start_time: str = "",
    end_time: str = "",
    count: int = -1,
    dividend_type: str = "none",
) -> dict[str, Any]:
    """{stock_code: DataFrame of its bars}, as xtdata.get_market_data_ex."""
    import pandas as pd

    _check(period, dividend_type)
    fields = list(field_list) or BAR_FIELDS
    unknown = [f for f in fields if f not in BAR_FIELDS]
    if unknown:
        raise NotImplementedError(
            f"xtdata fields {unknown} are not carried by qmtbus bars ({', '.join(BAR_FIELDS)})"
        )
    low, high = _bound(start_time, False), _bound(end_time, True)
    frames: dict[str, Any] = {}
    for code in _codes(stock_list):
        wanted = count if count and count > 0 else MAX_BARS
        rows = [
            (text, bar)
            for bar in fetch(code, period, min(wanted, MAX_BARS), _ms(low), _ms(high))
            if low <= (text := _time_text(bar["time"], period)).ljust(14, "0") <= high
        ]
        if count and count > 0:
            rows = rows[-count:]
        frames[code] = pd.DataFrame(
            [[bar[f] for f in fields] for _, bar in rows],
            index=[text for text, _ in rows],
            columns=fields,
        )
    return frames


def market_data(fetch: BarSource, field_list: Iterable[str] = (), *args: Any, **kw: Any) -> Any:
    """{field: DataFrame with codes as rows, times as columns}, as xtdata.get_market_data."""
    import pandas as pd

    fields = list(field_list) or BAR_FIELDS
    frames = market_data_ex(fetch, fields, *args, **kw)
    return {f: pd.DataFrame({code: frame[f] for code, frame in frames.items()}).T for f in fields}


def trading_dates(
    is_trading_day: Callable[[dt.date], bool],
    first_day: dt.date,
    market: str,
    start_time: str = "",
    end_time: str = "",
    count: int = -1,
    today: dt.date | None = None,
) -> list[int]:
    """The trading days of `market` from start_time (else the calendar's first day) to
    end_time (else today), as epoch ms of Shanghai midnight; the last `count` when > 0."""
    if market not in A_SHARE_MARKETS:
        raise NotImplementedError(
            f"xtdata.get_trading_dates({market!r}): qmtbus's calendar is the A-share one "
            f"({', '.join(A_SHARE_MARKETS)})"
        )
    start = dt.datetime.strptime(start_time[:8], "%Y%m%d").date() if start_time else first_day
    if today is None:
        today = dt.datetime.now(SHANGHAI).date()
    end = dt.datetime.strptime(end_time[:8], "%Y%m%d").date() if end_time else today
    days: list[int] = []
    day = max(start, first_day)
    while day <= end:
        if is_trading_day(day):
            midnight = dt.datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)
            days.append(int(midnight.timestamp() * 1000))
        day += dt.timedelta(days=1)
    return days[-count:] if count and count > 0 else days


def bind(fetch: BarSource) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """xtdata's get_market_data_ex and get_market_data, with xtdata's signatures, over
    `fetch`."""

    def get_market_data_ex(
        field_list: Iterable[str] = (),
        stock_list: Iterable[str] | str = (),
        period: str = "1d",
        start_time: str = "",
        end_time: str = "",
        count: int = -1,
        dividend_type: str = "none",
        fill_data: bool = True,
    ) -> dict[str, Any]:
        return market_data_ex(
            fetch, field_list, stock_list, period, start_time, end_time, count, dividend_type
        )

    def get_market_data(
        field_list: Iterable[str] = (),
        stock_list: Iterable[str] | str = (),
        period: str = "1d",
        start_time: str = "",
        end_time: str = "",
        count: int = -1,
        dividend_type: str = "none",
        fill_data: bool = True,
    ) -> Any:
        return market_data(
            fetch, field_list, stock_list, period, start_time, end_time, count, dividend_type
        )

    return get_market_data_ex, get_market_data
