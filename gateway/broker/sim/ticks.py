"""The simulator's full tick: xtdata's field names, and a book that agrees with how it fills.

The simulator fills a buy whose limit is at or above the last price, and a
sell whose limit is at or below it, at the last price, up to the volume left
at the best price this tick (refilled on every market step). So level 1 of
both sides is the last price with that volume; levels 2-5 are the next
prices on the tick, inside the day's limits, with no volume (the simulator
fills nothing there). Volumes are in lots of 100 shares, as xtdata reports
stocks; `pvolume` is the day's volume in shares.
"""

from __future__ import annotations

from typing import Any

from qmtbus.gateway.broker.sim.market import Quote, to_yuan

LEVELS = 5
LOT = 100


def full_tick(quote: Quote, now: float) -> dict[str, Any]:
    """The tick of `quote` at epoch seconds `now`, as xtdata's get_full_tick gives it."""
    last, tick = quote.last_m, quote.tick_m
    asks = [last + k * tick for k in range(LEVELS)]
    bids = [last - k * tick for k in range(LEVELS)]
    return {
        "stock_code": quote.stock_code,
        "time": int(now * 1000),
        "lastPrice": to_yuan(last),
        "open": to_yuan(quote.open_m),
        "high": to_yuan(quote.high_m),
        "low": to_yuan(quote.low_m),
        "lastClose": to_yuan(quote.prev_close_m),
        "amount": to_yuan(quote.amount_m),
        "volume": quote.volume // LOT,
        "pvolume": quote.volume,
        "askPrice": [to_yuan(p) if p <= quote.up_m else 0.0 for p in asks],
        "bidPrice": [to_yuan(p) if p >= quote.down_m else 0.0 for p in bids],
        "askVol": [quote.buy_depth // LOT] + [0] * (LEVELS - 1),
        "bidVol": [quote.sell_depth // LOT] + [0] * (LEVELS - 1),
        "upStopPrice": to_yuan(quote.up_m),
        "downStopPrice": to_yuan(quote.down_m),
    }
