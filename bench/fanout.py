"""Scenario 2: event fan-out to one subscriber at increasing offered rates, up to the maximum.

- gateway: a real gateway publishes `note` events, driven by pipelined DEALER
  clients in a helper process (bench.peers notes); its PUB socket has the
  default config (pub_hwm 1,000,000).
- bare: a pyzmq PUB in a helper process publishing msgspec-encoded events of the
  same shape and size, SNDHWM set to the gateway's pub_hwm.
- vnpy: vnpy.rpc's RpcServer.publish in a helper process, received by
  vnpy.rpc's RpcClient (its own SUB thread and callback) here.

The gateway and bare subscriber is the same raw SUB socket (RCVHWM 100,000 as
EventStream uses) that decodes each event's seq; lost = seqs published in the
step's range that never arrived.
"""

from __future__ import annotations

import threading
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

import msgspec
import zmq

from bench.common import (
    Figures,
    Peer,
    RssSampler,
    bench_stack,
    free_port,
    restore_sigint,
    start_gateway_timed,
    stop_all,
    vnpy_available,
)

SUB_RCVHWM = 100_000


@dataclass
class Settings:
    runs: int = 5
    rates: tuple[int, ...] = (10_000, 25_000, 50_000, 100_000, 200_000, 0)  # 0: flat out
    seconds: float = 1.0
    note_clients: int = 4
    note_window: int = 64


@dataclass
class Result:
    # figures per f"{system}.{rate}.{offered|delivered|lost}"
    figures: Figures = field(default_factory=Figures)
    systems: list[str] = field(default_factory=list)
    rates: tuple[int, ...] = ()
    sizes: dict[str, int] = field(default_factory=dict)
    gateway_peak_rss: list[int] = field(default_factory=list)
    startup: list[float] = field(default_factory=list)


class _Seq(msgspec.Struct):
    seq: int = 0


class Counter:
    """Seqs received and the times of the first and last one, since the last reset."""

    def __init__(self) -> None:
        self.seqs = array("q")
        self.first = 0.0
        self.last = 0.0
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.seqs = array("q")
            self.first = self.last = 0.0

    def add(self, seq: int) -> None:
        now = time.perf_counter()
        if not self.seqs:
            self.first = now
        self.seqs.append(seq)
        self.last = now

    def seen_up_to(self, last: int) -> bool:
        return bool(self.seqs) and self.seqs[-1] >= last

    def quiet_for(self) -> float:
        return time.perf_counter() - self.last if self.last else 0.0

    def in_range(self, first: int, last: int) -> tuple[int, float, float]:
        """(distinct seqs received in first..last, first time, last time)."""
        with self.lock:
            got = {s for s in self.seqs if first <= s <= last}
            return len(got), self.first, self.last


class RawSubscriber:
    """A raw SUB socket read in a thread; decodes each event's seq."""

    def __init__(self, address: str) -> None:
        self.counter = Counter()
        ctx: zmq.Context[Any] = zmq.Context.instance()
        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, SUB_RCVHWM)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(address)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        decode = msgspec.msgpack.Decoder(_Seq).decode
        recv, add, sock = self.sock.recv_multipart, self.counter.add, self.sock
        while not self._stop.is_set():
            if not sock.poll(100):
                continue
            while True:
                try:
                    frames = recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                add(decode(frames[1]).seq)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close(0)


class VnpySubscriber:
    """vnpy.rpc's RpcClient as a subscriber: its own SUB thread calls `callback`."""

    def __init__(self, rep: str, pub: str) -> None:
        from vnpy.rpc import RpcClient

        restore_sigint()
        self.counter = Counter()
        counter = self.counter

        class Client(RpcClient):
            def callback(self, topic: str, data: Any) -> None:
                if data is not None:
                    counter.add(data["seq"])

        self.client = Client()
        self.client.start(rep, pub)
        self.client.subscribe_topic("")

    def close(self) -> None:
        self.client.stop()
        self.client.bye()
        self.client.join()


