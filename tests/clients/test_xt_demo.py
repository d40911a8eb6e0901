"""xtquant's own demo and the seed-style bot, unchanged, trading through a real gateway
with `qmtbus xt run` (real processes; only the broker is simulated)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from qmtbus import protocol
from tests.support import Proc, Stack, start_gateway, wait_for

SEED = 351
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class Script:
    """`python -m qmtbus.xt run <script>` as a subprocess, its output collected line by line."""

    def __init__(self, stack: Stack, script: Path, *args: str, env: dict[str, str] | None = None):
        self.lines: list[str] = []
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "qmtbus.xt", "run", str(script), *args],
            cwd=stack.dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "QMTBUS_CONFIG": str(stack.config_path),
                "PYTHONUNBUFFERED": "1",
                **(env or {}),
            },
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_line(self, text: str, timeout: float = 30.0) -> int:
        """Index of the first line equal to `text` (or containing it)."""

        def found() -> int | None:
            for i, line in enumerate(self.lines):
                if line == text or text in line:
                    return i
            if self.popen.poll() is not None:
                raise AssertionError(f"script exited {self.popen.returncode}:\n{self.output}")
            return None

        return int(wait_for(lambda: found() is not None, timeout, text) and found())  # type: ignore[arg-type]

    def number_after(self, text: str) -> int:
        """The first line that is a bare integer after the line `text` (the script's own
        prints interleave with its callbacks', which run on xtquant's push thread)."""
        start = self.wait_line(text)

        def found() -> int | None:
            for line in self.lines[start + 1 :]:
                if re.fullmatch(r"-?\d+", line.strip()):
                    return int(line)
            return None

        return int(wait_for(lambda: found() is not None, 30, f"a number after {text}") and found())  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._reader.join(5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    # seed 351 opens 600000.SH at 10.81: the demo's limit buy at 10.50 is inside the
    # day's limits and the fat-finger band, and rests unfilled
    sim = {"seed": SEED, "volatility": 0.0, "quote_interval": 0.05}
    return Stack(tmp_path, {"sim": sim})


@pytest.fixture
def gateway(stack: Stack) -> Iterator[Proc]:
    proc = start_gateway(stack)
    yield proc
    proc.stop()


def test_given_xtquants_own_demo_then_it_trades_through_the_gateway(
    stack: Stack, gateway: Proc
) -> None:
    demo = Script(stack, EXAMPLES / "xtquant_demo.py")
    try:
        demo.wait_line("query position:")
        start = demo.wait_line("demo test")
        assert demo.lines[start + 1 : start + 3] == ["0", "0"]  # connect, subscribe
        order_id = demo.number_after("order using the fix price:")
        assert order_id > 0
        assert demo.number_after("cancel order:") == 0
        assert demo.number_after("order using async api:") > 0
        orders: protocol.OrdersReply = stack.call(protocol.QueryOrders())
        placed = [o for o in orders.orders if o.strategy_name == "strategy_name"]
        assert len(placed) == 2, orders
        # each order got a client_order_id of its own, which the broker holds as its remark
        assert all(o.client_order_id.startswith("xt") for o in placed)
        assert len({o.client_order_id for o in placed}) == 2
        # the script sees its own remark, and its callbacks ran on xtquant's push thread
        demo.wait_line("on order callback:")
        assert f"order {order_id}" in demo.output
        assert "orders: 2" in demo.output
    finally:
        demo.stop()
