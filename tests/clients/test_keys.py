"""`qmtbus keys new` and the key-file loaders: private secrets, no overwrites, clear refusals."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import zmq

from qmtbus.config import ClientConfig, ConfigError
from qmtbus.keys import (
    load_public_key,
    load_secret_keypair,
    main_new,
    secure_client,
    silence_hint,
)


def test_given_keys_new_then_it_writes_a_public_key_and_an_owner_only_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_new("strategy1", tmp_path / "keys") == 0
    folder = tmp_path / "keys"
    assert sorted(p.name for p in folder.iterdir()) == ["strategy1.key", "strategy1.key_secret"]
    assert stat.S_IMODE(os.stat(folder / "strategy1.key_secret").st_mode) == 0o600
    public, secret = load_secret_keypair(folder / "strategy1.key_secret")
    assert load_public_key(folder / "strategy1.key") == public
    assert len(public) == len(secret) == 40
    assert "strategy1.key_secret" in capsys.readouterr().out


def test_given_existing_keys_then_keys_new_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_new("gateway", tmp_path) == 0
    before = (tmp_path / "gateway.key_secret").read_bytes()
    assert main_new("gateway", tmp_path) == 1
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "gateway.key_secret").read_bytes() == before


def test_given_a_name_with_a_slash_then_keys_new_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_new("../evil", tmp_path) == 1
    assert "key name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_given_a_group_readable_secret_key_then_loading_refuses_with_chmod(tmp_path: Path) -> None:
    main_new("gateway", tmp_path)
    secret = tmp_path / "gateway.key_secret"
    secret.chmod(0o640)
    with pytest.raises(ConfigError, match=r"chmod 600 .*gateway\.key_secret"):
        load_secret_keypair(secret)


def test_given_a_public_key_file_as_secret_then_loading_says_which_file_to_use(
    tmp_path: Path,
) -> None:
    main_new("gateway", tmp_path)
    public = tmp_path / "gateway.key"
    public.chmod(0o600)
    with pytest.raises(ConfigError, match="holds no secret key"):
        load_secret_keypair(public)


def test_given_a_missing_key_file_then_loading_names_keys_new(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="qmtbus keys new"):
        load_public_key(tmp_path / "nobody.key")


def test_given_a_file_that_is_not_a_key_then_loading_refuses(tmp_path: Path) -> None:
    junk = tmp_path / "junk.key"
    junk.write_text("hello\n")
    with pytest.raises(ConfigError, match="not a key file"):
        load_public_key(junk)


def test_given_client_keys_then_secure_client_makes_a_curve_client(tmp_path: Path) -> None:
    main_new("gateway", tmp_path)
    main_new("strategy1", tmp_path)
    config = ClientConfig(
        secret_key=str(tmp_path / "strategy1.key_secret"),
        server_public_key=str(tmp_path / "gateway.key"),
    )
    with zmq.Context() as ctx, ctx.socket(zmq.REQ) as sock:
        assert secure_client(sock, config) is True
        assert sock.getsockopt(zmq.MECHANISM) == zmq.CURVE
    with zmq.Context() as ctx, ctx.socket(zmq.REQ) as sock:
        assert secure_client(sock, ClientConfig()) is False
        assert sock.getsockopt(zmq.MECHANISM) == zmq.NULL


def test_given_only_one_client_key_then_the_config_is_refused() -> None:
    with pytest.raises(ValueError, match="go together"):
        ClientConfig(secret_key="me.key_secret")


def test_given_a_curve_client_then_the_silence_hint_names_the_key_to_copy() -> None:
    config = ClientConfig(secret_key="k/strategy1.key_secret", server_public_key="k/gateway.key")
    hint = silence_hint(config, "tcp://10.0.0.5:7102")
    assert "tcp://10.0.0.5:7102" in hint and "k/strategy1.key" in hint
    assert "allowed_clients_dir" in hint
    assert "client.secret_key" in silence_hint(ClientConfig(), "tcp://10.0.0.5:7102")


def test_given_the_code_base_then_only_secure_client_sets_client_curve_keys() -> None:
    # one place for CURVE client set-up: a socket option copied elsewhere would drift
    root = Path(__file__).resolve().parents[2]
    needle = "curve_" + "serverkey"  # split, so this file does not match itself
    setters = {
        str(path.relative_to(root))
        for folder in ("clients/qmtbus", "gateway", "recorder", "scheduler", "tests")
        for path in (root / folder).rglob("*.py")
        if needle in path.read_text(encoding="utf-8")
    }
    assert setters == {"clients/qmtbus/keys.py"}
