"""RESULTS.md: the machine, each scenario's figures (median and spread over runs), the
targets met or missed and by how much, the profile, and the what-if numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bench.broker_fanout import Result as BrokerFanoutResult
from bench.broker_fanout import Settings as BrokerFanoutSettings
from bench.common import ROOT, Figure, Figures
from bench.fanout import Result as FanoutResult
from bench.fanout import Settings as FanoutSettings
from bench.ingest import Result as IngestResult
from bench.ingest import Settings as IngestSettings
from bench.memory import PROCESSES
from bench.memory import Result as MemoryResult
from bench.memory import Settings as MemorySettings
from bench.profile import Profile
from bench.roundtrip import Result as RoundtripResult
from bench.roundtrip import Settings as RoundtripSettings
from bench.underload import Result as UnderloadResult
from bench.underload import Settings as UnderloadSettings
from bench.whatif import Result as WhatifResult
from bench.whatif import Settings as WhatifSettings

MB = 1e6


@dataclass
class Run:
    mode: str
    seconds: float = 0.0
    machine: dict[str, str] = field(default_factory=dict)
    load_before: float = 0.0
    load_after: float = 0.0
    roundtrip: RoundtripResult | None = None
    roundtrip_settings: RoundtripSettings | None = None
    underload: UnderloadResult | None = None
    underload_settings: UnderloadSettings | None = None
    fanout: FanoutResult | None = None
    fanout_settings: FanoutSettings | None = None
    brokerfan: BrokerFanoutResult | None = None
    brokerfan_settings: BrokerFanoutSettings | None = None
    ingest: IngestResult | None = None
    ingest_settings: IngestSettings | None = None
    memory: MemoryResult | None = None
    memory_settings: MemorySettings | None = None
    profiles: list[Profile] = field(default_factory=list)
    whatif: WhatifResult | None = None
    whatif_settings: WhatifSettings | None = None
    loads: dict[str, tuple[float, float]] = field(default_factory=dict)  # 1-min load avg
    failures: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    target: str
    measured: str
    met: bool | None  # None: not measured
    gap: str = ""


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


# The round trip against vnpy's own engine over the same simulator (bench/vnpy_engine.py):
# like for like first (both wait for the broker's answer), then vnpy's own behaviour.
ENGINE_TARGETS = (
    (
        "vnpy_answered",
        "order round trip p50 below vnpy's engine over vnpy.rpc, both waiting for the "
        "broker's answer",
    ),
    (
        "vnpy_engine",
        "order round trip p50 below vnpy's engine over vnpy.rpc returning at "
        "order_stock_async (before the broker's answer)",
    ),
)


def verdicts(run: Run) -> list[Verdict]:
    out: list[Verdict] = []
    rt = run.roundtrip
    if rt is not None:
        f = rt.figures
        gw, echo = f.get_figure("gateway.p50").median, f.get_figure("echo.p50").median
        if "stage.intake.p50" in f and "hop.p50" in f:
            intake, hop = f.get_figure("stage.intake.p50").median, f["hop.p50"].median
            ratio = _ratio(intake, hop)
            out.append(
                Verdict(
                    "order intake (client send → broker call) p50 ≤ 2x a bare one-way hop",
                    f"{intake:,.0f} µs vs hop {hop:,.0f} µs = {ratio:.1f}x"
                    + _above_floor(f, "floor.intake", intake, hop, "hop"),
                    ratio <= 2,
                    ""
                    if ratio <= 2
                    else f"{ratio / 2:.1f}x over ({intake - 2 * hop:,.0f} µs)"
                    + _by_design(f, "floor.intake", hop, 2),
                )
            )
        ratio = _ratio(gw, echo)
        out.append(
            Verdict(
                "order round trip p50 ≤ 3x the bare echo",
                f"{gw:,.0f} µs vs echo {echo:,.0f} µs = {ratio:.1f}x"
                + _above_floor(f, "floor", gw, echo, "echo"),
                ratio <= 3,
                ""
                if ratio <= 3
                else f"{ratio / 3:.1f}x over ({gw - 3 * echo:,.0f} µs)"
                + _by_design(f, "floor", echo, 3),
            )
        )
        for key, target in ENGINE_TARGETS:
            if f"{key}.p50" not in f:
                out.append(
                    Verdict(target, "not measured: vnpy or its engine's imports missing", None)
                )
                continue
            vn = f.get_figure(f"{key}.p50").median
            out.append(
                Verdict(
                    target,
                    f"{gw:,.0f} µs vs vnpy engine {vn:,.0f} µs",
                    gw < vn,
                    "" if gw < vn else f"{_ratio(gw, vn):.1f}x vnpy's ({gw - vn:,.0f} µs)",
                )
            )
        p99 = f.get_figure("gateway.p99").median
        out.append(
            Verdict(
                "order round trip p99 under 1 ms",
                f"{p99:,.0f} µs",
                p99 < 1000,
                "" if p99 < 1000 else f"{p99 / 1000:.1f}x over ({p99 - 1000:,.0f} µs)",
            )
        )
    bf = run.brokerfan
    if bf is not None:
        rate = bf.figures.get_figure("rate").median
        lost = sum(bf.figures.get_figure("lost").values)
        # Judged over the whole burst, from the price move: the subscriber's own rate
        # (first to last event received) reads high when the gateway publishes a burst it
        # took in all at once, which says nothing of how many events a second it can make.
        whole = bf.figures.get_figure("whole").median if "whole" in bf.figures else rate
        ok = whole >= 150_000 and lost == 0
        out.append(
            Verdict(
                "broker-made events ≥ 150,000/s to a subscriber, zero loss",
                f"{whole:,.0f} events/s over the whole burst (price move → last event "
                f"received; first → last received {rate:,.0f}/s), lost {lost:,.0f}",
                ok,
                "" if ok else (f"{150_000 / whole:.1f}x short" if whole else "no data"),
            )
        )
    fo = run.fanout
    if fo is not None:
        best, at = _zero_loss_max(fo, "gateway")
        out.append(
            Verdict(
                "`note` events to one subscriber, zero loss (its own line: no target)",
                f"{best:,.0f} events/s with zero loss ({at})",
                None,
                "",
            )
        )
    ul = run.underload
    if ul is not None:
        p99 = ul.figures.get_figure("p99").median
        ticks = ul.figures.get_figure("ticks_per_s").median
        out.append(
            Verdict(
                "order p99 under 2 ms with three subscribers and 10k ticks/s",
                f"{p99:,.0f} µs (p50 {ul.figures.get_figure('p50').median:,.0f} µs; "
                f"{ticks:,.0f} ticks/s read)",
                p99 < 2000,
                "" if p99 < 2000 else f"{p99 / 2000:.1f}x over ({p99 - 2000:,.0f} µs)",
            )
        )
    ing = run.ingest
    if ing is not None:
        f = ing.figures
        rate = f.get_figure("direct.ingest").median
        lost = sum(f.get_figure("direct.lost").values)
        ok = rate >= 50_000 and lost == 0
        gap = "" if ok else (f"{50_000 / rate:.1f}x short" if rate < 50_000 else "loss")
        out.append(
            Verdict(
                "recorder ≥ 50,000 events/s sustained, zero loss",
                f"{rate:,.0f} events/s, lost {lost:,.0f} (direct publisher)",
                ok,
                gap,
            )
        )
    mem = run.memory
    if mem is not None:
        peak = max(mem.figures.get_figure("gateway.peak").values, default=float("nan"))
        out.append(
            Verdict(
                "gateway under 100 MB resident",
                f"{peak / MB:,.0f} MB at its peak under load (idle "
                f"{mem.figures.get_figure('gateway.idle').median / MB:,.0f} MB)",
                peak < 100 * MB,
                "" if peak < 100 * MB else f"{(peak - 100 * MB) / MB:,.0f} MB over",
            )
        )
    return out


def _floor(f: Figures, name: str) -> float | None:
    """The design's floor (bench/floor.py) p50 of this run, None when not measured."""
    return f[name + ".p50"].median if name + ".p50" in f else None


