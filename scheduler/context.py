"""What a job function receives: `def my_job(ctx: JobContext) -> object`."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qmtbus import Gateway
from qmtbus.config import Config


@dataclass(frozen=True)
class JobContext:
    """One run of one job.

    - `gateway`: a qmtbus.Gateway client of this run's own (a client is not
      shared between threads), closed by the scheduler when the job returns.
    - `log`: the logger "scheduler.job.<name>" (stderr, like every qmtbus log).
    - `trading_day`: the Shanghai date of `scheduled_for`; for a job with
      `trading_days_only` it is a trading day (qmtbus.calendar).
    - `scheduled_for`: the cron time of this run (aware, Asia/Shanghai); the
      run may start later under misfire = "run_late".
    - `args`: the job's `args` table from the config.
    - `stopping`: set when the scheduler was asked to stop; a long job should
      check it and return early.

    What the job returns (if not None) goes into the run's note as `result`,
    as text; what it raises makes the run's outcome "error".
    """

    name: str
    gateway: Gateway
    log: logging.Logger
    trading_day: dt.date
    scheduled_for: dt.datetime
    args: Mapping[str, Any]
    config: Config
    stopping: threading.Event

    def note(self, topic: str, data: dict[str, Any]) -> int:
        """Publish a `note` event on the bus (an alert, a signal); returns its seq."""
        return self.gateway.note(topic, data)
