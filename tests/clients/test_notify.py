"""`python -m qmtbus.notify` through the running system: a real gateway on the simulator
and the real notifier, delivering to a local webhook and a local SMTP server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from qmtbus import Gateway, RiskDenied
from tests.clients.notify_support import Hook, Mailbox, smtp_server, webhook
from tests.support import Proc, Stack, start_gateway, wait_for

CODE = "600000.SH"


@pytest.fixture
def outside() -> Iterator[tuple[Hook, Mailbox]]:
    with webhook() as hook, smtp_server() as box:
        yield hook, box


@pytest.fixture
def notifier(stack: Stack, outside: tuple[Hook, Mailbox]) -> Iterator[Proc]:
    hook, box = outside
    stack.write_config(
        notify={
            "events": ["process", "gateway", "calendar", "risk", "halt", "fill"],
            "not_ready_seconds": 1.0,
            "retry_initial": 0.1,
            "webhooks": [{"kind": "json", "url": hook.url}],
            "email": {"port": box.port, "to": ["trader@example.com"], "events": ["process"]},
        }
    )
    proc = Proc("notify", stack).start()
    yield proc
    if proc.alive():
        assert proc.stop() == 0


def titles(hook: Hook) -> list[str]:
    return [n["title"] for body in hook.bodies() for n in body["notices"]]


def wait_title(hook: Hook, words: str, what: str) -> None:
    wait_for(lambda: any(words in t for t in titles(hook)), 20, what)


def wait_reading(gw: Gateway, hook: Hook) -> None:
    """Until the notifier reads the bus: it says "notifying" before it subscribes, and an
    event published before its subscription reaches the gateway is not its to see. A
    calendar warning sent until one arrives at the webhook proves it."""

    sent = [0.0]

    def arrived() -> bool:
        if time.monotonic() - sent[0] >= 1.0:  # a few at most: the channel has a rate limit
            sent[0] = time.monotonic()
            gw.note("alert.calendar", {"message": "warm-up"})
        return any("warm-up" in t for t in titles(hook))

    wait_for(arrived, 20, "the notifier reading the bus")


def test_given_denials_halts_alerts_and_fills_then_each_reaches_the_webhook(
    stack: Stack, gateway: Proc, notifier: Proc, outside: tuple[Hook, Mailbox]
) -> None:
    hook, box = outside
    with Gateway.from_config(stack.config_path) as gw:
        wait_for(lambda: "notifying" in notifier.log(), 20, "the notifier started")
        wait_reading(gw, hook)
        with pytest.raises(RiskDenied):
            gw.buy(CODE, 150, 10.0, strategy_name="lots")
        wait_title(hook, "risk denied buy 150 600000.SH @ 10 (lot_size)", "the denial")
        gw.halt("risk review")
        wait_title(hook, "trading is now halted on SIM0001", "the halt")
        gw.resume("done")
        gw.note(
            "alert.process",
            {"process": "recorder", "state": "FATAL", "message": "recorder went FATAL"},
        )
        wait_title(hook, "recorder went FATAL", "the process alert")
        gw.note("alert.calendar", {"message": "the XSHG calendar ends in 20 days"})
        wait_title(hook, "the XSHG calendar ends in 20 days", "the calendar warning")
        last = gw.quotes([CODE])[0].lastPrice
        gw.buy(CODE, 100, round(last * 1.02, 2))
        wait_title(hook, "fill buy 100 600000.SH", "the fill")
    # e-mail gets only what it asked for: the process alert
    wait_for(lambda: box.messages, 20, "the e-mail")
    (mail,) = box.messages
    assert "Subject: recorder went FATAL" in mail["data"]
    assert mail["to"] == ["trader@example.com"]
    assert not any("risk denied" in m["data"] for m in box.messages)


def test_given_the_gateway_down_longer_than_the_limit_then_a_notice_and_one_when_back(
    stack: Stack, gateway: Proc, notifier: Proc, outside: tuple[Hook, Mailbox]
) -> None:
    # the gateway starts first: the notifier reads the ports it bound from the config
    hook, _ = outside
    try:
        # it has heard the gateway ready (had its first heartbeat come later than the 1 s
        # limit, a "not ready" notice and a "ready again" came before: counted apart)
        wait_for(lambda: "gateway ready" in notifier.log(), 20, "the notifier seeing it ready")
        # and every notice it gave so far delivered (its sender thread delivers them)
        wait_for(
            lambda: len(titles(hook)) >= notifier.log().count("notice ("), 20, "notices delivered"
        )
        before = len(titles(hook))
        gateway.kill()
        wait_for(
            lambda: any("gateway not ready for" in t for t in titles(hook)[before:]),
            30,  # silent after 5 s without a heartbeat, then the 1 s limit
            "the gateway-down notice",
        )
        gateway = start_gateway(stack)
        wait_for(
            lambda: "gateway ready again" in titles(hook)[before:], 30, "the gateway-back notice"
        )
        # one notice per outage, not one per second
        after = titles(hook)[before:]
        assert len([t for t in after if "not ready" in t]) == 1, after
        assert "gateway silent: no event or heartbeat" in notifier.log()
    finally:
        gateway.stop()


def test_given_a_bad_notify_section_then_the_notifier_refuses_in_one_sentence(
    stack: Stack,
) -> None:
    stack.write_config(notify={"webhooks": [{"kind": "slack", "url": "http://x"}]})
    proc = Proc("notify", stack).start()
    assert proc.wait_exit(30) == 2
    (line,) = proc.log().splitlines()
    assert line.startswith("error: config file ") and "`notify.webhooks[0].kind`" in line


def test_given_no_channel_then_the_notifier_idles_and_stops_cleanly(stack: Stack) -> None:
    proc = Proc("notify", stack).start()
    wait_for(lambda: "idle" in proc.log(), 20, "the notifier idling")
    assert proc.stop() == 0
