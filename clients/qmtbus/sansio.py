"""The client's sans-IO core, shared by the blocking and the asyncio facade: ids, which
commands are retried, reply checks and the one-sentence error after the last try."""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from qmtbus import protocol
from qmtbus.errors import BadReply, GatewayUnreachable, from_reply

if TYPE_CHECKING:
    from qmtbus.keys import CurveKeys

R = TypeVar("R")

# Commands that may be sent again after a reply was lost. An order is safe
# because it keeps its client_order_id (the gateway answers `duplicate: true`);
# a cancel of a cancelled order changes nothing; quote subscriptions are sets
# held per client_id; the rest read or set state.
# `note` is missing on purpose: a resent note would publish twice. Sim faults
# like reject_next would fire twice.
RETRY_SAFE: frozenset[type[Any]] = frozenset(
    {
        protocol.Ping,
        protocol.GetStatus,
        protocol.PlaceOrder,
        protocol.CancelOrder,
        protocol.QueryAsset,
        protocol.QueryOrders,
        protocol.QueryTrades,
        protocol.QueryPositions,
        protocol.Replay,
        protocol.ListEpochs,
        protocol.Halt,
        protocol.ReduceOnly,
        protocol.Resume,
        protocol.SimSetPrice,
        protocol.SubscribeQuotes,
        protocol.UnsubscribeQuotes,
        protocol.QueryQuote,
        protocol.QueryBars,
        protocol.QueryInstrument,
        protocol.SqlQuery,
        protocol.RecorderStatusQuery,
    }
)

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _base32(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "".join(reversed(chars))


def new_client_order_id(prefix: str = "q") -> str:
    """A fresh client_order_id: prefix + 9 chars of milliseconds + 10 random chars.

    Unique across processes and restarts without coordination (50 random
    bits per millisecond), sortable by creation time within one prefix, and
    at most 24 printable ASCII characters as the protocol requires.
    """
    if len(prefix) > 5 or not prefix.isascii() or not prefix.isprintable() or " " in prefix:
        raise ValueError("client_order_id prefix must be at most 5 printable ASCII characters")
    return prefix + _base32(time.time_ns() // 1_000_000, 9) + _base32(secrets.randbits(50), 10)


def new_client_id() -> str:
    """A name for one client object's quote subscriptions, unique across processes."""
    return f"py-{os.getpid()}-{_base32(secrets.randbits(40), 8)}"


@dataclass(frozen=True)
class Endpoint:
    """Where and how to send requests: the part of the config a requester needs."""

    address: str
    timeout: float = 5.0
    retries: int = 3
    curve: CurveKeys | None = None
    name: str = "gateway"

    @property
    def timeout_ms(self) -> int:
        return max(1, int(self.timeout * 1000))


def unreachable(
    endpoint: Endpoint, command: Any, sent: bool, attempts: int, why: str
) -> GatewayUnreachable:
    """The one-sentence error after the last attempt."""
    name, address = endpoint.name, endpoint.address
    public_file = "this client's public key file"
    if endpoint.curve is not None and endpoint.curve.secret_key_file:
        public_file = endpoint.curve.secret_key_file.removesuffix("_secret")
    if why == "auth":
        text = (
            f"{name} at {address} refused this client's CURVE key — copy {public_file} into "
            f"the {name}'s security.allowed_clients_dir"
        )
    elif why == "protocol" and endpoint.curve is not None:
        text = (
            f"the CURVE handshake with the {name} at {address} failed — check that "
            f"client.server_public_key is the {name}'s public key (its NAME.key file)"
        )
    elif why == "protocol":
        text = (
            f"{name} at {address} refused the connection handshake — it probably requires "
            "CURVE: set client.secret_key and client.server_public_key"
        )
    elif why == "no_handshake" and not sent:
        text = (
            f"{name} at {address} accepted the connection but did not complete the handshake "
            f"within {endpoint.timeout:g} s — is it stuck or paused?"
        )
    elif not sent and endpoint.curve is not None:
        text = (
            f"{name} not reachable at {address} — is it running, is {public_file} in its "
            f"security.allowed_clients_dir, and is client.server_public_key its public key?"
        )
    elif not sent:
        text = f"{name} not reachable at {address} — is it running?"
    elif type(command) not in RETRY_SAFE:
        text = (
            f"{name} at {address} did not answer within {endpoint.timeout:g} s — the "
            f"{_tag(command)} command may or may not have taken effect, so it was not resent"
        )
    else:
        tries = "1 try" if attempts == 1 else f"{attempts} tries"
        text = (
            f"{name} at {address} did not answer within {endpoint.timeout:g} s ({tries}) — "
            f"is it running and not stuck?"
        )
    return GatewayUnreachable(text, address, sent)


def _tag(command: Any) -> str:
    config = getattr(type(command), "__struct_config__", None)
    return str(config.tag) if config is not None else type(command).__name__


def check_reply(reply: Any, expected: type[R]) -> R:
    """Raise the error an `error` reply stands for; insist on the expected reply type."""
    if isinstance(reply, expected):
        return reply
    if isinstance(reply, protocol.ErrorReply):
        raise from_reply(reply)
    raise BadReply("BAD_REPLY", f"expected a {expected.__name__} reply, got {type(reply).__name__}")


def decode_or_raise(decode: Callable[[bytes], Any], raw: bytes) -> Any:
    try:
        return decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise BadReply(
            "BAD_REPLY",
            f"undecodable reply ({err}); is the peer a qmtbus gateway "
            "of the same protocol version?",
        ) from None


_CODE = re.compile(r"^[0-9]{6}\.(SH|SZ|BJ)$")


def check_stock_code(text: str) -> str:
    """`600000.sh` → `600000.SH`; anything that is not six digits and SH/SZ/BJ is refused."""
    code = text.strip().upper()
    if _CODE.match(code):
        return code
    hint = ""
    if code.isdigit() and len(code) == 6:
        hint = f" — add the exchange: {code}.SH (Shanghai), {code}.SZ (Shenzhen) or {code}.BJ"
    raise ValueError(
        f"{text!r} is not a stock code: stock codes look like 600000.SH "
        f"(six digits, a dot, then SH, SZ or BJ){hint}"
    )


def order_command(
    stock_code: str,
    order_type: int,
    order_volume: int,
    price: float,
    price_type: int,
    strategy_name: str,
    client_order_id: str | None,
) -> protocol.PlaceOrder:
    return protocol.PlaceOrder(
        client_order_id=client_order_id or new_client_order_id(),
        stock_code=check_stock_code(stock_code),  # ValueError names the rule
        order_type=order_type,  # type: ignore[arg-type]  # checked by the gateway
        order_volume=order_volume,
        price_type=price_type,  # type: ignore[arg-type]  # checked by the gateway
        price=price,
        strategy_name=strategy_name,
    )


def cancel_command(order_id: int | None, client_order_id: str | None) -> protocol.CancelOrder:
    if (order_id is None) == (client_order_id is None):
        raise ValueError("cancel needs exactly one of order_id and client_order_id")
    if order_id is not None:
        return protocol.CancelOrder(order_id=order_id)
    return protocol.CancelOrder(client_order_id=client_order_id or "")
