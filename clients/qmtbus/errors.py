"""What the client library raises: the gateway's error replies, and an unreachable gateway."""

from __future__ import annotations

from qmtbus import protocol


class GatewayError(Exception):
    """The gateway answered with an `error` reply.

    `code` is the protocol's UPPER_SNAKE code (BAD_REQUEST, NOT_CONNECTED,
    RISK_DENIED, BROKER_ERROR, NOT_FOUND, ...; codes not known to this version
    are kept as they are), `message` the gateway's human text and `rule` the
    risk rule that denied an order (empty otherwise). `lost` says which seqs a
    NOT_FOUND `replay` cannot serve, and why (None otherwise).
    """

    def __init__(
        self, code: str, message: str, rule: str = "", lost: protocol.Lost | None = None
    ) -> None:
        super().__init__(f"{code}: {message}" + (f" (rule {rule})" if rule else ""))
        self.code = code
        self.message = message
        self.rule = rule
        self.lost = lost


class RiskDenied(GatewayError):
    """The risk gate refused the order before it reached the broker; `rule` names the check."""


class NotConnected(GatewayError):
    """The gateway is not connected to the broker (outside the window, reconnecting, halted)."""


class BadReply(GatewayError):
    """The reply could not be decoded, or was not the kind the command expects."""


_BY_CODE: dict[str, type[GatewayError]] = {
    protocol.RISK_DENIED: RiskDenied,
    protocol.NOT_CONNECTED: NotConnected,
}


def from_reply(reply: protocol.ErrorReply) -> GatewayError:
    """The exception for an `error` reply: a subclass for the codes callers handle apart."""
    return _BY_CODE.get(reply.code, GatewayError)(reply.code, reply.message, reply.rule, reply.lost)


class GatewayUnreachable(TimeoutError):
    """No reply after every allowed attempt. `str(err)` is one sentence that says what to check.

    `sent` is False when the request provably never left this process (no
    connection to the gateway existed), so it cannot have taken effect.
    """

    def __init__(self, message: str, address: str, sent: bool) -> None:
        super().__init__(message)
        self.address = address
        self.sent = sent


class GatewaySilent(TimeoutError):
    """An EventStream heard nothing (no event, no heartbeat) for `stale_after` seconds."""

    def __init__(self, message: str, address: str, silent_for: float) -> None:
        super().__init__(message)
        self.address = address
        self.silent_for = silent_for
