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
NonNegInt = Annotated[int, Meta(ge=0)]


class ConfigError(Exception):
    """A config problem the user must fix; str(err) is one sentence saying what to do."""


class _Section(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class WindowConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When the gateway holds the broker connection.

    `always_open` (the simulator's default) ignores the rest. Otherwise the
    window is open on trading days (qmtbus.calendar) from `open_time` to `close_time`
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
    # per step of the walk in the sessions (a tenth of it outside them: a quiet overnight):
    # 0.000115 every 0.5 s moves a price about 2% a day
    volatility: NonNegFloat = 0.000115
    tick_file: str = ""
    # volume available at the best price per tick; larger orders fill in parts
    depth_volume: PositiveInt = 10_000
    # ticks between bid1 and ask1; buys fill at the asks, sells at the bids, five levels
    # of depth_volume each (0: bid1 = ask1 = the last price, one level)
    spread_ticks: NonNegInt = 1
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
    # heartbeats (one a second) older than this are deleted; every other event is kept
    # for ever. 0: keep heartbeats for ever too.
    heartbeat_days: NonNegFloat = 2.0
    # codes whose ticks go into the `ticks` table (docs/quotes.md); empty: no ticks
    tick_symbols: list[Annotated[str, Meta(pattern=r"^[0-9]{6}\.(SH|SZ|BJ)$")]] = []
    # a snapshot is skipped unless this much disk stays free after it (the gateway's journal)
    snapshot_min_free_mb: NonNegFloat = 256.0
    # seconds between marks of the account's value (equity_marks, position_marks) in
    # trading sessions; 0: no marks (recorder/marks.py)
    mark_interval: NonNegFloat = 60.0


class DashboardConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The read-only web dashboard (`python -m qmtbus.recorder.dashboard`, docs/dashboard.md).

    Loopback by default; any other `host` requires `token` (16+ characters),
    which every request must carry. `refresh`: seconds between updates.
    """

    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 7105  # 0: the kernel picks one
    token: str = ""
    refresh: PositiveFloat = 2.0


NoticeKind = Literal["process", "gateway", "calendar", "risk", "halt", "fill"]
DEFAULT_NOTICES: list[NoticeKind] = ["process", "gateway", "calendar", "risk", "halt"]


class WebhookConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One [[notify.webhooks]] robot or endpoint (docs/alerts.md).

    `kind`: "wecom", "dingtalk", "feishu" (their group robots) or "json" (a
    plain POST of the notice as JSON). `secret`: the robot's signing secret
    (DingTalk "加签", Feishu "签名校验"); empty when signing is off. `events`:
    only these kinds of notice; empty: all of notify.events.
    """

    kind: Literal["wecom", "dingtalk", "feishu", "json"]
    url: Annotated[str, Meta(pattern=r"^https?://")]
    secret: str = ""
    events: list[NoticeKind] = []


class EmailConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[notify.email]: notices by e-mail over SMTP (off while `to` is empty)."""

    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535)] = 25
    # "starttls" upgrades a plain connection, "ssl" connects with TLS (port 465)
    security: Literal["none", "starttls", "ssl"] = "none"
    username: str = ""
    password: str = ""
    from_addr: str = "qmtbus@localhost"
    to: list[str] = []
    events: list[NoticeKind] = []


class NotifyConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[notify]: chosen events to phones (`python -m qmtbus.notify`, docs/alerts.md).

    `events`: process (a supervised program died or went FATAL), gateway (out of
    `ready` longer than `not_ready_seconds` in trading hours), calendar (the
    trading calendar runs out), risk (every risk denial), halt (halt,
    reduce-only, resume), fill (every fill; not by default). A channel sends at
    most `per_minute` messages a minute (more are merged into one); a failed
    delivery is tried `retries` more times, `retry_initial` seconds apart at
    first, doubling.
    """

    events: list[NoticeKind] = msgspec.field(default_factory=lambda: list(DEFAULT_NOTICES))
    not_ready_seconds: PositiveFloat = 60.0
    per_minute: PositiveInt = 20
    retries: Annotated[int, Meta(ge=0)] = 5
    retry_initial: PositiveFloat = 2.0
    timeout: PositiveFloat = 10.0
    webhooks: list[WebhookConfig] = []
    email: EmailConfig = EmailConfig()


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


class CalendarConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The user's extension of the trading calendar (qmtbus.calendar; docs/operations.md).

    `extra_holidays`: weekdays the exchanges are closed ("2027-01-01" or a bare
    TOML date); `known_until`: the last day that list is complete for: up to it,
    weekdays minus those holidays are trading days. `beyond`: a date no source
    knows counts as a trading day when it is a weekday ("weekdays", loudly), or
    is refused ("refuse").
    """

    extra_holidays: list[dt.date] = []
    known_until: dt.date | None = None
    beyond: Literal["weekdays", "refuse"] = "weekdays"

    def __post_init__(self) -> None:
        if self.known_until is not None:
            late = sorted(day for day in self.extra_holidays if day > self.known_until)
            if late:
                raise ValueError(
                    f"extra_holidays has {late[0].isoformat()}, after known_until "
                    f"{self.known_until.isoformat()}; raise known_until or drop the date"
                )


class Config(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    gateway: GatewayConfig = GatewayConfig()
    xtquant: XtQuantConfig = XtQuantConfig()
    sim: SimConfig = SimConfig()
    risk: RiskConfig = RiskConfig()
    security: SecurityConfig = SecurityConfig()
    client: ClientConfig = ClientConfig()
    recorder: RecorderConfig = RecorderConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    calendar: CalendarConfig = CalendarConfig()
    dashboard: DashboardConfig = DashboardConfig()
    notify: NotifyConfig = NotifyConfig()


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
        config = _decode(raw)
    except msgspec.ValidationError as err:
        raise ConfigError(f"config file {file}: {_explain(str(err))}") from None
    except msgspec.DecodeError as err:
        raise ConfigError(f"config file {file} is not valid TOML ({err}); fix the syntax") from None
    _check(config, file)
    return config


def _decode(raw: bytes) -> Config:
    """msgspec.toml.decode, but `[calendar]` dates may also be written as quoted strings."""
    tree = msgspec.toml.decode(raw)
    section = tree.get("calendar") if isinstance(tree, dict) else None
    if isinstance(section, dict):
        for key in ("extra_holidays", "known_until"):
            value = section.get(key)
            if isinstance(value, list):
                section[key] = [_as_date(item) for item in value]
            elif value is not None:
                section[key] = _as_date(value)
    return msgspec.convert(
        tree, Config, builtin_types=(dt.datetime, dt.date, dt.time), str_keys=True
    )


def _as_date(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()) if len(value.strip()) == 10 else value
        except ValueError:
            return value  # msgspec names the key; _explain words it
    return value


def _explain(message: str) -> str:
    """Turn msgspec's `... - at `$.gateway.x`` into a sentence naming the TOML key."""
    text, _, where = message.partition(" - at ")
    key = where.strip("`").removeprefix("$").lstrip(".") or "(top level)"
    if text.startswith("Object contains unknown field"):
        field = text.split("`")[1]
        full = f"{key}.{field}" if key != "(top level)" else field
        return f"unknown key `{full}`; remove it or fix its spelling (see README, Configuration)"
    if key.startswith("calendar.") and text.startswith("Expected `date"):
        return f'`{key}` is not a date; write it as "2027-01-01" (see README, Configuration)'
    return f"bad value for `{key}`: {text}; fix it (see README, Configuration)"


def _check(config: Config, file: Path) -> None:
    g = config.gateway
    addresses = {
        "gateway.events_address": g.events_address,
        "gateway.commands_address": g.commands_address,
        "gateway.quotes_address": g.quotes_address,
    }
    # several `:*` (or `:0`) ports differ by construction: the kernel picks each at bind
    fixed = [a for a in addresses.values() if not a.endswith((":*", ":0"))]
    if len(set(fixed)) < len(fixed):
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
