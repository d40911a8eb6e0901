"""What every scenario shares: figures over repeated runs, the machine, real stacks, RSS sampling.

Every qmtbus process here is the real one, started by tests/support.py
(`Stack`, `Proc`) on free loopback ports with a real config file.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from qmtbus import protocol  # noqa: E402
from qmtbus.config import SimConfig  # noqa: E402
from qmtbus.gateway.ashare import round_price  # noqa: E402
from qmtbus.gateway.broker.sim.market import initial_price  # noqa: E402
from tests.support import Proc, Stack, call, wait_for  # noqa: E402

CODE = "600000.SH"
# A buy 2% under the still market's price rests on the book: inside the 5%
# fat-finger band and the 10% daily limit, so every risk check passes it.
RESTING_FACTOR = 0.98
# Enough cash that neither the risk gate's nor the simulator's cash check
# refuses a burst of thousands of 100-share buys (1,000,000 CNY would stop
# after about a thousand resting orders).
BENCH_CASH = 1e10


def resting_buy_price() -> float:
    return round_price(initial_price(SimConfig().seed, CODE) * RESTING_FACTOR, 0.01)


def free_port() -> int:
    """A port for a peer that takes a fixed address (vnpy's RpcServer, the bare PUB): probed,
    as those peers cannot report a port the kernel picked. Benchmarks only; no test does it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_stack(name: str, **sections: dict[str, Any]) -> Stack:
    """A fresh stack in a temporary folder: still market (volatility 0, so prices are
    known), the simulator's default tick interval, and cash for thousands of orders.
    Everything else (risk gate with every check on, journal, pub_hwm) is the default."""
    base: dict[str, dict[str, Any]] = {
        "sim": {"volatility": 0.0, "initial_cash": BENCH_CASH, "tick_interval": 0.5},
        "gateway": {"journal_fsync_interval": 1.0},
    }
    for key, values in sections.items():
        base.setdefault(key, {}).update(values)
    return Stack(Path(tempfile.mkdtemp(prefix=f"qmtbus-bench-{name}-")), base)


@dataclass
class Started:
    proc: Proc
    ready_s: float  # process start -> the `ready` gateway event's ts
    first_event_s: float  # process start -> its first event (imports, config, journal)


def start_gateway_timed(stack: Stack, timeout: float = 30.0) -> Started:
    """Start a real gateway and measure start -> `ready` from the gateway's own event
    timestamps (`ts` of the `starting` and `ready` events in its journal)."""
    t0 = time.time_ns()
    proc = Proc("gateway", stack).start()

    def ready() -> protocol.Status | None:
        if not proc.alive():
            raise RuntimeError(f"gateway exited early:\n{proc.log()[-3000:]}")
        try:
            reply = call(stack.commands_address, protocol.GetStatus(), timeout=0.2)
        except TimeoutError:
            return None
        return reply if isinstance(reply, protocol.Status) and reply.state == "ready" else None

    status: protocol.Status = wait_for(ready, timeout, "gateway ready")
    replay = call(stack.commands_address, protocol.Replay(epoch=status.epoch, from_seq=1))
    events = list(replay.events)
    first = events[0].ts
    ready_ts = next(
        e.ts for e in events if isinstance(e, protocol.GatewayEvent) and e.state == "ready"
    )
    return Started(proc, (ready_ts - t0) / 1e9, (first - t0) / 1e9)


# -- figures -----------------------------------------------------------------------


@dataclass
class Figure:
    """One quantity measured once per run; summarised as median and spread."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(float(value))

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def quantile(self, q: float) -> float:
        if not self.values:
            return float("nan")
        if len(self.values) == 1:
            return self.values[0]
        return float(statistics.quantiles(self.values, n=4, method="inclusive")[int(q * 4) - 1])

    @property
    def spread(self) -> tuple[float, float]:
        """p25-p75 over the runs (min-max when there are fewer than 4)."""
        if len(self.values) < 4:
            return (min(self.values, default=float("nan")), max(self.values, default=float("nan")))
        return (self.quantile(0.25), self.quantile(0.75))

    def fmt(self, unit: str = "", digits: int = 0, scale: float = 1.0) -> str:
        if not self.values:
            return "n/a"
        lo, hi = self.spread
        m = self.median * scale
        return f"{m:,.{digits}f}{unit} ({lo * scale:,.{digits}f}–{hi * scale:,.{digits}f})"


class Figures(dict[str, Figure]):
    """Named figures of one scenario, filled run by run."""

    def add(self, name: str, value: float) -> None:
        self.setdefault(name, Figure()).add(value)

    def get_figure(self, name: str) -> Figure:
        return self.get(name) or Figure()

    def raw(self) -> dict[str, list[float]]:
        return {k: v.values for k, v in self.items()}


def percentile(values: Sequence[float], q: float) -> float:
    """q in 0..100, nearest-rank on a sorted copy (no numpy needed for small lists)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


# -- memory ------------------------------------------------------------------------


class RssSampler:
    """Samples the resident set size of some processes every `interval` seconds, in a thread."""

    def __init__(self, pids: dict[str, int], interval: float = 0.05) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak: dict[str, int] = dict.fromkeys(pids, 0)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        for name, proc in self.procs.items():
            with contextlib.suppress(psutil.Error):
                self.peak[name] = max(self.peak[name], proc.memory_info().rss)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join(2)
        self.sample()
        return self.peak


def rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


@dataclass(frozen=True)
class Cost:
    """CPU time (user + system, every thread) and context switches (voluntary and
    involuntary, summed over the threads) a process has had so far; Linux only."""

    cpu_s: float
    switches: int


def cost(pid: int) -> Cost | None:
    """What a process has cost so far, from /proc/<pid>/task (None where there is none).
    Per order, these do not move with the other work on the machine as latency does."""
    tasks = Path(f"/proc/{pid}/task")
    if not tasks.is_dir():
        return None
    switches = 0
    for task in tasks.iterdir():
        try:
            text = (task / "status").read_text()
        except OSError:  # a thread that ended while we looked
            continue
        for line in text.splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                switches += int(line.split()[1])
    times = psutil.Process(pid).cpu_times()
    return Cost(times.user + times.system, switches)


def cost_per_order(before: Cost | None, after: Cost | None, orders: int) -> tuple[float, float]:
    """(CPU µs, context switches) per order between two samples; (nan, nan) without them."""
    if before is None or after is None or orders <= 0:
        return float("nan"), float("nan")
    return (
        (after.cpu_s - before.cpu_s) / orders * 1e6,
        (after.switches - before.switches) / orders,
    )


# -- the machine --------------------------------------------------------------------


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return "not installed"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    import duckdb
    import msgspec
    import zmq

    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu_model(),
        "cores": f"{psutil.cpu_count(logical=False)} physical / {psutil.cpu_count()} logical",
        "ram": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "msgspec": msgspec.__version__,
        "duckdb": duckdb.__version__,
        "vnpy": _version("vnpy"),
        "git": _git_head(),
    }


