"""Fuzzing the command path with hypothesis: random MessagePack, JSON text and bytes.

In-process, the decoder and `commands.handle` turn anything into either one decoded
command or one documented error reply, never an exception. Against a live gateway,
every random request gets a reply, the gateway stays up, and no order reaches the
simulator.

For the live gateway, generation is constrained: payloads that decode to a valid
`order` are filtered out, so "no order reaches the simulator" holds absolutely and is
checked against the simulator's ledger after every example (accepting accidental
orders would weaken it to "every order that arrived was acked", which proves less
about the decoder; valid orders have their own tests). Valid `sim_fault` commands are
filtered out too: a random disconnect or a callback delay of 1e300 s is a fault
injected on purpose, not input the gateway must survive.
"""

from __future__ import annotations

import math
from typing import Any
from unittest import mock

import msgspec
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from qmtbus import protocol as p
from qmtbus.config import Config, GatewayConfig
from qmtbus.gateway import commands
from qmtbus.gateway.broker.sim.ledger import read_ledger
from tests.support import Proc, Stack, call

DECODE_ERRORS = {p.BAD_REQUEST, p.UNKNOWN_TYPE}
# Every code a live gateway may answer a well-formed but random command with;
# INTERNAL (a bug in the gateway) is deliberately missing.
LIVE_ERRORS = {*DECODE_ERRORS, p.TOO_LARGE, p.NOT_FOUND, p.NOT_CONNECTED, p.BROKER_ERROR}

# Nesting beyond Python's recursion limit: a few kilobytes, well under max_message_size.
DEEP_MSGPACK = b"\x82\xa4type\xa4ping\xa1a" + b"\x91" * 2000 + b"\xc0"
DEEP_JSON = b'{"type":"note","topic":"t","data":{"a":' + b"[" * 2000 + b"]" * 2000 + b"}}"

# -- strategies ----------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=30)
    | st.binary(max_size=30)
)
keys = st.text(max_size=12) | st.integers(min_value=-(2**31), max_value=2**31)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25,
)

# Numbers beyond what any field takes: past int64, huge, infinite, not a number (integers
# past 64 bits, which MessagePack cannot carry, are in the JSON cases further down).
out_of_range = st.sampled_from(
    [2**63, 2**64 - 1, -(2**63), 1e23, 1e308, math.inf, -math.inf, math.nan]
)

TAGS = sorted(str(t.__struct_config__.tag) for t in p.COMMAND_TYPES)
FIELDS = sorted({f for t in p.COMMAND_TYPES for f in t.__struct_fields__})
# Values that are right for some field, so that maps get past the first check more often.
plausible = (
    st.sampled_from(
        ["600000.SH", "000001.SZ", "AAPL", "", "x" * 25, "c-1", "e", 23, 24, 11, 5, 0, -1, 100]
    )
    | st.floats(min_value=-1e3, max_value=1e3)
    | out_of_range
)
command_maps = st.builds(
    lambda tag, fields: {"type": tag, **fields},
    st.sampled_from([*TAGS, "", "launch_rockets", "ORDER"]),
    st.dictionaries(st.sampled_from(FIELDS), plausible | values, max_size=8),
)

VALID_ORDER = msgspec.to_builtins(
    p.PlaceOrder(
        client_order_id="fz-1",
        stock_code="600000.SH",
        order_type=23,  # STOCK_BUY
        order_volume=100,
        price=10.0,
    )
)


def _mutate(field: str, value: Any, drop: bool) -> dict[str, Any]:
    order = dict(VALID_ORDER)
    if drop:
        order.pop(field)
    else:
        order[field] = value
    return order


