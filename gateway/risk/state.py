"""The risk gate's memory across restarts: trading state and today's counters, in one JSON file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import msgspec

from qmtbus.clock import SHANGHAI as SHANGHAI
from qmtbus.clock import trading_day as trading_day
from qmtbus.protocol import TradingState

log = logging.getLogger(__name__)

# Daily caps reset when the Shanghai date of `ts` changes (no order is accepted
# between midnight and the open anyway): qmtbus.clock.trading_day(ts).


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
    """Rewrite the file in place through a descriptor kept open (a few µs: this runs
    for every order). One small write() is never torn by a kill -9 of the
    gateway; `durable` adds an fsync so the change also survives a power cut.
    The per-order counters skip it to keep fsync off the order path: a file torn
    by a power cut reads as unreadable, which halts trading (the safe side)."""
    _writer(path).write(_encoder.encode(state) + b"\n", durable)


class _StateWriter:
    """One open descriptor per state file. A shorter state is padded with spaces
    (JSON ignores trailing whitespace), so the file never needs truncating."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)

    def write(self, data: bytes, durable: bool) -> None:
        size = os.fstat(self.fd).st_size
        if len(data) < size:
            data += b" " * (size - len(data))
        os.lseek(self.fd, 0, os.SEEK_SET)
        os.write(self.fd, data)
        if durable:
            os.fsync(self.fd)


_writers: dict[Path, _StateWriter] = {}


def _writer(path: Path) -> _StateWriter:
    writer = _writers.get(path)
    if writer is None:
        writer = _writers[path] = _StateWriter(path)
    return writer
