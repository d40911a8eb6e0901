"""Example scheduler jobs: a small limit buy that waits for its fill (see examples/qmtbus.toml)."""

from __future__ import annotations

import time
from typing import Any

from qmtbus.scheduler import JobContext


def _marketable(ctx: JobContext, stock_code: str) -> float:
    """A limit price that buys now: the best ask of the live quote, else its last price."""
    tick = ctx.gateway.quotes([stock_code])[0]
    return tick.askPrice[0] if tick.askPrice and tick.askPrice[0] > 0 else tick.lastPrice


def buy_small(ctx: JobContext) -> dict[str, Any]:
    """Buy `volume` (default 100) of `stock_code` at limit `price` (default: the
    live quote's best ask, so it fills), wait up to
    `wait_seconds` for the fill, cancel what is left (unless `cancel_unfilled` is
    false), and log the fill.

    The client_order_id comes from the scheduled time, so however often this
    run's order is sent (the client resends on a timeout), the gateway places it
    once.
    """
    stock_code = str(ctx.args.get("stock_code", "600000.SH"))
    volume = int(ctx.args.get("volume", 100))
    price = float(ctx.args["price"]) if "price" in ctx.args else _marketable(ctx, stock_code)
    wait_seconds = float(ctx.args.get("wait_seconds", 30))
    client_order_id = f"ex{ctx.scheduled_for:%y%m%d%H%M%S}"

    ack = ctx.gateway.buy(
        stock_code, volume, price, strategy_name=ctx.name, client_order_id=client_order_id
    )
    if ack.status == "rejected":
        raise RuntimeError(f"the broker rejected {client_order_id}: {ack.error_msg}")
    ctx.log.info(
        "placed %s: buy %d %s at %.3f (order_id %d)",
        client_order_id,
        volume,
        stock_code,
        price,
        ack.order_id,
    )

    # Poll today's fills rather than listen: a query sees fills made while this
    # job was not yet listening, and the job stays a few lines long.
    deadline = time.monotonic() + wait_seconds
    filled, amount = 0, 0.0
    while True:
        fills = [t for t in ctx.gateway.trades() if t.client_order_id == client_order_id]
        filled = sum(t.traded_volume for t in fills)
        amount = sum(t.traded_amount or t.traded_price * t.traded_volume for t in fills)
        if filled >= volume or time.monotonic() >= deadline or ctx.stopping.is_set():
            break
        ctx.stopping.wait(0.5)

    average = amount / filled if filled else 0.0
    if filled:
        ctx.log.info("filled %d of %d %s at %.3f on average", filled, volume, stock_code, average)
    if filled < volume:
        ctx.log.warning(
            "%s: %d of %d unfilled after %.0fs",
            client_order_id,
            volume - filled,
            volume,
            wait_seconds,
        )
        if ctx.args.get("cancel_unfilled", True):
            ctx.gateway.cancel(client_order_id=client_order_id)
            ctx.log.info("asked to cancel the rest of %s", client_order_id)
    return {
        "client_order_id": client_order_id,
        "filled": filled,
        "average_price": round(average, 4),
    }
