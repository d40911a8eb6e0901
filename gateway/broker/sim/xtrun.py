"""`python -m qmtbus.gateway.broker.sim.xtrun [options] script.py [args]`: an unchanged
xtquant script against a private, in-process simulated miniQMT; no gateway, no bus.

`qmtbus xt run --sim script.py` re-executes this module with the same interpreter (the
client package never imports the gateway's). It opens a SimTerminal in a data folder
of its own (a temporary one, removed at the end, unless --data DIR), lets that terminal
answer an XtQuantTrader built with any path (the script keeps miniQMT's userdata_mini
path), loads xtquant's own xttrader.py over the simulated native module, and runs the
script as __main__. The terminal's account is --account, else the config's
gateway.account_id (SIM0001 by default): a script subscribing another account gets -1,
as miniQMT answers for an account it does not hold. xtdata's get_full_tick,
get_market_data(_ex) and get_instrument_detail read the same terminal, get_trading_dates
the trading calendar; other xtdata functions raise NotImplementedError naming themselves.
"""

from __future__ import annotations

import argparse
import os
import runpy
import signal
import sys
import tempfile
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec

from qmtbus import xtimport
from qmtbus.calendar import TradingCalendar, load_calendar
from qmtbus.config import Config, ConfigError, config_path, load_config
from qmtbus.gateway.broker import BrokerUnavailable
from qmtbus.gateway.broker.sim import native, terminal
from qmtbus.gateway.broker.xtload import load_xttrader
from qmtbus.xt import history
from qmtbus.xtimport import import_xtquant


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qmtbus xt run --sim",
        description="Run an unchanged xtquant script against a private simulated miniQMT.",
    )
    parser.add_argument("--config", default=None, help="TOML config (or $QMTBUS_CONFIG)")
    parser.add_argument(
        "--account", default=None, help="the simulated account (default gateway.account_id)"
    )
    parser.add_argument(
        "--data", default=None, help="keep the simulator's books here (default: a temp dir)"
    )
    parser.add_argument("script", help="the xtquant script")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's own arguments")
    return parser


def sim_xtdata(sim: terminal.SimTerminal, config: Config) -> ModuleType:
    """`xtquant.xtdata` over `sim`: get_full_tick; anything else names itself as not there."""
    module = ModuleType("xtquant.xtdata", "xtdata over the private simulator of xtrun")

    def get_full_tick(code_list: Iterable[str]) -> dict[str, dict[str, Any]]:
        codes = [code_list] if isinstance(code_list, str) else list(code_list)
        found = {code: sim.full_tick(code) for code in codes}
        return {code: tick for code, tick in found.items() if tick is not None}

    def missing(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        def not_simulated(*_: Any, **__: Any) -> Any:
            raise NotImplementedError(
                f"xtdata.{name} is not simulated by `qmtbus xt run --sim` (get_full_tick, "
                "get_market_data(_ex), get_instrument_detail and get_trading_dates are)"
            )

        return not_simulated

    def fetch(
        stock_code: str, period: str, count: int, start_ms: int, end_ms: int
    ) -> list[dict[str, Any]]:
        return sim.bars(stock_code, period, count, start_ms, end_ms) or []

    get_market_data_ex, get_market_data = history.bind(fetch)

    calendars: list[TradingCalendar] = []  # loaded at the first call (about a second)

    def get_trading_dates(
        market: str, start_time: str = "", end_time: str = "", count: int = -1
    ) -> list[int]:
        if not calendars:
            # xtquant.xtdata is this module here: no miniQMT calendar lies below it
            gateway = msgspec.structs.replace(config.gateway, broker="sim")
            calendars.append(load_calendar(msgspec.structs.replace(config, gateway=gateway)))
        calendar = calendars[0]
        return history.trading_dates(
            calendar.is_trading_day, calendar.first_day, market, start_time, end_time, count
        )

    def get_instrument_detail(stock_code: str, iscomplete: bool = False) -> Any:
        return sim.instrument_detail(stock_code)

    module.get_full_tick = get_full_tick  # type: ignore[attr-defined]
    module.get_market_data_ex = get_market_data_ex  # type: ignore[attr-defined]
    module.get_market_data = get_market_data  # type: ignore[attr-defined]
    module.get_instrument_detail = get_instrument_detail  # type: ignore[attr-defined]
    module.get_trading_dates = get_trading_dates  # type: ignore[attr-defined]
    module.__getattr__ = missing  # type: ignore[method-assign]
    return module


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds the script, so the books are saved and closed


def run(
    script: str, args: Sequence[str], directory: Path, config_file: str | None, account: str | None
) -> int:
    config = load_config(config_path(config_file))
    account_id = account or config.gateway.account_id
    load_xttrader(native)  # before the terminal: refused if the real xttrader is loaded
    sim = terminal.SimTerminal(directory, config.sim, account_id)
    try:
        sim.start()
        terminal.serve_any_path(sim)
        package = import_xtquant()
        sys.modules["xtquant.xtdata"] = sim_xtdata(sim, config)
        setattr(package, "xtdata", sys.modules["xtquant.xtdata"])  # noqa: B010
        print(
            f"qmtbus xt --sim: simulated miniQMT, account {account_id}, books in {directory}",
            file=sys.stderr,
        )
        sys.argv = [script, *args]
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as exit:
            code = exit.code
            return code if isinstance(code, int) else (0 if code is None else 1)
        except Exception:  # the script's own error, as `python script.py` shows it
            traceback.print_exc()
            return 1
        return 0
    finally:
        sim.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not os.path.isfile(args.script):
        print(
            f"qmtbus xt: no script at {args.script}: give the path of a Python file",
            file=sys.stderr,
        )
        return 2
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _terminate)
    try:
        if args.data:
            Path(args.data).mkdir(parents=True, exist_ok=True)
            return run(args.script, args.args, Path(args.data), args.config, args.account)
        with tempfile.TemporaryDirectory(prefix="qmtbus-xt-sim-") as temp:
            return run(args.script, args.args, Path(temp), args.config, args.account)
    except (ConfigError, BrokerUnavailable) as err:
        print(f"qmtbus xt: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        if err.name != "xtquant":
            raise
        print(f"qmtbus xt: {xtimport.MISSING}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
