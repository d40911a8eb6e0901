"""The CLI's checks of what a trader types: stock codes, volumes, prices, price types, --from.

Each check returns the clean value or raises ValueError with one sentence that names the
rule, so a typo never reaches the gateway as a schema error.
"""

from __future__ import annotations

import re

from qmtbus import protocol
from qmtbus.sansio import check_stock_code

_EPOCH = re.compile(r"^[\x21-\x7e]{1,64}$")
PRICE_TYPES = {
    protocol.FIX_PRICE: "limit",
    protocol.LATEST_PRICE: "latest price",
    **{t: "market" for t in protocol.MARKET_PRICE_TYPES},
}
# `--price` also takes a level of the live quote: last, bid1..bid5, ask1..ask5.
QUOTE_LEVEL = re.compile(r"^(last|bid[1-5]|ask[1-5])$")

# `600000.sh` → `600000.SH`, or ValueError naming the rule (the library checks the same)
stock_code = check_stock_code


def volume(text: str) -> int:
    """A whole number of shares, at least 1."""
    try:
        shares = int(text)
    except ValueError:
        raise ValueError(f"volume {text!r} is not a whole number of shares, e.g. 100") from None
    if shares < 1:
        raise ValueError(f"volume {shares} is below 1 share: buy in lots of 100, e.g. 100")
    return shares


def price(text: str) -> float | str:
    """A limit price above 0 CNY, or a quote level (`last`, `bid1`..`bid5`, `ask1`..`ask5`)."""
    level = text.strip().lower()
    if QUOTE_LEVEL.match(level):
        return level
    try:
        value = float(text)
    except ValueError:
        raise ValueError(
            f"price {text!r} is not a number: give a limit price such as 47.50, or a level "
            "of the live quote (last, bid1..bid5, ask1..ask5)"
        ) from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"price {text} must be above 0 CNY")
    return value


def price_type(text: str) -> int:
    """An xtquant price type the gateway accepts."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value not in PRICE_TYPES:
        raise ValueError(
            f"price type {text!r} is not one xtquant knows: 11 (limit, with --price), "
            "5 (latest price) or 42-48 (market types)"
        )
    return value


def from_position(text: str) -> tuple[str, int]:
    """`EPOCH:SEQ` (as `qmtbus status` and `tail --json` show them) → (epoch, seq)."""
    epoch, _, seq = text.rpartition(":")
    if not epoch or not _EPOCH.match(epoch) or not seq.isdigit():
        raise ValueError(
            f"--from {text!r} is not EPOCH:SEQ; take both from `qmtbus status` "
            "(epoch and last_seq), e.g. 20261124T041732Z-3fa9c1:120"
        )
    return epoch, int(seq)


def quote_level(tick: protocol.TickEvent, level: str) -> float:
    """The price at `level` of a tick; ValueError when that level is empty (a limit reached)."""
    if level == "last":
        value = tick.lastPrice
    else:
        side = tick.bidPrice if level.startswith("bid") else tick.askPrice
        n = int(level[3:])
        value = side[n - 1] if len(side) >= n else 0.0
    if not value > 0:
        raise ValueError(
            f"{tick.stock_code} has no {level} price now (the quote is empty there): "
            "give a limit price"
        )
    return float(value)