# An order one field away from valid: every field check of the order path.
near_orders = st.builds(
    _mutate, st.sampled_from(sorted(VALID_ORDER)), plausible | values, st.booleans()
)
# Well-shaped commands with random contents.
shaped = st.one_of(
    st.builds(
        lambda epoch, seq, limit: {
            "type": "replay",
            "epoch": epoch,
            "from_seq": seq,
            "limit": limit,
        },
        st.text(max_size=30),
        st.integers(min_value=-5, max_value=2**40),
        st.integers(min_value=-5, max_value=20_000),
    ),
    st.builds(
        lambda topic, data: {"type": "note", "topic": topic, "data": data},
        st.text(max_size=70),
        st.dictionaries(st.text(max_size=10), values, max_size=5),
    ),
    st.builds(
        lambda code, price: {"type": "sim_set_price", "stock_code": code, "price": price},
        st.sampled_from(["600000.SH", "000001.SZ", "688001.SH", "1.SH"]),
        st.floats(),
    ),
    st.builds(
        lambda order_id, coid: {"type": "cancel", "order_id": order_id, "client_order_id": coid},
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.text(max_size=30),
    ),
)
command_maps = command_maps | near_orders | shaped
maps = command_maps | st.dictionaries(keys, values, max_size=6)

msgpack_payloads = (maps | values).map(msgspec.msgpack.encode)
json_payloads = (
    st.text(max_size=200).map(lambda s: ("{" + s).encode())
    | st.binary(max_size=200).map(lambda b: b"{" + b)
    | command_maps.map(msgspec.json.encode)
)
payloads = msgpack_payloads | json_payloads | st.binary(max_size=300)


def _decodes_to(payload: bytes) -> Any:
    decoder = p.command_json_decoder if p.is_json(payload) else p.command_msgpack_decoder
    try:
        return decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None


def _not_an_order_nor_a_fault(payload: bytes) -> bool:
    return not isinstance(_decodes_to(payload), p.PlaceOrder | p.SimFault)


live_payloads = payloads.filter(_not_an_order_nor_a_fault)


# -- the decoder, in-process --------------------------------------------------------------


@settings(max_examples=500)
@given(payload=payloads)
@example(payload=DEEP_MSGPACK)
@example(payload=DEEP_JSON)
@example(payload=b"")
def test_given_any_payload_then_decode_gives_a_command_or_a_documented_error(
    payload: bytes,
) -> None:
    try:
        cmd = commands._decode(payload, p.is_json(payload))
    except commands._BadRequest as err:
        event(err.code)
        assert err.code in DECODE_ERRORS
        assert str(err)
    else:
        event(f"decoded {type(cmd).__name__}")
        assert isinstance(cmd, p.COMMAND_TYPES)


class _Replies:
    """What `commands.handle` needs of the Server before dispatch: its config and reply()."""

    def __init__(self) -> None:
        self.config = Config(gateway=GatewayConfig(max_message_size=256))
        self.sent: list[tuple[list[bytes], bool, bytes]] = []

    def reply(self, envelope: list[bytes], json: bool, message: Any) -> None:
        self.sent.append((envelope, json, p.encode(message, json=json)))


frames = st.builds(
    lambda peer, delimiter, body: [peer, *delimiter, *body],
    st.binary(min_size=1, max_size=5),
    st.sampled_from([[b""], []]),
    st.lists(payloads, min_size=1, max_size=1) | st.lists(st.binary(max_size=20), max_size=3),
)


@settings(max_examples=500)
@given(frames=frames)
@example(frames=[b"peer", b"", DEEP_MSGPACK])
@example(frames=[b"peer", b"", DEEP_JSON])
def test_given_any_frames_then_handle_dispatches_one_command_or_sends_one_error_reply(
    frames: list[bytes],
) -> None:
    server = _Replies()
    with mock.patch.object(commands, "dispatch") as dispatch:
        commands.handle(server, frames)  # type: ignore[arg-type]
    if dispatch.called:
        assert server.sent == []
        (_server, envelope, json, cmd), _ = dispatch.call_args
        assert isinstance(cmd, p.COMMAND_TYPES)
        assert envelope[0] == frames[0]
        return
    assert len(server.sent) == 1, server.sent
    envelope, json, raw = server.sent[0]
    assert envelope[0] == frames[0], "the reply must go back to the peer that asked"
    reply = p.decode_reply(raw)
    assert isinstance(reply, p.ErrorReply)
    assert reply.code in {*DECODE_ERRORS, p.TOO_LARGE}
    assert reply.message
    body = frames[len(envelope) :]
    if len(body) == 1:
        assert json == p.is_json(body[0]), "a JSON request gets a JSON reply, and only it"


