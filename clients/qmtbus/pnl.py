"""`qmtbus pnl [--day D] [--strategy S] [--json]`: profit and loss from the recorder's views.

The numbers come from the recorder (pnl_today, pnl_daily, pnl_by_strategy,
pnl_ledger; the method is in docs/recorder.md): realized by average cost with
fees and taxes, unrealized at the last price the record holds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

import msgspec

from qmtbus import table
from qmtbus.calendar import SHANGHAI
from qmtbus.client import RecorderClient
from qmtbus.config import Config

POSITION_COLUMNS = (
    "stock_code, volume, avg_cost, last_price, market_value, unrealized, realized_today "
    "AS realized, fees_today AS fees, fills_today AS fills"
)


class PnlUsageError(ValueError):
    """A bad --day (the CLI turns a ValueError into exit 2 with this sentence)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--day", help="trading day YYYY-MM-DD (default: today, Asia/Shanghai)")
    p.add_argument("--strategy", help="only this strategy_name")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _rows(client: RecorderClient, sql: str) -> list[dict[str, Any]]:
    result = client.sql(sql)
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def parse_day(text: str | None) -> dt.date:
    if text is None:
        return dt.datetime.now(SHANGHAI).date()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise PnlUsageError(f"--day {text!r} is not a date; give it as YYYY-MM-DD") from None


def report(client: RecorderClient, day: dt.date, strategy: str | None) -> dict[str, Any]:
    """The account's day, its strategies, and per stock what was made (and held, today)."""
    on_day = f"trading_day = DATE {_literal(day.isoformat())}"
    only = f" AND strategy_name = {_literal(strategy)}" if strategy is not None else ""
    today = day == dt.datetime.now(SHANGHAI).date()
    account = _rows(
        client,
        "SELECT account_id, fills, bought, sold, fees, realized, closing_total_asset, "
        f"asset_change FROM pnl_daily WHERE {on_day} ORDER BY account_id",
    )
    strategies = _rows(
        client,
        "SELECT account_id, strategy_name, fills, bought, sold, fees, realized, market_value, "
        f"unrealized FROM pnl_by_strategy WHERE {on_day}{only} ORDER BY account_id, strategy_name",
    )
    if today and strategy is None:
        stocks = _rows(client, f"SELECT {POSITION_COLUMNS} FROM pnl_today")
    else:
        stocks = _rows(
            client,
            "SELECT stock_code, count(*) AS fills, round(sum(traded_amount) FILTER "
            "(side = 'buy'), 2) AS bought, round(sum(traded_amount) FILTER (side = 'sell'), 2) "
            "AS sold, round(sum(fees), 2) AS fees, round(sum(realized), 2) AS realized "
            f"FROM pnl_ledger WHERE {on_day}{only} GROUP BY stock_code ORDER BY stock_code",
        )
    unrealized = None
    if today:
        held = _rows(client, "SELECT round(sum(unrealized), 2) AS u FROM pnl_today")
        unrealized = held[0]["u"] if held else None
        if strategy is not None:
            unrealized = sum(s["unrealized"] or 0 for s in strategies)
    return {
        "day": day.isoformat(),
        "strategy": strategy,
        "unrealized": unrealized,
        "account": account,
        "strategies": strategies,
        "stocks": stocks,
    }


def _text(result: dict[str, Any]) -> str:
    parts = []
    title = f"P&L {result['day']}" + (
        f", strategy {result['strategy']!r}" if result["strategy"] is not None else ""
    )
    parts.append(title)
    if result["strategy"] is None:
        for a in result["account"]:
            parts.append(
                table.key_values(
                    [
                        ("account_id", a["account_id"]),
                        ("realized", a["realized"]),
                        ("fees", a["fees"]),
                        ("fills", a["fills"]),
                        ("total_asset", a["closing_total_asset"]),
                        ("asset_change", a["asset_change"]),
                    ]
                )
            )
    if result["unrealized"] is not None:
        parts.append(f"unrealized now: {result['unrealized']}")
    for name, rows in (("by stock", result["stocks"]), ("by strategy", result["strategies"])):
        if rows:
            columns = list(rows[0])
            parts.append(f"\n{name}:\n" + table.table(columns, [list(r.values()) for r in rows]))
    if len(parts) == 1:
        parts.append("nothing recorded for this day")
    return "\n".join(parts)


def main(args: argparse.Namespace, config: Config) -> int:
    day = parse_day(args.day)
    with RecorderClient.from_config(config) as client:
        result = report(client, day, args.strategy)
    if args.json:
        sys.stdout.write(msgspec.json.encode(result).decode() + "\n")
    else:
        sys.stdout.write(_text(result) + "\n")
    return 0
