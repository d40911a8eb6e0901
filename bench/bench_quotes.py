"""Quotes benchmark: tick latency to a Python and a Node subscriber, tick -> strategy ->
order_ack round trip, and order_ack latency with and without a tick load, side by side.

Every figure comes from a real gateway on the simulator (tests/support.py), 100
symbols ticking. Latency of a tick is the subscriber's wall clock when it has the
decoded tick minus the tick's `ts` (stamped when the gateway took it from the
broker); the round trip runs from that `ts` to the strategy holding the order_ack.
Run: `python bench/bench_quotes.py [--symbols 100] [--seconds 10] [--orders 300]`.
Targets (checked here, printed at the end; timed tests only assert generous bounds):
tick p99 < 20 ms to either subscriber at 1,000 ticks/s; order_ack under a 10,000
ticks/s storm: p50 at most 0.5 ms above no load, p99 < 10 ms; tick -> order_ack p99
< 25 ms for either strategy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import zmq

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from qmtbus import protocol as p  # noqa: E402
from tests.support import Proc, Stack, call, start_gateway  # noqa: E402

NODE = shutil.which("node")
decode_tick = msgspec.msgpack.Decoder(p.TickEvent).decode
NODE_DIR = ROOT / "clients" / "node"
LOT = 100


def codes(n: int) -> list[str]:
    return [f"{600000 + i:06d}.SH" for i in range(n)]


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "n": len(ordered),
        "p50": statistics.median(ordered),
        "p99": pick(0.99),
        "max": ordered[-1],
    }


def row(name: str, values_ms: list[float]) -> str:
    if not values_ms:
        return f"| {name} | 0 | - | - | - |"
    s = stats(values_ms)
    return f"| {name} | {s['n']:.0f} | {s['p50']:.2f} | {s['p99']:.2f} | {s['max']:.2f} |"


def gateway_stack(quote_interval: float) -> Stack:
    base = {
        "sim": {
            "volatility": 0.002,
            "quote_interval": quote_interval,
            "initial_cash": 1e10,
            "tick_interval": 0.5,
        },
        "gateway": {"journal_fsync_interval": 1.0},
    }
    return Stack(Path(tempfile.mkdtemp(prefix="qmtbus-bench-quotes-")), base)


class PyTicks(threading.Thread):
    """A Python subscriber of every tick: latency of each after `warmup` seconds, and seq
    gaps (ticks dropped on the way)."""

    def __init__(self, address: str, until: Callable[[], bool], warmup: float = 0.0):
        super().__init__(daemon=True)
        self.warm_at = time.monotonic() + warmup
        self.sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"tick.")
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(address)
        self.until = until
        self.micros: list[float] = []
        self.gaps = 0
        self._last = 0

    def run(self) -> None:
        decode = decode_tick
        while not self.until():
            if not self.sock.poll(100):
                continue
            _topic, payload = self.sock.recv_multipart()
            tick = decode(payload)
            if time.monotonic() >= self.warm_at:
                self.micros.append((time.time_ns() - tick.ts) / 1000)
            if self._last and tick.seq > self._last + 1:
                self.gaps += tick.seq - self._last - 1
            self._last = tick.seq
        self.sock.close()


def node(mode: str, stack: Stack, symbols: list[str], count: int) -> subprocess.Popen[str] | None:
    if NODE is None or not (NODE_DIR / "node_modules" / "zeromq").is_dir():
        return None
    env = {
        **os.environ,
        "QMTBUS_COMMANDS": stack.commands_address,
        "QMTBUS_QUOTES": stack.quotes_address,
        "QMTBUS_MODE": mode,
        "QMTBUS_CODES": ",".join(symbols),
        "QMTBUS_COUNT": str(count),
    }
    return subprocess.Popen(
        [NODE, "scripts/tick-bench.js"],
        cwd=NODE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def node_result(proc: subprocess.Popen[str] | None, timeout: float) -> list[float]:
    if proc is None:
        return []
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"node tick-bench failed: {err}")
    return [float(x) for x in json.loads(out.strip().splitlines()[-1])["micros"]]


def place_orders(stack: Stack, count: int, symbols: list[str], prefix: str) -> list[float]:
    """Resting limit buys one after another on one REQ socket: ack latencies in ms."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(stack.commands_address)
    prices = {
        q.stock_code: q.lastPrice for q in stack.call(p.QueryQuote(stock_codes=symbols)).quotes
    }
    out = []
    try:
        for i in range(count):
            code = symbols[i % len(symbols)]
            cmd = p.PlaceOrder(
                client_order_id=f"{prefix}-{i}",
                stock_code=code,
                order_type=23,  # STOCK_BUY
                order_volume=LOT,
                price_type=p.FIX_PRICE,
                price=round(prices[code] * 0.98, 2),
            )
            started = time.perf_counter()
            sock.send(p.encode(cmd))
            if not sock.poll(10_000):
                raise RuntimeError("no order_ack within 10 s")
            ack = p.decode_reply(sock.recv())
            out.append((time.perf_counter() - started) * 1e3)
            if not (isinstance(ack, p.OrderAck) and ack.status == "accepted"):
                raise RuntimeError(f"order not accepted: {ack}")
    finally:
        sock.close()
    return out


