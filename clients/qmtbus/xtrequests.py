"""The request structs xttrader.py fills (`<Name>Req` with m_str…/m_n…/m_d… fields), as the
compiled `xtquant.xtpythonclient` declares them: only declared fields can be set.

One definition for both stand-ins of the native module: the simulator's
(qmtbus.gateway.broker.sim.native) and the bus bridge's (qmtbus.xt.native).
"""

from __future__ import annotations

from typing import Any, ClassVar


class Req:
    """A request struct: only its declared fields can be set, as on the compiled one."""

    __slots__: tuple[str, ...] = ()
    _defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        for name, value in self._defaults.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({fields})"


def _struct(name: str, **defaults: Any) -> type[Req]:
    fields = {"m_nAccountType": 0, "m_strAccountID": "", **defaults}
    return type(name, (Req,), {"__slots__": tuple(fields), "_defaults": fields})


SubscribeReq = _struct("SubscribeReq")
UnsubscribeReq = _struct("UnsubscribeReq")
OrderStockReq = _struct(
    "OrderStockReq",
    m_strStockCode="",
    m_nOrderType=0,
    m_nOrderVolume=0,
    m_nPriceType=0,
    m_dPrice=0.0,
    m_strStrategyName="",
    m_strOrderRemark="",
    m_strOrderRemarkNew="",
    m_dOrderAmount=0.0,
    m_strStockCode1="",
    m_strAccountID1="",
)
CancelOrderStockReq = _struct(
    "CancelOrderStockReq", m_nOrderID=-1, m_nMarket=-1, m_strMarket="", m_strOrderSysID=""
)
QueryStockAssetReq = _struct("QueryStockAssetReq")
QueryStockOrdersReq = _struct("QueryStockOrdersReq", m_nOrderID=-1, m_bCanCancel=False)
QueryStockTradesReq = _struct("QueryStockTradesReq")
QueryStockPositionsReq = _struct("QueryStockPositionsReq", m_strStockCode="", m_strStockCode1="")
QueryAccountStatusReq = _struct("QueryAccountStatusReq")
QueryAccountInfosReq = _struct("QueryAccountInfosReq")


class NotCarriedReq:
    """A request for what the bus does not carry: any field may be set; sending raises."""
