"""qmtbus: the Python client of a qmtbus gateway (commands, events) and the protocol types."""

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
