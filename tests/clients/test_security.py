"""Who gets in: loopback binds without CURVE; with CURVE, only clients whose key is allowed."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq

from qmtbus.config import (
    ClientConfig,
    Config,
    ConfigError,
    GatewayConfig,
    RecorderConfig,
    SecurityConfig,
)
from qmtbus.keys import main_new, secure_client
from qmtbus.security import (
    AllowedKeys,
    check_binds,
    is_loopback,
    secure_server,
    start_authenticator,
)

REFUSED = 0.5  # seconds a refused client waits: a CURVE handshake on loopback takes ~1 ms


def _binding(commands: str) -> Config:
    return Config(gateway=GatewayConfig(commands_address=commands))


# -- bind checks ----------------------------------------------------------------------


def test_given_all_interfaces_without_curve_then_start_up_is_refused_in_one_sentence() -> None:
    with pytest.raises(ConfigError) as err:
        check_binds(_binding("tcp://0.0.0.0:7102"))
    assert str(err.value) == (
        "gateway.commands_address = 'tcp://0.0.0.0:7102' listens beyond loopback without "
        "encryption; set security.curve = true with server_secret_key and allowed_clients_dir "
        "(see docs/risk-and-security.md), or bind to tcp://127.0.0.1"
    )


@pytest.mark.parametrize("address", ["tcp://*:7102", "tcp://192.168.1.20:7102", "tcp://eth0:7102"])
def test_given_a_network_bind_without_curve_then_it_is_refused(address: str) -> None:
    with pytest.raises(ConfigError, match=r"gateway\.commands_address"):
        check_binds(_binding(address))


@pytest.mark.parametrize(
    "address",
    [
        "tcp://127.0.0.1:7102",
        "tcp://127.0.0.2:7102",
        "tcp://localhost:7102",
        "tcp://[::1]:7102",
        "ipc:///tmp/qmtbus-commands",
    ],
)
def test_given_a_loopback_bind_then_no_curve_is_needed(address: str) -> None:
    assert is_loopback(address)
    check_binds(_binding(address))


def test_given_the_recorder_query_address_then_it_is_checked_for_the_recorder() -> None:
    config = Config(recorder=RecorderConfig(query_address="tcp://0.0.0.0:7103"))
    check_binds(config)  # the gateway does not bind it
    with pytest.raises(ConfigError, match=r"recorder\.query_address"):
        check_binds(config, "recorder")


# -- CURVE with real sockets on loopback -------------------------------------------------


@dataclass
class Keys:
    dir: Path

    @property
    def allowed(self) -> Path:
        return self.dir / "allowed"

    def client(self, name: str) -> ClientConfig:
        if not (self.dir / f"{name}.key").exists():
            assert main_new(name, self.dir) == 0
        return ClientConfig(
            secret_key=str(self.dir / f"{name}.key_secret"),
            server_public_key=str(self.dir / "gateway.key"),
        )

    def allow(self, name: str) -> None:
        shutil.copy(self.dir / f"{name}.key", self.allowed)

    def config(self, commands: str = "tcp://0.0.0.0:7102") -> Config:
        return Config(
            gateway=GatewayConfig(commands_address=commands),
            security=SecurityConfig(
                curve=True,
                server_secret_key=str(self.dir / "gateway.key_secret"),
                allowed_clients_dir=str(self.allowed),
            ),
        )


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    keys = Keys(tmp_path)
    assert main_new("gateway", tmp_path) == 0
    keys.allowed.mkdir()
    keys.client("strategy1")
    keys.allow("strategy1")
    return keys


class Server:
    """A CURVE ROUTER set up exactly as the gateway does it."""

    def __init__(self, config: Config) -> None:
        check_binds(config)
        self.ctx = zmq.Context()
        self.auth = start_authenticator(self.ctx, config)
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        secure_server(self.sock, config)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.address = f"tcp://127.0.0.1:{port}"

    def answer(self, timeout: float) -> bytes | None:
        """Echo one request back; None if none arrived in `timeout` seconds."""
        if not self.sock.poll(int(timeout * 1000)):
            return None
        *envelope, body = self.sock.recv_multipart()
        self.sock.send_multipart([*envelope, b"re:" + body])
        return body

    def close(self) -> None:
        self.sock.close()
        if self.auth is not None:
            self.auth.stop()
        self.ctx.term()


@pytest.fixture
def server(keys: Keys) -> Iterator[Server]:
    srv = Server(keys.config())
    yield srv
    srv.close()


@pytest.fixture
def client_ctx() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def _request(
    ctx: zmq.Context[zmq.Socket[bytes]], server: Server, client: ClientConfig | None, timeout: float
) -> tuple[bytes | None, bytes | None]:
    """(what the server received, what the client got back)."""
    sock = ctx.socket(zmq.REQ)
    sock.linger = 0
    if client is not None:
        secure_client(sock, client)
    sock.connect(server.address)
    sock.send(b"ping")
    got = server.answer(timeout)
    reply = sock.recv() if got is not None and sock.poll(int(timeout * 1000)) else None
    sock.close()
    return got, reply


def test_given_an_allowed_key_then_the_client_gets_a_reply(
    keys: Keys, server: Server, client_ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    assert _request(client_ctx, server, keys.client("strategy1"), 5.0) == (b"ping", b"re:ping")


def test_given_an_unknown_key_then_nothing_gets_through(
    keys: Keys, server: Server, client_ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    assert _request(client_ctx, server, keys.client("stranger"), REFUSED) == (None, None)


def test_given_a_plain_socket_then_nothing_gets_through(
    server: Server, client_ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    assert _request(client_ctx, server, None, REFUSED) == (None, None)


def test_given_a_key_copied_in_while_running_then_that_client_gets_in(
    keys: Keys, server: Server, client_ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    newcomer = keys.client("strategy2")
    assert _request(client_ctx, server, newcomer, REFUSED) == (None, None)
    keys.allow("strategy2")
    assert _request(client_ctx, server, newcomer, 5.0) == (b"ping", b"re:ping")


def test_given_curve_then_a_network_bind_is_accepted(keys: Keys) -> None:
    check_binds(keys.config("tcp://0.0.0.0:7102"))


def test_given_a_world_readable_server_secret_key_then_start_up_is_refused(keys: Keys) -> None:
    (keys.dir / "gateway.key_secret").chmod(0o644)
    with pytest.raises(ConfigError, match=r"chmod 600 .*gateway\.key_secret"):
        check_binds(keys.config())
    with zmq.Context() as ctx, ctx.socket(zmq.ROUTER) as sock:
        with pytest.raises(ConfigError, match="chmod 600"):
            secure_server(sock, keys.config())
        with pytest.raises(ConfigError, match="chmod 600"):
            start_authenticator(ctx, keys.config())


def test_given_a_missing_allowed_clients_dir_then_start_up_is_refused(keys: Keys) -> None:
    shutil.rmtree(keys.allowed)
    with pytest.raises(ConfigError, match=r"allowed_clients_dir .* is not a folder"):
        check_binds(keys.config())


def test_given_curve_off_then_no_authenticator_runs() -> None:
    with zmq.Context() as ctx:
        assert start_authenticator(ctx, Config()) is None


# -- the key material, checked as ssh checks it ---------------------------------------------


def test_given_an_allowed_clients_dir_writable_by_others_then_start_up_names_the_chmod(
    keys: Keys,
) -> None:
    keys.allowed.chmod(0o777)
    with pytest.raises(ConfigError) as err:
        check_binds(keys.config())
    assert str(err.value) == (
        f"security.allowed_clients_dir {keys.allowed} is writable by group or others "
        f"(mode 777), so anyone could allow a client; run `chmod go-w {keys.allowed}`"
    )
    with zmq.Context() as ctx, pytest.raises(ConfigError, match="chmod go-w"):
        start_authenticator(ctx, keys.config())


@pytest.mark.parametrize("mode", [0o666, 0o664, 0o646])
def test_given_an_allowed_key_file_writable_by_others_then_start_up_names_it(
    keys: Keys, mode: int
) -> None:
    key = keys.allowed / "strategy1.key"
    key.chmod(mode)
    with pytest.raises(ConfigError) as err:
        check_binds(keys.config())
    assert f"allowed client key {key} is writable by group or others" in str(err.value)
    assert str(err.value).endswith(f"run `chmod go-w {key}`")


def test_given_a_secret_key_readable_by_group_then_start_up_names_the_chmod(keys: Keys) -> None:
    secret = keys.dir / "gateway.key_secret"
    secret.chmod(0o640)
    with pytest.raises(ConfigError, match=rf"run `chmod 600 {secret}`"):
        check_binds(keys.config())


def test_given_owner_only_key_material_then_start_up_passes(keys: Keys) -> None:
    keys.allowed.chmod(0o755)
    (keys.allowed / "strategy1.key").chmod(0o644)
    check_binds(keys.config())


def test_given_the_allow_list_changes_then_it_is_reread_once_and_each_change_is_logged(
    keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="qmtbus.security")
    allowed = AllowedKeys(keys.allowed)
    first = allowed.keys()
    assert len(first) == 1
    assert "added strategy1.key; 1 keys allowed" in caplog.text
    caplog.clear()
    assert allowed.keys() is first  # nothing changed: not read again, nothing logged
    assert caplog.text == ""
    keys.client("strategy2")
    keys.allow("strategy2")
    assert len(allowed.keys()) == 2
    assert "added strategy2.key; 2 keys allowed" in caplog.text
    caplog.clear()
    (keys.allowed / "strategy1.key").unlink()
    assert len(allowed.keys()) == 1
    assert "removed strategy1.key; 1 keys allowed" in caplog.text


def test_given_a_key_file_loosened_while_running_then_it_is_refused_and_logged(
    keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="qmtbus.security")
    allowed = AllowedKeys(keys.allowed)
    assert len(allowed.keys()) == 1
    key = keys.allowed / "strategy1.key"
    key.chmod(0o666)
    assert allowed.keys() == frozenset()
    assert f"skipping a key: allowed client key {key} is writable by group" in caplog.text
    assert "removed strategy1.key; 0 keys allowed" in caplog.text


def test_given_the_folder_loosened_while_running_then_every_client_is_refused(
    keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    allowed = AllowedKeys(keys.allowed)
    assert len(allowed.keys()) == 1
    keys.allowed.chmod(0o777)
    assert allowed.keys() == frozenset()
    assert "refusing every client" in caplog.text
    keys.allowed.chmod(0o755)
    assert len(allowed.keys()) == 1
