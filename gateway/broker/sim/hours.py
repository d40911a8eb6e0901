"""Shanghai wall-clock facts for the simulator: the trading day and the market phase.

The Shanghai clock itself is qmtbus.clock (one for every process).
"""

from __future__ import annotations

from qmtbus import clock
from qmtbus.clock import SHANGHAI, shanghai
from qmtbus.gateway import ashare

__all__ = ["SHANGHAI", "in_session", "phase", "shanghai", "trading_day"]


def trading_day(ts: float) -> str:
    """The Shanghai date "YYYYMMDD" (xtquant's form) at epoch seconds `ts`; T+1 and day
    orders turn over with it."""
    return clock.trading_day(ts).replace("-", "")


def phase(ts: float, market_hours: bool) -> ashare.Phase:
    """The market phase at `ts`: always continuous unless `market_hours` applies the timetable.

    Weekends are closed; exchange holidays are not known here (the simulator
    trades on them when market_hours is on).
    """
    if not market_hours:
        return "continuous"
    now = shanghai(ts)
    if now.weekday() >= 5:
        return "closed"
    return ashare.phase_at(now.time())


def in_session(ts: float) -> bool:
    """True in the continuous sessions (09:30-11:30, 13:00-14:57 Shanghai, weekdays), whatever
    market_hours says: the walk moves at full volatility only then."""
    now = shanghai(ts)
    return now.weekday() < 5 and ashare.phase_at(now.time()) == "continuous"
