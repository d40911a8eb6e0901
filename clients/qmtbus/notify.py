"""`python -m qmtbus.notify [--config FILE]`: chosen events to phones ([notify], docs/alerts.md).

It reads the bus like any client (EventStream: every event once, in order) and
turns what matters into notices for the configured channels
(qmtbus/notify_channels.py: WeCom, DingTalk, Feishu robots, a JSON webhook,
e-mail):

- process:  `alert.process` notes (the watchdog: a program exited, backs off,
            went FATAL, was started again);
- gateway:  the gateway out of `ready` (or silent) for more than
            notify.not_ready_seconds in trading hours, and back again;
- calendar: `alert.calendar` notes (the trading calendar runs out);
- risk:     every `risk_denied` event;
- halt:     `trading` notes (halt, reduce-only, resume);
- fill:     every fill (only when listed in notify.events).

Sending never holds up reading the bus: each channel has its own thread,
queue, rate limit and retries. Exit codes: 0 after SIGTERM/SIGINT, 2 for a
config problem.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable

from qmtbus import protocol
from qmtbus.calendar import SHANGHAI, CalendarExpired, TradingCalendar
from qmtbus.config import Config, ConfigError, config_path, load_config
from qmtbus.errors import GatewaySilent, GatewayUnreachable
from qmtbus.notify_channels import Channel, Email, Notice, Sender, Webhook
from qmtbus.sessions import TRADING_HOURS, hours_apply, within
from qmtbus.stream import EventStream

log = logging.getLogger("notify")

# No event, not even a heartbeat (one a second), for this long: the gateway is silent.
STALE_AFTER = 5.0

SIDES = {protocol.STOCK_BUY: "buy", protocol.STOCK_SELL: "sell"}


def channels(config: Config) -> list[Sender]:
    """One Sender per configured webhook, and one for e-mail when it has recipients."""
    n = config.notify
    chosen: set[str] = set(n.events)
    out: list[tuple[Channel, list[str]]] = [
        (Webhook(w, n.timeout), list(w.events)) for w in n.webhooks
    ]
    if n.email.to:
        out.append((Email(n.email, n.timeout), list(n.email.events)))
    return [Sender(ch, n, set(kinds) & chosen if kinds else chosen) for ch, kinds in out]


def _clock(ts_ns: int) -> str:
    return dt.datetime.fromtimestamp(ts_ns / 1e9, SHANGHAI).strftime("%H:%M:%S")


def notice_of(event: protocol.Event) -> Notice | None:
    """The notice an event makes, if any (the gateway's state is followed by Watcher)."""
    account = event.account_id
    match event:
        case protocol.NoteEvent(topic="alert.process", data=data):
            title = str(data.get("message") or f"{data.get('process')} {data.get('state')}")
            return Notice("process", title, f"account {account}", data=dict(data))
        case protocol.NoteEvent(topic="alert.calendar", data=data):
            title = str(data.get("message") or "the trading calendar needs attention")
            return Notice("calendar", title, "", data=dict(data))
        case protocol.NoteEvent(topic="trading", data=data):
            state = data.get("trading", "?")
            reason = data.get("reason") or "no reason given"
            return Notice(
                "halt", f"trading is now {state} on {account}", f"reason: {reason}", data=data
            )
        case protocol.RiskDeniedEvent():
            side = SIDES.get(event.order_type, str(event.order_type))
            title = (
                f"risk denied {side} {event.order_volume} {event.stock_code} "
                f"@ {event.price:g} ({event.rule})"
            )
            strategy = f" [{event.strategy_name}]" if event.strategy_name else ""
            return Notice("risk", title, event.message + strategy)
        case protocol.TradeEvent():
            side = SIDES.get(event.order_type, str(event.order_type))
            title = (
                f"fill {side} {event.traded_volume} {event.stock_code} @ "
                f"{event.traded_price:g} = {event.traded_amount:,.2f}"
            )
            strategy = f" [{event.strategy_name}]" if event.strategy_name else ""
            text = f"{_clock(event.ts)} fees {event.commission:.2f}, order {event.order_id}"
            return Notice("fill", title, text + strategy)
    return None


class Watcher:
    """Turns events (and silence) into notices; `tick()` checks the gateway's readiness."""

    def __init__(
        self,
        config: Config,
        send: Callable[[Notice], None],
        clock: Callable[[], float] = time.time,
        calendar: TradingCalendar | None = None,
        stale_after: float = STALE_AFTER,
    ) -> None:
        self.send = send
        self.clock = clock
        self.calendar = calendar
        self.limit = config.notify.not_ready_seconds
        self.hours = hours_apply(config)
        self.stale_after = stale_after
        self.state = "unknown"
        self.reason = ""
        self.not_ready_since: float | None = clock()  # until the first word of the gateway
        self.heard = clock()  # the gateway's last word (any event)
        self.alerted = False
        # tick() runs on a thread of its own: reading the bus may wait on the gateway
        # (a replay asked of a gateway that just died takes its timeout and retries)
        self._lock = threading.Lock()

    def on_event(self, event: protocol.Event) -> None:
        with self._lock:
            self.heard = self.clock()
            if isinstance(event, protocol.GatewayEvent):
                self._state(event.state, event.reason)
            elif isinstance(event, protocol.HeartbeatEvent):
                self._state(event.state, self.reason if event.state == self.state else "")
        notice = notice_of(event)
        if notice is not None:
            self.send(notice)

    def on_silent(self, err: GatewaySilent) -> None:
        with self._lock:
            self._state("silent", str(err))

    def _state(self, state: str, reason: str) -> None:
        now = self.clock()
        if state != self.state:
            why = f": {reason}" if reason else ""
            log.info("gateway %s%s", state, why)
        if state == "ready":
            if self.alerted and self.not_ready_since is not None:
                self.send(
                    Notice(
                        "gateway",
                        "gateway ready again",
                        f"after {now - self.not_ready_since:.0f} s not ready",
                    )
                )
            self.not_ready_since = None
            self.alerted = False
        elif self.not_ready_since is None:
            self.not_ready_since = now
        self.state, self.reason = state, reason

    def tick(self) -> None:
        """Called every half second, whatever the reading of the bus is doing."""
        with self._lock:
            self._tick()

    def _tick(self) -> None:
        now = self.clock()
        quiet = now - self.heard
        if self.not_ready_since is None and quiet >= self.stale_after:
            self._state("silent", f"no event or heartbeat from the gateway for {quiet:.0f} s")
        if self.alerted or self.not_ready_since is None:
            return
        if now - self.not_ready_since < self.limit or not self._trading_hours(now):
            return
        self.alerted = True
        why = f": {self.reason}" if self.reason else ""
        self.send(
            Notice(
                "gateway",
                f"gateway not ready for {now - self.not_ready_since:.0f} s in trading hours",
                f"state {self.state}{why}",
            )
        )

    def _trading_hours(self, now: float) -> bool:
        if not self.hours:
            return True
        try:
            return within(dt.datetime.fromtimestamp(now, dt.UTC), self.calendar, TRADING_HOURS)
        except CalendarExpired:
            return True  # unknown day: better one alert too many


def run(config: Config, stop: threading.Event, senders: Iterable[Sender]) -> None:
    senders = list(senders)

    def send(notice: Notice) -> None:
        log.info("notice (%s): %s", notice.kind, notice.title)
        for sender in senders:
            sender.offer(notice)

    calendar = None
    if hours_apply(config):
        try:
            calendar = TradingCalendar.load()
        except Exception as err:
            log.warning("no trading calendar (%s): weekdays count as trading days", err)
    watcher = Watcher(config, send, calendar=calendar)

    def ticking() -> None:
        while not stop.wait(0.5):
            try:
                watcher.tick()
            except Exception:  # a bug here must not end the gateway-down notices unseen
                log.exception("checking the gateway's readiness failed")

    ticker = threading.Thread(target=ticking, name="notify-tick", daemon=True)
    ticker.start()
    stream: EventStream | None = None
    while not stop.is_set():
        try:
            if stream is None:
                stream = EventStream.from_config(config, stale_after=STALE_AFTER)
            event = stream.next(timeout=0.5)
            if event is not None:
                watcher.on_event(event)
        except GatewaySilent as err:
            watcher.on_silent(err)
        except GatewayUnreachable as err:  # a hole to fill and no gateway: start afresh
            log.warning("%s; reading the bus afresh", err)
            watcher.on_silent(GatewaySilent(str(err), config.gateway.events_address, 0.0))
            if stream is not None:
                stream.close()
            stream = None
            stop.wait(1.0)
    ticker.join()
    if stream is not None:
        stream.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qmtbus-notify", description="chosen events to phones")
    parser.add_argument("--config", help="the qmtbus TOML file (default: $QMTBUS_CONFIG)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(config_path(args.config))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for name in ("SIGTERM", "SIGINT", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda *_: stop.set())
    senders = channels(config)
    for sender in senders:
        sender.start()
    if not senders:
        log.info("no channel configured in [notify]: idle (docs/alerts.md)")
        stop.wait()
        return 0
    names = ", ".join(s.channel.name for s in senders)
    log.info("notifying %s of %s", names, ", ".join(config.notify.events))
    try:
        run(config, stop, senders)
    finally:
        for sender in senders:  # all told first, so they finish side by side
            sender.stopping.set()
        for sender in senders:
            sender.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
