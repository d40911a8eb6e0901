"""`python -m qmtbus.gateway [--config FILE]`: run the qmtbus gateway until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING

from qmtbus.config import CONFIG_ENV, Config, ConfigError, config_path, load_config

if TYPE_CHECKING:
    from qmtbus.gateway.server import Server

log = logging.getLogger("gateway")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="qmtbus-gateway",
        description="Hold the broker connection and serve it over ZeroMQ.",
    )
    parser.add_argument(
        "--config", metavar="FILE", help=f"TOML config file (default: ${CONFIG_ENV}, else defaults)"
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    parser.add_argument(
        "--list-failpoints",
        action="store_true",
        help="list the crash points QMTBUS_FAILPOINT can arm (tests), then exit",
    )
    args = parser.parse_args(argv)
    if args.list_failpoints:
        from qmtbus.failpoints import listing

        print(listing("gateway"))
        return 0
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load_config(config_path(args.config))
        from qmtbus.security import check_binds

        check_binds(config)
        _arm_failpoints()
        server = _build(config)
    except (ConfigError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        server.ask_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if hasattr(signal, "SIGBREAK"):  # Windows: supervisor-win stops with CTRL_BREAK_EVENT
        signal.signal(signal.SIGBREAK, stop)
    g = config.gateway
    log.info(
        "gateway for account %s on broker %s: events %s, commands %s, epoch %s",
        g.account_id,
        g.broker,
        server.endpoints["events"],
        server.endpoints["commands"],
        server.epoch,
    )
    # What is built by now (modules, the ledger rebuilt from the journal, the simulator's
    # book) lives as long as the process: moved out of the collector's reach, so a full
    # collection no longer walks it all (7-11 ms on a 2-core VM, in the middle of a burst
    # of broker events; bench/CHANGES.md, third pass). A young collection every 10,000
    # allocations instead of 700: a burst's short-lived objects (a future per push, the events
    # waiting for their turn) mostly die before one, not after being walked several times.
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    try:
        server.run()
    finally:
        server.shutdown()
    if server.lifecycle.died:  # non-zero: supervisord restarts the gateway
        log.critical("gateway stopped: the broker thread died (%s)", server.lifecycle.died)
        return 1
    log.info("gateway stopped")
    return 0


def _arm_failpoints() -> None:
    """An unknown name in QMTBUS_FAILPOINT stops the start, not a later hit."""
    from qmtbus.failpoints import armed

    try:
        armed()
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _build(config: Config) -> Server:
    from qmtbus.gateway.broker import BrokerUnavailable, open_broker
    from qmtbus.gateway.server import Server

    try:
        broker = open_broker(config)
    except BrokerUnavailable as err:
        raise ConfigError(str(err)) from None
    server = Server(config, broker)
    server.bind()  # OSError: one sentence (the address in use, and what to change)
    return server


if __name__ == "__main__":
    sys.exit(main())
