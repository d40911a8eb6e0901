"""Who may reach the gateway: loopback binds unless CURVE is on, then CURVE with an allow-list."""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
from pathlib import Path
from typing import Any, Literal

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from qmtbus.config import Config, ConfigError
from qmtbus.keys import PUBLIC_SUFFIX, check_private, load_secret_keypair

log = logging.getLogger(__name__)

Process = Literal["gateway", "recorder"]


def bind_addresses(config: Config, process: Process = "gateway") -> dict[str, str]:
    """The addresses `process` binds, by config key."""
    if process == "recorder":
        return {"recorder.query_address": config.recorder.query_address}
    return {
        "gateway.events_address": config.gateway.events_address,
        "gateway.commands_address": config.gateway.commands_address,
        "gateway.quotes_address": config.gateway.quotes_address,
    }


def is_loopback(address: str) -> bool:
    """True for tcp://127.x.x.x, tcp://[::1], tcp://localhost, and ipc:// / inproc://."""
    scheme, _, rest = address.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    host = rest.rpartition(":")[0].removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        # "*", an interface name like "eth0", or a host name: may reach the network
        return False


def check_binds(config: Config, process: Process = "gateway") -> None:
    """Refuse to start a server that would listen beyond loopback without CURVE,
    and check the CURVE key files up front when CURVE is on. Raises ConfigError."""
    security = config.security
    if not security.curve:
        for key, address in bind_addresses(config, process).items():
            if not is_loopback(address):
                raise ConfigError(
                    f"{key} = {address!r} listens beyond loopback without encryption; set "
                    "security.curve = true with server_secret_key and allowed_clients_dir "
                    "(see docs/risk-and-security.md), or bind to tcp://127.0.0.1"
                )
        return
    load_secret_keypair(security.server_secret_key)
    allowed = Path(security.allowed_clients_dir)
    if not allowed.is_dir():
        raise ConfigError(
            f"security.allowed_clients_dir {allowed} is not a folder; create it and copy "
            f"each client's NAME{PUBLIC_SUFFIX} into it"
        )


def secure_server(sock: zmq.Socket[Any], config: Config) -> None:
    """Make `sock` a CURVE server with the gateway's key pair when CURVE is on;
    call before bind, with the authenticator already started on the same context."""
    if not config.security.curve:
        return
    public, secret = load_secret_keypair(config.security.server_secret_key)
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True


class AllowedKeys:
    """The public keys in a folder of NAME.key files, re-read when a file there
    changes, so adding or deleting a key file takes effect on the next
    connection without restarting the gateway (open connections stay)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._stamp: frozenset[tuple[str, int, int]] | None = None
        self._keys: frozenset[bytes] = frozenset()
        self._warned: set[bytes] = set()

    def keys(self) -> frozenset[bytes]:
        with self._lock:
            try:
                # names, mtimes and sizes, not the folder's mtime: some file
                # systems stamp folders to the second and would hide a new key
                files = [p for p in self.directory.iterdir() if p.name.endswith(PUBLIC_SUFFIX)]
                stamp = frozenset((p.name, (st := p.stat()).st_mtime_ns, st.st_size) for p in files)
            except OSError as err:
                log.error("cannot read allowed_clients_dir %s: %s", self.directory, err)
                return frozenset()
            if stamp != self._stamp:
                self._keys = self._load(sorted(files))
                self._stamp = stamp
                log.info("CURVE: %d allowed client keys in %s", len(self._keys), self.directory)
            return self._keys

    def _load(self, files: list[Path]) -> frozenset[bytes]:
        keys = set()
        for path in files:
            try:
                public, _ = zmq.auth.load_certificate(path)
            except (OSError, ValueError) as err:
                log.warning("skipping %s: not a public key file (%s)", path, err)
                continue
            keys.add(public)
        return frozenset(keys)

    def callback(self, domain: str, key: bytes) -> bool:
        """pyzmq's credentials-provider hook: `key` is the client's Z85 public key."""
        if key in self.keys():
            return True
        # a refused client retries its handshake every few hundred ms: log each key once
        if key not in self._warned and len(self._warned) < 1000:
            self._warned.add(key)
            log.warning("CURVE: refused a client with unknown public key %s", key.decode())
        return False


def start_authenticator(ctx: zmq.Context[Any], config: Config) -> ThreadAuthenticator | None:
    """Start ZAP for `ctx` when CURVE is on: any address may connect, but only
    with a key from security.allowed_clients_dir. Call `.stop()` at shutdown."""
    security = config.security
    if not security.curve:
        return None
    # A secret key file loosened after start-up would be caught at the next
    # start; checking here too keeps a direct caller from skipping check_binds.
    check_private(security.server_secret_key)
    allowed = AllowedKeys(security.allowed_clients_dir)
    if not allowed.keys():
        log.warning(
            "CURVE is on but %s holds no %s files: no client can connect",
            security.allowed_clients_dir,
            PUBLIC_SUFFIX,
        )
    auth = ThreadAuthenticator(ctx, log=logging.getLogger(f"{__name__}.zap"))
    auth.start()
    auth.configure_curve_callback(domain="*", credentials_provider=allowed)
    return auth
