"""Scenario 3: recorder sustained ingest (zero loss) and publish -> queryable latency.

The logic is bench/bench_recorder.py's (imported, not copied): `bench_direct`
(a publisher in this process on the gateway's addresses: the recorder's own
ceiling) and `bench_gateway` (a real gateway fed `note` commands). Its `report`
is swapped for one that keeps the figures instead of printing them. Each source
runs in a child process group with a time limit.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.common import ROOT, Figures

_BENCH_DIR = str(ROOT / "bench")


def _bench_recorder() -> Any:
    if _BENCH_DIR not in sys.path:
        sys.path.insert(0, _BENCH_DIR)
    import bench_recorder

    return bench_recorder


@dataclass
class Settings:
    runs: int = 5
    direct_events: int = 300_000
    gateway_events: int = 100_000
    note_clients: int = 2
    note_window: int = 64


@dataclass
class Result:
    figures: Figures = field(default_factory=Figures)
    failures: list[str] = field(default_factory=list)


def _child(key: str, args: list[Any]) -> None:
    """In a child process: run one bench_recorder source, print its figures as JSON."""
    br = _bench_recorder()
    figures: dict[str, Any] = {}

    # bench_recorder's report(name, total, took, publish_seconds, latencies, rss, ...)
    def report(
        name: str, total: int, took: float, pub_took: float, lat: Any, rss: int, *_: Any
    ) -> None:
        figures.update(events=total, offered=total / pub_took, ingest=total / took, rss=rss)
        if len(lat):
            figures["lat_p50_ms"] = float(np.percentile(lat, 50)) * 1000
            figures["lat_p99_ms"] = float(np.percentile(lat, 99)) * 1000

    br.report = report
    fn = br.bench_direct if key == "direct" else br.bench_gateway
    real_stdout = sys.stdout
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            fn(*args)
    except SystemExit as err:  # check_complete: loss or duplicates
        figures["error"] = str(err)
    real_stdout.write(json.dumps(figures) + "\n")


def _one(result: Result, key: str, args: list[Any], timeout: float) -> None:
    """One source in its own process group, so that a recorder that dies (or is stopped
    by someone else on a shared machine) costs this run, not the whole benchmark."""
    code = f"from bench.ingest import _child; _child({key!r}, {args!r})"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        result.failures.append(f"{key}: no result within {timeout:.0f} s (killed)")
        return
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        result.failures.append(f"{key}: exited {proc.returncode}: {err.strip()[-500:]}")
        return
    figures = json.loads(lines[-1])
    f = result.figures
    if "error" in figures:
        text = figures["error"]
        numbers = dict(part.split("=") for part in text.split(": ", 1)[-1].split())
        expected = args[0] if key == "direct" else int(numbers.get("max", 0))
        f.add(f"{key}.lost", max(1, expected - int(numbers.get("distinct", 0))))
        result.failures.append(f"{key}: {text}")
        return
    for name in ("events", "offered", "ingest", "rss", "lat_p50_ms", "lat_p99_ms"):
        if name in figures:
            f.add(f"{key}.{name}", figures[name])
    f.add(f"{key}.lost", 0)


def run(settings: Settings, log: Any = print) -> Result:
    result = Result()
    for run_no in range(settings.runs):
        _one(result, "direct", [settings.direct_events, 0], 60 + settings.direct_events / 5_000)
        _one(
            result,
            "gateway",
            [settings.gateway_events, settings.note_clients, settings.note_window],
            60 + settings.gateway_events / 2_000,
        )
        f = result.figures
        log(
            f"  run {run_no + 1}/{settings.runs}: direct "
            f"{_last(f, 'direct.ingest'):,.0f} events/s, gateway-fed "
            f"{_last(f, 'gateway.ingest'):,.0f} events/s, failures {len(result.failures)}"
        )
    return result


def _last(f: Figures, name: str) -> float:
    values = f.get_figure(name).values
    return values[-1] if values else float("nan")
