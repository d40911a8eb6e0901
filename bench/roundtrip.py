"""Scenario 1: order round trip, Python client -> gateway -> simulator acceptance -> order_ack,
next to a bare pyzmq + msgspec REQ/REP echo of the same messages, a bare vnpy.rpc call,
the same order through vnpy's own engine over the same simulator (bench/vnpy_engine.py):
`vnpy_engine` returns when `order_stock_async` has returned (vnpy's behaviour),
`vnpy_answered` when the broker has answered (what qmtbus's `order_ack` waits for), and
the design's floor (bench/floor.py: the gateway's thread hand-overs with no work).

Each run starts a fresh gateway and fresh vnpy engines (so the simulator's book does
not grow from run to run), and measures the systems one after the other in an order
that rotates from run to run, so that a noisy moment of the machine is not always
charged to the same one.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq

from bench import floor
from bench.common import (
    CODE,
    Cost,
    Figures,
    Peer,
    bench_stack,
    cost,
    cost_per_order,
    free_port,
    percentile,
    resting_buy_price,
    restore_sigint,
    rss,
    start_gateway_timed,
    stop_all,
    vnpy_available,
)
from qmtbus import Gateway, protocol
from qmtbus.client import new_client_order_id

ENGINE_MISSING = (
    "vnpy's engine needs ta-lib, loguru, tzlocal and requests (pip install -e '.[bench]'): "
    "skipping the vnpy engine lines"
)


def vnpy_engine_available() -> bool:
    """What vnpy.trader.engine imports beyond vnpy.rpc is installed (vnpy itself is
    installed --no-deps)."""
    import importlib.util

    needed = ("talib", "loguru", "tzlocal", "requests", "numpy")
    return all(importlib.util.find_spec(m) is not None for m in needed)


@dataclass
class Settings:
    runs: int = 5
    orders: int = 3000
    warmup: int = 300


@dataclass
class Result:
    figures: Figures = field(default_factory=Figures)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # request, reply bytes
    counts: dict[str, int] = field(default_factory=dict)  # round trips measured, all runs
    systems: list[str] = field(default_factory=list)
    startup: list[float] = field(default_factory=list)  # gateway start -> ready, per run
    gateway_rss: list[int] = field(default_factory=list)  # after the burst
    resting_orders: int = 0


def _order_command() -> protocol.PlaceOrder:
    return protocol.PlaceOrder(
        client_order_id=new_client_order_id(),
        stock_code=CODE,
        order_type=23,  # STOCK_BUY
        order_volume=100,
        price_type=protocol.FIX_PRICE,
        price=resting_buy_price(),
    )


def _record_cost(
    result: Result, name: str, before: Cost | None, after: Cost | None, orders: int
) -> None:
    cpu_us, switches = cost_per_order(before, after, orders)
    result.figures.add(f"{name}.cpu_us", cpu_us)
    result.figures.add(f"{name}.switches", switches)


def _record(result: Result, name: str, lat_ns: list[int]) -> None:
    us = [x / 1000 for x in lat_ns]
    result.figures.add(f"{name}.p50", percentile(us, 50))
    result.figures.add(f"{name}.p99", percentile(us, 99))
    result.figures.add(f"{name}.max", max(us))
    result.counts[name] = result.counts.get(name, 0) + len(us)


def echo_run(settings: Settings, result: Result) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    with Peer("echo", address) as peer:
        ctx: zmq.Context[Any] = zmq.Context.instance()
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(address)
        encode, decode = protocol.msgpack_encoder.encode, protocol.decode_reply
        lat: list[int] = []
        request = reply = b""
        before: Cost | None = None
        for i in range(settings.warmup + settings.orders):
            if i == settings.warmup:
                before = cost(peer.pid)
            cmd = _order_command()
            t = time.perf_counter_ns()
            request = encode(cmd)
            sock.send(request)
            reply = sock.recv()
            ack = decode(reply)
            elapsed = time.perf_counter_ns() - t
            assert isinstance(ack, protocol.OrderAck) and ack.client_order_id == cmd.client_order_id
            if i >= settings.warmup:
                lat.append(elapsed)
        _record_cost(result, "echo", before, cost(peer.pid), settings.orders)
        sock.close(0)
    result.sizes["echo"] = (len(request), len(reply))
    _record(result, "echo", lat)


def hop_run(settings: Settings, result: Result) -> None:
    """One one-way hop, client send → a bare server has decoded the order: the floor of
    the gateway's intake, timed the same way (wall clock before encoding, wall clock
    where the order has arrived)."""
    address = f"tcp://127.0.0.1:{free_port()}"
    with Peer("hop", address):
        ctx: zmq.Context[Any] = zmq.Context.instance()
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(address)
        encode = protocol.msgpack_encoder.encode
        lat: list[int] = []
        for i in range(settings.warmup + settings.orders):
            cmd = _order_command()
            wall = time.time_ns()
            sock.send(encode(cmd))
            arrived = int.from_bytes(sock.recv(), "little")
            if i >= settings.warmup:
                lat.append(arrived - wall)
        sock.close(0)
    _record(result, "hop", lat)


def floor_run(settings: Settings, result: Result) -> None:
    """The design's floor (bench/floor.py): the gateway's thread hand-overs, no work."""
    measured = floor.measure(_order_command, settings.warmup, settings.orders)
    result.sizes["floor"] = measured.sizes
    _record(result, "floor", measured.round_trip_ns)
    _record(result, "floor.intake", measured.intake_ns)
    result.figures.add("floor.cpu_us", measured.cpu_us)
    result.figures.add("floor.switches", measured.switches)


def vnpy_run(settings: Settings, result: Result) -> None:
    from vnpy.rpc import RpcClient

    restore_sigint()
    rep, pub = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    with Peer("vnpy", rep, pub):
        client: Any = RpcClient()
        client.callback = lambda topic, data: None
        client.start(rep, pub)
        client.subscribe_topic("bye")
        lat: list[int] = []
        req: dict[str, Any] = {}
        ack: dict[str, Any] = {}
        for i in range(settings.warmup + settings.orders):
            cmd = _order_command()
            req = {f: getattr(cmd, f) for f in cmd.__struct_fields__}
            t = time.perf_counter_ns()
            ack = client.order(req)
            elapsed = time.perf_counter_ns() - t
            assert ack["client_order_id"] == cmd.client_order_id
            if i >= settings.warmup:
                lat.append(elapsed)
        # its SUB thread polls 30 s: a "bye" published 50 ms after this call wakes it to see
        # stop(). bye() first: once stopped, a heartbeat waking that thread makes it close
        # the REQ socket under a call still using it.
        client.bye()
        client.stop()
        client.join()
    result.sizes["vnpy"] = (
        len(pickle.dumps(["order", (req,), {}], pickle.DEFAULT_PROTOCOL)),
        len(pickle.dumps([True, ack], pickle.DEFAULT_PROTOCOL)),
    )
    _record(result, "vnpy", lat)


def vnpy_engine_run(settings: Settings, result: Result, answered: bool) -> None:
    """`client.send_order(OrderRequest, "XT")` over vnpy.rpc into vnpy's MainEngine, whose
    gateway calls xtquant's `order_stock_async` on the simulator (bench/vnpy_engine.py);
    with `answered`, the call returns only once the broker's response has come in."""
    from vnpy.rpc import RpcClient
    from vnpy.trader.constant import Direction, Exchange, OrderType
    from vnpy.trader.object import OrderRequest

    restore_sigint()
    name = "vnpy_answered" if answered else "vnpy_engine"
    rep, pub = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    symbol, _ = CODE.split(".")
    price = resting_buy_price()
    with Peer("vnpy-engine", rep, pub, "answered" if answered else "sent") as peer:
        client: Any = RpcClient()
        client.callback = lambda topic, data: None
        client.start(rep, pub)
        client.subscribe_topic("bye")
        function = "send_order_answered" if answered else "send_order"
        call = getattr(client, function)
        lat: list[int] = []
        req: Any = None
        vt_orderid = ""
        for i in range(settings.warmup + settings.orders):
            req = OrderRequest(
                symbol=symbol,
                exchange=Exchange.SSE,
                direction=Direction.LONG,
                type=OrderType.LIMIT,
                volume=100,
                price=price,
                reference=new_client_order_id(),
            )
            t = time.perf_counter_ns()
            vt_orderid = call(req, "XT")
            elapsed = time.perf_counter_ns() - t
            if not vt_orderid:
                raise RuntimeError(f"vnpy's engine refused order {i}: {req}")
            if i >= settings.warmup:
                lat.append(elapsed)
        # vnpy's event thread handles the orders' events after the replies: how far behind
        result.figures.add(f"{name}.queued", peer.ask(what="queued")["queued"])
        # its SUB thread polls 30 s: a "bye" published 50 ms after this call wakes it to see
        # stop(). bye() first: once stopped, a heartbeat waking that thread makes it close
        # the REQ socket under a call still using it.
        client.bye()
        client.stop()
        client.join()
    result.sizes[name] = (
        len(pickle.dumps([function, (req, "XT"), {}], pickle.DEFAULT_PROTOCOL)),
        len(pickle.dumps([True, vt_orderid], pickle.DEFAULT_PROTOCOL)),
    )
    _record(result, name, lat)


