"""A connect check before the first request: a dead gateway or recorder is named at once.

ZeroMQ connects lazily and retries for ever, so a request to a port where nothing
listens waits out every timeout and retry (20 s with the defaults). One plain TCP
connect answers "is anything listening?" in milliseconds; only then is the request
worth its timeout.
"""

from __future__ import annotations

import socket

from qmtbus.errors import GatewayUnreachable

CONNECT_TIMEOUT = 1.5  # seconds: loopback answers at once, a LAN well inside this


def check_listening(address: str, name: str = "gateway", timeout: float = CONNECT_TIMEOUT) -> None:
    """Raise GatewayUnreachable when nothing accepts a TCP connection at `address`.

    Only `tcp://HOST:PORT` is checked; other transports (ipc, inproc) are left to the request.
    """
    if not address.startswith("tcp://"):
        return
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    host = host.strip("[]")
    if host in ("*", "0.0.0.0", ""):
        host = "127.0.0.1"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except (OSError, ValueError):
        raise GatewayUnreachable(
            f"{name} not reachable at {address} — is it running?", address, False
        ) from None
