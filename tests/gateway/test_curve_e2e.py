"""CURVE through a real gateway: an allowed key trades and hears events; an unknown key, a
plain socket and a wrong server key get nothing through, on either socket.

Everything stays on loopback. "Beyond loopback" is exercised with the interface name
`lo`: the gateway cannot tell where an interface name leads, so it treats it as a
network bind (CURVE required), while the kernel binds it to 127.0.0.1.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.auth

from qmtbus import Gateway, GatewayUnreachable
from qmtbus import protocol as p
from qmtbus.gateway.broker.sim.ledger import read_ledger
from qmtbus.keys import CurveKeys, main_new, secure_client
from tests.gateway.conftest import order, price
from tests.support import Proc, Stack, Subscriber, wait_for

# A refused client waits this long for a reply that must not come; an allowed one
# gets its reply in milliseconds on loopback.
REFUSED = 1.0

_ctx: zmq.Context[Any] = zmq.Context.instance()


@dataclass(frozen=True)
class Pair:
    public: bytes
    secret: bytes


@dataclass
class Keys:
    """Key pairs made by `qmtbus keys new`: the gateway's, an allowed client's (alice)
    and an unknown one's (mallory)."""

    dir: Path
    gateway: Pair
    alice: Pair
    mallory: Pair

    @property
    def allowed_dir(self) -> Path:
        return self.dir / "allowed"


def _pair(directory: Path, name: str) -> Pair:
    assert main_new(name, directory) == 0
    public, secret = zmq.auth.load_certificate(directory / f"{name}.key_secret")
    assert secret is not None
    return Pair(public, secret)


@pytest.fixture
def keys(stack: Stack) -> Keys:
    directory = stack.dir / "keys"
    made = Keys(
        directory,
        _pair(directory, "gateway"),
        _pair(directory, "alice"),
        _pair(directory, "mallory"),
    )
    made.allowed_dir.mkdir()
    shutil.copy(directory / "alice.key", made.allowed_dir / "alice.key")
    stack.write_config(
        gateway={"order_reply_timeout": 10.0},  # "accepted", not "pending", on a loaded machine
        security={
            "curve": True,
            "server_secret_key": str(directory / "gateway.key_secret"),
            "allowed_clients_dir": str(made.allowed_dir),
        },
        client={
            "secret_key": str(directory / "alice.key_secret"),
            "server_public_key": str(directory / "gateway.key"),
            "timeout": 2.0,
        },
    )
    return made


def _secure(sock: zmq.Socket[Any], client: Pair | None, server: bytes | None) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    if client is not None:
        assert server is not None
        secure_client(sock, CurveKeys(client.public, client.secret, server))


def request(
    address: str,
    command: Any,
    client: Pair | None,
    server: bytes | None,
    timeout: float = 5.0,
) -> Any:
    """One request on a fresh REQ socket with these CURVE keys (None: a plain socket);
    the decoded reply, or None when nothing came back within `timeout`."""
    sock = _ctx.socket(zmq.REQ)
    _secure(sock, client, server)
    sock.connect(address)
    try:
        sock.send(p.encode(command))
        if not sock.poll(int(timeout * 1000)):
            return None
        return p.decode_reply(sock.recv())
    finally:
        sock.close()


class CurveSubscriber(Subscriber):
    """A raw SUB socket with CURVE keys (None: a plain SUB)."""

    def __init__(self, address: str, client: Pair | None, server: bytes | None) -> None:
        super().__init__(address, secure=lambda sock: _secure(sock, client, server))


def start_curve_gateway(stack: Stack, keys: Keys, connect_to: str | None = None) -> Proc:
    """Start a CURVE gateway and wait until alice's status request says ready."""
    proc = Proc("gateway", stack).start()
    address = connect_to or stack.commands_address

    def ready() -> bool:
        if not proc.alive():
            raise AssertionError(f"gateway exited early:\n{proc.log()}")
        reply = request(address, p.GetStatus(), keys.alice, keys.gateway.public, timeout=0.5)
        return isinstance(reply, p.Status) and reply.state == "ready"

    wait_for(ready, 20, "CURVE gateway ready")
    return proc


@pytest.fixture
def curve_gateway(stack: Stack, keys: Keys) -> Iterator[Proc]:
    proc = start_curve_gateway(stack, keys)
    yield proc
    if proc.alive():
        proc.stop()


def _received(stack: Stack) -> list[str]:
    return [o["order_remark"] for o in read_ledger(stack.data_dir).orders_received]


def test_given_curve_gateway_then_a_client_with_an_allowed_key_trades_and_hears_its_fill(
    stack: Stack, keys: Keys, curve_gateway: Proc
) -> None:
    sub = CurveSubscriber(stack.events_address, keys.alice, keys.gateway.public)
    try:
        sub.wait(lambda e: isinstance(e, p.HeartbeatEvent), 5, "allowed subscriber live")
        ack = request(stack.commands_address, order("alice-1"), keys.alice, keys.gateway.public)
        assert isinstance(ack, p.OrderAck), ack
        assert ack.status == "accepted" and ack.order_id > 0
        assert _received(stack) == ["alice-1"]
        sub.wait(
            lambda e: (
                isinstance(e, p.OrderEvent)
                and e.client_order_id == "alice-1"
                and e.order_status == p.ORDER_SUCCEEDED
            ),
            10,
            "alice's fill",
        )
    finally:
        sub.close()