def python_round_trip(stack: Stack, symbols: list[str], count: int) -> list[float]:
    """A Python strategy: on a tick, a resting buy of that symbol; tick ts -> ack, in ms."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    for code in symbols:
        sub.setsockopt(zmq.SUBSCRIBE, f"tick.{code}".encode())
    sub.connect(stack.quotes_address)
    req = ctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(stack.commands_address)
    out: list[float] = []
    busy_until = 0
    try:
        while len(out) < count:
            if not sub.poll(5000):
                raise RuntimeError("no tick within 5 s")
            tick = decode_tick(sub.recv_multipart()[1])
            if tick.ts < busy_until:
                continue  # queued while the last order was out: act on fresh prices only
            cmd = p.PlaceOrder(
                client_order_id=f"py-rt-{len(out)}",
                stock_code=tick.stock_code,
                order_type=23,  # STOCK_BUY
                order_volume=LOT,
                price_type=p.FIX_PRICE,
                price=round(tick.lastPrice * 0.98, 2),
                strategy_name="bench-py",
            )
            req.send(p.encode(cmd))
            if not req.poll(10_000):
                raise RuntimeError("no order_ack within 10 s")
            ack = p.decode_reply(req.recv())
            busy_until = time.time_ns()
            out.append((busy_until - tick.ts) / 1e6)
            if not (isinstance(ack, p.OrderAck) and ack.status == "accepted"):
                raise RuntimeError(f"order not accepted: {ack}")
    finally:
        sub.close()
        req.close()
    return out


def subscribe_all(stack: Stack, symbols: list[str]) -> None:
    for start in range(0, len(symbols), 500):
        ack = call(
            stack.commands_address,
            p.SubscribeQuotes(stock_codes=symbols[start : start + 500], client_id="bench"),
        )
        assert isinstance(ack, p.QuotesAck), ack


def with_gateway(quote_interval: float, body: Callable[[Stack], Any]) -> Any:
    stack = gateway_stack(quote_interval)
    proc: Proc = start_gateway(stack)
    try:
        return body(stack)
    finally:
        proc.stop()
        shutil.rmtree(stack.dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0, help="tick latency run")
    parser.add_argument("--orders", type=int, default=300, help="orders per ack run")
    parser.add_argument("--round-trips", type=int, default=300)
    parser.add_argument("--storm-interval", type=float, default=0.01, help="quote_interval")
    args = parser.parse_args(argv)
    symbols = codes(args.symbols)
    load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {load} before the run")
    skipped = "| Node | skipped: no node, or no npm ci in clients/node | | | |"

    # 1. Tick latency at 10 ticks/s per symbol, to a Python and a Node subscriber at once.
    def latency(stack: Stack) -> tuple[list[float], list[float], int, int]:
        subscribe_all(stack, symbols)
        deadline = time.monotonic() + args.seconds + 2
        # Both measure from about 2 s in: Node's start-up must not count against either.
        py = PyTicks(stack.quotes_address, lambda: time.monotonic() > deadline, warmup=2.0)
        py.start()
        nd = node("latency", stack, symbols, int(args.symbols * 10 * args.seconds * 0.9))
        py.join()
        return py.micros, node_result(nd, args.seconds + 30), py.gaps, len(py.micros)

    py_us, node_us, gaps, received = with_gateway(0.1, latency)
    print(f"\n1. tick latency, gateway -> subscriber ({args.symbols} symbols x 10 ticks/s)")
    print("| subscriber | ticks | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|")
    print(row("Python (pyzmq + msgspec)", [u / 1e3 for u in py_us]))
    print(row("Node (QuoteStream)", [u / 1e3 for u in node_us]) if node_us else skipped)
    print(f"Python subscriber: {received} ticks, {gaps} lost to seq gaps")

    # 2. order_ack latency without and with a tick storm (same gateway settings otherwise).
    def acks(storm: bool) -> Callable[[Stack], list[float]]:
        def body(stack: Stack) -> list[float]:
            reader = None
            if storm:
                subscribe_all(stack, symbols)
                stop = threading.Event()
                reader = PyTicks(stack.quotes_address, stop.is_set)
                reader.start()
            place_orders(stack, 30, symbols, "warm")
            try:
                return place_orders(stack, args.orders, symbols, "ack")
            finally:
                if reader is not None:
                    stop.set()
                    reader.join()

        return body

    quiet = with_gateway(args.storm_interval, acks(False))
    storm = with_gateway(args.storm_interval, acks(True))
    rate = args.symbols / args.storm_interval
    print("\n2. order_ack latency (resting limit buys, one at a time)")
    print("| load | orders | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|")
    print(row("no ticks", quiet))
    print(row(f"{args.symbols} symbols, {rate:,.0f} ticks/s, a reader", storm))

    # 3. tick -> strategy -> order_ack, 100 symbols ticking.
    def round_trips(stack: Stack) -> tuple[list[float], list[float]]:
        subscribe_all(stack, symbols)
        py = python_round_trip(stack, symbols, args.round_trips)
        nd = node_result(node("roundtrip", stack, symbols, args.round_trips), 300)
        return py, [u / 1e3 for u in nd]

    py_rt, node_rt = with_gateway(0.1, round_trips)
    print(f"\n3. tick -> strategy -> order_ack ({args.symbols} symbols x 10 ticks/s)")
    print("| strategy | round trips | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|")
    print(row("Python (pyzmq REQ)", py_rt))
    print(row("Node (QuoteStream + Gateway)", node_rt) if node_rt else skipped)

    def under(values: list[float], limit: float) -> bool | None:
        return stats(values)["p99"] < limit if values else None  # None: not measured

    targets = [
        ("tick p99 < 20 ms, Python", under([u / 1e3 for u in py_us], 20)),
        ("tick p99 < 20 ms, Node", under([u / 1e3 for u in node_us], 20)),
        (
            "order_ack p50 under the storm <= no load + 0.5 ms",
            stats(storm)["p50"] <= stats(quiet)["p50"] + 0.5,
        ),
        ("order_ack p99 under the storm < 10 ms", under(storm, 10)),
        ("tick -> order_ack p99 < 25 ms, Python", under(py_rt, 25)),
        ("tick -> order_ack p99 < 25 ms, Node", under(node_rt, 25)),
    ]
    print("\ntargets:")
    for name, met in targets:
        print(f"  {'skipped' if met is None else 'met' if met else 'MISSED'}: {name}")
    print("load average {:.2f} {:.2f} {:.2f} after the run".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
