"""`python -m qmtbus.recorder.dashboard [--config FILE]`: the live, read-only web dashboard.

One page (recorder/static/dashboard.html) that polls `/api/state` every
dashboard.refresh seconds: gateway state and health, cash and total asset,
positions with P&L, open orders, today's fills, risk denials, alerts, the
intraday equity curve and the daily P&L (uPlot, vendored in recorder/static).

Read-only: the server answers GET and HEAD only, and nothing in it can send an
order (recorder/dashboard_data.py asks only queries). It binds to loopback by
default; any other address requires dashboard.token, which every request for the
account's data must then carry (`?token=...` on the page's address, which the page
passes on, or `Authorization: Bearer ...`); the page itself and its scripts hold none.

Exit codes: 0 after SIGTERM/SIGINT, 2 for a problem the user must fix (config,
address in use).
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import logging
import signal
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from qmtbus import endpoints
from qmtbus.config import Config, ConfigError, config_path, load_config
from qmtbus.recorder.dashboard_data import Collector

log = logging.getLogger("dashboard")

STATIC = Path(__file__).resolve().parent / "static"
FILES = {
    "/": ("dashboard.html", "text/html; charset=utf-8"),
    "/static/uPlot.iife.min.js": ("uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    "/static/uPlot.min.css": ("uPlot.min.css", "text/css; charset=utf-8"),
    "/static/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
}
HEADERS = {
    # nothing from elsewhere: scripts, styles and data come from this server only
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_config(config: Config) -> None:
    """A dashboard beyond loopback needs a token: refuse to start without one."""
    d = config.dashboard
    if not is_loopback(d.host) and not d.token:
        raise ConfigError(
            f"dashboard.host {d.host} is not loopback: set dashboard.token (a long random "
            "string) so that only those who have it can see the account, or bind to 127.0.0.1"
        )
    if d.token and len(d.token) < 16:
        raise ConfigError("dashboard.token is too short: use at least 16 random characters")


class Handler(BaseHTTPRequestHandler):
    server_version = "qmtbus-dashboard"
    collector: ClassVar[Collector]
    token: ClassVar[str]

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _allowed(self, query: dict[str, list[str]]) -> bool:
        if not self.token:
            return True
        given = query.get("token", [""])[0]
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth.removeprefix("Bearer ")
        return hmac.compare_digest(given.encode(), self.token.encode())

    def _send(self, status: HTTPStatus, body: bytes, kind: str, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _host_is_loopback(self) -> bool:
        """Without a token, only pages opened as 127.0.0.1/localhost may read: a web site
        whose name was re-pointed at 127.0.0.1 (DNS rebinding) sends its own name."""
        host = self.headers.get("Host", "")
        name = urlsplit(f"//{host}").hostname or ""
        return is_loopback(name)

    def do_GET(self, head: bool = False) -> None:
        url = urlsplit(self.path)
        if not self.token and not self._host_is_loopback():
            self._send(
                HTTPStatus.FORBIDDEN, b"open the dashboard as 127.0.0.1\n", "text/plain", head
            )
            return
        if url.path == "/api/state":
            # the account's data: only with the token (when one is set)
            if not self._allowed(parse_qs(url.query)):
                self._send(HTTPStatus.UNAUTHORIZED, b"a token is needed\n", "text/plain", head)
                return
            self._send(HTTPStatus.OK, self.collector.state, "application/json", head)
            return
        if url.path == "/healthz":
            self._send(HTTPStatus.OK, b"ok\n", "text/plain", head)
            return
        known = FILES.get(url.path)
        if known is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain", head)
            return
        name, kind = known
        self._send(HTTPStatus.OK, (STATIC / name).read_bytes(), kind, head)

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def _read_only(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _read_only


def serve(config: Config, stop: threading.Event) -> int:
    collector = Collector(config)
    handler = type(
        "BoundHandler", (Handler,), {"collector": collector, "token": config.dashboard.token}
    )
    d = config.dashboard
    try:
        server = ThreadingHTTPServer((d.host, d.port), handler)
    except OSError as err:
        return _fail(
            f"cannot listen on {d.host}:{d.port} ({err.strerror}); is another dashboard "
            "running? pick a free dashboard.port"
        )
    server.daemon_threads = True
    port = int(server.server_address[1])  # the real one when dashboard.port is 0
    url = f"http://{d.host}:{port}/"
    endpoints.write(endpoints.endpoints_file(config, "dashboard"), "dashboard", {"http": url})
    collector.start()
    thread = threading.Thread(target=server.serve_forever, name="dashboard-http", daemon=True)
    thread.start()
    log.info("dashboard on %s (refresh %g s)", url, d.refresh)
    stop.wait()
    server.shutdown()
    server.server_close()
    collector.stop()
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="qmtbus-dashboard", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--config", help="the qmtbus TOML file (default: $QMTBUS_CONFIG)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(config_path(args.config))
        check_config(config)
    except ConfigError as err:
        return _fail(str(err))
    stop = threading.Event()
    for name in ("SIGTERM", "SIGINT", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda *_: stop.set())
    return serve(config, stop)


def _fail(sentence: str) -> int:
    print(f"error: {sentence}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
