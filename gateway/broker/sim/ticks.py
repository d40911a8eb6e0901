"""The simulator's full tick: xtdata's field names, and a book that agrees with how it fills.

The simulator fills a buy whose limit is at or above ask1 at the ask prices,
and a sell whose limit is at or below bid1 at the bid prices, walking the five
levels for larger orders, up to the volume left at each level this tick
(refilled on every market step). bid1 and ask1 are `spread_ticks` apart around
the last price; with no spread both are the last price, and only level 1 has
volume. A level beyond the day's limits has price and volume 0. Volumes are in
lots of 100 shares, as xtdata reports stocks; `pvolume` is the day's volume in
shares.
"""

from __future__ import annotations

from typing import Any

from qmtbus.gateway.broker.sim.market import Quote, to_yuan

LOT = 100


def full_tick(quote: Quote, now: float) -> dict[str, Any]:
    """The tick of `quote` at epoch seconds `now`, as xtdata's get_full_tick gives it."""
    asks, bids = quote.ask_prices(), quote.bid_prices()
    return {
        "stock_code": quote.stock_code,
        "time": int(now * 1000),
        "lastPrice": to_yuan(quote.last_m),
        "open": to_yuan(quote.open_m),
        "high": to_yuan(quote.high_m),
        "low": to_yuan(quote.low_m),
        "lastClose": to_yuan(quote.prev_close_m),
        "amount": to_yuan(quote.amount_m),
        "volume": quote.volume // LOT,
        "pvolume": quote.volume,
        "askPrice": [to_yuan(p) for p in asks],
        "bidPrice": [to_yuan(p) for p in bids],
        "askVol": [v // LOT if p else 0 for p, v in zip(asks, quote.asks_left, strict=True)],
        "bidVol": [v // LOT if p else 0 for p, v in zip(bids, quote.bids_left, strict=True)],
        "upStopPrice": to_yuan(quote.up_m),
        "downStopPrice": to_yuan(quote.down_m),
    }
