"""Bad input never stops the gateway: every malformed request gets an error reply with a code."""

from __future__ import annotations

import msgspec
import pytest
import zmq

from qmtbus import protocol as p
from tests.support import Proc, Stack, call

ORDER = {
    "type": "order",
    "client_order_id": "bad-1",
    "stock_code": "600000.SH",
    "order_type": 23,
    "order_volume": 100,
    "price_type": 11,
    "price": 10.0,
}


def _still_serving(stack: Stack) -> None:
    assert isinstance(stack.call(p.Ping()), p.Pong)


@pytest.mark.parametrize(
    ("payload", "code", "words"),
    [
        (b"\xc1\xff\x00junk", p.BAD_REQUEST, "not a valid MessagePack"),
        (b"{not json", p.BAD_REQUEST, "not a valid JSON"),
        (msgspec.msgpack.encode([1, 2, 3]), p.BAD_REQUEST, "Expected `object`"),
        (msgspec.msgpack.encode({"no_type": 1}), p.BAD_REQUEST, "missing required field `type`"),
        (msgspec.msgpack.encode({"type": "launch_rockets"}), p.UNKNOWN_TYPE, "launch_rockets"),
        (msgspec.json.encode({"type": "launch_rockets"}), p.UNKNOWN_TYPE, "launch_rockets"),
        (msgspec.msgpack.encode({**ORDER, "order_volume": "many"}), p.BAD_REQUEST, "order_volume"),
        (msgspec.msgpack.encode({**ORDER, "order_type": 99}), p.BAD_REQUEST, "order_type"),
        (msgspec.msgpack.encode({**ORDER, "stock_code": "AAPL"}), p.BAD_REQUEST, "stock_code"),
        (
            msgspec.msgpack.encode({k: v for k, v in ORDER.items() if k != "client_order_id"}),
            p.BAD_REQUEST,
            "client_order_id",
        ),
        (msgspec.msgpack.encode({**ORDER, "client_order_id": "x" * 25}), p.BAD_REQUEST, "length"),
        (msgspec.json.encode({"type": "replay", "epoch": "e", "from_seq": 0}), p.BAD_REQUEST, ">="),
        (msgspec.json.encode({"type": "cancel"}), p.BAD_REQUEST, "exactly one"),
    ],
)
def test_given_malformed_request_then_error_reply_and_gateway_keeps_serving(
    stack: Stack, gateway: Proc, payload: bytes, code: str, words: str
) -> None:
    reply = call(stack.commands_address, payload)
    assert isinstance(reply, p.ErrorReply), reply
    assert reply.code == code
    assert words in reply.message
    assert gateway.alive()
    _still_serving(stack)


def test_given_oversized_request_then_too_large_reply(stack: Stack, gateway: Proc) -> None:
    payload = msgspec.msgpack.encode({"type": "note", "topic": "big", "data": {"x": "y" * 70_000}})
    reply = call(stack.commands_address, payload)
    assert isinstance(reply, p.ErrorReply)
    assert reply.code == p.TOO_LARGE
    _still_serving(stack)


def test_given_multi_frame_junk_then_bad_request_reply(stack: Stack, gateway: Proc) -> None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(stack.commands_address)
    try:
        sock.send_multipart([b"", b"frame one", b"frame two"])
        assert sock.poll(5000), "no reply to a multi-frame request"
        frames = sock.recv_multipart()
        reply = p.decode_reply(frames[-1])
        assert isinstance(reply, p.ErrorReply)
        assert reply.code == p.BAD_REQUEST
        assert "one frame" in reply.message
    finally:
        sock.close()
    _still_serving(stack)


def test_given_json_request_then_json_reply(stack: Stack, gateway: Proc) -> None:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(stack.commands_address)
    try:
        sock.send(b'{"type": "status"}')
        assert sock.poll(5000)
        raw = sock.recv()
    finally:
        sock.close()
    assert raw.startswith(b"{")
    status = msgspec.json.decode(raw)
    assert status["type"] == "status"
    assert status["protocol"] == 1
    assert status["state"] == "ready"
    assert status["broker"] == "sim"


def test_given_a_dealer_without_delimiter_then_it_is_answered(stack: Stack, gateway: Proc) -> None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(stack.commands_address)
    try:
        sock.send(msgspec.msgpack.encode({"type": "ping"}))
        assert sock.poll(5000)
        assert isinstance(p.decode_reply(sock.recv_multipart()[-1]), p.Pong)
    finally:
        sock.close()
