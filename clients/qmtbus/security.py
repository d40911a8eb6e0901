"""Who may reach the gateway: loopback binds unless CURVE is on, then CURVE with an allow-list."""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
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
    check_allowed_dir(security.allowed_clients_dir)


def check_allowed_dir(directory: str | os.PathLike[str]) -> None:
    """ssh's StrictModes for the allow-list: the folder and every NAME.key in it must be
    yours (or root's) and writable by nobody else, or anyone could add a trading key.
    Raises ConfigError naming the file and the command that fixes it."""
    allowed = Path(directory)
    if not allowed.is_dir():
        raise ConfigError(
            f"security.allowed_clients_dir {allowed} is not a folder; create it and copy "
            f"each client's NAME{PUBLIC_SUFFIX} into it"
        )
    problem = open_to_others(allowed, "security.allowed_clients_dir")
    for path in _key_files(allowed):
        problem = problem or open_to_others(path, "allowed client key")
    if problem:
        raise ConfigError(problem)


def open_to_others(path: Path, what: str) -> str:
    """Why `path` could be changed by someone other than its owner ("" if it cannot)."""
    if os.name == "nt":
        # POSIX mode bits mean nothing on Windows; NTFS ACLs protect the files there
        return ""
    try:
        st = path.stat()
    except OSError as err:
        return f"cannot check {what} {path}: {err.strerror}"
    mode = stat.S_IMODE(st.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (
            f"{what} {path} is writable by group or others (mode {mode:03o}), so anyone could "
            f"allow a client; run `chmod go-w {path}`"
        )
    if st.st_uid not in (os.getuid(), 0):
        return (
            f"{what} {path} belongs to another user (uid {st.st_uid}); run "
            f"`chown {os.getuid()} {path}` as root, then `chmod go-w {path}`"
        )
    return ""


def _key_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(PUBLIC_SUFFIX))


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
    """The public keys in a folder of NAME.key files, re-read only when the folder's
    listing or a file's mtime, size or mode changes, so adding or deleting a key file
    takes effect on the next connection without restarting the gateway (open
    connections stay). Every change is logged; a file, or the folder, that others
    could write is refused as at start-up."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._stamp: frozenset[tuple[str, int, int, int]] | None = None
        self._by_file: dict[str, bytes] = {}
        self._keys: frozenset[bytes] = frozenset()
        self._warned: set[bytes] = set()

    def keys(self) -> frozenset[bytes]:
        with self._lock:
            try:
                # names, mtimes, sizes and modes, not the folder's mtime: some file
                # systems stamp folders to the second and would hide a new key
                files = _key_files(self.directory)
                stamp = frozenset(
                    (p.name, (st := p.stat()).st_mtime_ns, st.st_size, st.st_mode)
                    for p in [self.directory, *files]
                )
            except OSError as err:
                log.error("cannot read allowed_clients_dir %s: %s", self.directory, err)
                return frozenset()
            if stamp != self._stamp:
                self._stamp = stamp
                self._reload(files)
            return self._keys

    def _reload(self, files: list[Path]) -> None:
        before = self._by_file
        problem = open_to_others(self.directory, "security.allowed_clients_dir")
        after = {} if problem else self._load(files)
        if problem:
            log.error("CURVE: refusing every client: %s", problem)
        added = sorted(after.keys() - before.keys())
        removed = sorted(before.keys() - after.keys())
        replaced = sorted(n for n in after.keys() & before.keys() if after[n] != before[n])
        if added or removed or replaced or not before:
            changes = [
                f"{word} {', '.join(names)}"
                for word, names in (("added", added), ("removed", removed), ("replaced", replaced))
                if names
            ]
            log.info(
                "CURVE: allowed clients in %s: %s; %d keys allowed",
                self.directory,
                "; ".join(changes) or "none",
                len(set(after.values())),
            )
        self._by_file = after
        self._keys = frozenset(after.values())

    def _load(self, files: list[Path]) -> dict[str, bytes]:
        keys: dict[str, bytes] = {}
        for path in files:
            problem = open_to_others(path, "allowed client key")
            if problem:
                log.error("CURVE: skipping a key: %s", problem)
                continue
            try:
                public, _ = zmq.auth.load_certificate(path)
            except (OSError, ValueError) as err:
                log.warning("skipping %s: not a public key file (%s)", path, err)
                continue
            keys[path.name] = public
        return keys

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
    check_allowed_dir(security.allowed_clients_dir)
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
