"""Stand-ins for the outside world the notifier talks to: a local HTTP server (a robot's
webhook) and a local SMTP server (aiosmtpd). Nothing of ours is replaced."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Hook:
    """What the local webhook received, and how it answers (`fail` the next N requests)."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail: int = 0
    status: int = 200
    answer: dict[str, Any] = field(default_factory=lambda: {"errcode": 0, "errmsg": "ok"})
    hang: threading.Event | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r["body"] for r in self.requests]

    def texts(self) -> str:
        return "\n".join(json.dumps(b, ensure_ascii=False) for b in self.bodies())


@contextmanager
def webhook() -> Iterator[Hook]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            if hook.hang is not None:
                hook.hang.wait(10)
            with hook.lock:
                hook.requests.append({"path": self.path, "body": body})
                failing = hook.fail > 0
                if failing:
                    hook.fail -= 1
            status = 500 if failing else hook.status
            raw = json.dumps(hook.answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # the kernel picks the port
    port = int(server.server_address[1])
    hook = Hook(url=f"http://127.0.0.1:{port}/robot/send?access_token=abc")
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        if hook.hang is not None:
            hook.hang.set()
        server.shutdown()
        server.server_close()


@dataclass
class Mailbox:
    port: int
    messages: list[dict[str, Any]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "data": envelope.content.decode("utf-8", "replace"),
            }
        )
        return "250 OK"


class _PickedPortController(Controller):
    """aiosmtpd's Controller on a port the kernel picks (port 0): it learns the real port
    from the bound socket before its start-up connection."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = int(self.server.sockets[0].getsockname()[1])
        super()._trigger_server()


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    box = Mailbox(0)
    controller = _PickedPortController(box, hostname="127.0.0.1", port=0)
    controller.start()
    box.port = controller.port
    try:
        yield box
    finally:
        controller.stop()
