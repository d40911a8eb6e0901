"""Why the simulated exchange would refuse an order: parameters, session, lots, ticks, limits.

Cash and sellable volume depend on the book and are checked there; the error
ids are the simulator's own (real counters use their own numbering).
"""

from __future__ import annotations

from dataclasses import dataclass

from qmtbus.gateway import ashare
from qmtbus.gateway.broker.sim import objects as xt
from qmtbus.gateway.broker.sim.market import Quote, is_stock_code, to_mils, to_yuan

ERR_BAD_PARAMETER = 1001
ERR_MARKET_CLOSED = 1002
ERR_VOLUME = 1003
ERR_PRICE_TICK = 1004
ERR_PRICE_LIMIT = 1005
ERR_CASH = 1006
ERR_SELLABLE = 1007
ERR_SIMULATED = 1099


@dataclass(frozen=True, slots=True)
class Rejection:
    error_id: int
    error_msg: str


def check_request(
    account_ok: bool, stock_code: str, order_type: int, price_type: int
) -> Rejection | None:
    """Checks that need no market data (so a bad code never creates a quote)."""
    if not account_ok:
        return Rejection(ERR_BAD_PARAMETER, "unknown account")
    if not is_stock_code(stock_code):
        return Rejection(ERR_BAD_PARAMETER, f"unknown security {stock_code!r}")
    if order_type not in (xt.STOCK_BUY, xt.STOCK_SELL):
        return Rejection(ERR_BAD_PARAMETER, f"order_type {order_type} is not 23 (buy) or 24 (sell)")
    wrong_type = ashare.price_type_error(stock_code, price_type)
    if wrong_type is not None:
        return Rejection(ERR_BAD_PARAMETER, wrong_type)
    return None


def check_market(
    stock_code: str,
    order_type: int,
    order_volume: int,
    price_type: int,
    price: float,
    *,
    phase: ashare.Phase,
    quote: Quote,
    can_use_volume: int,
) -> Rejection | None:
    """Session, lot, tick and price-limit checks against today's quote."""
    too_many = ashare.order_volume_cap_error(stock_code, order_volume, price_type)
    if too_many is not None:
        return Rejection(ERR_VOLUME, too_many)
    if phase == "closed":
        return Rejection(ERR_MARKET_CLOSED, "the market is closed")
    if phase != "continuous" and price_type != xt.FIX_PRICE:
        return Rejection(ERR_MARKET_CLOSED, "only limit orders are taken in a call auction")
    if order_type == xt.STOCK_BUY:
        lot_error = ashare.buy_volume_error(stock_code, order_volume)
        if lot_error:
            return Rejection(ERR_VOLUME, lot_error)
    else:
        if order_volume > can_use_volume:
            return Rejection(
                ERR_SELLABLE,
                f"sell volume {order_volume} exceeds sellable volume {can_use_volume} (T+1)",
            )
        lot_error = ashare.sell_volume_error(stock_code, order_volume, can_use_volume)
        if lot_error:
            return Rejection(ERR_VOLUME, lot_error)
    if price_type == xt.FIX_PRICE:
        tick = to_yuan(quote.tick_m)
        if not price > 0 or not ashare.on_tick(price, tick):
            return Rejection(ERR_PRICE_TICK, f"price {price} is not on the {tick} tick")
        price_m = to_mils(price)
        if not quote.down_m <= price_m <= quote.up_m:
            return Rejection(
                ERR_PRICE_LIMIT,
                f"price {price} is outside today's limits "
                f"{to_yuan(quote.down_m)}-{to_yuan(quote.up_m)}",
            )
    return None