def _above_floor(f: Figures, name: str, qmtbus: float, base: float, base_name: str) -> str:
    """`; design floor X µs = Nx <base>; qmtbus above the floor: N µs` (the work)."""
    floor = _floor(f, name)
    if floor is None:
        return ""
    return (
        f"; design floor {floor:,.0f} µs = {_ratio(floor, base):.1f}x {base_name}; "
        f"qmtbus above the floor: {qmtbus - floor:,.0f} µs"
    )


def _by_design(f: Figures, name: str, base: float, target: float) -> str:
    floor = _floor(f, name)
    if floor is None or _ratio(floor, base) <= target:
        return ""
    return f"; missed by design: the floor alone is {_ratio(floor, base):.2f}x"


def _zero_loss_max(fo: FanoutResult, system: str) -> tuple[float, str]:
    best, at = 0.0, "none"
    for rate in fo.rates:
        lost = fo.figures.get_figure(f"{system}.{rate}.lost").values
        delivered = fo.figures.get_figure(f"{system}.{rate}.delivered")
        if lost and not any(lost) and delivered.median > best:
            best = delivered.median
            at = f"offered {_rate_name(rate)}"
    return best, at


def _rate_name(rate: int) -> str:
    return "flat out" if rate == 0 else f"{rate:,}/s"


def _f(fig: Figure, unit: str = "", digits: int = 0, scale: float = 1.0) -> str:
    return fig.fmt(unit, digits, scale)


