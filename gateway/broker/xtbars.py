"""Bars and instrument details from miniQMT's data service through xtdata (Windows only).

`xtdata.get_market_data_ex` reads the terminal's local history: the bars asked for are
downloaded first (`download_history_data`, incrementally), then read back and turned
into plain dicts of protocol.Bar's fields (numpy numbers become Python ones). Called on
the gateway's quote thread.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from qmtbus.clock import SHANGHAI

log = logging.getLogger(__name__)

BAR_FIELDS = ("time", "open", "high", "low", "close", "volume", "amount", "preClose")
DETAIL_FIELDS = (
    "ExchangeID",
    "InstrumentID",
    "InstrumentName",
    "PreClose",
    "UpStopPrice",
    "DownStopPrice",
    "PriceTick",
    "VolumeMultiple",
    "OpenDate",
    "FloatVolume",
    "TotalVolume",
)


def bars(
    xtdata: Any, stock_code: str, period: str, count: int, start_ms: int = 0, end_ms: int = 0
) -> list[dict[str, Any]] | None:
    """The last `count` bars of `stock_code` from `start_ms` to `end_ms` (epoch ms, 0: open);
    None when xtdata does not know the code."""
    if not xtdata.get_instrument_detail(stock_code):
        return None
    start, end = _text(start_ms), _text(end_ms)
    try:
        xtdata.download_history_data(stock_code, period, start, end, incrementally=True)
    except Exception as err:  # what is held locally is still answered
        log.warning("xtdata download_history_data(%s, %s) failed: %s", stock_code, period, err)
    data = xtdata.get_market_data_ex(
        list(BAR_FIELDS),
        [stock_code],
        period=period,
        start_time=start,
        end_time=end,
        count=count,
        dividend_type="none",
    )
    frame = (data or {}).get(stock_code)
    if frame is None:
        return []
    return [_bar(row) for row in frame.to_dict("records")][-count:]


def _text(ms: int) -> str:
    """Epoch ms as xtdata's time text ("" for 0: open)."""
    if not ms:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, SHANGHAI).strftime("%Y%m%d%H%M%S")


def _bar(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "time": _time_ms(row.get("time")),
        "open": float(row.get("open") or 0.0),
        "high": float(row.get("high") or 0.0),
        "low": float(row.get("low") or 0.0),
        "close": float(row.get("close") or 0.0),
        "volume": int(row.get("volume") or 0),
        "amount": float(row.get("amount") or 0.0),
        "preClose": float(row.get("preClose") or 0.0),
    }


def _time_ms(value: Any) -> int:
    """xtdata's `time` column: epoch ms (a number), or "YYYYMMDD[HHMMSS]" Shanghai time."""
    if isinstance(value, str):
        for fmt in ("%Y%m%d%H%M%S", "%Y%m%d"):
            try:
                at = dt.datetime.strptime(value, fmt).replace(tzinfo=SHANGHAI)
            except ValueError:
                continue
            return int(at.timestamp() * 1000)
        raise ValueError(f"xtdata gave a bar time {value!r} of no known form")
    return int(value or 0)


def instrument_detail(xtdata: Any, stock_code: str) -> dict[str, Any] | None:
    """xtdata.get_instrument_detail's fields the protocol carries; None: not known."""
    detail = xtdata.get_instrument_detail(stock_code)
    if not detail:
        return None
    found = {name: detail[name] for name in DETAIL_FIELDS if detail.get(name) is not None}
    for name in (
        "PreClose",
        "UpStopPrice",
        "DownStopPrice",
        "PriceTick",
        "FloatVolume",
        "TotalVolume",
    ):
        if name in found:
            found[name] = float(found[name])
    if "VolumeMultiple" in found:
        found["VolumeMultiple"] = int(found["VolumeMultiple"])
    for name in ("ExchangeID", "InstrumentID", "InstrumentName", "OpenDate"):
        if name in found:
            found[name] = str(found[name])
    return found
