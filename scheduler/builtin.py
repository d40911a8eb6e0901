"""The built-in jobs: a pre-open check and an after-close asset and position snapshot."""

from __future__ import annotations

from typing import Any

from qmtbus.scheduler.context import JobContext

PRE_OPEN_ALERT_TOPIC = "alert.pre_open_check"
SNAPSHOT_TOPIC = "snapshot.after_close"
# keeps the snapshot note well under the gateway's message size limit
MAX_HOLDINGS_IN_NOTE = 200


class PreOpenCheckFailed(Exception):
    """The account is not ready to trade; the message lists what is wrong."""


def pre_open_check(ctx: JobContext) -> dict[str, Any]:
    """Gateway ready, trading active, the account answers queries; else an alert note
    and the run fails with the problems as its error."""
    problems: list[str] = []
    status: Any = None
    asset: Any = None
    try:
        status = ctx.gateway.status()
    except Exception as err:  # unreachable or refused: either way the day cannot start
        problems.append(f"the gateway does not answer ({type(err).__name__}: {err})")
    else:
        if status.state != "ready":
            problems.append(
                f"the gateway is {status.state}, not ready"
                + (f" ({status.state_reason})" if status.state_reason else "")
            )
        if status.trading != "active":
            problems.append(
                f"trading is {status.trading}"
                + (f" ({status.trading_reason})" if status.trading_reason else "")
            )
        if status.state == "ready":
            try:
                asset = ctx.gateway.asset()
            except Exception as err:
                problems.append(
                    f"the account does not answer an asset query ({type(err).__name__}: {err})"
                )
    if problems:
        alert = {
            "trading_day": ctx.trading_day.isoformat(),
            "problems": problems,
            "state": getattr(status, "state", None),
            "trading": getattr(status, "trading", None),
            "account_id": getattr(status, "account_id", None),
        }
        ctx.log.error("pre-open check failed: %s", "; ".join(problems))
        try:
            ctx.note(PRE_OPEN_ALERT_TOPIC, alert)
        except Exception as err:  # the run's own note still reports the failure
            ctx.log.error("could not publish the alert note: %s", err)
        raise PreOpenCheckFailed("; ".join(problems))
    ctx.log.info(
        "pre-open check ok: %s is ready, trading %s, cash %.2f",
        status.account_id,
        status.trading,
        asset.cash,
    )
    return {
        "account_id": status.account_id,
        "state": status.state,
        "trading": status.trading,
        "cash": asset.cash,
        "total_asset": asset.total_asset,
    }


def after_close_snapshot(ctx: JobContext) -> dict[str, Any]:
    """Query asset and positions (the gateway publishes them as asset/position events, so
    the recorder keeps them) and note a summary of the day's close."""
    asset = ctx.gateway.asset()
    positions = ctx.gateway.positions()
    holdings = [
        {
            "stock_code": p.stock_code,
            "volume": p.volume,
            "can_use_volume": p.can_use_volume,
            "avg_price": p.avg_price,
            "market_value": p.market_value,
        }
        for p in sorted(positions, key=lambda p: -p.market_value)
        if p.volume
    ]
    summary = {
        "trading_day": ctx.trading_day.isoformat(),
        "account_id": asset.account_id,
        "cash": asset.cash,
        "frozen_cash": asset.frozen_cash,
        "market_value": asset.market_value,
        "total_asset": asset.total_asset,
        "positions": len(holdings),
        "holdings": holdings[:MAX_HOLDINGS_IN_NOTE],
        "holdings_truncated": len(holdings) > MAX_HOLDINGS_IN_NOTE,
    }
    ctx.note(SNAPSHOT_TOPIC, summary)
    ctx.log.info(
        "after-close snapshot: total asset %.2f, cash %.2f, %d positions",
        asset.total_asset,
        asset.cash,
        len(holdings),
    )
    return {"total_asset": asset.total_asset, "cash": asset.cash, "positions": len(holdings)}