def render(run: Run) -> str:
    lines: list[str] = []
    w = lines.append
    w("# qmtbus benchmark results")
    w("")
    w(
        f"Written by `python -m bench{' --quick' if run.mode == 'quick' else ''}` "
        f"({run.mode} mode) in {run.seconds / 60:.1f} min. Every figure is the **median "
        "over the runs, with the spread in brackets** (p25–p75 with 4 runs or more, "
        "else min–max). Each scenario measures qmtbus and its baselines in the same run, "
        "one after the other, in an order that rotates from run to run. All traffic is on "
        "loopback; every qmtbus process is the real one (`python -m qmtbus.gateway|recorder|"
        "scheduler`) with a real config file, started by tests/support.py."
    )
    w("")
    w("## Machine")
    w("")
    w("| | |")
    w("|---|---|")
    for key, value in run.machine.items():
        w(f"| {key} | {value} |")
    w(f"| load average (1 min) | {run.load_before:.2f} before, {run.load_after:.2f} after |")
    for name, (before, after) in run.loads.items():
        w(f"| load average, {name} | {before:.2f} at its start, {after:.2f} at its end |")
    w("")
    w(
        "The machine is shared (2 cores): other work running at the same time shows up "
        "as spread, mostly in the p99 columns. Baselines and qmtbus are interleaved so "
        "that it falls on both."
    )
    loads = [run.load_before, run.load_after, *(x for pair in run.loads.values() for x in pair)]
    if max(loads, default=0.0) > 2:
        w("")
        w(
            f"**This run was taken on a loaded machine** (1-minute load average up to "
            f"{max(loads):.1f} on 2 cores, from other work): absolute figures, and p99 "
            "above all, are worse than the same code on a quiet machine; compare the "
            "ratios to the baselines measured in the same run."
        )
    w("")
    if run.failures:
        w("**Scenarios that failed in this run:** " + "; ".join(run.failures))
        w("")
    w("## Targets (issue 20)")
    w("")
    w("| target | measured | verdict | gap |")
    w("|---|---|---|---|")
    for v in verdicts(run):
        verdict = (
            ("—" if "no target" in v.target else "not measured")
            if v.met is None
            else ("**met**" if v.met else "**missed**")
        )
        w(f"| {v.target} | {v.measured} | {verdict} | {v.gap or '—'} |")
    w("")
    _why(run, w)
    changes = ROOT / "bench" / "CHANGES.md"
    if changes.exists():  # hand-written: each change of the order path, before and after
        w(changes.read_text().rstrip())
        w("")
    _roundtrip(run, w)
    _underload(run, w)
    _fanout(run, w)
    _brokerfan(run, w)
    _ingest(run, w)
    _memory(run, w)
    _profiles(run, w)
    _whatif(run, w)
    w("## Reproduce")
    w("")
    w("```")
    w("make bench                      # installs the bench extra, then runs python -m bench")
    w(".venv/bin/python -m bench         # every scenario, writes bench/RESULTS.md (~7 min)")
    w(".venv/bin/python -m bench --quick # 1-minute smoke run of every scenario")
    w(".venv/bin/python -m bench --only roundtrip fanout --runs 3 --out /tmp/r.md")
    w("```")
    w("")
    w(
        "Raw per-run figures are written next to this file as results.json; py-spy's "
        "raw stacks go to the folder printed at the end of the run."
    )
    w("")
    return "\n".join(lines)


def _share(p: Profile | None, name: str, kind: str = "inclusive") -> float:
    if p is None:
        return 0.0
    rows = p.inclusive_top if kind == "inclusive" else p.self_top
    if kind == "inclusive" and p.inclusive:
        rows = list(p.inclusive.items())
    return sum(share for frame, share in rows if frame.startswith(name + " "))


