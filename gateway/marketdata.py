"""Bars and instrument details for `query_bars` and `query_instrument`, on the quote thread
(the broker may take seconds to answer; the I/O thread never waits on it)."""

from __future__ import annotations

from typing import Any

import msgspec

from qmtbus import protocol as p


def answer(broker: Any, cmd: p.QueryBars | p.QueryInstrument) -> Any:
    """The reply to `cmd`: the broker's answer, NOT_FOUND for a code it does not know, or
    BROKER_ERROR with what went wrong."""
    try:
        if isinstance(cmd, p.QueryBars):
            rows = broker.bars(cmd.stock_code, cmd.period, cmd.count, cmd.start_time, cmd.end_time)
        else:
            detail = broker.instrument_detail(cmd.stock_code)
    except Exception as err:
        what = "bars" if isinstance(cmd, p.QueryBars) else "an instrument detail"
        message = f"the broker could not give {what} of {cmd.stock_code}: {err}"
        return p.ErrorReply(code=p.BROKER_ERROR, message=message)
    if isinstance(cmd, p.QueryBars):
        if rows is None:
            return _unknown(cmd.stock_code)
        start, end = cmd.start_time, cmd.end_time or 2**63
        inside = [row for row in rows if start <= row["time"] <= end]  # whatever the broker did
        bars = [msgspec.convert(row, p.Bar) for row in inside[-cmd.count :]]
        return p.BarsReply(stock_code=cmd.stock_code, period=cmd.period, bars=bars)
    if detail is None:
        return _unknown(cmd.stock_code)
    fields = {k: v for k, v in detail.items() if k in p.InstrumentReply.__struct_fields__}
    fields["stock_code"] = cmd.stock_code
    return msgspec.convert(fields, p.InstrumentReply)


def _unknown(stock_code: str) -> p.ErrorReply:
    return p.ErrorReply(
        code=p.NOT_FOUND, message=f"no market data for {stock_code}: the broker does not know it"
    )
