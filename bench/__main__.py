"""`python -m bench [--quick]`: run every scenario and write bench/RESULTS.md.

Scenarios: roundtrip (order round trip and intake vs bare echo, bare one-way
hop, vnpy.rpc, vnpy's own engine over the same simulator, and the design's floor;
CPU and context switches per order of each server), underload (order round trip
with three event readers and 10,000 ticks/s), fanout (note fan-out vs bare
PUB/SUB vs vnpy.rpc publish), brokerfan (a burst of fills made by the simulator,
to one subscriber), recorder (ingest and publish -> queryable), memory (RSS idle
and under load; start -> ready), profile (py-spy on the gateway under load),
whatif (proposed gateway changes, measured).
The full run takes about 10 minutes on 2 cores; --quick about one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import (
    broker_fanout,
    fanout,
    ingest,
    memory,
    profile,
    report,
    roundtrip,
    underload,
    whatif,
)
from bench.common import ROOT, load_average, machine

SCENARIOS = (
    "roundtrip",
    "underload",
    "fanout",
    "brokerfan",
    "recorder",
    "memory",
    "profile",
    "whatif",
)


@dataclass
class Plan:
    roundtrip: roundtrip.Settings
    underload: underload.Settings
    fanout: fanout.Settings
    brokerfan: broker_fanout.Settings
    recorder: ingest.Settings
    memory: memory.Settings
    whatif: whatif.Settings
    profile_seconds: float


def plan(quick: bool, runs: int | None) -> Plan:
    if quick:
        p = Plan(
            roundtrip.Settings(runs=1, orders=200, warmup=50),
            underload.Settings(runs=1, orders=300, warmup=50),
            fanout.Settings(runs=1, rates=(10_000, 0), seconds=0.3),
            broker_fanout.Settings(runs=1, orders=1000),
            ingest.Settings(runs=1, direct_events=20_000, gateway_events=5_000),
            memory.Settings(runs=1, orders=200, note_seconds=0.5, settle=0.5, starts=2),
            whatif.Settings(runs=1, orders=200, warmup=50, note_seconds=0.5),
            profile_seconds=2.0,
        )
    else:
        p = Plan(
            roundtrip.Settings(),
            underload.Settings(),
            fanout.Settings(),
            broker_fanout.Settings(),
            ingest.Settings(),
            memory.Settings(),
            whatif.Settings(),
            profile_seconds=6.0,
        )
    if runs:
        for s in (p.roundtrip, p.underload, p.fanout, p.brokerfan, p.recorder, p.memory, p.whatif):
            s.runs = runs
    return p


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 1-minute smoke run")
    parser.add_argument("--runs", type=int, default=None, help="runs per scenario")
    # whatif's patches (in-place risk file, int flags, fixed offset) are all in the
    # gateway now: it runs only when asked for
    default = [name for name in SCENARIOS if name != "whatif"]
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, default=default)
    parser.add_argument(
        "--out", type=Path, default=None, help="RESULTS file (default bench/RESULTS.md)"
    )
    parser.add_argument("--profile-dir", type=Path, default=None, help="py-spy raw stacks")
    args = parser.parse_args(argv)
    out: Path = args.out or ROOT / "bench" / "RESULTS.md"
    s = plan(args.quick, args.runs)
    run = report.Run(mode="quick" if args.quick else "full", machine=machine())
    run.load_before = load_average()
    start = time.monotonic()

    def log(text: str) -> None:
        print(text, flush=True)

    def guarded(name: str, fn: Any) -> Any:
        """A scenario that fails (e.g. a process stopped by someone else on a shared
        machine) is reported as failed; the others still run."""
        try:
            return fn()
        except Exception as err:
            log(f"  {name} FAILED: {type(err).__name__}: {str(err)[:500]}")
            run.failures.append(f"{name}: {type(err).__name__}: {str(err)[:500]}")
            return None

    if "roundtrip" in args.only:
        log("1. order round trip")
        load = load_average()
        run.roundtrip_settings = s.roundtrip
        run.roundtrip = guarded("round trip", lambda: roundtrip.run(s.roundtrip, log))
        run.loads["round trip"] = (load, load_average())
    if "underload" in args.only:
        log("1b. order round trip under load")
        load = load_average()
        run.underload_settings = s.underload
        run.underload = guarded("under load", lambda: underload.run(s.underload, log))
        run.loads["under load"] = (load, load_average())
    if "fanout" in args.only:
        log("2. event fan-out")
        load = load_average()
        run.fanout_settings = s.fanout
        run.fanout = guarded("fan-out", lambda: fanout.run(s.fanout, log))
        run.loads["fan-out"] = (load, load_average())
    if "brokerfan" in args.only:
        log("2b. broker-made events to one subscriber")
        load = load_average()
        run.brokerfan_settings = s.brokerfan
        run.brokerfan = guarded("broker fan-out", lambda: broker_fanout.run(s.brokerfan, log))
        run.loads["broker fan-out"] = (load, load_average())
    if "recorder" in args.only:
        log("3. recorder ingest")
        load = load_average()
        run.ingest_settings = s.recorder
        run.ingest = guarded("recorder", lambda: ingest.run(s.recorder, log))
        run.loads["recorder"] = (load, load_average())
    if "memory" in args.only:
        log("4./5. memory, start -> ready")
        load = load_average()
        run.memory_settings = s.memory
        run.memory = guarded("memory", lambda: memory.run(s.memory, log))
        run.loads["memory"] = (load, load_average())
    if "profile" in args.only:
        log("profile (py-spy)")
        load = load_average()
        folder = args.profile_dir or Path(tempfile.mkdtemp(prefix="qmtbus-bench-profile-"))
        run.profiles = guarded("profile", lambda: profile.run(s.profile_seconds, folder, log)) or []
        run.loads["profile"] = (load, load_average())
    if "whatif" in args.only:
        log("what-if (proposed gateway changes)")
        load = load_average()
        run.whatif_settings = s.whatif
        run.whatif = guarded("what-if", lambda: whatif.run(s.whatif, log))
        run.loads["what-if"] = (load, load_average())

    run.seconds = time.monotonic() - start
    run.load_after = load_average()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.render(run))
    (out.parent / f"{out.stem.lower()}.json").write_text(json.dumps(report.raw(run), indent=1))
    log(f"\nwrote {out} ({run.seconds / 60:.1f} min)")
    for v in report.verdicts(run):
        verdict = "n/a" if v.met is None else ("MET" if v.met else "MISSED")
        log(f"  {verdict:6} {v.target}: {v.measured}" + (f" — {v.gap}" if v.gap else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
