"""The risk gate's memory across restarts: trading state and today's counters, in one JSON file."""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from pathlib import Path

import msgspec

from qmtbus.protocol import TradingState

log = logging.getLogger(__name__)

# China has kept UTC+8 without daylight saving since 1991; a fixed offset
# avoids needing the IANA database (absent on a bare Windows Python).
SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")


def trading_day(ts: float) -> str:
    """The Asia/Shanghai calendar date of a Unix time, as "YYYY-MM-DD": daily caps reset
    when it changes (no order is accepted between midnight and the open anyway)."""
    return dt.datetime.fromtimestamp(ts, SHANGHAI).date().isoformat()


class Totals(msgspec.Struct, kw_only=True):
    """Orders recorded and their notional (buys and sells) on one trading day."""

    orders: int = 0
    turnover: float = 0.0


class RiskState(msgspec.Struct, kw_only=True):
    trading: TradingState = "active"
    trading_reason: str = ""
    # when and why trading last changed, for whoever opens the file
    trading_changed_at: str = ""
    trading_day: str = ""
    account: Totals = msgspec.field(default_factory=Totals)
    strategies: dict[str, Totals] = {}

    def account_on(self, day: str) -> Totals:
        return self.account if day == self.trading_day else Totals()

    def strategy_on(self, day: str, strategy_name: str) -> Totals:
        if day != self.trading_day:
            return Totals()
        return self.strategies.get(strategy_name) or Totals()

    def add(self, day: str, strategy_name: str, notional: float) -> None:
        """Count one order on `day`, starting fresh counters when the day changed."""
        if day != self.trading_day:
            self.trading_day = day
            self.account = Totals()
            self.strategies = {}
        for totals in (self.account, self.strategies.setdefault(strategy_name, Totals())):
            totals.orders += 1
            totals.turnover += notional


_decoder = msgspec.json.Decoder(RiskState)
_encoder = msgspec.json.Encoder()


def load_state(path: Path) -> RiskState:
    """The saved state; a fresh active state when there is no file yet. A file
    that exists but cannot be read halts trading: a lost halt must not turn
    into an active gateway."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return RiskState()
    except OSError as err:
        return _halted(path, err.strerror or str(err))
    try:
        return _decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        return _halted(path, str(err))


def _halted(path: Path, why: str) -> RiskState:
    log.error("risk state file %s is unreadable (%s): trading halted until resumed", path, why)
    return RiskState(
        trading="halted",
        trading_reason=f"risk state file {path} was unreadable ({why}); check it, then resume",
    )


def save_state(path: Path, state: RiskState, *, durable: bool = True) -> None:
    """Write atomically (temp file, rename): a crash leaves the old or the new file.

    `durable` adds an fsync, so the change also survives a power cut; the
    per-order counters skip it to keep fsync off the order path (a torn file
    after a power cut reads as unreadable, which halts: the safe side)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(msgspec.json.format(_encoder.encode(state)) + b"\n")
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
