"""`python -m qmtbus.scheduler [--config FILE]`: run the configured jobs until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from qmtbus import Gateway
from qmtbus.calendar import load_calendar
from qmtbus.config import Config, ConfigError, config_path, load_config
from qmtbus.scheduler.jobs import JobError, load_jobs
from qmtbus.scheduler.report import Reporter
from qmtbus.scheduler.runner import Runner
from qmtbus.scheduler.state import StateFile, StateLocked

log = logging.getLogger("scheduler")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="qmtbus-scheduler", description="Run the qmtbus jobs on trading days."
    )
    parser.add_argument("--config", help="the qmtbus TOML file (default: $QMTBUS_CONFIG)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # APScheduler logs every add and run at INFO; our own lines say the same in trader's words
    logging.getLogger("apscheduler").setLevel(logging.WARNING)

    try:
        config = load_config(config_path(args.config))
        calendar = load_calendar(config)
        # user job modules are imported here, so a bad one stops start-up, not a run
        jobs = load_jobs(config.scheduler, calendar)
        state = open_state(Path(config.scheduler.state_file))
    except (ConfigError, JobError, StateLocked, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if hasattr(signal, "SIGBREAK"):  # Windows: supervisor-win stops with CTRL_BREAK_EVENT
        signal.signal(signal.SIGBREAK, on_signal)

    reporter = Reporter(lambda: connect(config))
    # miniQMT's calendar is updated by the terminal (and may come up after us): daily
    reload = (lambda: load_calendar(config)) if config.gateway.broker == "xtquant" else None
    runner = Runner(
        config, jobs, calendar, state, reporter, lambda: connect(config), reload_calendar=reload
    )
    reporter.start()
    runner.start()
    while not stop.wait(1.0):  # a timed wait lets the signal handler run promptly
        pass
    still_running = runner.stop(timeout=config.scheduler.stop_timeout)
    log.info("scheduler stopped")
    state.close()
    if still_running:
        # the pool's worker threads would hold the interpreter open until the jobs end
        logging.shutdown()
        os._exit(0)
    return 0


def open_state(path: Path) -> StateFile:
    """The state file, locked for this process; raises StateLocked with the fix."""
    try:
        state = StateFile(path)
        state.lock()
    except OSError as err:  # a folder without write rights, or a file where a folder should be
        raise StateLocked(
            f"cannot use the state file {path} ({err.strerror or err}); fix "
            "scheduler.state_file or the folder's permissions"
        ) from None
    return state


def connect(config: Config) -> Gateway:
    """A gateway client; each job run gets its own, closed when the run ends."""
    return Gateway.from_config(config)


if __name__ == "__main__":
    sys.exit(main())