def _why(run: Run, w: Any) -> None:
    """The misses explained with this run's own numbers."""
    orders = next((p for p in run.profiles if p.load.startswith("orders")), None)
    notes = next((p for p in run.profiles if p.load.startswith("notes")), None)
    rec = next((p for p in run.profiles if p.load.startswith("recorder")), None)
    rt = run.roundtrip
    w("### What the misses cost, and where")
    w("")
    if rt is not None:
        f = rt.figures
        ping, echo = f.get_figure("ping.p50").median, f.get_figure("echo.p50").median
        line = (
            f"- **Round trip.** The transport is not the cost: `Gateway.ping()` through the "
            f"same client and sockets takes {ping:,.0f} µs at p50 (bare echo {echo:,.0f} µs"
        )
        if "vnpy" in rt.systems:
            line += f", bare vnpy.rpc {f.get_figure('vnpy.p50').median:,.0f} µs"
        line += (
            "). The order's extra time is the work behind it: "
            f"{f.get_figure('stage.intake.p50').median:,.0f} µs from send to the simulator "
            "(the I/O thread's decode and risk gate, the intent journaled, then the hand-over "
            "to the broker thread), "
            f"{f.get_figure('stage.broker.p50').median:,.0f} µs from the simulator back to the "
            "I/O thread (simulator book + its own write, the order's five pushes - its "
            "response, statuses 48, 49 and 50, the asset - through xtquant's worker "
            f"thread, the wake-up pipe), {f.get_figure('stage.reply.p50').median:,.0f} µs to "
            "journal and publish the events and reply. (The per-order risk-state save is "
            "gone: risk-state.json holds only the kill switch"
        )
        if orders is not None:
            line += (
                f"; `RiskGate.record` takes {_share(orders, 'RiskGate.record'):.0%} of the "
                "gateway's GIL time under order load"
            )
        line += ".)"
        line += (
            " The cost is three thread hand-overs per order (I/O → broker → xtquant's "
            "worker → I/O, each a wake-up and a GIL hand-over; bench/floor.py "
            "measures them alone) and the work on the way, all Python under one GIL (the "
            "risk gate, the journal, the events, the simulator's book, xtquant's worker); "
            "p99 is that work meeting other threads and processes on 2 busy cores."
        )
        w(line)
        floor_line = _floor_line(f)
        if floor_line:
            w(floor_line)
    if run.fanout is not None:
        bare, _ = _zero_loss_max(run.fanout, "bare")
        line = (
            "- **Fan-out.** The gateway never lost an event, at any rate; its ceiling is the "
            "rate it can *make* events, one `note` command each (decode, emit, journal, "
            "publish, reply), not the publishing: "
        )
        if notes is not None:
            line += (
                "under notes flat out, taking requests (receive, decode, dispatch, emit) is "
                f"{_share(notes, 'Server._take_requests'):.0%} of the I/O thread's time, "
                f"`Server.emit` (stamp, encode, journal append, ledger) "
                f"{_share(notes, 'Server.emit'):.0%}, `Server._flush` (journal write, "
                f"publish, replies) {_share(notes, 'Server._flush'):.0%}: Python work per "
                "event, one GIL. "
            )
        line += (
            f"For scale, the bare Python PUB/SUB pair delivers {bare:,.0f}/s with zero loss "
            "on this machine (one Python publisher, one Python subscriber)."
        )
        w(line)
    bf = run.brokerfan
    broker = next((p for p in run.profiles if p.load.startswith("broker-made")), None)
    if bf is not None and broker is not None:
        w(
            "- **Broker-made events.** The burst is made and taken in one process: the "
            "simulator's price move fills every order on the I/O thread "
            f"(`SimTerminal.set_price` {_share(broker, 'SimTerminal.set_price'):.0%} of the "
            "gateway's GIL time, of which a `ThreadPoolExecutor.submit` per push "
            f"{_share(broker, 'ThreadPoolExecutor.submit'):.0%}), then the gateway takes "
            f"the pushes (`Server._take_items` {_share(broker, 'Server._take_items'):.0%}). "
            "With the real xtquant the fills are made in another process and xtquant's C++ "
            "thread hands each push to the worker (the `submit`) outside the GIL; here the "
            "simulator does both on the I/O thread, so the whole-burst figure carries the "
            "broker's work too."
        )
    if run.ingest is not None:
        line = (
            "- **Recorder.** Its ceiling with a publisher that is never the limit is the "
            "direct figure. "
        )
        if rec is not None:
            line += (
                "On-CPU samples of the recorder: "
                + ", ".join(f"{t} {share:.0%}" for t, share in rec.threads[:3])
                + f"; `Writer.write` (DuckDB appends) {_share(rec, 'Writer.write'):.0%}, "
                f"`Socket.recv_multipart` {_share(rec, 'Socket.recv_multipart'):.0%}, "
                f"event decoding {_share(rec, 'decode_event'):.0%}. "
            )
        line += "The recorder is another engineer's; this is for them."
        w(line)
    w("")


def _floor_line(f: Figures) -> str:
    """What the design's floor leaves for the work, against each target, in plain words."""
    floor, fi = _floor(f, "floor"), _floor(f, "floor.intake")
    if floor is None or fi is None or "echo.p50" not in f or "hop.p50" not in f:
        return ""
    echo, hop = f["echo.p50"].median, f["hop.p50"].median
    gw, intake = f.get_figure("gateway.p50").median, f.get_figure("stage.intake.p50").median
    line = (
        "- **The design's floor.** The gateway's own thread design with no work, measured "
        "in the same run (bench/floor.py: ROUTER on the I/O thread → `Inbox` to the broker "
        "thread → a push worker's `submit` → `post` back to the I/O thread → reply), takes "
        f"{floor:,.0f} µs a round trip ({_ratio(floor, echo):.2f}x the echo) and {fi:,.0f} µs "
        f"from send to the broker thread ({_ratio(fi, hop):.2f}x the hop)."
    )
    for what, ours, low, base, base_name, target in (
        ("round-trip", gw, floor, echo, "echo", 3),
        ("intake", intake, fi, hop, "hop", 2),
    ):
        if _ratio(low, base) > target:
            line += (
                f" The {what} target ({target}x the {base_name}) is below that floor, so it is "
                "missed by design: no cut in the work can meet it, only fewer or cheaper "
                "thread hand-overs."
            )
        else:
            line += (
                f" The {what} floor leaves {target * base - low:,.0f} µs under the {target}x "
                f"target for the work; qmtbus's work takes {ours - low:,.0f} µs."
            )
    return line


