"""Where the real gateway spends its time under load: py-spy on the running process.

py-spy samples the thread that holds the GIL (`--gil`), so the shares below are
shares of the Python work the gateway can do at all (one GIL, whatever the
cores); `--nonblocking` keeps it from pausing the gateway while it reads.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import CODE, Peer, bench_stack, resting_buy_price, start_gateway_timed, stop_all
from qmtbus import Gateway

ROOT_FRAMES = {
    "_run_module_as_main",
    "_run_code",
    "<module>",
    "main",
    "_bootstrap",
    "_bootstrap_inner",
    "run",
}


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


@dataclass
class Profile:
    load: str
    rate: float  # orders or notes per second while sampled (py-spy slows it a little)
    samples: int = 0
    threads: list[tuple[str, float]] = field(default_factory=list)
    self_top: list[tuple[str, float]] = field(default_factory=list)
    inclusive_top: list[tuple[str, float]] = field(default_factory=list)
    raw_path: str = ""
    # every frame's inclusive share, for the report's sentences (not only the top rows)
    inclusive: dict[str, float] = field(default_factory=dict)


_LINE = re.compile(r":\d+\)$")


def _frame(frame: str) -> str:
    """'Server.emit (gateway/server.py:139)' -> 'Server.emit (gateway/server.py)'."""
    frame = _LINE.sub(")", frame)
    name, _, where = frame.partition(" (")
    parts = where.rstrip(")").split("/")
    return f"{name} ({'/'.join(parts[-2:])})"


def summarize(raw: str, load: str, rate: float, top: int = 14) -> Profile:
    self_c: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        thread = re.sub(r"^thread \(\d+\): ", "", frames[0])
        threads[re.sub(r"[-_]\d+(_\d+)?$", "", thread)] += n
        body = [_frame(f) for f in frames[1:]]
        if body:
            self_c[body[-1]] += n
        for f in set(body):
            if f.split(" ")[0].rsplit(".", 1)[-1] not in ROOT_FRAMES:
                incl[f] += n
    prof = Profile(load, rate, total)
    if total:
        prof.threads = [(t, n / total) for t, n in threads.most_common()]
        prof.self_top = [(f, n / total) for f, n in self_c.most_common(top)]
        prof.inclusive_top = [(f, n / total) for f, n in incl.most_common(top)]
        prof.inclusive = {f: n / total for f, n in incl.items()}
    return prof


def _record(
    spy: str, pid: int, seconds: float, out: Path, gil: bool = True, rate: int = 200
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            str(rate),
            *(["--gil"] if gil else []),
            "--nonblocking",
            "--threads",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def profile_orders(spy: str, seconds: float, out_dir: Path) -> Profile:
    stack = bench_stack("profile-orders")
    started = start_gateway_timed(stack)
    out = out_dir / "gateway-orders.txt"
    try:
        price = resting_buy_price()
        with Gateway(stack.commands_address, stack.events_address, timeout=10) as gw:
            for _ in range(300):
                gw.buy(CODE, 100, price)
            rec = _record(spy, started.proc.pid, seconds, out)
            n, t0 = 0, time.perf_counter()
            while rec.poll() is None:
                gw.buy(CODE, 100, price)
                n += 1
            rate = n / (time.perf_counter() - t0)
    finally:
        stop_all([started.proc])
    return _load(out, "orders, one client, one at a time", rate)


def profile_notes(spy: str, seconds: float, out_dir: Path) -> Profile:
    stack = bench_stack("profile-notes")
    started = start_gateway_timed(stack)
    out = out_dir / "gateway-notes.txt"
    try:
        with Peer("notes", stack.commands_address, "4", "64") as peer:
            peer.ask(rate=2000, seconds=0.2)
            rec = _record(spy, started.proc.pid, seconds, out)
            sent = peer.ask(rate=0, seconds=seconds + 0.5)
            rec.wait(30)
    finally:
        stop_all([started.proc])
    return _load(out, "notes flat out (4 pipelined DEALER clients)", sent["sent"] / sent["seconds"])


def profile_broker_events(spy: str, seconds: float, out_dir: Path) -> Profile:
    """A burst of simulator fills (bench/broker_fanout.py): resting buys, then one price
    move through them, sampled from just before the move."""
    from qmtbus import protocol
    from tests.support import call

    orders = 4000
    stack = bench_stack("profile-broker", sim={"depth_volume": orders * 100})
    started = start_gateway_timed(stack)
    out = out_dir / "gateway-broker-events.txt"
    try:
        price = resting_buy_price()
        with Gateway(stack.commands_address, stack.events_address, timeout=10) as gw:
            for _ in range(orders):
                gw.buy(CODE, 100, price)
        # the burst lasts a fraction of a second: sampled at 1 kHz
        rec = _record(spy, started.proc.pid, max(2.0, seconds / 2), out, rate=1000)
        time.sleep(0.5)  # py-spy attached
        t0 = time.perf_counter()
        call(
            stack.commands_address,
            protocol.SimSetPrice(stock_code=CODE, price=round(price * 0.99, 2)),
            timeout=60,
        )
        took = time.perf_counter() - t0
        rec.wait(60)
    finally:
        stop_all([started.proc])
    # about two events (an order update and a trade) per fill
    return _load(out, f"broker-made events: {orders:,} fills at once", 2 * orders / took)


def profile_underload(spy: str, seconds: float, out_dir: Path) -> Profile:
    """Orders one at a time while 100 codes tick every 10 ms and three readers take every
    event (bench/underload.py)."""
    from bench.underload import _codes
    from qmtbus import protocol
    from tests.support import call

    stack = bench_stack("profile-underload", sim={"quote_interval": 0.01})
    started = start_gateway_timed(stack)
    out = out_dir / "gateway-underload.txt"
    try:
        call(
            stack.commands_address,
            protocol.SubscribeQuotes(stock_codes=_codes(100), client_id="bench"),
        )
        address = (stack.events_address, stack.quotes_address, "3")
        price = resting_buy_price()
        with (
            Peer("readers", *address) as readers,
            Gateway(stack.commands_address, stack.events_address, timeout=10) as gw,
        ):
            for _ in range(200):
                gw.buy(CODE, 100, price)
            rec = _record(spy, started.proc.pid, seconds, out)
            n, t0 = 0, time.perf_counter()
            while rec.poll() is None:
                gw.buy(CODE, 100, price)
                n += 1
            rate = n / (time.perf_counter() - t0)
            readers.ask(stop=True)
    finally:
        stop_all([started.proc])
    return _load(out, "orders under load (10k ticks/s, three event readers)", rate)


def profile_recorder(spy: str, seconds: float, out_dir: Path) -> Profile:
    """The recorder ingesting bench_recorder's direct publisher flat out. Sampled on CPU
    (not --gil): DuckDB's appends run with the GIL released and must count."""
    from bench.ingest import _bench_recorder
    from qmtbus import RecorderClient
    from tests.support import Proc, Stack, wait_for

    br = _bench_recorder()
    total = 400_000
    stack = Stack(Path(tempfile.mkdtemp(prefix="qmtbus-bench-profile-recorder-")))
    fake = br.FakeGateway(stack, total)
    recorder = Proc("recorder", stack).start()
    out = out_dir / "recorder-ingest.txt"
    try:
        with RecorderClient(stack.query_address, timeout=1.0) as c:
            wait_for(lambda: br._status(c) is not None, 30, "recorder endpoint")
        rec = _record(spy, recorder.pid, seconds, out, gil=False)
        took = fake.publish(total, 0)
        rec.wait(seconds + 30)
    finally:
        recorder.stop(60)
        fake.close()
    return _load(out, "recorder, direct publisher flat out (on-CPU samples)", total / took)


def _load(out: Path, load: str, rate: float) -> Profile:
    raw = out.read_text() if out.exists() else ""
    prof = summarize(raw, load, rate)
    prof.raw_path = str(out)
    return prof


def run(seconds: float, out_dir: Path, log: Any = print) -> list[Profile]:
    spy = py_spy()
    if spy is None:
        log("  py-spy not installed (pip install py-spy): no profile")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    profiles = [
        profile_orders(spy, seconds, out_dir),
        profile_underload(spy, seconds, out_dir),
        profile_notes(spy, seconds, out_dir),
        profile_broker_events(spy, seconds, out_dir),
        profile_recorder(spy, seconds, out_dir),
    ]
    for p in profiles:
        log(f"  {p.load}: {p.samples} samples at {p.rate:,.0f}/s, raw stacks in {p.raw_path}")
    return profiles
