"""Job functions the scheduler tests name in their configs (importable as
tests.scheduler.jobs_for_tests with PYTHONPATH at the repo root).

Jobs that must be observable from the test process append a line to the file
named by args["marker"]: one line per run that started.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from qmtbus.scheduler import JobContext

NOT_A_FUNCTION = 42


def _mark(ctx: JobContext, what: str) -> None:
    with open(Path(ctx.args["marker"]), "a") as f:
        f.write(f"{what} {ctx.scheduled_for.isoformat()}\n")


def mark(ctx: JobContext) -> str:
    """Record that it ran."""
    _mark(ctx, "ran")
    return "marked"


def sleep_then_mark(ctx: JobContext) -> None:
    """A slow job: marks its start, sleeps args["seconds"], marks its end."""
    _mark(ctx, "started")
    time.sleep(float(ctx.args["seconds"]))
    _mark(ctx, "finished")


def fail(ctx: JobContext) -> None:
    _mark(ctx, "failing")
    raise RuntimeError("the strategy found no prices")


def buy_one_lot(ctx: JobContext) -> dict[str, Any]:
    """Place a small limit buy through the job's client, tagged with the job's name."""
    ack = ctx.gateway.buy(
        ctx.args["stock_code"],
        100,
        float(ctx.args["price"]),
        strategy_name=ctx.name,
        client_order_id=ctx.args["client_order_id"],
    )
    _mark(ctx, "ordered")
    return {"client_order_id": ack.client_order_id, "status": ack.status}


def takes_two(first: object, second: object) -> None:
    """Not a job: a job takes exactly one argument."""