def _roundtrip(run: Run, w: Any) -> None:
    rt, s = run.roundtrip, run.roundtrip_settings
    if rt is None or s is None:
        return
    f = rt.figures
    w("## 1. Order round trip")
    w("")
    w(
        f"{s.runs} runs × {s.orders:,} round trips after {s.warmup:,} warm-up ones, one "
        "client, one request at a time. **gateway**: `qmtbus.Gateway.buy()` → gateway → "
        "risk gate (every check on) → simulator accepts → `order_ack` back; a limit buy of "
        "100 × 600000.SH 2% under the still market's price, so it rests on the book. "
        "Config: the defaults plus `sim.volatility = 0` (known prices) and "
        "`sim.initial_cash = 1e10`, so that neither the risk gate's nor the simulator's "
        "cash check refuses a burst of thousands of orders (with the default 1,000,000 "
        f"CNY they stop after about a thousand). A fresh gateway each run; "
        f"{rt.resting_orders:,} orders resting at the end of the last run. **ping**: "
        "`Gateway.ping()`, the same client and sockets, answered by the gateway's I/O "
        "thread without the broker. **echo**: a bare pyzmq REQ/REP server process "
        "decoding the same `order` command with msgspec and encoding an `order_ack`. "
        "**vnpy.rpc call**: vnpy 4.5.0's RpcServer (own process) and RpcClient, "
        "`client.order(req)` with the same fields as a dict (pickled), answered at once: "
        "a bare RPC, no engine, no broker. **design floor**: "
        "bench/floor.py, a process with the gateway's threads and hand-over primitives "
        "and no work: the ROUTER on an I/O thread polled with a wake-up socket pair by "
        "`zmq_poll`, the order handed to a broker thread through gateway/inbox.py's `Inbox`, "
        "which submits one push to a `ThreadPoolExecutor(max_workers=1)` (xttrader.py's push "
        "worker), whose callback hands it back with the gateway's `post` (deque, one "
        "wake-up per batch); it decodes the same `order` and encodes the same `order_ack`, "
        "from the echo's bare REQ client. Its intake is timed as the hop: wall clock "
        "before the send, wall clock when the broker thread has the order. The gateway "
        "on the simulator crosses the same threads: the simulated native client hands "
        "an order's pushes to the push worker on the calling thread, as xtquant's C++ "
        "thread would from outside the GIL, and the call's seq (`OrderSent`) waits for "
        "the I/O thread's next turn without a wake-up of its own."
    )
    w("")
    if "vnpy_engine.p50" in f or "vnpy_answered.p50" in f:
        w(
            "**vnpy engine** lines: the same order through vnpy's own engine, in one process "
            "(bench/vnpy_engine.py): `MainEngine(EventEngine())` with vnpy's default "
            "engines and settings (its file log on, as shipped; console off), a gateway "
            "modelled on vnpy_xt's trading side (`XtTdApi.send_order`: contract and type "
            "checks, a local order id, `XtQuantTrader.order_stock_async(...)`, the "
            "submitting `OrderData` pushed, the vt_orderid returned), and below it the "
            "same broker as the gateway's: xtquant's own xttrader.py over the simulated "
            "miniQMT, with the same simulator settings. A vnpy `RpcServer` serves "
            "`MainEngine.send_order` and publishes every event but the timer's, as "
            "vnpy_rpcservice's RpcEngine does; the client calls "
            '`client.send_order(OrderRequest, "XT")` as its RpcGateway does. A fresh '
            "engine and simulator each run. What each side waits for: **vnpy engine, "
            "returns at order_stock_async** is vnpy's own behaviour, the call returns "
            "when `order_stock_async` has returned, before the broker has answered (a "
            "refusal comes later as an event); **vnpy engine, waits for the broker's "
            "answer** blocks the same call until the gateway's "
            "`on_order_stock_async_response` for that order has come in, which is what "
            "qmtbus's `order_ack` waits for, so it is the like-for-like line. qmtbus "
            "does more on that path: its risk gate (every check on) and journaling the "
            "order's intent before the broker call and its events before the reply; "
            "vnpy's MainEngine path has no risk gate and no journal (its log file gets "
            "two lines per order from the event thread, never fsynced; qmtbus's journal "
            "is written before the broker call and fsynced once a second here, "
            "`gateway.journal_fsync_interval = 1`)."
        )
        w("")
    w("| system | p50 µs | p99 µs | max µs | request / reply bytes | round trips |")
    w("|---|---|---|---|---|---|")
    names = {"echo": "bare pyzmq + msgspec echo", "vnpy": "vnpy.rpc call (bare, no engine)"}
    names |= {
        "vnpy_engine": "vnpy engine over vnpy.rpc, returns at order_stock_async",
        "vnpy_answered": "vnpy engine over vnpy.rpc, waits for the broker's answer",
    }
    names |= {"hop": "bare one-way hop (client send → server decoded; wall clock)"}
    names |= {"gateway": "**qmtbus order → order_ack**", "ping": "qmtbus ping"}
    names |= {
        "floor": "design floor: I/O → broker → push worker → I/O threads, no work",
        "floor.intake": "design floor intake (client send → broker thread has it; wall clock)",
    }
    keys = ["echo", "hop", "vnpy", "vnpy_engine", "vnpy_answered", "floor", "floor.intake"]
    for key in [*keys, "gateway", "ping"]:
        if f"{key}.p50" not in f:
            continue
        size = rt.sizes.get(key.removesuffix(".intake")) or rt.sizes.get("gateway", (0, 0))
        w(
            f"| {names[key]} | {_f(f[key + '.p50'])} | {_f(f[key + '.p99'])} | "
            f"{_f(f[key + '.max'])} | {size[0]} / {size[1]} | {rt.counts.get(key, 0):,} |"
        )
    w("")
    costs = [key for key in ("echo", "floor", "gateway") if f"{key}.cpu_us" in f]
    if costs and not math.isnan(f.get_figure(f"{costs[0]}.cpu_us").median):
        w(
            "What each server process spent per order: CPU time (user + system, all its "
            "threads) and context switches (all its threads), read from /proc before and "
            "after the measured orders. Unlike latency, these hardly move with other work "
            "on the machine, so they are the figures to compare changes by."
        )
        w("")
        w("| server | CPU µs per order | context switches per order |")
        w("|---|---|---|")
        for key in costs:
            w(f"| {names[key]} | {_f(f[key + '.cpu_us'])} | {_f(f[key + '.switches'], digits=1)} |")
        w("")
    lines = (("vnpy_engine", "returns at order_stock_async"), ("vnpy_answered", "waits"))
    queued = [
        f"{f.get_figure(f'{key}.queued').median:,.0f} ({what})"
        for key, what in lines
        if f"{key}.queued" in f
    ]
    if queued:
        w(
            "Events still queued in vnpy's event engine when the last reply of a run came "
            f"back: {', '.join(queued)}. Its one event thread (OMS, the file log, the RPC "
            "publishing of every event) handles an order's events after the reply, and "
            "with orders coming one after another it can fall behind (0: it had caught "
            "up); it shares the GIL with the RpcServer thread and xttrader's callback "
            "thread, which is where vnpy's p99 goes."
        )
        w("")
    if "stage.intake.p50" in f:
        w(
            "Where the gateway's round trip goes, split at two timestamps the system "
            "records itself: the simulator's `received_ns` for the order (its ledger, "
            "written on the broker thread inside `order_stock_async`) and the `ts` of the "
            "`order_response` event (stamped when the I/O thread takes the broker's "
            "answer). Wall clock, one machine; medians over runs of each run's p50 / p99."
        )
        w("")
        w("| stage | p50 µs | p99 µs |")
        w("|---|---|---|")
        for name, text in (
            (
                "intake",
                "client send → I/O thread (decode, risk gate, intent journaled) → broker "
                "thread → simulator",
            ),
            ("broker", "simulator → push thread callback → I/O thread takes the response"),
            ("reply", "events journaled + published, ack sent → client decoded"),
        ):
            w(
                f"| {text} | {_f(f.get_figure(f'stage.{name}.p50'))} | "
                f"{_f(f.get_figure(f'stage.{name}.p99'))} |"
            )
        w("")


