"""The `qmtbus` command: talk to the gateway (and the recorder) from a shell.

Exit codes: 0 ok, 1 the gateway answered with an error (or the broker rejected
the order, or a cancel was refused), 2 usage or config error, 3 gateway or recorder
unreachable (a connect check comes first, so that is said at once) or silent.
The config: --config, else $QMTBUS_CONFIG, else ./qmtbus.toml, else the defaults.
Errors are one sentence on stderr; `--json` prints msgspec JSON for scripts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import msgspec

from qmtbus import cli_input, protocol, table
from qmtbus.client import Gateway, RecorderClient
from qmtbus.clock import SHANGHAI
from qmtbus.config import CONFIG_ENV, Config, ConfigError, load_config
from qmtbus.errors import GatewayError, GatewaySilent, GatewayUnreachable, RiskDenied
from qmtbus.reach import check_listening
from qmtbus.stream import EVENT_TYPE_NAMES, QUOTE_TYPE_NAMES, EventStream, QuoteStream

OK, GATEWAY_ERROR, USAGE, UNREACHABLE = 0, 1, 2, 3
LOCAL_CONFIG = "qmtbus.toml"
CONFIG_HELP = "TOML config (else $QMTBUS_CONFIG, else ./qmtbus.toml)"
SILENCE = 15.0  # seconds a streaming command waits for anything before it gives up (exit 3)
NEVER = 2e6  # --silence 0: 23 days, the longest a ZeroMQ poll takes (int32 milliseconds)


class UsageError(Exception):
    """A bad argument the user must fix (exit 2)."""


def _out(args: argparse.Namespace, obj: Any, text: Callable[[], str]) -> None:
    if args.json:
        sys.stdout.write(msgspec.json.encode(obj).decode() + "\n")
    else:
        sys.stdout.write(text() + "\n")


def _kv(obj: msgspec.Struct) -> Callable[[], str]:
    return lambda: table.key_values(table.struct_pairs(obj))


def find_config(given: str | None) -> tuple[str | None, str]:
    """The config file the CLI uses, and why: --config, then $QMTBUS_CONFIG, then
    ./qmtbus.toml (as `make run` starts the processes), else the built-in defaults."""
    if given:
        return given, "--config"
    if os.environ.get(CONFIG_ENV):
        return os.environ[CONFIG_ENV], f"${CONFIG_ENV}"
    if os.path.isfile(LOCAL_CONFIG):
        return LOCAL_CONFIG, "the current folder"
    return None, "no file found: built-in defaults"


def _gateway(config: Config) -> Gateway:
    """A client of the configured gateway, once something listens there (else exit 3 at once)."""
    check_listening(config.gateway.commands_address, "gateway")
    return Gateway.from_config(config)


def _recorder(config: Config) -> RecorderClient:
    check_listening(config.recorder.query_address, "recorder")
    return RecorderClient.from_config(config)


# -- commands --------------------------------------------------------------


def cmd_xt(args: argparse.Namespace, config: Config) -> int:
    from qmtbus.xt.__main__ import main as xt_main

    return xt_main(args.xt_args, config=args.config)


def cmd_status(args: argparse.Namespace, config: Config) -> int:
    with _gateway(config) as gw:
        status = gw.status()
    _out(args, status, _kv(status))
    return OK


def cmd_ping(args: argparse.Namespace, config: Config) -> int:
    with _gateway(config) as gw:
        gw.ping()  # the first one pays for the connection
        start = time.perf_counter()
        gw.ping()
        micros = round((time.perf_counter() - start) * 1e6)
    address = config.gateway.commands_address
    result = {"type": "pong", "address": address, "round_trip_us": micros}
    _out(args, result, lambda: f"pong from {address} in {micros} µs")
    return OK


def cmd_asset(args: argparse.Namespace, config: Config) -> int:
    with _gateway(config) as gw:
        asset = gw.asset()
    _out(args, asset, _kv(asset))
    return OK


def cmd_positions(args: argparse.Namespace, config: Config) -> int:
    with _gateway(config) as gw:
        positions = gw.positions()
    _out(args, positions, lambda: table.positions_table(positions))
    return OK


def cmd_orders(args: argparse.Namespace, config: Config) -> int:
    with _gateway(config) as gw:
        orders = gw.orders(cancelable_only=args.open)
    _out(args, orders, lambda: table.orders_table(orders))
    return OK


def cmd_trades(args: argparse.Namespace, config: Config) -> int:
    with _gateway(config) as gw:
        trades = gw.trades()
    _out(args, trades, lambda: table.trades_table(trades))
    return OK


def cmd_order(args: argparse.Namespace, config: Config) -> int:
    code = cli_input.stock_code(args.code)
    volume = cli_input.volume(args.volume)
    price_type = cli_input.price_type(args.price_type)
    price = cli_input.price(args.price) if args.price is not None else None
    if price is None and price_type == protocol.FIX_PRICE:
        raise UsageError(
            "a limit order needs --price (a price, or last/bid1..bid5/ask1..ask5 from the live "
            "quote), or give --price-type 5 for the latest price"
        )
    with _gateway(config) as gw:
        if isinstance(price, str):
            price = cli_input.quote_level(_quote(gw, code), price)
        try:
            ack = gw.order(
                code,
                args.order_type,
                volume,
                price or 0.0,
                price_type=price_type,
                strategy_name=args.strategy,
                client_order_id=args.id,
            )
        except RiskDenied:
            _quote(gw, code)  # a code the broker does not know is said to be unknown
            raise
    _out(args, ack, _kv(ack))
    if ack.status == "rejected":
        _error(f"the broker rejected order {ack.client_order_id}: {ack.error_msg or 'no reason'}")
        return GATEWAY_ERROR
    return OK


def _quote(gw: Gateway, code: str) -> protocol.TickEvent:
    """The live quote of `code`; an unknown code is refused as unknown, in those words."""
    try:
        return gw.quotes([code])[0]
    except GatewayError as err:
        if err.code != protocol.NOT_FOUND:
            raise
        raise GatewayError(
            protocol.NOT_FOUND,
            f"unknown stock code {code}: the broker has no quote for it; check the number and "
            "the exchange (600000.SH is Shanghai, 000001.SZ Shenzhen)",
        ) from None


def cmd_cancel(args: argparse.Namespace, config: Config) -> int:
    ident: str = args.id
    with _gateway(config) as gw:
        if ident.isdigit():
            ack = gw.cancel(order_id=int(ident))
        else:
            ack = gw.cancel(client_order_id=ident)
    _out(args, ack, _kv(ack))
    if ack.cancel_result != 0:
        _error(f"order {ident} was not cancelled: {ack.error_msg or 'the broker refused'}")
        return GATEWAY_ERROR
    return OK


def cmd_trading(args: argparse.Namespace, config: Config) -> int:
    with _gateway(config) as gw:
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
    with _gateway(config) as gw:
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
    start_from = cli_input.from_position(args.start_from) if args.start_from else None
    check_listening(config.gateway.commands_address, "gateway")
    if start_from is not None:
        _check_held(config, args.start_from, *start_from)
    with EventStream.from_config(
        config, types=args.type or (), start_from=start_from, stale_after=_silence(args)
    ) as stream:
        shown = 0
        while args.count is None or shown < args.count:
            ev = stream.next()  # GatewaySilent after --silence seconds: exit 3
            assert ev is not None
            if args.json:
                sys.stdout.write(msgspec.json.encode(ev).decode() + "\n")
            else:
                sys.stdout.write(table.event_line(ev) + "\n")
            sys.stdout.flush()
            shown += 1
    return OK


def _silence(args: argparse.Namespace) -> float:
    if args.silence < 0:
        raise UsageError("--silence takes seconds, 0 or more (0: wait for ever)")
    return args.silence if args.silence > 0 else NEVER


def _check_held(config: Config, text: str, epoch: str, seq: int) -> None:
    with Gateway.from_config(config) as gw:
        try:
            gw.replay(epoch, max(1, seq), limit=1)
        except GatewayError as err:
            if err.code != protocol.NOT_FOUND:
                raise
            current = gw.status()
            raise UsageError(
                f"--from {text}: the gateway holds no such position (epoch {epoch!r}, seq "
                f"{seq}); its current position is {current.epoch}:{current.last_seq} "
                "(`qmtbus status`)"
            ) from None


def _tail_ticks(args: argparse.Namespace, config: Config) -> int:
    """Listen to the quotes socket: the ticks clients hold (of --code only, if given),
    subscribing to nothing. Ticks are not journaled: there is nothing to resume from."""
    if set(args.type) - QUOTE_TYPE_NAMES or args.start_from:
        raise UsageError(
            "ticks come on the quotes socket and are not journaled: tail them on their own "
            "(`--type tick`, no --from); `qmtbus ticks CODE` subscribes to codes"
        )
    codes = [cli_input.stock_code(c) for c in args.code or ()]
    with _gateway(config) as gw:
        # Holding nothing, a client's unsubscribe changes nothing and tells what is held.
        held = gw.unsubscribe_quotes(codes or ["600000.SH"]).subscribed
        wanted = [c for c in held if not codes or c in codes]
        if not wanted:
            raise UsageError(
                f"no client holds a quote subscription{' of ' + ', '.join(codes) if codes else ''}"
                ": the gateway sends ticks only of codes someone subscribed to. Subscribe and "
                f"print them with `qmtbus ticks {codes[0] if codes else '600000.SH'}` (or "
                "QuoteStream / gw.quote_stream in a strategy)"
            )
        with QuoteStream(gw, codes, hold=False) as stream:
            return _print_ticks(args, stream, config)


def _print_ticks(args: argparse.Namespace, stream: QuoteStream, config: Config) -> int:
    silence = _silence(args)
    shown = 0
    while args.count is None or shown < args.count:
        tick = stream.next(timeout=None if silence == NEVER else silence)
        if tick is None:
            try:
                check_listening(config.gateway.commands_address, "gateway")
            except GatewayUnreachable:
                stream.hold = False  # gone: nothing to unsubscribe, so do not wait on it
            raise GatewaySilent(
                f"no tick from the gateway at {config.gateway.quotes_address} for {silence:g} s "
                "(--silence) — is it running, and is the market open?",
                config.gateway.quotes_address,
                silence,
            )
        line = msgspec.json.encode(tick).decode() if args.json else table.tick_line(tick)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        shown += 1
    return OK


def cmd_quote(args: argparse.Namespace, config: Config) -> int:
    codes = [cli_input.stock_code(c) for c in args.codes]
    with _gateway(config) as gw:
        ticks = gw.quotes(codes)
    _out(args, ticks, lambda: table.quotes_table(ticks))
    return OK


def cmd_bars(args: argparse.Namespace, config: Config) -> int:
    code = cli_input.stock_code(args.code)
    if args.count < 1 or args.count > 5000:
        _error(f"--count {args.count}: give a number of bars from 1 to 5000")
        return USAGE
    with _gateway(config) as gw:
        bars = gw.bars(code, args.period, args.count)

    def text() -> str:
        shape = "%Y-%m-%d" if args.period == "1d" else "%Y-%m-%d %H:%M"
        columns = ["time", "open", "high", "low", "close", "volume", "amount", "preClose"]
        rows = [
            [
                dt.datetime.fromtimestamp(b.time / 1000, SHANGHAI).strftime(shape),
                *(b.open, b.high, b.low, b.close, b.volume, b.amount, b.preClose),
            ]
            for b in bars
        ]
        return table.table(columns, rows) if rows else f"no {args.period} bars of {code} yet"

    _out(args, bars, text)
    return OK


def cmd_ticks(args: argparse.Namespace, config: Config) -> int:
    codes = [cli_input.stock_code(c) for c in args.codes]
    silence = _silence(args)
    # give up on silence before renewing into a dead gateway (20 s of retries, a warning)
    quiet = {} if silence == NEVER else {"resubscribe_after": max(10.0, silence + 1)}
    with _gateway(config) as gw, gw.quote_stream(*codes, **quiet) as stream:
        return _print_ticks(args, stream, config)


def cmd_sql(args: argparse.Namespace, config: Config) -> int:
    with _recorder(config) as recorder:
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


def cmd_config(args: argparse.Namespace, config: Config) -> int:
    where = os.path.abspath(args.config) if args.config else None
    values = msgspec.to_builtins(config)
    if args.json:
        _out(args, {"file": where, "source": args.config_source, "config": values}, str)
        return OK
    head = f"# config file: {where} ({args.config_source})" if where else f"# {args.config_source}"
    sys.stdout.write(head + "\n" + table.toml_text(values))
    return OK


def cmd_duckdb(args: argparse.Namespace, config: Config) -> int:
    from pathlib import Path

    from qmtbus.sqlshell import run_shell

    return run_shell(Path(args.file or config.recorder.snapshot_path), args.command_sql)


def cmd_jobs(args: argparse.Namespace, config: Config) -> int:
    from qmtbus.jobs_table import job_rows, jobs_text

    path, rows = job_rows(config)
    found = path.is_file()
    _out(args, rows, lambda: jobs_text(path, rows, found))
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
        "--config",
        default=argparse.SUPPRESS,
        help="TOML config (else $QMTBUS_CONFIG, else ./qmtbus.toml)",
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
        epilog=(
            "exit codes: 0 ok, 1 gateway error, 2 usage/config error, 3 unreachable or silent. "
            "Config: --config, else $QMTBUS_CONFIG, else ./qmtbus.toml, else the defaults."
        ),
    )
    parser.add_argument("--config", default=None, help=CONFIG_HELP)
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
        p.add_argument("volume", help="shares (buys in lots of 100)")
        p.add_argument(
            "--price",
            help="limit price, or a level of the live quote: last, bid1..bid5, ask1..ask5",
        )
        p.add_argument(
            "--price-type",
            default=str(protocol.FIX_PRICE),
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
    silence_help = (
        f"give up (exit 3) after this many seconds with nothing (default {SILENCE:g}; 0: never)"
    )
    p = add("tail", cmd_tail, "print events as they come (Ctrl-C to stop)")
    p.add_argument(
        "--type",
        action="append",
        choices=sorted(EVENT_TYPE_NAMES | QUOTE_TYPE_NAMES),
        help="only this event type (repeatable); `tick`: the ticks clients hold, on their own",
    )
    p.add_argument("--code", action="append", help="with --type tick: only this code (repeatable)")
    p.add_argument("--count", type=int, help="stop after N events")
    p.add_argument("--silence", type=float, default=SILENCE, help=silence_help)
    p.add_argument(
        "--from",
        dest="start_from",
        metavar="EPOCH:SEQ",
        help="resume after this event (replayed from the journal)",
    )
    add("quote", cmd_quote, "the latest tick of some codes").add_argument("codes", nargs="+")
    p = add("bars", cmd_bars, "the last bars of a code (1m, 5m or 1d), oldest first")
    p.add_argument("code")
    p.add_argument("--period", choices=["1m", "5m", "1d"], default="1d")
    p.add_argument("--count", type=int, default=20, help="how many bars (default 20)")
    p = add("ticks", cmd_ticks, "print ticks of some codes as they come (Ctrl-C to stop)")
    p.add_argument("codes", nargs="+")
    p.add_argument("--count", type=int, help="stop after N ticks")
    p.add_argument("--silence", type=float, default=SILENCE, help=silence_help)
    p = add("sql", cmd_sql, "read-only SQL on the recorder's database")
    p.add_argument("sql")
    p.add_argument("--limit", type=int, default=10_000)
    add("config", cmd_config, "which config file the CLI uses, and its effective values")
    p = add("duckdb", cmd_duckdb, "an SQL shell on the recorder's snapshot (read-only)")
    p.add_argument("file", nargs="?", help="a DuckDB file (default: recorder.snapshot_path)")
    p.add_argument("-c", dest="command_sql", metavar="SQL", help="run one statement and exit")
    add("jobs", cmd_jobs, "the scheduler's jobs: next run, last outcome, why skipped")
    keys = add("keys", cmd_keys_new, "CURVE key files")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    p = keys_sub.add_parser("new", parents=[common], help="write a new key pair NAME.key(_secret)")
    p.add_argument("name")
    p.add_argument("--dir", default=".", help="where to write the key files")
    from qmtbus import calendar  # light: exchange_calendars loads only when the command runs

    p = add("calendar", calendar.command, "the trading calendar: sources, last day, next days")
    calendar.add_arguments(p)
    # `pnl` lives in its own module (qmtbus/pnl.py).
    pnl = _optional("qmtbus.pnl")
    if pnl is not None and hasattr(pnl, "main"):
        pnl.add_arguments(add("pnl", pnl.main, "profit and loss by average cost (the recorder)"))
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
    # health() and `config` see the same file
    args.config, args.config_source = find_config(args.config)
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