def test_given_curve_gateway_then_unknown_key_plain_socket_and_wrong_server_key_get_no_reply(
    stack: Stack, keys: Keys, curve_gateway: Proc
) -> None:
    address, server = stack.commands_address, keys.gateway.public
    attempts = {
        "unknown-key": (keys.mallory, server),
        "plain": (None, None),
        "wrong-server": (keys.alice, keys.mallory.public),
    }
    for coid, (client, server_key) in attempts.items():
        reply = request(address, order(coid), client, server_key, timeout=REFUSED)
        assert reply is None, f"{coid} got a reply: {reply}"
    # The gateway kept serving alice meanwhile, and only her order ever reached the broker.
    assert isinstance(request(address, order("alice-ok"), keys.alice, server), p.OrderAck)
    assert _received(stack) == ["alice-ok"]
    assert curve_gateway.alive()
    mallory = keys.mallory.public.decode()
    assert f"CURVE: refused a client with unknown public key {mallory}" in curve_gateway.log()


def test_given_curve_gateway_then_events_reach_only_a_subscriber_with_an_allowed_key(
    stack: Stack, keys: Keys, curve_gateway: Proc
) -> None:
    allowed = CurveSubscriber(stack.events_address, keys.alice, keys.gateway.public)
    unknown = CurveSubscriber(stack.events_address, keys.mallory, keys.gateway.public)
    plain = CurveSubscriber(stack.events_address, None, None)
    try:
        allowed.wait(lambda e: isinstance(e, p.HeartbeatEvent), 5, "allowed subscriber live")
        note = p.PublishNote(topic="secret", data={"signal": "buy"})
        ack = request(stack.commands_address, note, keys.alice, keys.gateway.public)
        assert isinstance(ack, p.NoteAck)
        allowed.wait(lambda e: isinstance(e, p.NoteEvent) and e.seq == ack.seq, 5, "the note")
        # Two more heartbeats: the others have had every chance to hear something.
        allowed.wait(
            lambda e: isinstance(e, p.HeartbeatEvent) and e.seq > ack.seq + 1, 5, "heartbeats"
        )
        assert unknown.drain(0.1) == []
        assert plain.drain(0.1) == []
    finally:
        for sub in (allowed, unknown, plain):
            sub.close()


def test_given_client_config_with_keys_then_the_qmtbus_client_trades_and_an_unknown_key_is_named(
    stack: Stack, keys: Keys, curve_gateway: Proc
) -> None:
    with Gateway.from_config(stack.config_path) as gw:
        assert gw.status().state == "ready"
        ack = gw.order("600000.SH", p.STOCK_BUY, 100, price(), client_order_id="lib-1")
        assert ack.status == "accepted"
    assert _received(stack) == ["lib-1"]

    stack.write_config(client={"secret_key": str(keys.dir / "mallory.key_secret"), "retries": 0})
    with Gateway.from_config(stack.config_path) as gw, pytest.raises(GatewayUnreachable) as err:
        gw.ping()
    assert "refused this client's CURVE key" in str(err.value)
    assert "mallory.key" in str(err.value)


def test_given_a_new_key_file_in_the_allowed_folder_then_that_client_gets_in_without_restart(
    stack: Stack, keys: Keys, curve_gateway: Proc
) -> None:
    address, server = stack.commands_address, keys.gateway.public
    assert request(address, p.Ping(), keys.mallory, server, timeout=REFUSED) is None
    shutil.copy(keys.dir / "mallory.key", keys.allowed_dir / "mallory.key")
    assert isinstance(request(address, p.Ping(), keys.mallory, server), p.Pong)
    (keys.allowed_dir / "mallory.key").unlink()
    assert request(address, p.Ping(), keys.mallory, server, timeout=REFUSED) is None


def _lo(stack: Stack) -> None:
    """Bind both sockets by the interface name `lo`: treated as beyond loopback by the
    gateway's check, bound to 127.0.0.1 by the kernel."""
    stack.events_address = "tcp://lo:*"
    stack.commands_address = "tcp://lo:*"
    stack.write_config()


def test_given_bind_beyond_loopback_without_curve_then_refused_and_with_curve_then_served(
    stack: Stack, keys: Keys
) -> None:
    _lo(stack)

    plain = stack.dir / "plain.toml"
    plain.write_text(stack.config_path.read_text().replace("curve = true", "curve = false"))
    result = subprocess.run(
        [sys.executable, "-m", "qmtbus.gateway", "--config", str(plain)],
        cwd=stack.dir,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "= 'tcp://lo:*' listens beyond loopback without encryption" in result.stderr

    gateway = start_curve_gateway(stack, keys)
    # bound by the interface name, reported by the address the kernel gave it
    events_port = stack.events_address.rpartition(":")[2]
    commands_port = stack.commands_address.rpartition(":")[2]
    assert stack.commands_address == f"tcp://127.0.0.1:{commands_port}"
    try:
        sub = CurveSubscriber(f"tcp://127.0.0.1:{events_port}", keys.alice, keys.gateway.public)
        try:
            sub.wait(lambda e: isinstance(e, p.HeartbeatEvent), 5, "subscriber live")
        finally:
            sub.close()
        address = f"tcp://127.0.0.1:{commands_port}"
        ack = request(address, order("lo-1"), keys.alice, keys.gateway.public)
        assert isinstance(ack, p.OrderAck) and ack.status == "accepted"
        assert request(address, order("lo-plain"), None, None, timeout=REFUSED) is None
        assert _received(stack) == ["lo-1"]
    finally:
        gateway.stop()