def _fanout(run: Run, w: Any) -> None:
    fo, s = run.fanout, run.fanout_settings
    if fo is None or s is None:
        return
    f = fo.figures
    w("## 2. Event fan-out to one subscriber")
    w("")
    w(
        f"{s.runs} runs; each offered rate for {s.seconds:g} s. **gateway**: the real "
        "gateway publishes `note` events, made by the `note` command sent from "
        f"{s.note_clients} pipelined DEALER clients ({s.note_window} in flight each) in a "
        "helper process; the offered rate is the notes the gateway acknowledged per "
        "second. **bare**: a pyzmq PUB process publishing msgspec-encoded note events "
        "(SNDHWM = the gateway's pub_hwm, 1,000,000). Both are read by the same raw SUB "
        "socket (RCVHWM 100,000, as EventStream) that decodes each event's seq. "
        "**vnpy.rpc**: RpcServer.publish in its own process, read by RpcClient's own "
        "SUB thread and callback (vnpy's defaults: HWM 1,000). lost = seqs of the step "
        "that never arrived. Event sizes: "
        + ", ".join(f"{k} {v} bytes" for k, v in fo.sizes.items())
        + ". On 2 cores the gateway case runs three busy processes (driver, gateway, "
        "subscriber), the baselines two."
    )
    w("")
    head = "| offered | " + " | ".join(
        f"{n} offered/s | {n} delivered/s | {n} lost" for n in fo.systems
    )
    w(head + " |")
    w("|---" * (1 + 3 * len(fo.systems)) + "|")
    for rate in fo.rates:
        cells = [_rate_name(rate)]
        for n in fo.systems:
            key = f"{n}.{rate}"
            cells.append(_f(f.get_figure(key + ".offered")))
            cells.append(_f(f.get_figure(key + ".delivered")))
            lost = f.get_figure(key + ".lost")
            cells.append(f"{lost.median:,.0f} (max {max(lost.values, default=0):,.0f})")
        w("| " + " | ".join(cells) + " |")
    w("")
    if fo.gateway_peak_rss:
        w(f"Gateway peak RSS during the fan-out runs: {max(fo.gateway_peak_rss) / MB:,.0f} MB.")
        w("")


