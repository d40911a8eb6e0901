"""The qmtbus config: one TOML file, decoded into frozen Structs that forbid unknown keys.

Every process reads the same file (`--config FILE` or `QMTBUS_CONFIG`); each
uses its own section and `[gateway]` for the addresses. With no file, the
built-in defaults run the whole system on the simulator on loopback.
A bad file raises ConfigError with one sentence that names the key and the fix.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

CONFIG_ENV = "QMTBUS_CONFIG"

PositiveFloat = Annotated[float, Meta(gt=0)]
NonNegFloat = Annotated[float, Meta(ge=0)]
PositiveInt = Annotated[int, Meta(gt=0)]


class ConfigError(Exception):
    """A config problem the user must fix; str(err) is one sentence saying what to do."""


class _Section(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class WindowConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When the gateway holds the broker connection.

    `always_open` (the simulator's default) ignores the rest. Otherwise the
    window is open on XSHG trading days from `open_time` to `close_time`
    (Asia/Shanghai).
    """

    always_open: bool = True
    trading_days_only: bool = True
    open_time: dt.time = dt.time(9, 10)
    close_time: dt.time = dt.time(15, 10)


class GatewayConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    broker: Literal["sim", "xtquant"] = "sim"
    account_id: Annotated[str, Meta(min_length=1, max_length=32)] = "SIM0001"
    events_address: str = "tcp://127.0.0.1:7101"
    commands_address: str = "tcp://127.0.0.1:7102"
    quotes_address: str = "tcp://127.0.0.1:7104"
    data_dir: str = "data"
    heartbeat_interval: PositiveFloat = 1.0
    order_reply_timeout: PositiveFloat = 2.0
    max_message_size: PositiveInt = 64 * 1024
    max_in_flight_per_client: PositiveInt = 32
    reconnect_initial: PositiveFloat = 1.0
    reconnect_max: PositiveFloat = 30.0
    journal_fsync_interval: NonNegFloat = 1.0
    journal_max_age_days: PositiveFloat = 7.0
    journal_max_bytes: PositiveInt = 512 * 1024 * 1024
    journal_segment_bytes: PositiveInt = 16 * 1024 * 1024
    pub_hwm: PositiveInt = 1_000_000
    # Ticks have their own socket and a small high-water mark: under a burst,
    # ticks are dropped and order events never are.
    quotes_hwm: PositiveInt = 10_000
    quote_lease: PositiveFloat = 300.0
    # A synchronous broker call (query, subscribe, connect) unanswered this long drops the
    # session; an idle session is probed every probe_interval.
    broker_timeout: PositiveFloat = 5.0
    probe_interval: PositiveFloat = 10.0
    window: WindowConfig = WindowConfig()


class XtQuantConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The real trader (Windows, next to a running miniQMT)."""

    userdata_mini: str = ""
    session_base: PositiveInt = 100_000


class SimConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The embedded simulator (broker = "sim")."""

    seed: int = 20261124
    initial_cash: PositiveFloat = 1_000_000.0
    commission_rate: NonNegFloat = 0.00025
    commission_min: NonNegFloat = 5.0
    stamp_duty_rate: NonNegFloat = 0.0005
    transfer_fee_rate: NonNegFloat = 0.00001
    market_hours: bool = False
    tick_interval: PositiveFloat = 0.5
    volatility: NonNegFloat = 0.002
    tick_file: str = ""
    # volume available at the best price per tick; larger orders fill in parts
    depth_volume: PositiveInt = 10_000
    callback_delay: NonNegFloat = 0.0
    # seconds between `tick` events of each subscribed symbol (xtdata's level-1
    # snapshots come every 3 s); prices move every tick_interval
    quote_interval: PositiveFloat = 3.0


class RiskConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Pre-trade checks (gateway/risk). A zero limit means "no limit".

    `enabled = false` turns off every check except the trading state (halt and
    reduce_only always hold). docs/risk-and-security.md lists what each refuses.
    """

    enabled: bool = True
    # buys in lots by board, sells whole odd lots, limit prices on the tick
    check_lot_and_tick: bool = True
    # limit prices inside the day's down/up stop prices
    check_price_limits: bool = True
    # limit prices within this % of the last price (0 = off)
    fat_finger_pct: NonNegFloat = 5.0
    # sells within can_use_volume (T+1)
    check_sellable: bool = True
    # buy notional plus estimated fees within free cash
    check_cash: bool = True
    max_order_notional: NonNegFloat = 0.0
    max_order_volume: Annotated[int, Meta(ge=0)] = 0
    # token bucket: this many orders per second, bursts of at most this many (min 1)
    max_orders_per_second: NonNegFloat = 0.0
    # daily caps reset at midnight Asia/Shanghai and survive a gateway restart
    max_orders_per_day: Annotated[int, Meta(ge=0)] = 0
    max_turnover_per_day: NonNegFloat = 0.0
    max_orders_per_day_per_strategy: Annotated[int, Meta(ge=0)] = 0
    max_turnover_per_day_per_strategy: NonNegFloat = 0.0
    # shell-style patterns ("600000.SH", "688*"); an empty allow list allows all
    allow_symbols: list[str] = []
    deny_symbols: list[str] = []
    # the fee estimate the cash check adds to a buy (commission, min per order)
    commission_rate: NonNegFloat = 0.00025
    commission_min: NonNegFloat = 5.0


class SecurityConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """CURVE for anything beyond loopback. Key files are written by `qmtbus keys new`.

    With `curve = true` the gateway (and the recorder's query endpoint) encrypt
    every connection and accept only clients whose public key file (NAME.key)
    is in `allowed_clients_dir`; `server_secret_key` is the server's
    NAME.key_secret file (mode 0600).
    """

    curve: bool = False
    server_secret_key: str = ""
    allowed_clients_dir: str = ""

    def __post_init__(self) -> None:
        if self.curve and not (self.server_secret_key and self.allowed_clients_dir):
            raise ValueError(
                "curve = true needs server_secret_key (the gateway's NAME.key_secret) and "
                "allowed_clients_dir (a folder of client NAME.key files)"
            )


class ClientConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How clients (CLI, recorder, scheduler, strategies) reach the gateway.

    For a CURVE gateway set both key paths: `secret_key` is this client's
    NAME.key_secret (mode 0600), `server_public_key` the gateway's NAME.key.
    """

    timeout: PositiveFloat = 5.0
    retries: Annotated[int, Meta(ge=0)] = 3
    secret_key: str = ""
    server_public_key: str = ""

    def __post_init__(self) -> None:
        if bool(self.secret_key) != bool(self.server_public_key):
            raise ValueError(
                "secret_key and server_public_key go together: set both for a CURVE "
                "gateway, neither for a plain one"
            )


class RecorderConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    database: str = "data/qmtbus.duckdb"
    query_address: str = "tcp://127.0.0.1:7103"
    snapshot_path: str = "data/qmtbus-snapshot.duckdb"
    snapshot_interval: PositiveFloat = 5.0
    batch_rows: PositiveInt = 1000
    batch_seconds: PositiveFloat = 1.0
    write_retry_seconds: PositiveFloat = 1.0
    query_row_limit: PositiveInt = 100_000
    status_file: str = "data/recorder-status.json"
    # codes whose ticks go into the `ticks` table (docs/quotes.md); empty: no ticks
    tick_symbols: list[Annotated[str, Meta(pattern=r"^[0-9]{6}\.(SH|SZ|BJ)$")]] = []


# A job's name becomes the note topic "job.<name>": short, printable, no spaces.
JobName = Annotated[str, Meta(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_.-]+$")]


class JobConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One [[scheduler.jobs]] entry (see docs/scheduler.md).

    `cron`: 5 fields (minute hour day month weekday) or 6 with a leading
    seconds field, in Asia/Shanghai time, weekdays as in classic cron (0 or 7 =
    Sunday). `callable`: "package.module:function", called with one argument,
    the job context. `misfire`: what to do with a run that could not start on
    time (the scheduler was down or busy): "skip" it, or "run_late" if no more
    than `grace_seconds` late. The scheduler checks `cron` and `callable` at
    start-up.
    """

    name: JobName
    cron: str
    callable: str
    args: dict[str, Any] = {}
    trading_days_only: bool = True
    misfire: Literal["skip", "run_late"] = "skip"
    grace_seconds: NonNegFloat = 60.0
    enabled: bool = True


class SchedulerConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The scheduler's jobs, its two built-in jobs and its state file.

    The built-in pre-open check runs at 09:20 by default: after the gateway's
    default window opens (09:10), before continuous trading. `stop_timeout`:
    how long SIGTERM waits for running jobs before the scheduler exits.
    """

    state_file: str = "data/scheduler-state.json"
    pre_open_check: bool = True
    pre_open_cron: str = "20 9 * * *"
    after_close_snapshot: bool = True
    after_close_cron: str = "5 15 * * *"
    jobs: list[JobConfig] = []
    stop_timeout: NonNegFloat = 10.0


class Config(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    gateway: GatewayConfig = GatewayConfig()
    xtquant: XtQuantConfig = XtQuantConfig()
    sim: SimConfig = SimConfig()
    risk: RiskConfig = RiskConfig()
    security: SecurityConfig = SecurityConfig()
    client: ClientConfig = ClientConfig()
    recorder: RecorderConfig = RecorderConfig()
    scheduler: SchedulerConfig = SchedulerConfig()


def config_path(cli_value: str | None) -> str | None:
    """The file named on the command line, else $QMTBUS_CONFIG, else None (defaults)."""
    return cli_value or os.environ.get(CONFIG_ENV) or None


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read and check the config file; None gives the built-in defaults."""
    if path is None:
        return Config()
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as err:
        raise ConfigError(
            f"cannot read config file {file}: {err.strerror}; check the path given to "
            f"--config or {CONFIG_ENV}"
        ) from None
    try:
        config = msgspec.toml.decode(raw, type=Config)
    except msgspec.ValidationError as err:
        raise ConfigError(f"config file {file}: {_explain(str(err))}") from None
    except msgspec.DecodeError as err:
        raise ConfigError(f"config file {file} is not valid TOML ({err}); fix the syntax") from None
    _check(config, file)
    return config


def _explain(message: str) -> str:
    """Turn msgspec's `... - at `$.gateway.x`` into a sentence naming the TOML key."""
    text, _, where = message.partition(" - at ")
    key = where.strip("`").removeprefix("$").lstrip(".") or "(top level)"
    if text.startswith("Object contains unknown field"):
        field = text.split("`")[1]
        full = f"{key}.{field}" if key != "(top level)" else field
        return f"unknown key `{full}`; remove it or fix its spelling (see README, Configuration)"
    return f"bad value for `{key}`: {text}; fix it (see README, Configuration)"


def _check(config: Config, file: Path) -> None:
    g = config.gateway
    addresses = {
        "gateway.events_address": g.events_address,
        "gateway.commands_address": g.commands_address,
        "gateway.quotes_address": g.quotes_address,
    }
    if len(set(addresses.values())) < len(addresses):
        raise ConfigError(
            f"config file {file}: {', '.join(addresses)} must differ; give each its own port"
        )
    if g.reconnect_max < g.reconnect_initial:
        raise ConfigError(
            f"config file {file}: gateway.reconnect_max is below gateway.reconnect_initial; "
            "raise reconnect_max"
        )
    if g.broker == "xtquant" and not config.xtquant.userdata_mini:
        raise ConfigError(
            f'config file {file}: broker = "xtquant" needs xtquant.userdata_mini, the path of '
            "miniQMT's userdata_mini folder"
        )