def _git_head() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_average() -> float:
    return os.getloadavg()[0]


# -- helper subprocesses (bench.peers) ------------------------------------------------


class Peer:
    """A `python -m bench.peers ...` process (or another `module` of the same kind) that
    takes JSON commands on stdin and answers each with one JSON line on stdout."""

    def __init__(self, *args: str, module: str = "bench.peers") -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        path = env.get("PYTHONPATH", "")
        env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)
        self.popen = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        hello = self.read()
        if hello.get("ready") is not True:
            raise RuntimeError(f"bench peer {args[0]} failed to start: {hello}")
        self.info = hello

    @property
    def pid(self) -> int:
        return self.popen.pid

    def read(self) -> dict[str, Any]:
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError(f"bench peer exited with {self.popen.wait(5)}")
        return dict(json.loads(line))

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.popen.stdin is not None
        self.popen.stdin.write(json.dumps(command) + "\n")
        self.popen.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.popen.poll() is None:
            assert self.popen.stdin is not None
            try:
                self.popen.stdin.close()
                self.popen.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.popen.kill()
                self.popen.wait(5)
        for pipe in (self.popen.stdin, self.popen.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def vnpy_available() -> bool:
    try:
        import vnpy.rpc  # noqa: F401
    except Exception:
        return False
    finally:
        restore_sigint()
    return True


def restore_sigint() -> None:
    """vnpy.rpc sets SIGINT to the default action at import; give Ctrl-C back to Python."""
    import signal

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def stop_all(procs: Iterable[Proc | None]) -> None:
    for proc in procs:
        if proc is not None and proc.alive():
            try:
                proc.stop(30)
            except AssertionError:
                proc.kill()