def _step(
    peer: Peer, counter: Counter, rate: int, seconds: float, result: Result, system: str
) -> tuple[float, float, int]:
    counter.reset()
    sent = peer.ask(rate=rate, seconds=seconds)
    first, last = sent["first"], sent["last"]
    deadline = time.monotonic() + 30
    while not counter.seen_up_to(last) and time.monotonic() < deadline:
        if counter.quiet_for() > 2.0:
            break  # the rest was dropped
        time.sleep(0.01)
    expected = last - first + 1 if sent["sent"] else 0
    got, t0, t1 = counter.in_range(first, last)
    offered = sent["sent"] / sent["seconds"]
    delivered = got / (t1 - t0) if got > 1 and t1 > t0 else 0.0
    lost = expected - got
    key = f"{system}.{rate}"
    result.figures.add(f"{key}.offered", offered)
    result.figures.add(f"{key}.delivered", delivered)
    result.figures.add(f"{key}.lost", lost)
    result.figures.add(f"{key}.events", expected)
    return offered, delivered, lost


def _warm(peer: Peer, counter: Counter) -> None:
    """A short first step that lets the SUB connection settle (slow joiner); not counted."""
    for _ in range(50):
        counter.reset()
        sent = peer.ask(rate=2000, seconds=0.05)
        time.sleep(0.05)
        if counter.in_range(sent["first"], sent["last"])[0] == sent["last"] - sent["first"] + 1:
            return
    raise RuntimeError("the subscriber never caught a whole warm-up step")


def bare_run(settings: Settings, result: Result, log: Any) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    with Peer("pub", address, "1000000") as peer:
        result.sizes["bare"] = int(peer.info["size"])
        sub = RawSubscriber(address)
        try:
            _warm(peer, sub.counter)
            for rate in settings.rates:
                _step(peer, sub.counter, rate, settings.seconds, result, "bare")
        finally:
            sub.close()


def vnpy_run(settings: Settings, result: Result, log: Any) -> None:
    rep, pub = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    with Peer("vnpy", rep, pub) as peer:
        result.sizes["vnpy"] = int(peer.info["size"])
        sub = VnpySubscriber(rep, pub)
        try:
            _warm(peer, sub.counter)
            for rate in settings.rates:
                _step(peer, sub.counter, rate, settings.seconds, result, "vnpy")
        finally:
            sub.close()


def gateway_run(settings: Settings, result: Result, log: Any) -> None:
    stack = bench_stack("fanout")
    started = start_gateway_timed(stack)
    result.startup.append(started.ready_s)
    sampler = RssSampler({"gateway": started.proc.pid})
    sub = RawSubscriber(stack.events_address)
    try:
        with Peer(
            "notes", stack.commands_address, str(settings.note_clients), str(settings.note_window)
        ) as peer:
            _warm(peer, sub.counter)
            size = 0
            for rate in settings.rates:
                _step(peer, sub.counter, rate, settings.seconds, result, "gateway")
            size = _note_size(stack.commands_address)
            result.sizes["gateway"] = size
    finally:
        sub.close()
        result.gateway_peak_rss.append(sampler.stop()["gateway"])
        stop_all([started.proc])


def _note_size(commands_address: str) -> int:
    """Bytes of one published note event, read back from the gateway's journal."""
    from qmtbus import protocol
    from tests.support import call

    status = call(commands_address, protocol.GetStatus())
    ctx: zmq.Context[Any] = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(commands_address)
    replay = protocol.Replay(epoch=status.epoch, from_seq=max(1, status.last_seq - 10), limit=10)
    sock.send(protocol.msgpack_encoder.encode(replay))
    raw = msgspec.msgpack.decode(sock.recv())
    sock.close(0)
    sizes = [
        len(protocol.msgpack_encoder.encode(e))
        for e in raw["events"]
        if isinstance(e, dict) and e.get("type") == "note"
    ]
    return max(sizes, default=0)


def run(settings: Settings, log: Any = print) -> Result:
    result = Result(rates=settings.rates)
    systems = ["bare", "gateway"]
    if vnpy_available():
        systems.insert(1, "vnpy")
    else:
        log("  vnpy not installed: skipping the vnpy.rpc baseline (pip install --no-deps vnpy)")
    result.systems = list(systems)
    fns = {"bare": bare_run, "vnpy": vnpy_run, "gateway": gateway_run}
    for run_no in range(settings.runs):
        order = systems[run_no % len(systems) :] + systems[: run_no % len(systems)]
        for name in order:
            fns[name](settings, result, log)
        line = []
        for name in systems:
            f = result.figures
            top = max(f[f"{name}.{r}.delivered"].values[-1] for r in settings.rates)
            lost = sum(f[f"{name}.{r}.lost"].values[-1] for r in settings.rates)
            line.append(f"{name} max {top:,.0f}/s lost {lost:,.0f}")
        log(f"  run {run_no + 1}/{settings.runs}: " + "; ".join(line))
    return result
