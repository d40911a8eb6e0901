"""`python -m qmtbus.xt run script.py [args]` (also `qmtbus xt run …`)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import traceback
from collections.abc import Sequence

from qmtbus import xtimport
from qmtbus.config import ConfigError

SIM_RUNNER = "qmtbus.gateway.broker.sim.xtrun"  # run, never imported: qmtbus imports no gateway


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qmtbus xt",
        description="Run an unchanged xtquant script through the qmtbus gateway.",
    )
    parser.add_argument("--config", default=None, help="TOML config (or $QMTBUS_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run SCRIPT with xtquant's XtQuantTrader on the bus")
    run.add_argument(
        "--gone-after",
        type=float,
        default=None,
        help="seconds of silence before the script's on_disconnected (default 60)",
    )
    run.add_argument(
        "--sim",
        action="store_true",
        help="no gateway: a private in-process simulated miniQMT (docs/xtquant.md)",
    )
    run.add_argument(
        "--account", default=None, help="with --sim: the simulated account (gateway.account_id)"
    )
    run.add_argument(
        "--data", default=None, help="with --sim: keep the simulator's books in this folder"
    )
    run.add_argument("script", help="the xtquant script")
    run.add_argument("args", nargs=argparse.REMAINDER, help="the script's own arguments")
    return parser


def run_sim(args: argparse.Namespace, config: str | None) -> int:
    """Re-execute as the simulator's own runner (the gateway package's module, which this
    package must not import): same interpreter, same process on POSIX."""
    command = [sys.executable, "-m", SIM_RUNNER]
    for flag, value in (("--config", config), ("--account", args.account), ("--data", args.data)):
        if value is not None:
            command += [flag, value]
    command += ["--", args.script, *args.args]
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execv(sys.executable, command)  # signals to this process reach the script
    return subprocess.call(command)


def main(argv: Sequence[str] | None = None, config: str | None = None) -> int:
    args = build_parser().parse_args(argv)
    from qmtbus import xt

    if args.sim:
        return run_sim(args, args.config or config)
    if args.account is not None or args.data is not None:
        print("qmtbus xt: --account and --data go with --sim only", file=sys.stderr)
        return 2
    if args.gone_after is not None:
        os.environ[xt.GONE_AFTER_ENV] = str(args.gone_after)
    if not os.path.isfile(args.script):
        where = f"no script at {args.script}: give the path of a Python file"
        print(f"qmtbus xt: {where}", file=sys.stderr)
        return 2
    try:
        xt.install(args.config or config)
    except ConfigError as err:
        print(f"qmtbus xt: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        if err.name != "xtquant":
            raise
        print(f"qmtbus xt: {xtimport.MISSING}", file=sys.stderr)
        return 2
    try:
        xt.run(args.script, args.args, args.config or config)
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    except Exception:  # the script's own error: its traceback, as `python script.py` shows it
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
