"""The pre-trade risk gate: the kill switch and the [risk] rules an order passes before the broker.

denial = gate.check(order, book)   # None, or Denial(rule, message)
if denial is None:
    gate.record(order, book)       # then send it
"""

from qmtbus.gateway.risk.gate import Denial, RiskGate, TokenBucket
from qmtbus.gateway.risk.rules import RULE_NAMES, BookView, InstrumentLike, order_notional
from qmtbus.gateway.risk.state import trading_day

__all__ = [
    "RULE_NAMES",
    "BookView",
    "Denial",
    "InstrumentLike",
    "RiskGate",
    "TokenBucket",
    "order_notional",
    "trading_day",
]
