"""qmtbus: the Python client of a qmtbus gateway (commands, events) and the protocol types.

The names below are loaded on first use, so `import qmtbus.gateway` (or the protocol and
config modules alone) never pulls in the client facade, asyncio sockets included.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qmtbus import protocol
    from qmtbus.aio import AsyncGateway
    from qmtbus.client import Gateway, RecorderClient, new_client_order_id
    from qmtbus.config import load_config
    from qmtbus.errors import (
        GatewayError,
        GatewaySilent,
        GatewayUnreachable,
        NotConnected,
        RiskDenied,
    )
    from qmtbus.stream import AsyncEventStream, EventStream, QuoteStream

_WHERE = {
    "protocol": "qmtbus.protocol",
    "AsyncGateway": "qmtbus.aio",
    "Gateway": "qmtbus.client",
    "RecorderClient": "qmtbus.client",
    "new_client_order_id": "qmtbus.client",
    "load_config": "qmtbus.config",
    "GatewayError": "qmtbus.errors",
    "GatewaySilent": "qmtbus.errors",
    "GatewayUnreachable": "qmtbus.errors",
    "NotConnected": "qmtbus.errors",
    "RiskDenied": "qmtbus.errors",
    "AsyncEventStream": "qmtbus.stream",
    "EventStream": "qmtbus.stream",
    "QuoteStream": "qmtbus.stream",
}

__all__ = [
    "AsyncEventStream",
    "AsyncGateway",
    "EventStream",
    "Gateway",
    "GatewayError",
    "GatewaySilent",
    "GatewayUnreachable",
    "NotConnected",
    "QuoteStream",
    "RecorderClient",
    "RiskDenied",
    "load_config",
    "new_client_order_id",
    "protocol",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'qmtbus' has no attribute {name!r}")
    if name == "protocol":
        return importlib.import_module(module)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