def _underload(run: Run, w: Any) -> None:
    ul, s = run.underload, run.underload_settings
    if ul is None or s is None:
        return
    f = ul.figures
    w("## 1b. Order round trip under load")
    w("")
    w(
        f"{s.runs} runs × {s.orders:,} round trips after {s.warmup:,} warm-up ones, as in "
        f"section 1, while {s.symbols} codes are subscribed with `sim.quote_interval = "
        f"{s.quote_interval:g}` ({s.symbols / s.quote_interval:,.0f} ticks/s offered) and "
        f"a helper process reads every event on {s.subscribers} SUB sockets and every "
        "tick on one."
    )
    w("")
    w("| p50 µs | p99 µs | max µs | ticks/s read | events read by the slowest reader |")
    w("|---|---|---|---|---|")
    w(
        f"| {_f(f['p50'])} | {_f(f['p99'])} | {_f(f['max'])} | {_f(f['ticks_per_s'])} | "
        f"{_f(f['events_min'])} |"
    )
    w("")


def _brokerfan(run: Run, w: Any) -> None:
    bf, s = run.brokerfan, run.brokerfan_settings
    if bf is None or s is None:
        return
    f = bf.figures
    w("## 2b. Broker-made events to one subscriber")
    w("")
    w(
        f"{s.runs} runs. {s.orders:,} limit buys rest on the simulator's book (depth for all "
        "of them), then one `sim_set_price` moves the price through them: the simulator "
        "fills every one and pushes an order update and a trade for each (and position / "
        "asset updates) to xttrader's callbacks, which queue each for xtquant's own "
        "worker thread. The gateway takes each push "
        "as a broker event: client order outcome, journal, publish. A raw SUB socket "
        "(RCVHWM 100,000) counts them: rate = broker-made events / (last received - first "
        "received), each stamped on receipt and decoded after the burst; the whole burst's "
        "rate counts the same events from the price move sent (the simulator's matching and "
        "the wait for the I/O thread's first turn included); CPU = the gateway process's "
        "user + system time from the price move to the burst's last event, per event; lost = "
        "gaps in every seq received."
    )
    w("")
    kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(bf.kinds.items()))
    w("| events per run | events/s | whole burst, events/s | gateway CPU µs per event | lost |")
    w("|---|---|---|---|---|")
    whole = _f(f["whole"]) if "whole" in f else "—"
    cpu = _f(f["cpu_us"]) if "cpu_us" in f else "—"
    w(f"| {_f(f['events'])} ({kinds}) | {_f(f['rate'])} | {whole} | {cpu} | {_f(f['lost'])} |")
    w("")


def _ingest(run: Run, w: Any) -> None:
    ing, s = run.ingest, run.ingest_settings
    if ing is None or s is None:
        return
    f = ing.figures
    w("## 3. Recorder: sustained ingest and publish → queryable")
    w("")
    w(
        f"{s.runs} runs, bench/bench_recorder.py's logic. **direct**: "
        f"{s.direct_events:,} note events published flat out by a publisher bound on "
        "the gateway's addresses (serving `status` and `replay` too), so the figure is "
        "the recorder's own ceiling; events dropped at a high-water mark are replayed by "
        f"the recorder. **gateway-fed**: {s.gateway_events:,} notes through a real "
        f"gateway ({s.note_clients} pipelined note clients). ingest = events / time until "
        "the last one is queryable; zero loss is checked by `count(*) = count(DISTINCT "
        "seq) = max(seq)` in DuckDB. Latency: a probe queries `max(seq)` through the "
        "recorder's query endpoint every 50 ms; each event's latency is the probe time "
        "that first saw it minus its publish `ts` (so it includes the ~1 s / 1,000-row "
        "batching and up to 50 ms of probe interval). With the direct publisher the "
        "offered rate is above what the recorder takes, so its latency is mostly the "
        "backlog; the gateway-fed row, below the recorder's ceiling, is the steady state."
    )
    w("")
    w(
        "| source | offered events/s | ingest events/s | lost "
        "| publish→queryable p50 ms | p99 ms | recorder RSS MB |"
    )
    w("|---|---|---|---|---|---|---|")
    for key, name in (("direct", "direct publisher"), ("gateway", "real gateway")):
        w(
            f"| {name} | {_f(f.get_figure(key + '.offered'))} | "
            f"{_f(f.get_figure(key + '.ingest'))} | "
            f"{sum(f.get_figure(key + '.lost').values):,.0f} | "
            f"{_f(f.get_figure(key + '.lat_p50_ms'))} | {_f(f.get_figure(key + '.lat_p99_ms'))} | "
            f"{_f(f.get_figure(key + '.rss'), scale=1 / MB)} |"
        )
    for failure in ing.failures:
        w(f"- failure: {failure}")
    w("")