def gateway_run(settings: Settings, result: Result) -> None:
    stack = bench_stack("roundtrip")
    started = start_gateway_timed(stack)
    result.startup.append(started.ready_s)
    price = resting_buy_price()
    try:
        with Gateway(stack.commands_address, stack.events_address, timeout=10, retries=0) as gw:
            lat: list[int] = []
            walls: list[tuple[str, int, int]] = []  # client_order_id, sent, ack received
            ack: protocol.OrderAck | None = None
            before: Cost | None = None
            for i in range(settings.warmup + settings.orders):
                if i == settings.warmup:
                    before = cost(started.proc.pid)
                coid = new_client_order_id()
                wall = time.time_ns()
                t = time.perf_counter_ns()
                ack = gw.buy(CODE, 100, price, client_order_id=coid)
                elapsed = time.perf_counter_ns() - t
                if ack.status != "accepted" or ack.duplicate:
                    raise RuntimeError(f"order {i} was not accepted: {ack}")
                if i >= settings.warmup:
                    lat.append(elapsed)
                    walls.append((coid, wall, wall + elapsed))
            _record_cost(result, "gateway", before, cost(started.proc.pid), settings.orders)
            _record(result, "gateway", lat)
            _stages(gw, stack, walls, result)
            result.gateway_rss.append(rss(started.proc.pid))
            pings: list[int] = []
            for i in range(settings.warmup + settings.orders):
                t = time.perf_counter_ns()
                gw.ping()
                if i >= settings.warmup:
                    pings.append(time.perf_counter_ns() - t)
            _record(result, "ping", pings)
            assert ack is not None
            command = _order_command()
            result.sizes["gateway"] = (
                len(protocol.msgpack_encoder.encode(command)),
                len(protocol.msgpack_encoder.encode(ack)),
            )
            result.resting_orders = len(gw.orders(cancelable_only=True))
    finally:
        stop_all([started.proc])


