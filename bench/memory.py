"""Scenarios 4 and 5: resident memory of each process idle and under load; start -> ready.

Memory: one whole system per run (gateway, recorder, scheduler with its default
jobs), RSS read with psutil: idle (everything caught up, 2 s quiet), the peak
while a burst of orders and then a flood of notes goes through (sampled every
50 ms), and after the recorder has caught up again.

Start-up: a fresh gateway (new data folder) per run; the time from the
process's start to the `ts` of its `ready` gateway event, read back from its
journal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bench.common import (
    CODE,
    Figures,
    Peer,
    RssSampler,
    bench_stack,
    resting_buy_price,
    rss,
    start_gateway_timed,
    stop_all,
)
from qmtbus import Gateway, RecorderClient, protocol
from tests.support import Proc, call, wait_for

PROCESSES = ("gateway", "recorder", "scheduler")


@dataclass
class Settings:
    runs: int = 5
    orders: int = 2000
    note_seconds: float = 3.0
    settle: float = 2.0
    starts: int = 5


@dataclass
class Result:
    figures: Figures = field(default_factory=Figures)
    events_under_load: list[int] = field(default_factory=list)


def _caught_up(stack: Any, rec: RecorderClient) -> bool:
    last = call(stack.commands_address, protocol.GetStatus()).last_seq
    try:
        return bool(rec.status().last_seq >= last)
    except Exception:
        return False


def memory_run(settings: Settings, result: Result) -> None:
    stack = bench_stack("memory")
    started = start_gateway_timed(stack)
    recorder = Proc("recorder", stack).start()
    scheduler = Proc("scheduler", stack).start()
    procs = {"gateway": started.proc, "recorder": recorder, "scheduler": scheduler}
    try:
        with RecorderClient(stack.query_address, timeout=2.0, retries=10) as rec:
            wait_for(lambda: _caught_up(stack, rec), 60, "recorder caught up")
            time.sleep(settings.settle)
            for name in PROCESSES:
                if not procs[name].alive():
                    raise RuntimeError(f"{name} exited:\n{procs[name].log()[-2000:]}")
                result.figures.add(f"{name}.idle", rss(procs[name].pid))
            first = call(stack.commands_address, protocol.GetStatus()).last_seq
            sampler = RssSampler({n: p.pid for n, p in procs.items()})
            price = resting_buy_price()
            with Gateway(stack.commands_address, stack.events_address, timeout=10) as gw:
                for _ in range(settings.orders):
                    gw.buy(CODE, 100, price)
            with Peer("notes", stack.commands_address, "2", "64") as peer:
                peer.ask(rate=0, seconds=settings.note_seconds)
            last = call(stack.commands_address, protocol.GetStatus()).last_seq
            wait_for(lambda: _caught_up(stack, rec), 120, "recorder caught up after load")
            peaks = sampler.stop()
            result.events_under_load.append(last - first)
            for name in PROCESSES:
                result.figures.add(f"{name}.peak", peaks[name])
                result.figures.add(f"{name}.after", rss(procs[name].pid))
    finally:
        stop_all([scheduler, recorder, started.proc])


def startup_run(result: Result) -> None:
    stack = bench_stack("startup")
    started = start_gateway_timed(stack)
    try:
        result.figures.add("startup.ready", started.ready_s)
        result.figures.add("startup.first_event", started.first_event_s)
    finally:
        stop_all([started.proc])


def run(settings: Settings, log: Any = print) -> Result:
    result = Result()
    for run_no in range(settings.runs):
        memory_run(settings, result)
        f = result.figures
        log(
            f"  memory run {run_no + 1}/{settings.runs}: "
            + ", ".join(
                f"{n} {f[n + '.idle'].values[-1] / 1e6:.0f}/"
                f"{f[n + '.peak'].values[-1] / 1e6:.0f} MB"
                for n in PROCESSES
            )
            + " (idle/peak)"
        )
    for _ in range(settings.starts):
        startup_run(result)
    log(f"  start -> ready: {result.figures['startup.ready'].fmt(' s', 3)}")
    return result
