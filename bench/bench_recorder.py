"""Recorder benchmark: sustained ingest rate with zero loss, p99 publish -> visible in the
query endpoint, and the recorder's RSS after 1,000,000 events.

Two sources, each driving a real `python -m qmtbus.recorder` process:

- `gateway`: a real gateway on the simulator, fed `note` commands by pipelined
  DEALER clients; the rate is whatever the gateway can publish.
- `direct`: this process binds the gateway's two addresses itself (PUB for
  events, ROUTER answering `status` and `replay` from memory), so the
  recorder's own ceiling is measured; a subscriber that falls behind loses
  messages at the high-water mark and must replay them, as with the gateway.

Latency: a probe asks the endpoint `SELECT max(seq) FROM events` every
PROBE_INTERVAL; each seq's latency is the probe time that first saw it minus
the `ts` its publisher stamped. Run: `python bench/bench_recorder.py [--events N]
[--source direct|gateway|both]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import psutil
import zmq

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from qmtbus import RecorderClient, endpoints, protocol  # noqa: E402
from tests.support import ANY_PORT, Proc, Stack, start_gateway, wait_for  # noqa: E402

PROBE_INTERVAL = 0.05
EPOCH = "20261124T000000Z-bench0"


class _RawReplay(msgspec.Struct, tag="replay", tag_field="type", kw_only=True):
    epoch: str
    events: list[msgspec.Raw]
    last_seq: int
    more: bool


class FakeGateway:
    """PUB + ROUTER on the gateway's addresses: publishes pre-built notes, serves replay."""

    def __init__(self, stack: Stack, total: int) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context.instance()
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, 100_000)
        self.router = self.ctx.socket(zmq.ROUTER)
        # bound to ports the kernel picks; the stack's config then names them
        bound = {"events": endpoints.bind(self.pub, ANY_PORT)}
        bound["commands"] = endpoints.bind(self.router, ANY_PORT)
        stack.pin("gateway", bound)
        self.payloads: list[bytes] = []
        self.sent_ns = np.zeros(total + 10_000, dtype=np.int64)
        self.replayed = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._beats = threading.Thread(target=self._beat, daemon=True)
        self._beats.start()

    def emit(self, make: Any, topic: bytes) -> None:
        """Stamp the next seq, keep the payload for replay, publish (as the gateway does)."""
        with self._lock:
            seq = len(self.payloads) + 1
            ts = time.time_ns()
            payload = protocol.msgpack_encoder.encode(make(seq, ts))
            self.payloads.append(payload)
            if seq < len(self.sent_ns):
                self.sent_ns[seq] = ts
            self.pub.send_multipart((topic, payload))

    def publish(self, total: int, rate: float) -> float:
        """Publish `total` notes at `rate` per second (0: as fast as possible); returns seconds."""

        def make(seq: int, ts: int) -> Any:
            data = {"i": seq}
            return protocol.NoteEvent(
                account_id="BENCH", epoch=EPOCH, seq=seq, ts=ts, topic="bench", data=data
            )

        start = time.perf_counter()
        for n in range(1, total + 1):
            self.emit(make, b"note.BENCH")
            if rate and n % 1000 == 0:
                ahead = n / rate - (time.perf_counter() - start)
                if ahead > 0:
                    time.sleep(ahead)
        return time.perf_counter() - start

    def _beat(self) -> None:
        """A heartbeat every second, as the gateway sends: it reveals a lost tail."""

        def make(seq: int, ts: int) -> Any:
            return protocol.HeartbeatEvent(
                account_id="BENCH", epoch=EPOCH, seq=seq, ts=ts, last_seq=seq - 1, state="ready"
            )

        while not self._stop.wait(1.0):
            self.emit(make, b"heartbeat.BENCH")

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self.router.poll(100):
                continue
            *envelope, raw = self.router.recv_multipart()
            cmd = protocol.command_msgpack_decoder.decode(raw)
            with self._lock:
                last = len(self.payloads)
                if isinstance(cmd, protocol.Replay):
                    part = self.payloads[cmd.from_seq - 1 : cmd.from_seq - 1 + cmd.limit]
                    self.replayed += len(part)
                    more = cmd.from_seq - 1 + len(part) < last
                    reply: Any = _RawReplay(
                        epoch=EPOCH, events=[msgspec.Raw(p) for p in part], last_seq=last, more=more
                    )
                elif isinstance(cmd, protocol.GetStatus):
                    reply = protocol.Status(epoch=EPOCH, last_seq=last, state="ready")
                else:
                    reply = protocol.ErrorReply(code="BAD_REQUEST", message="bench fake")
            self.router.send_multipart([*envelope, protocol.msgpack_encoder.encode(reply)])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        self._beats.join(2)
        self.pub.close(0)
        self.router.close(0)


