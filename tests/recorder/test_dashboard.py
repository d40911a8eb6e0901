"""The dashboard through the running system: a real gateway, recorder and dashboard
program; a buy placed by the test shows up on the page in a real headless Chromium,
with points on the equity chart; the server is read-only and guards data with a token."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from qmtbus import Gateway, endpoints, protocol
from qmtbus.config import load_config
from tests.recorder.helpers import STARTED, start_recorder, wait_caught_up
from tests.support import Proc, Stack, start_gateway, wait_for

CODE = "600000.SH"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOKEN = "s3cret-token-0123456789"


def get(url: str, token: str = "", method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read()


def start_dashboard(stack: Stack) -> tuple[Proc, str]:
    proc = Proc("recorder.dashboard", stack).start()
    STARTED.append(proc)
    path = stack.dir / endpoints.endpoints_file(load_config(stack.config_path), "dashboard")

    def reported() -> str | None:
        if not proc.alive():
            raise AssertionError(f"dashboard exited early:\n{proc.log()}")
        found = endpoints.read(path)
        return found.addresses["http"].rstrip("/") if found and found.pid == proc.pid else None

    base: str = wait_for(reported, 30, "the dashboard to report its address")

    def up() -> bool:
        if not proc.alive():
            raise AssertionError(f"dashboard exited early:\n{proc.log()}")
        try:
            return get(base + "/healthz")[0] == 200
        except OSError:
            return False

    wait_for(up, 20, "dashboard answering")
    return proc, base


@pytest.fixture
def system(stack: Stack) -> Iterator[str]:
    stack.write_config(dashboard={"refresh": 0.5}, recorder={"mark_interval": 0.5})
    gateway = start_gateway(stack)
    recorder = start_recorder(stack)
    dashboard, base = start_dashboard(stack)
    yield base
    assert dashboard.stop() == 0
    recorder.stop()
    gateway.stop()


def state(base: str) -> dict[str, Any]:
    status, body = get(base + "/api/state")
    assert status == 200
    return json.loads(body)  # type: ignore[no-any-return]


def buy_and_wait(stack: Stack, base: str) -> protocol.Order:
    with Gateway.from_config(stack.config_path) as gw:
        last = gw.quotes([CODE])[0].lastPrice
        ack = gw.buy(CODE, 300, round(last * 1.02, 2), strategy_name="dash")

        def filled() -> protocol.Order | None:
            order = next(o for o in gw.orders() if o.order_id == ack.order_id)
            return order if order.order_status == protocol.ORDER_SUCCEEDED else None

        order: protocol.Order = wait_for(filled, 15, "the buy filled")
    wait_caught_up(stack)

    def shown() -> bool:
        s = state(base)
        return bool(s.get("fills")) and any(p["stock_code"] == CODE for p in s.get("pnl") or [])

    wait_for(shown, 20, "the fill and the position in /api/state")
    return order


def test_given_a_fill_then_the_data_endpoint_has_position_fill_asset_and_curve(
    stack: Stack, system: str
) -> None:
    buy_and_wait(stack, system)
    wait_for(lambda: len(state(system).get("equity") or []) >= 2, 20, "equity points")
    s = state(system)
    assert "errors" not in s["recorder"], s["recorder"]
    assert s["gateway"]["reachable"] and s["gateway"]["state"] == "ready"
    assert s["asset"]["total_asset"] > 0
    (fill,) = s["fills"]
    assert (fill["stock_code"], fill["side"], fill["traded_volume"]) == (CODE, "buy", 300)
    (position,) = s["pnl"]
    assert position["volume"] == 300
    # unrealized at the gateway's last price: market value less the cost, buy fees included
    assert position["unrealized"] == pytest.approx(
        position["market_value"] - position["cost"], abs=0.01
    )
    assert {"daily", "strategies"} <= set(s)
    assert s["strategies"][0]["strategy_name"] == "dash"


def test_given_any_write_method_then_the_dashboard_refuses_and_no_order_is_sent(
    stack: Stack, system: str
) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, _ = get(system + "/api/state", method=method)
        assert status == 405, method
    with Gateway.from_config(stack.config_path) as gw:
        assert gw.orders() == []


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install chromium)")
def test_given_a_fill_then_the_page_in_chromium_shows_it_and_the_chart_has_points(
    stack: Stack, system: str
) -> None:
    buy_and_wait(stack, system)
    wait_for(lambda: len(state(system).get("equity") or []) >= 2, 20, "equity points")
    assert CHROMIUM is not None
    shot = stack.dir / "dashboard.png"
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    base += ["--window-size=1400,1000", "--virtual-time-budget=8000"]
    dom = subprocess.run(
        [*base, "--dump-dom", system + "/"], capture_output=True, text=True, timeout=90
    ).stdout
    positions = re.search(r'<div id="positions">(.*?)</div>', dom, re.S)
    fills = re.search(r'<div id="fills">(.*?)</div>', dom, re.S)
    assert positions and f'data-key="{CODE}"' in positions.group(1), dom[:3000]
    assert fills and CODE in fills.group(1) and ">buy<" in fills.group(1)
    points = re.search(r'id="equity-chart" data-points="(\d+)"', dom)
    assert points and int(points.group(1)) >= 2
    assert "<canvas" in dom  # uPlot drew
    subprocess.run([*base, f"--screenshot={shot}", system + "/"], capture_output=True, timeout=90)
    assert shot.exists() and shot.stat().st_size > 10_000


def test_given_a_token_then_data_needs_it_and_the_page_still_loads(stack: Stack) -> None:
    stack.write_config(dashboard={"token": TOKEN})
    dashboard, base = start_dashboard(stack)
    assert get(base + "/api/state")[0] == 401
    assert get(base + "/api/state", token="wrong-token-0123456789")[0] == 401
    assert get(base + "/api/state", token=TOKEN)[0] == 200
    assert get(base + f"/api/state?token={TOKEN}")[0] == 200
    assert get(base + "/")[0] == 200  # the page itself holds no data
    assert dashboard.stop() == 0


def test_given_a_public_address_without_token_then_the_dashboard_refuses_to_start(
    stack: Stack,
) -> None:
    stack.write_config(dashboard={"host": "0.0.0.0"})
    proc = Proc("recorder.dashboard", stack).start()
    STARTED.append(proc)
    assert proc.wait_exit(30) == 2
    assert (
        "error: dashboard.host 0.0.0.0 is not loopback: set dashboard.token (a long random "
        "string) so that only those who have it can see the account, or bind to 127.0.0.1"
    ) in proc.log()


def test_given_no_token_then_a_request_named_for_another_host_is_refused(stack: Stack) -> None:
    """DNS rebinding: a web site re-pointed at 127.0.0.1 must not read the account."""
    dashboard, base = start_dashboard(stack)
    request = urllib.request.Request(base + "/api/state", headers={"Host": "evil.example:7105"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=5)
    err.value.close()
    assert err.value.code == 403
    named = urllib.request.Request(base + "/api/state", headers={"Host": "localhost"})
    with urllib.request.urlopen(named, timeout=5) as response:
        assert response.status == 200
    assert dashboard.stop() == 0