# -- a live gateway ---------------------------------------------------------------------------


@settings(
    max_examples=400,
    deadline=None,
    # one gateway serves every example: that it survives them all is the point
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payload=live_payloads)
@example(payload=DEEP_MSGPACK)
@example(payload=DEEP_JSON)
def test_given_random_requests_then_live_gateway_answers_each_stays_up_and_sends_no_order(
    stack: Stack, gateway: Proc, payload: bytes
) -> None:
    reply = call(stack.commands_address, payload, timeout=5.0)  # TimeoutError: no reply
    event(reply.code if isinstance(reply, p.ErrorReply) else type(reply).__name__)
    if isinstance(reply, p.ErrorReply):
        assert reply.code in LIVE_ERRORS, reply
    assert gateway.alive(), gateway.log()[-3000:]
    assert isinstance(stack.call(p.Ping(), timeout=5.0), p.Pong)
    assert read_ledger(stack.data_dir).orders_received == []


# -- out-of-range numbers: BAD_REQUEST naming the field ------------------------------------

# (command, field, values no gateway may take there); JSON text for what MessagePack
# cannot carry (integers beyond 64 bits)
OUT_OF_RANGE_FIELDS = [
    ("order", "order_volume", [0, -1, p.MAX_ORDER_VOLUME + 1, 2**63, 2**64 - 1, 1e23]),
    ("order", "price", [-1.0, 1e23, math.inf, -math.inf, math.nan, p.MAX_PRICE * 2]),
    ("order", "price_type", [0, -1, 18, 2**63, 2**64 - 1, -(2**63), 1e23]),
    ("cancel", "order_id", [-1, 2**63, 2**64 - 1, 1e23, math.inf]),
    ("replay", "from_seq", [0, 2**63, 2**64 - 1, math.nan]),
]
BASES: dict[str, dict[str, Any]] = {
    "order": VALID_ORDER,
    "cancel": {"type": "cancel", "order_id": 1},
    "replay": {"type": "replay", "epoch": "e", "from_seq": 1},
}
out_of_range_requests = st.sampled_from(
    [
        (msgspec.msgpack.encode({**BASES[command], field: value}), field)
        for command, field, bad in OUT_OF_RANGE_FIELDS
        for value in bad
    ]
    + [
        (("{" + f'"type": "{command}", "{field}": {text}' + extra + "}").encode(), field)
        for command, field, extra in [
            ("cancel", "order_id", ""),
            ("replay", "from_seq", ', "epoch": "e"'),
        ]
        for text in ("100000000000000000000000", "-100000000000000000000000", "1e999")
    ]
    + [
        (msgspec.json.encode(VALID_ORDER)[:-1] + b', "order_volume": ' + text + b"}", field)
        for text, field in [
            (b"100000000000000000000000", "order_volume"),
            (b"1e23", "order_volume"),
        ]
    ]
)


@settings(max_examples=200)
@given(request=out_of_range_requests)
def test_given_an_out_of_range_number_then_decode_answers_bad_request_naming_the_field(
    request: tuple[bytes, str],
) -> None:
    payload, field = request
    try:
        cmd = commands._decode(payload, p.is_json(payload))
    except commands._BadRequest as err:
        assert err.code == p.BAD_REQUEST
        assert f"`$.{field}`" in str(err), str(err)
    else:
        raise AssertionError(f"{payload!r} decoded to {cmd!r}")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=out_of_range_requests)
def test_given_out_of_range_numbers_then_the_live_gateway_answers_bad_request_and_sends_nothing(
    stack: Stack, gateway: Proc, request: tuple[bytes, str]
) -> None:
    payload, field = request
    reply = call(stack.commands_address, payload, timeout=5.0)
    assert isinstance(reply, p.ErrorReply) and reply.code == p.BAD_REQUEST, reply
    assert f"`$.{field}`" in reply.message
    assert gateway.alive(), gateway.log()[-3000:]
    assert read_ledger(stack.data_dir).orders_received == []