def _memory(run: Run, w: Any) -> None:
    mem, s = run.memory, run.memory_settings
    if mem is None or s is None:
        return
    f = mem.figures
    w("## 4. Resident memory (RSS)")
    w("")
    load = max(mem.events_under_load, default=0)
    w(
        f"{s.runs} runs of the whole system (gateway, recorder, scheduler with its default "
        f"jobs). idle: all caught up, {s.settle:g} s quiet. peak: sampled every 50 ms "
        f"while {s.orders:,} orders then {s.note_seconds:g} s of notes flat out go "
        f"through (up to {load:,} events per run) and the recorder catches up. after: "
        "once it has."
    )
    w("")
    w("| process | idle MB | peak under load MB | after MB |")
    w("|---|---|---|---|")
    for name in PROCESSES:
        w(
            f"| {name} | {_f(f.get_figure(name + '.idle'), scale=1 / MB)} | "
            f"{_f(f.get_figure(name + '.peak'), scale=1 / MB)} | "
            f"{_f(f.get_figure(name + '.after'), scale=1 / MB)} |"
        )
    w("")
    w("## 5. Gateway start → ready")
    w("")
    w(
        f"{s.starts} starts, each with a new data folder, on the simulator: from the "
        "process's start (just before Popen) to the `ts` of its `ready` gateway event "
        "(read back from its journal); `first event` is the `ts` of its first event "
        "(interpreter start, imports, config, journal and store open)."
    )
    w("")
    w("| | seconds |")
    w("|---|---|")
    w(f"| start → first event | {_f(f.get_figure('startup.first_event'), digits=3)} |")
    w(f"| start → ready | {_f(f.get_figure('startup.ready'), digits=3)} |")
    rt_starts = run.roundtrip.startup if run.roundtrip else []
    if rt_starts:
        fig = Figure(list(rt_starts))
        w(f"| start → ready, the order round-trip runs' gateways | {_f(fig, digits=3)} |")
    w("")


def _profiles(run: Run, w: Any) -> None:
    if not run.profiles:
        return
    w("## Profile: where the gateway's time goes")
    w("")
    w(
        "py-spy 200 Hz (the broker-made burst 1 kHz), `--gil --nonblocking` on the running "
        "gateway: a share is the "
        "share of samples in which that function (with what it calls, for *inclusive*) "
        "held the GIL, i.e. of the Python work the process did."
    )
    w("")
    for p in run.profiles:
        w(f"### {p.load}: {p.rate:,.0f}/s while sampled, {p.samples:,} samples")
        w("")
        w("threads: " + ", ".join(f"{t} {share:.0%}" for t, share in p.threads))
        w("")
        w("| inclusive | share | self | share |")
        w("|---|---|---|---|")
        for (fi, si), (fs, ss) in zip(p.inclusive_top, p.self_top, strict=False):
            w(f"| `{fi}` | {si:.1%} | `{fs}` | {ss:.1%} |")
        w("")


def _whatif(run: Run, w: Any) -> None:
    wi, s = run.whatif, run.whatif_settings
    if wi is None or s is None:
        return
    f = wi.figures
    w("## What-if: proposed gateway hot-path changes, measured")
    w("")
    w(
        f"{s.runs} runs × {s.orders:,} orders (same load as scenario 1) then "
        f"{s.note_seconds:g} s of notes flat out (as scenario 2's last step), the real gateway "
        "started through `python -m bench.whatif`, which applies the change to the "
        "imported module and runs the gateway's own main(); the gateway's files are not "
        "touched. See bench/whatif.py for each change."
    )
    w("")
    w("| gateway | order p50 µs | order p99 µs | notes flat out, delivered/s | lost |")
    w("|---|---|---|---|---|")
    for v in wi.variants:
        key = v or "stock"
        lost = sum(f.get_figure(key + ".notes_lost").values)
        w(
            f"| {key} | {_f(f.get_figure(key + '.p50'))} | {_f(f.get_figure(key + '.p99'))} | "
            f"{_f(f.get_figure(key + '.notes'))} | {lost:,.0f} |"
        )
    w("")


def raw(run: Run) -> dict[str, Any]:
    def figs(x: Any) -> dict[str, list[float]] | None:
        return x.figures.raw() if x is not None else None

    out: dict[str, Any] = {
        "mode": run.mode,
        "machine": run.machine,
        "seconds": run.seconds,
        "roundtrip": figs(run.roundtrip),
        "fanout": figs(run.fanout),
        "brokerfan": figs(run.brokerfan),
        "underload": figs(run.underload),
        "recorder": figs(run.ingest),
        "memory": figs(run.memory),
        "whatif": figs(run.whatif),
    }
    if run.roundtrip is not None:
        out["roundtrip_startup"] = run.roundtrip.startup
        out["roundtrip_sizes"] = run.roundtrip.sizes
        out["roundtrip_counts"] = run.roundtrip.counts
        out["roundtrip_resting_orders"] = run.roundtrip.resting_orders
    return out


__all__ = ["Figures", "Run", "raw", "render", "verdicts"]