def _stages(gw: Gateway, stack: Any, walls: list[tuple[str, int, int]], result: Result) -> None:
    """Split each order's round trip at two timestamps the system itself records: the
    simulator's `received_ns` (its ledger: the broker thread placing the order) and the
    `ts` of the `order_response` event (the I/O thread taking the broker's answer)."""
    from qmtbus.gateway.broker.sim.ledger import read_ledger

    received = {
        o["order_remark"]: o["received_ns"] for o in read_ledger(stack.data_dir).orders_received
    }
    epoch = gw.status().epoch
    responded: dict[str, int] = {}
    from_seq, more = 1, True
    while more:
        reply = gw.replay(epoch, from_seq, limit=10_000)
        for e in reply.events:
            if isinstance(e, protocol.OrderResponseEvent) and e.client_order_id:
                responded.setdefault(e.client_order_id, e.ts)
        from_seq += len(reply.events)
        more = reply.more and bool(reply.events)
    intake, broker, reply_us = [], [], []
    for coid, sent, acked in walls:
        if coid in received and coid in responded:
            intake.append((received[coid] - sent) / 1000)
            broker.append((responded[coid] - received[coid]) / 1000)
            reply_us.append((acked - responded[coid]) / 1000)
    for name, values in (("intake", intake), ("broker", broker), ("reply", reply_us)):
        result.figures.add(f"stage.{name}.p50", percentile(values, 50))
        result.figures.add(f"stage.{name}.p99", percentile(values, 99))


def run(settings: Settings, log: Any = print) -> Result:
    result = Result()
    systems = ["echo", "hop", "floor", "gateway"]
    if vnpy_available():
        systems[1:1] = ["vnpy", "vnpy_engine"]
        systems.append("vnpy_answered")
    else:
        log("  vnpy not installed: skipping the vnpy.rpc baseline (pip install --no-deps vnpy)")
    if "vnpy" in systems and not vnpy_engine_available():
        systems = [s for s in systems if s not in ("vnpy_engine", "vnpy_answered")]
        log(f"  {ENGINE_MISSING}")
    result.systems = list(systems)
    fns: dict[str, Callable[[Settings, Result], None]] = {
        "echo": echo_run,
        "hop": hop_run,
        "vnpy": vnpy_run,
        "vnpy_engine": lambda s, r: vnpy_engine_run(s, r, answered=False),
        "vnpy_answered": lambda s, r: vnpy_engine_run(s, r, answered=True),
        "floor": floor_run,
        "gateway": gateway_run,
    }
    for run_no in range(settings.runs):
        order = systems[run_no % len(systems) :] + systems[: run_no % len(systems)]
        for name in order:
            fns[name](settings, result)
        f = result.figures
        log(
            f"  run {run_no + 1}/{settings.runs}: p50 echo {f['echo.p50'].values[-1]:.0f} us"
            + (f", vnpy.rpc {f['vnpy.p50'].values[-1]:.0f} us" if "vnpy" in systems else "")
            + (
                f", vnpy engine {f['vnpy_engine.p50'].values[-1]:.0f} us"
                f" (answered {f['vnpy_answered.p50'].values[-1]:.0f} us)"
                if "vnpy_engine" in systems
                else ""
            )
            + f", gateway {f['gateway.p50'].values[-1]:.0f} us"
            + f" (intake {f['stage.intake.p50'].values[-1]:.0f} us"
            + f" vs one-way hop {f['hop.p50'].values[-1]:.0f} us)"
            f" (p99 {f['gateway.p99'].values[-1]:.0f} us), ping {f['ping.p50'].values[-1]:.0f} us"
        )
        log(
            f"    design floor {f['floor.p50'].values[-1]:.0f} us"
            f" (intake {f['floor.intake.p50'].values[-1]:.0f} us)"
        )
    return result
