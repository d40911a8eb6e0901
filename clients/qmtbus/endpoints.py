"""Where a process really listens: bind an address whose port may be `*` (the kernel picks a
free one) and write the endpoints it got into a small JSON file next to its data.

The endpoints file is how tools and tests find a process started on `tcp://127.0.0.1:*`:
`{"process": "gateway", "pid": 123, "addresses": {"events": "tcp://127.0.0.1:40123", ...}}`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import msgspec
import zmq

from qmtbus.config import Config

Process = Literal["gateway", "recorder", "dashboard"]


class Endpoints(msgspec.Struct, frozen=True, kw_only=True):
    """The endpoints file: who wrote it and the address each of its sockets is bound to."""

    process: str
    pid: int
    addresses: dict[str, str]


_decoder = msgspec.json.Decoder(Endpoints)


def is_wildcard(address: str) -> bool:
    """True for an address whose port the kernel chooses at bind (`:*` or `:0`)."""
    return address.endswith((":*", ":0"))


def bind(sock: zmq.Socket[Any], address: str) -> str:
    """Bind `sock` to `address` and return the endpoint it is bound to (the real port
    when `address` ends in `:*` or `:0`)."""
    sock.bind(address)
    endpoint = sock.getsockopt(zmq.LAST_ENDPOINT)
    return endpoint.decode() if isinstance(endpoint, bytes) else str(endpoint)


def endpoints_file(config: Config, process: Process) -> Path:
    """gateway: `<gateway.data_dir>/gateway-endpoints.json`; recorder and dashboard: next to
    the recorder's database."""
    if process == "gateway":
        return Path(config.gateway.data_dir) / "gateway-endpoints.json"
    return Path(config.recorder.database).parent / f"{process}-endpoints.json"


def write(path: Path, process: Process, addresses: dict[str, str]) -> None:
    """Write the endpoints file atomically (a reader sees the old file or the whole new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = Endpoints(process=process, pid=os.getpid(), addresses=addresses)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(msgspec.json.encode(body))
    os.replace(tmp, path)


def read(path: Path) -> Endpoints | None:
    """The endpoints file at `path`, or None while there is none (or it is unreadable)."""
    try:
        return _decoder.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        return None
