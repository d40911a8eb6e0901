"""`python -m qmtbus.xt run script.py [args]` (also `qmtbus xt run …`)."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from qmtbus.config import ConfigError


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
    run.add_argument("--sim", action="store_true", help=argparse.SUPPRESS)
    run.add_argument("script", help="the xtquant script")
    run.add_argument("args", nargs=argparse.REMAINDER, help="the script's own arguments")
    return parser


def main(argv: Sequence[str] | None = None, config: str | None = None) -> int:
    args = build_parser().parse_args(argv)
    from qmtbus import xt

    if args.sim:
        print(
            "qmtbus xt: --sim is not available yet; start a gateway (python -m "
            "qmtbus.gateway, broker = 'sim') and run without --sim",
            file=sys.stderr,
        )
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
        print(
            "qmtbus xt: xtquant is not installed; install it with pip install 'qmtbus[xt]'",
            file=sys.stderr,
        )
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
