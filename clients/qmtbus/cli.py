"""The `qmtbus` command: talk to the gateway (and the recorder) from a shell.

Exit codes: 0 ok, 1 the gateway answered with an error (or the broker rejected
the order), 2 usage or config error, 3 gateway unreachable / silent.
Errors are one sentence on stderr; `--json` prints msgspec JSON for scripts.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import msgspec

from qmtbus import protocol, table
from qmtbus.client import Gateway, RecorderClient
from qmtbus.config import Config, ConfigError, config_path, load_config
from qmtbus.errors import GatewayError, GatewaySilent, GatewayUnreachable
from qmtbus.stream import EVENT_TYPE_NAMES, QUOTE_TYPE_NAMES, EventStream, QuoteStream

OK, GATEWAY_ERROR, USAGE, UNREACHABLE = 0, 1, 2, 3


class UsageError(Exception):
    """A bad argument the user must fix (exit 2)."""


def _out(args: argparse.Namespace, obj: Any, text: Callable[[], str]) -> None:
    if args.json:
        sys.stdout.write(msgspec.json.encode(obj).decode() + "\n")
    else:
        sys.stdout.write(text() + "\n")


def _kv(obj: msgspec.Struct) -> Callable[[], str]:
    return lambda: table.key_values(table.struct_pairs(obj))


# -- commands --------------------------------------------------------------


def cmd_xt(args: argparse.Namespace, config: Config) -> int:
    from qmtbus.xt.__main__ import main as xt_main

    return xt_main(args.xt_args, config=args.config)


def cmd_status(args: argparse.Namespace, config: Config) -> int:
    with Gateway.from_config(config) as gw:
        status = gw.status()
    _out(args, status, _kv(status))
    return OK


def cmd_ping(args: argparse.Namespace, config: Config) -> int:
    with Gateway.from_config(config) as gw:
        gw.ping()  # the first one pays for the connection
        start = time.perf_counter()
        gw.ping()
        micros = round((time.perf_counter() - start) * 1e6)
    address = config.gateway.commands_address
    result = {"type": "pong", "address": address, "round_trip_us": micros}
    _out(args, result, lambda: f"pong from {address} in {micros} µs")
    return OK


def cmd_asset(args: argparse.Namespace, config: Config) -> int:
    with Gateway.from_config(config) as gw:
        asset = gw.asset()
    _out(args, asset, _kv(asset))
    return OK


def cmd_positions(args: argparse.Namespace, config: Config) -> int:
    with Gateway.from_config(config) as gw:
        positions = gw.positions()
    _out(args, positions, lambda: table.positions_table(positions))
    return OK


def cmd_orders(args: argparse.Namespace, config: Config) -> int:
    with Gateway.from_config(config) as gw:
        orders = gw.orders(cancelable_only=args.open)
    _out(args, orders, lambda: table.orders_table(orders))
    return OK


def cmd_trades(args: argparse.Namespace, config: Config) -> int:
    with Gateway.from_config(config) as gw:
        trades = gw.trades()
    _out(args, trades, lambda: table.trades_table(trades))
    return OK


def cmd_order(args: argparse.Namespace, config: Config) -> int:
    if args.price is None and args.price_type == protocol.FIX_PRICE:
        raise UsageError("a limit order needs --price (or give --price-type 5 for latest price)")
    with Gateway.from_config(config) as gw:
        ack = gw.order(
            args.code,
            args.order_type,
            args.volume,
            args.price or 0.0,
            price_type=args.price_type,
            strategy_name=args.strategy,
            client_order_id=args.id,
        )
    _out(args, ack, _kv(ack))
    if ack.status == "rejected":
        _error(f"the broker rejected order {ack.client_order_id}: {ack.error_msg or 'no reason'}")
        return GATEWAY_ERROR
    return OK


def cmd_cancel(args: argparse.Namespace, config: Config) -> int:
    ident: str = args.id
    with Gateway.from_config(config) as gw:
        if ident.isdigit():
            ack = gw.cancel(order_id=int(ident))
        else:
            ack = gw.cancel(client_order_id=ident)
    _out(args, ack, _kv(ack))
    return OK


def cmd_trading(args: argparse.Namespace, config: Config) -> int:
    with Gateway.from_config(config) as gw:
        call = {"halt": gw.halt, "reduce-only": gw.reduce_only, "resume": gw.resume}[args.command]
        status = call(args.reason)
    _out(args, status, _kv(status))
    return OK


def cmd_note(args: argparse.Namespace, config: Config) -> int:
    data: Any = {}
    if args.data is not None:
        try:
            data = msgspec.json.decode(args.data)
        except msgspec.DecodeError:
            raise UsageError(f"note data is not valid JSON: {args.data!r}") from None
        if not isinstance(data, dict):
            raise UsageError("note data must be a JSON object, e.g. '{\"signal\": 1}'")
    with Gateway.from_config(config) as gw:
        seq = gw.note(args.topic, data)
    _out(
        args, {"type": "note_ack", "seq": seq}, lambda: f"published note {args.topic} as seq {seq}"
    )
    return OK


def cmd_tail(args: argparse.Namespace, config: Config) -> int:
    if args.type and QUOTE_TYPE_NAMES & set(args.type):
        return _tail_ticks(args, config)
    if args.code:
        raise UsageError("--code goes with --type tick")
    start_from = None
    if args.start_from:
        epoch, _, seq = args.start_from.rpartition(":")
        if not epoch or not seq.isdigit():
            raise UsageError("--from takes EPOCH:SEQ, e.g. 20261124T041732Z-3fa9c1:120")
        start_from = (epoch, int(seq))
    with EventStream.from_config(config, types=args.type or (), start_from=start_from) as stream:
        shown = 0
        while args.count is None or shown < args.count:
            try:
                ev = stream.next()
            except GatewaySilent as err:
                _error(str(err), "warning")  # keep listening: it may come back
                continue
            assert ev is not None
            if args.json:
                sys.stdout.write(msgspec.json.encode(ev).decode() + "\n")
            else:
                sys.stdout.write(table.event_line(ev) + "\n")
            sys.stdout.flush()
            shown += 1
    return OK


def _tail_ticks(args: argparse.Namespace, config: Config) -> int:
    """Listen to the quotes socket: the ticks clients hold (of --code only, if given),
    subscribing to nothing. Ticks are not journaled: there is nothing to resume from."""
    if set(args.type) - QUOTE_TYPE_NAMES or args.start_from:
        raise UsageError(
            "ticks come on the quotes socket and are not journaled: tail them on their own "
            "(`--type tick`, no --from); `qmtbus ticks CODE` subscribes to codes"
        )
    with (
        Gateway.from_config(config) as gw,
        QuoteStream(gw, args.code or (), hold=False) as stream,
    ):
        for shown, tick in enumerate(stream, start=1):
            line = msgspec.json.encode(tick).decode() if args.json else table.tick_line(tick)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            if args.count is not None and shown >= args.count:
                break
    return OK


def cmd_quote(args: argparse.Namespace, config: Config) -> int:
    with Gateway.from_config(config) as gw:
        ticks = gw.quotes(args.codes)
    _out(args, ticks, lambda: table.quotes_table(ticks))
    return OK


def cmd_ticks(args: argparse.Namespace, config: Config) -> int:
    with Gateway.from_config(config) as gw, gw.quote_stream(*args.codes) as stream:
        for shown, tick in enumerate(stream, start=1):
            line = msgspec.json.encode(tick).decode() if args.json else table.tick_line(tick)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            if args.count is not None and shown >= args.count:
                break
    return OK


def cmd_sql(args: argparse.Namespace, config: Config) -> int:
    with RecorderClient.from_config(config) as recorder:
        try:
            result = recorder.sql(args.sql, limit=args.limit)
        except GatewayError as err:
            _error(_refused("recorder", err))
            return GATEWAY_ERROR

    def text() -> str:
        out = table.table(result.columns, result.rows)
        return out + (f"\n(first {len(result.rows)} rows)" if result.truncated else "")

    _out(args, result, text)
    return OK


def cmd_keys_new(args: argparse.Namespace, config: Config) -> int:
    keys = _optional("qmtbus.keys")
    if keys is None or not hasattr(keys, "main_new"):
        raise UsageError(
            "`qmtbus keys` is not available in this installation (qmtbus.keys missing)"
        )
    result = keys.main_new(args.name, args.dir)
    return result if isinstance(result, int) else OK


# -- parser ----------------------------------------------------------------


def _optional(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def build_parser() -> argparse.ArgumentParser:
    # --config/--json work before or after the subcommand; SUPPRESS keeps the
    # subcommand's default from overwriting a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", default=argparse.SUPPRESS, help="TOML config (or $QMTBUS_CONFIG)"
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="machine-readable JSON output",
    )
    parser = argparse.ArgumentParser(
        prog="qmtbus",
        description="Talk to a qmtbus gateway: status, orders, events.",
        epilog="exit codes: 0 ok, 1 gateway error, 2 usage/config error, 3 unreachable",
    )
    parser.add_argument("--config", default=None, help="TOML config (or $QMTBUS_CONFIG)")
    parser.add_argument("--json", action="store_true", default=False, help="JSON output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[..., int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=fn)
        return p

    add("status", cmd_status, "the gateway's connection and trading state")
    add("ping", cmd_ping, "round trip to the gateway")
    add("asset", cmd_asset, "cash and asset values")
    add("positions", cmd_positions, "current positions")
    add("orders", cmd_orders, "today's orders").add_argument(
        "--open", action="store_true", help="only orders that can still be cancelled"
    )
    add("trades", cmd_trades, "today's fills")
    add("xt", cmd_xt, "run an unchanged xtquant script through the gateway").add_argument(
        "xt_args", nargs=argparse.REMAINDER, help="run SCRIPT [ARGS...] (qmtbus xt run --help)"
    )
    for side, order_type in (("buy", protocol.STOCK_BUY), ("sell", protocol.STOCK_SELL)):
        p = add(side, cmd_order, f"place a {side} order")
        p.set_defaults(order_type=order_type)
        p.add_argument("code", help='stock code, e.g. "600000.SH"')
        p.add_argument("volume", type=int, help="shares")
        p.add_argument("--price", type=float, help="limit price")
        p.add_argument(
            "--price-type",
            type=int,
            default=protocol.FIX_PRICE,
            help="xtquant price type (11 limit, 5 latest, 42-48 market)",
        )
        p.add_argument("--strategy", default="", help="strategy_name")
        p.add_argument("--id", help="client_order_id (generated when omitted)")
    add("cancel", cmd_cancel, "cancel an order").add_argument(
        "id", help="order_id, or client_order_id when not all digits"
    )
    trading = (
        ("halt", "refuse all new orders"),
        ("reduce-only", "accept only position-reducing orders"),
        ("resume", "back to active trading"),
    )
    for name, what in trading:
        add(name, cmd_trading, what).add_argument("reason", nargs="?", default="")
    p = add("note", cmd_note, "publish a note event")
    p.add_argument("topic")
    p.add_argument("data", nargs="?", help="a JSON object")
    p = add("tail", cmd_tail, "print events as they come (Ctrl-C to stop)")
    p.add_argument(
        "--type",
        action="append",
        choices=sorted(EVENT_TYPE_NAMES | QUOTE_TYPE_NAMES),
        help="only this event type (repeatable); `tick`: the ticks clients hold, on their own",
    )
    p.add_argument("--code", action="append", help="with --type tick: only this code (repeatable)")
    p.add_argument("--count", type=int, help="stop after N events")
    p.add_argument(
        "--from",
        dest="start_from",
        metavar="EPOCH:SEQ",
        help="resume after this event (replayed from the journal)",
    )
    add("quote", cmd_quote, "the latest tick of some codes").add_argument("codes", nargs="+")
    p = add("ticks", cmd_ticks, "print ticks of some codes as they come (Ctrl-C to stop)")
    p.add_argument("codes", nargs="+")
    p.add_argument("--count", type=int, help="stop after N ticks")
    p = add("sql", cmd_sql, "read-only SQL on the recorder's database")
    p.add_argument("sql")
    p.add_argument("--limit", type=int, default=10_000)
    keys = add("keys", cmd_keys_new, "CURVE key files")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    p = keys_sub.add_parser("new", parents=[common], help="write a new key pair NAME.key(_secret)")
    p.add_argument("name")
    p.add_argument("--dir", default=".", help="where to write the key files")
    from qmtbus import calendar  # light: exchange_calendars loads only when the command runs

    p = add("calendar", calendar.command, "the trading calendar: sources, last day, next days")
    calendar.add_arguments(p)
    # `health` lives in its own module; offered only where it is installed.
    health = _optional("qmtbus.health")
    if health is not None and hasattr(health, "health"):
        p = add("health", lambda args, config: int(health.health(args)), "is everything running?")
        if hasattr(health, "add_arguments"):
            health.add_arguments(p)
    return parser


def _error(sentence: str, level: str = "error") -> None:
    # one line, even when a message from elsewhere (DuckDB's) spans several
    sys.stderr.write(f"{level}: {' '.join(sentence.split())}\n")
    sys.stderr.flush()


def _refused(who: str, err: GatewayError) -> str:
    rule = f", rule {err.rule}" if err.rule else ""
    message = err.message.rstrip(".")
    return f"the {who} refused: {message} ({err.code}{rule})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # argparse: --help (0) or a usage error (2), already printed
        return int(exit.code) if isinstance(exit.code, int) else USAGE
    args.config = config_path(args.config)  # $QMTBUS_CONFIG applies; health() sees the same
    try:
        config = load_config(args.config)
        return int(args.func(args, config))
    except (ConfigError, UsageError, ValueError) as err:
        _error(str(err))
        return USAGE
    except GatewayError as err:
        _error(_refused("gateway", err))
        return GATEWAY_ERROR
    except (GatewayUnreachable, GatewaySilent) as err:
        _error(str(err))
        return UNREACHABLE
    except KeyboardInterrupt:
        return OK if args.command in ("tail", "ticks") else 130
    except BrokenPipeError:  # `qmtbus tail | head`
        return OK


if __name__ == "__main__":
    sys.exit(main())
