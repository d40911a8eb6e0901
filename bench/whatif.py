"""What-if: the order round trip of the real gateway with a proposed hot-path change applied.

The gateway's files are not edited: `python -m bench.whatif PATCHES --config FILE`
applies the named changes to the imported modules, then runs the gateway's own
`main()`. Each patch is the exact change proposed for the gateway's source:

- `risk_inplace`: gateway/risk/state.py `save_state` keeps the state file open
  and rewrites it in place with one seek + `os.write` (padded with spaces to the old
  length; JSON ignores trailing whitespace; fsync when durable), instead of
  mkstemp + write + rename for every order. A kill -9 cannot tear one small
  write(2); a power cut may, and a torn file reads as unreadable, which halts:
  the safe side the docstring already accepts for the per-order counters.
- `int_flags`: gateway/server.py `_flush` sends each frame with `sock.send(frame,
  SNDMORE_INT)` where `SNDMORE_INT = int(zmq.SNDMORE)`, instead of
  `send_multipart(...)` (whose `zmq.SNDMORE | flags` is Python enum.Flag
  arithmetic, ~3 µs a frame) and without `copy=False` (a zmq.Frame per small
  payload costs more than the copy). Patched here as Socket.send_multipart in
  the gateway process, which is the same calls.
- `fixed_tz`: gateway/window.py `trading_day` converts with a fixed UTC+8 offset
  (as gateway/risk/state.py already does) instead of ZoneInfo; Book.client_orders
  calls it on every access, several times per order.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    CODE,
    ROOT,
    Figures,
    Peer,
    bench_stack,
    percentile,
    resting_buy_price,
    stop_all,
)

PATCHES = ("risk_inplace", "int_flags", "fixed_tz")


# -- the patches --------------------------------------------------------------------


def _patch_risk_inplace() -> None:
    import msgspec

    import qmtbus.gateway.risk.gate as gate
    import qmtbus.gateway.risk.state as state

    files: dict[Path, tuple[int, int]] = {}  # path -> (fd, bytes written last)

    def save_state(path: Path, risk: Any, *, durable: bool = True) -> None:
        fd, size = files.get(path, (-1, 0))
        if fd < 0 or os.fstat(fd).st_ino != _inode(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, size = os.open(path, os.O_RDWR | os.O_CREAT, 0o644), os.path.getsize(path)
        data = msgspec.json.format(state._encoder.encode(risk)) + b"\n"
        if len(data) < size:
            data += b" " * (size - len(data))
        os.lseek(fd, 0, os.SEEK_SET)  # portable: Windows has no os.pwrite
        os.write(fd, data)
        if durable:
            os.fsync(fd)
        files[path] = (fd, len(data))

    setattr(state, "save_state", save_state)  # noqa: B010 - patching a module
    setattr(gate, "save_state", save_state)  # noqa: B010


def _inode(path: Path) -> int:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return -1


def _patch_fixed_tz() -> None:
    import qmtbus.gateway.server as server
    import qmtbus.gateway.window as window

    shanghai = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")

    def trading_day(now: dt.datetime | None = None) -> str:
        return (now or dt.datetime.now(shanghai)).astimezone(shanghai).date().isoformat()

    setattr(window, "trading_day", trading_day)  # noqa: B010
    setattr(server, "trading_day", trading_day)  # noqa: B010


def _patch_int_flags() -> None:
    import zmq

    more = int(zmq.SNDMORE)

    def send_multipart(
        self: Any, msg_parts: Any, flags: int = 0, copy: bool = True, track: bool = False
    ) -> Any:
        send, last = self.send, len(msg_parts) - 1
        for i, part in enumerate(msg_parts):
            if i < last:
                send(part, more | int(flags))
            else:
                return send(part, int(flags))
        return None

    setattr(zmq.Socket, "send_multipart", send_multipart)  # noqa: B010


def apply(patches: list[str]) -> None:
    fns = {
        "risk_inplace": _patch_risk_inplace,
        "int_flags": _patch_int_flags,
        "fixed_tz": _patch_fixed_tz,
    }
    for name in patches:
        fns[name]()


# -- measuring ------------------------------------------------------------------------


@dataclass
class Settings:
    runs: int = 3
    orders: int = 2000
    warmup: int = 300
    variants: tuple[str, ...] = ("", "risk_inplace", "int_flags", "risk_inplace,int_flags,fixed_tz")
    note_seconds: float = 1.5


@dataclass
class Result:
    figures: Figures = field(default_factory=Figures)
    variants: tuple[str, ...] = ()


def _variant_run(variant: str, settings: Settings, result: Result) -> None:
    from qmtbus import Gateway
    from tests.support import Proc, wait_ready

    stack = bench_stack("whatif")
    module = "bench.whatif" if variant else "gateway"
    env = {"PYTHONPATH": str(ROOT), "QMTBUS_BENCH_PATCHES": variant}
    proc = Proc(module, stack, env=env).start()
    try:
        wait_ready(stack, proc, 30)
        price = resting_buy_price()
        lat: list[float] = []
        with Gateway(stack.commands_address, stack.events_address, timeout=10, retries=0) as gw:
            for i in range(settings.warmup + settings.orders):
                t = time.perf_counter_ns()
                ack = gw.buy(CODE, 100, price)
                elapsed = time.perf_counter_ns() - t
                if ack.status != "accepted":
                    raise RuntimeError(f"what-if {variant}: order not accepted: {ack}")
                if i >= settings.warmup:
                    lat.append(elapsed / 1000)
        key = variant or "stock"
        result.figures.add(f"{key}.p50", percentile(lat, 50))
        result.figures.add(f"{key}.p99", percentile(lat, 99))
        _notes(stack, key, settings, result)
    finally:
        stop_all([proc])


def _notes(stack: Any, key: str, settings: Settings, result: Result) -> None:
    """Notes flat out, as scenario 2's last step: acknowledged and delivered per second."""
    from bench import fanout

    sub = fanout.RawSubscriber(stack.events_address)
    step = fanout.Result()
    try:
        with Peer("notes", stack.commands_address, "4", "64") as peer:
            fanout._warm(peer, sub.counter)
            fanout._step(peer, sub.counter, 0, settings.note_seconds, step, key)
    finally:
        sub.close()
    result.figures.add(f"{key}.notes", step.figures[f"{key}.0.delivered"].values[-1])
    result.figures.add(f"{key}.notes_lost", step.figures[f"{key}.0.lost"].values[-1])


def run(settings: Settings, log: Any = print) -> Result:
    result = Result(variants=settings.variants)
    for run_no in range(settings.runs):
        k = run_no % len(settings.variants)
        for variant in settings.variants[k:] + settings.variants[:k]:
            _variant_run(variant, settings, result)
        log(
            f"  run {run_no + 1}/{settings.runs}: "
            + ", ".join(
                f"{v or 'stock'} p50 {result.figures[(v or 'stock') + '.p50'].values[-1]:.0f} us"
                f" notes {result.figures[(v or 'stock') + '.notes'].values[-1]:,.0f}/s"
                for v in settings.variants
            )
        )
    return result


def main() -> int:
    patches = [p for p in os.environ.get("QMTBUS_BENCH_PATCHES", "").split(",") if p]
    apply(patches)
    from qmtbus.gateway.__main__ import main as gateway_main

    return gateway_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
