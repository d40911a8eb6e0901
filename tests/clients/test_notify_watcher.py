"""The notifier's reading of the gateway's state: out of `ready` longer than the limit in
trading hours makes one notice, and one when it is back; outside trading hours, none."""

from __future__ import annotations

import datetime as dt

from qmtbus import protocol
from qmtbus.calendar import SHANGHAI, TradingCalendar
from qmtbus.config import Config, NotifyConfig, SimConfig
from qmtbus.notify import Watcher, notice_of
from qmtbus.notify_channels import Notice

TUESDAY = dt.datetime(2026, 11, 24, tzinfo=SHANGHAI)


class Clock:
    def __init__(self, start: dt.datetime) -> None:
        self.t = start.timestamp()

    def __call__(self) -> float:
        return self.t


def watcher(at: dt.datetime) -> tuple[Watcher, Clock, list[Notice]]:
    sent: list[Notice] = []
    clock = Clock(at)
    config = Config(sim=SimConfig(market_hours=True), notify=NotifyConfig(not_ready_seconds=60))
    return Watcher(config, sent.append, clock, TradingCalendar.load()), clock, sent


def state(name: protocol.GatewayState, reason: str = "") -> protocol.GatewayEvent:
    return protocol.GatewayEvent(state=name, reason=reason)


def test_given_a_disconnect_in_trading_hours_then_one_notice_after_the_limit_and_one_back() -> None:
    w, clock, sent = watcher(TUESDAY.replace(hour=9, minute=31))
    w.on_event(state("ready"))
    w.on_event(state("disconnected", "broker closed the connection"))
    clock.t += 59
    w.tick()
    assert sent == []
    clock.t += 2
    for _ in range(3):
        w.tick()
        w.on_event(protocol.HeartbeatEvent(state="connecting"))
    (down,) = sent
    assert down.kind == "gateway" and down.title == "gateway not ready for 61 s in trading hours"
    assert down.text == "state disconnected: broker closed the connection"
    clock.t += 30
    w.on_event(state("ready"))
    assert [n.title for n in sent[1:]] == ["gateway ready again"]
    assert sent[1].text == "after 91 s not ready"


def test_given_the_gateway_gone_quiet_then_the_silence_counts_without_the_reader() -> None:
    # the bus reader may be waiting on the dead gateway (a replay's timeout and retries):
    # tick() alone sees the silence
    w, clock, sent = watcher(TUESDAY.replace(hour=10))
    w.on_event(protocol.HeartbeatEvent(state="ready"))
    clock.t += 4.9
    w.tick()
    assert w.state == "ready"
    clock.t += 0.1  # five seconds without a word: silent from now
    w.tick()
    assert w.state == "silent" and sent == []
    clock.t += 60
    w.tick()
    (down,) = sent
    assert down.title == "gateway not ready for 60 s in trading hours"
    assert down.text == "state silent: no event or heartbeat from the gateway for 5 s"
    w.tick()  # one notice per outage
    w.on_event(protocol.HeartbeatEvent(state="ready"))
    assert [n.title for n in sent] == [down.title, "gateway ready again"]


def test_given_the_gateway_away_at_night_then_no_notice() -> None:
    w, clock, sent = watcher(TUESDAY.replace(hour=20))
    w.on_event(state("outside_window"))
    clock.t += 3600
    w.tick()
    assert sent == []


def test_given_a_holiday_then_no_notice_even_at_ten() -> None:
    w, clock, sent = watcher(dt.datetime(2026, 10, 1, 10, 0, tzinfo=SHANGHAI))
    w.on_event(state("disconnected"))
    clock.t += 600
    w.tick()
    assert sent == []


def test_given_the_events_that_matter_then_each_makes_its_notice() -> None:
    denial = protocol.RiskDeniedEvent(
        account_id="SIM0001", client_order_id="c1", stock_code="600000.SH", order_type=23,
        order_volume=150, price=10.5, strategy_name="m1", rule="lot_size",
        message="buy volume 150 of 600000.SH: buys are in lots of 100 shares",
    )  # fmt: skip
    notice = notice_of(denial)
    assert notice is not None and notice.kind == "risk"
    assert notice.title == "risk denied buy 150 600000.SH @ 10.5 (lot_size)"
    assert notice.text == "buy volume 150 of 600000.SH: buys are in lots of 100 shares [m1]"
    halt = notice_of(
        protocol.NoteEvent(account_id="A", topic="trading", data={"trading": "halted"})
    )
    assert halt is not None and (halt.kind, halt.title) == ("halt", "trading is now halted on A")
    assert notice_of(protocol.NoteEvent(topic="job.x", data={})) is None
    assert notice_of(protocol.OrderEvent()) is None
