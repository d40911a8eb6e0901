"""CURVE key files: `qmtbus keys new NAME`, loading them safely, and securing a client socket."""

from __future__ import annotations

import os
import re
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.auth

from qmtbus.config import ClientConfig, ConfigError

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def main_new(name: str, directory: str | os.PathLike[str]) -> int:
    """`qmtbus keys new NAME [--dir DIR]`: write DIR/NAME.key and DIR/NAME.key_secret (0600).

    Returns the exit code; never overwrites an existing key file.
    """
    folder = Path(directory)
    if not _NAME.match(name):
        return _fail(f"key name {name!r} must be 1-64 letters, digits, '_', '.' or '-'")
    public = folder / f"{name}{PUBLIC_SUFFIX}"
    secret = folder / f"{name}{SECRET_SUFFIX}"
    for path in (public, secret):
        if path.exists():
            return _fail(f"{path} already exists; pick another NAME or move the old key away")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write_pair(folder, name, public, secret)
    except FileExistsError as err:
        return _fail(f"{err.filename} already exists; pick another NAME or move the old key away")
    except OSError as err:
        return _fail(f"cannot write keys in {folder}: {err.strerror}")
    print(f"wrote {public} (public: give it to the other side)")
    print(f"wrote {secret} (secret: mode 0600, never copy it anywhere)")
    return 0


def _write_pair(folder: Path, name: str, public: Path, secret: Path) -> None:
    # pyzmq writes with the process umask, so the secret file would be readable
    # by others for a moment: generate inside a private (0700) temporary folder,
    # tighten the mode there, then move both files into place.
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder))
    try:
        made_public, made_secret = zmq.auth.create_certificates(staging, name)
        os.chmod(made_secret, 0o600)
        # os.link refuses an existing target, so a key created meanwhile is never replaced
        os.link(made_secret, secret)
        try:
            os.link(made_public, public)
        except OSError:
            secret.unlink()
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fail(sentence: str) -> int:
    print(f"error: {sentence}", file=sys.stderr)
    return 1


def load_public_key(path: str | os.PathLike[str]) -> bytes:
    """The Z85 public key in a key file (NAME.key or NAME.key_secret); ConfigError if unreadable."""
    try:
        public, _ = zmq.auth.load_certificate(path)
    except OSError:
        raise ConfigError(
            f"cannot read key file {path}; create it with `qmtbus keys new NAME` or fix the path"
        ) from None
    except ValueError:
        raise ConfigError(
            f"{path} is not a key file written by `qmtbus keys new`; point at NAME.key"
        ) from None
    return public


def check_private(path: str | os.PathLike[str]) -> None:
    """Refuse a secret key file that anyone but its owner can read or change."""
    if os.name == "nt":
        # POSIX mode bits mean nothing on Windows; NTFS ACLs protect the file there
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        raise ConfigError(
            f"cannot read secret key file {path}; create it with `qmtbus keys new NAME` "
            "or fix the path"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"secret key file {path} is open to group or others (mode "
            f"{stat.S_IMODE(mode):03o}); run `chmod 600 {path}` and consider the key leaked "
            "if others could read it"
        )


def load_secret_keypair(path: str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """(public, secret) Z85 keys from NAME.key_secret; refuses a file readable by others."""
    check_private(path)
    public = load_public_key(path)
    _, secret = zmq.auth.load_certificate(path)
    if not secret:
        raise ConfigError(
            f"{path} holds no secret key; point at NAME{SECRET_SUFFIX}, not NAME{PUBLIC_SUFFIX}"
        )
    return public, secret


@dataclass(frozen=True)
class CurveKeys:
    """This client's CURVE key pair and the server's public key (Z85 bytes)."""

    public: bytes
    secret: bytes
    server: bytes
    secret_key_file: str = ""  # named in error messages

    @classmethod
    def load(cls, secret_key_file: str, server_public_key_file: str) -> CurveKeys:
        """Read the key files written by `qmtbus keys new`; ConfigError names a bad one."""
        if not secret_key_file or not server_public_key_file:
            raise ConfigError(
                "CURVE needs both client.secret_key and client.server_public_key; set both "
                "or neither"
            )
        public, secret = load_secret_keypair(secret_key_file)
        server = load_public_key(server_public_key_file)
        return cls(public, secret, server, secret_key_file)

    @classmethod
    def from_config(cls, client_config: ClientConfig) -> CurveKeys | None:
        """The keys the [client] section names; None when it names none (a plain socket)."""
        c = client_config
        if not c.secret_key and not c.server_public_key:
            return None
        return cls.load(c.secret_key, c.server_public_key)


def secure_client(sock: zmq.Socket[Any], keys: CurveKeys | ClientConfig | None) -> bool:
    """The one place a client socket gets its CURVE keys, whatever it is (REQ or DEALER
    for commands, SUB for events and quotes, the recorder's endpoint); call before
    connect. None, or a [client] section without key files, leaves a plain socket (a
    loopback gateway). Returns True when CURVE was set up."""
    if isinstance(keys, ClientConfig):
        keys = CurveKeys.from_config(keys)
    if keys is None:
        return False
    sock.curve_publickey = keys.public
    sock.curve_secretkey = keys.secret
    sock.curve_serverkey = keys.server
    return True


def silence_hint(client_config: ClientConfig, address: str) -> str:
    """Why a gateway might not answer, for the client's timeout error: a refused
    CURVE handshake is silent in ZeroMQ, so name the likely causes."""
    if client_config.secret_key:
        public = client_config.secret_key.removesuffix(SECRET_SUFFIX) + PUBLIC_SUFFIX
        return (
            f"no reply from {address}: the gateway is not running, or it refused this "
            f"client's key (copy {public} into the gateway's security.allowed_clients_dir), "
            "or client.server_public_key is not the gateway's public key"
        )
    return (
        f"no reply from {address}: the gateway is not running, or it requires CURVE "
        "(set client.secret_key and client.server_public_key; see docs/risk-and-security.md)"
    )