class Probe:
    """Asks the endpoint for the newest seq every PROBE_INTERVAL; keeps (time_ns, max_seq)."""

    def __init__(self, stack: Stack, epoch: str | None) -> None:
        self.client = RecorderClient(stack.query_address, timeout=5.0)
        self.epoch = epoch
        self.seen: list[tuple[int, int]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # seq > newest seen: DuckDB skips the row groups already looked at (zone maps),
        # so the probe stays cheap however big the table grows
        epoch = f"epoch = '{self.epoch}' AND " if self.epoch else ""
        while not self._stop.wait(PROBE_INTERVAL):
            sql = f"SELECT max(seq) FROM events WHERE {epoch}seq > {self.latest()}"
            try:
                rows = self.client.sql(sql).rows
            except Exception:
                self.errors += 1
                continue
            if rows[0][0] is not None:
                self.seen.append((time.time_ns(), int(rows[0][0])))

    def latest(self) -> int:
        return self.seen[-1][1] if self.seen else 0

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.client.close()


def latencies(seen: list[tuple[int, int]], sent_ns: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Seconds from publish to the first probe that saw each seq."""
    out = []
    done = 0
    for t, top in seen:
        if top > done:
            out.append((t - sent_ns[done + 1 : top + 1]) / 1e9)
            done = top
    return np.concatenate(out) if out else np.zeros(0)


def check_complete(stack: Stack, epoch: str, total: int | None) -> tuple[int, int, int]:
    with RecorderClient(stack.query_address, timeout=30.0) as c:
        rows = c.sql(
            f"SELECT count(*), count(DISTINCT seq), max(seq) FROM events WHERE epoch = '{epoch}'"
        ).rows
    count, distinct, top = (int(x or 0) for x in rows[0])
    ok = count == distinct == top and (total is None or top >= total)
    if not ok:
        raise SystemExit(f"LOSS OR DUPLICATES: count={count} distinct={distinct} max={top}")
    return count, distinct, top


def report(name: str, total: int, took: float, offered: float, lat: Any, rss: int) -> None:
    p50, p99, pmax = (
        np.percentile(lat, q) * 1000 if len(lat) else float("nan") for q in (50, 99, 100)
    )
    rows = [
        ("events", f"{total:,}"),
        ("publish time", f"{offered:.1f} s ({total / offered:,.0f} events/s offered)"),
        ("all committed after", f"{took:.1f} s"),
        ("sustained ingest", f"{total / took:,.0f} events/s, zero loss (count = max seq)"),
        ("publish -> visible (query)", f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {pmax:.0f} ms"),
        ("recorder RSS at the end", f"{rss / 1e6:.0f} MB"),
    ]
    print(f"\n== recorder, source: {name}")
    for label, value in rows:
        print(f"{label:28s}{value}")


def bench_direct(total: int, rate: float) -> None:
    stack = Stack(Path(tempfile.mkdtemp(prefix="bench-recorder-")))
    fake = FakeGateway(stack, total)
    recorder = Proc("recorder", stack).start()
    proc = psutil.Process(recorder.pid)
    try:
        with RecorderClient(stack.query_address, timeout=1.0) as c:
            wait_for(lambda: _status(c) is not None, 30, "recorder endpoint")
        # no wait for the subscription to arrive: whatever it misses, the recorder replays
        probe = Probe(stack, EPOCH)
        start = time.perf_counter()
        pub_took = fake.publish(total, rate)
        last = len(fake.payloads)
        wait_for(lambda: probe.latest() >= last, 600, "all events committed")
        took = time.perf_counter() - start
        probe.close()
        rss = proc.memory_info().rss
        total, _, _ = check_complete(stack, EPOCH, last)
        lat = latencies(probe.seen, fake.sent_ns)
        report("direct publisher (recorder ceiling)", total, took, pub_took, lat, rss)
        print(f"{'replayed after HWM drops':28s}{fake.replayed:,} events")
    finally:
        code = recorder.stop(60)
        fake.close()
        if code != 0:
            print(recorder.log()[-3000:])


def bench_gateway(total: int, clients: int, window: int) -> None:
    stack = Stack(Path(tempfile.mkdtemp(prefix="bench-recorder-gw-")))
    stack.write_config(gateway={"heartbeat_interval": 1.0})
    gateway = start_gateway(stack)
    recorder = Proc("recorder", stack).start()
    proc = psutil.Process(recorder.pid)
    try:
        with RecorderClient(stack.query_address, timeout=1.0) as c:
            wait_for(lambda: (_status(c) or protocol.RecorderStatus()).last_seq > 0, 30, "rec")
            epoch = c.status().epoch
        probe = Probe(stack, epoch)
        sent_ns = np.zeros(total * 2 + 10_000, dtype=np.int64)
        start = time.perf_counter()
        first_seq = _drive_notes(stack, total, clients, window)
        pub_took = time.perf_counter() - start
        last = stack.call(protocol.GetStatus()).last_seq
        wait_for(lambda: probe.latest() >= last, 600, "all events committed")
        took = time.perf_counter() - start
        probe.close()
        rss = proc.memory_info().rss
        count, _, _ = check_complete(stack, epoch, last)
        # every event's ts, from the recorder itself, for latency
        with RecorderClient(stack.query_address, timeout=60) as c:
            rows = c.sql(
                f"SELECT seq, ts FROM events WHERE epoch = '{epoch}' ORDER BY seq",
                limit=1_000_000,
            ).rows
        for seq, ts in rows:
            if seq < len(sent_ns):
                sent_ns[seq] = ts
        seen = [(t, min(s, len(sent_ns) - 1)) for t, s in probe.seen]
        lat = latencies([x for x in seen if x[1] >= first_seq], sent_ns)
        lat = lat[lat < 1e6]
        report(f"real gateway ({clients} pipelined note clients)", count, took, pub_took, lat, rss)
    finally:
        code = recorder.stop(60)
        gateway.stop()
        if code != 0:
            print(recorder.log()[-3000:])


def _drive_notes(stack: Stack, total: int, clients: int, window: int) -> int:
    payload = msgspec.msgpack.encode(protocol.PublishNote(topic="bench", data={"i": 1}))
    first = stack.call(protocol.GetStatus()).last_seq + 1

    def client(n: int) -> None:
        sock: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.DEALER)
        sock.connect(stack.commands_address)
        sent = got = 0
        while got < n:
            while sent < n and sent - got < window:
                sock.send_multipart([b"", payload])
                sent += 1
            sock.recv_multipart()
            got += 1
        sock.close(0)

    threads = [threading.Thread(target=client, args=(total // clients,)) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return first


def _status(c: RecorderClient) -> protocol.RecorderStatus | None:
    try:
        return c.status()
    except Exception:
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--source", choices=("direct", "gateway", "both"), default="both")
    parser.add_argument("--rate", type=float, default=0, help="direct: events/s offered (0: max)")
    parser.add_argument("--clients", type=int, default=2, help="gateway: note clients")
    parser.add_argument("--window", type=int, default=64, help="gateway: notes in flight each")
    args = parser.parse_args(argv)
    if args.source in ("direct", "both"):
        bench_direct(args.events, args.rate)
    if args.source in ("gateway", "both"):
        bench_gateway(args.events, args.clients, args.window)


if __name__ == "__main__":
    main()
