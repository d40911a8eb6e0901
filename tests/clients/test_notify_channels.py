"""Notice delivery against a local HTTP server and a local SMTP server: the robots' bodies
and signing, retries with backoff, one log line per failed delivery, the rate limit that
merges, and offer() that never waits."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
import time
import urllib.parse

import pytest

from qmtbus.config import EmailConfig, NotifyConfig, WebhookConfig
from qmtbus.notify_channels import Email, Notice, Sender, Webhook
from tests.clients.notify_support import smtp_server, webhook
from tests.support import wait_for

ALL = {"process", "gateway", "calendar", "risk", "halt", "fill"}


def sender(kind: str, url: str, secret: str = "", **notify: object) -> Sender:
    config = NotifyConfig(**{"retry_initial": 0.05, "retries": 3, "timeout": 2.0, **notify})  # type: ignore[arg-type]
    hook = Webhook(WebhookConfig(kind=kind, url=url, secret=secret), config.timeout)  # type: ignore[arg-type]
    s = Sender(hook, config, ALL)
    s.start()
    return s


def test_given_a_signed_dingtalk_robot_then_the_url_carries_a_sign_the_robot_can_check() -> None:
    with webhook() as hook:
        s = sender("dingtalk", hook.url, secret="SECabc")
        try:
            s.offer(Notice("risk", "risk denied buy 150 600000.SH", "lot size"))
            wait_for(lambda: hook.requests, 5, "the robot's request")
        finally:
            s.stop()
    (request,) = hook.requests
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(request["path"]).query)
    timestamp, sign = query["timestamp"][0], query["sign"][0]
    assert query["access_token"] == ["abc"]
    assert abs(int(timestamp) / 1000 - time.time()) < 60
    # what DingTalk computes on its side
    expected = hmac.new(b"SECabc", f"{timestamp}\nSECabc".encode(), hashlib.sha256).digest()
    assert base64.b64decode(sign) == expected
    assert request["body"] == {
        "msgtype": "text",
        "text": {"content": "risk denied buy 150 600000.SH\nlot size"},
    }


def test_given_a_signed_feishu_robot_then_the_body_carries_timestamp_and_sign() -> None:
    with webhook() as hook:
        hook.answer = {"code": 0, "msg": "success"}
        s = sender("feishu", hook.url, secret="fs-secret")
        try:
            s.offer(Notice("halt", "trading is now halted on SIM0001", "reason: review"))
            wait_for(lambda: hook.requests, 5, "the robot's request")
        finally:
            s.stop()
    body = hook.bodies()[0]
    key = f"{body['timestamp']}\nfs-secret".encode()
    assert base64.b64decode(body["sign"]) == hmac.new(key, b"", hashlib.sha256).digest()
    assert body["msg_type"] == "text"
    assert body["content"]["text"] == "trading is now halted on SIM0001\nreason: review"


def test_given_a_wecom_robot_then_the_body_is_a_text_message() -> None:
    with webhook() as hook:
        s = sender("wecom", hook.url)
        try:
            s.offer(Notice("process", "gateway went FATAL", "account SIM0001"))
            wait_for(lambda: hook.requests, 5, "the robot's request")
        finally:
            s.stop()
    assert hook.bodies() == [
        {"msgtype": "text", "text": {"content": "gateway went FATAL\naccount SIM0001"}}
    ]


def test_given_a_failing_endpoint_then_it_is_retried_with_backoff_and_delivered_once() -> None:
    with webhook() as hook:
        hook.fail = 2
        s = sender("json", hook.url)
        try:
            s.offer(Notice("fill", "fill buy 100 600000.SH", "", data={"x": 1}))
            wait_for(lambda: s.delivered == 1, 10, "delivery after two failures")
        finally:
            s.stop()
    assert len(hook.requests) == 3 and s.failed == 0
    assert hook.bodies()[-1]["notices"][0]["data"] == {"x": 1}


def test_given_an_endpoint_that_keeps_failing_then_one_log_line_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with webhook() as hook, caplog.at_level(logging.ERROR, logger="notify"):
        hook.fail = 100
        s = sender("json", hook.url, retries=2)
        try:
            s.offer(Notice("risk", "first", ""))
            wait_for(lambda: s.failed == 1, 10, "the delivery given up")
        finally:
            s.stop()
        assert len(hook.requests) == 3
    lines = [r.getMessage() for r in caplog.records if r.name == "notify"]
    assert lines == [
        "could not deliver 1 notice(s) (first) to json webhook at 127.0.0.1 after 3 tries: HTTP 500"
    ]


def test_given_a_robot_that_refuses_then_its_error_code_is_a_failure() -> None:
    with webhook() as hook:
        hook.answer = {"errcode": 310000, "errmsg": "sign not match"}
        s = sender("dingtalk", hook.url, secret="x", retries=0)
        try:
            s.offer(Notice("risk", "denied", ""))
            wait_for(lambda: s.failed == 1, 10, "the refusal")
        finally:
            s.stop()


def test_given_more_notices_than_the_rate_allows_then_they_go_out_merged() -> None:
    with webhook() as hook:
        s = sender("json", hook.url, per_minute=1)
        s.window = 1.0  # a one-second "minute" keeps the test short
        try:
            for i in range(5):
                s.offer(Notice("fill", f"fill {i}", ""))
            wait_for(lambda: s.delivered == 5, 10, "every notice delivered")
        finally:
            s.stop()
    counts = [len(b["notices"]) for b in hook.bodies()]
    assert sum(counts) == 5 and len(counts) <= 3  # one, then the rest merged
    assert hook.bodies()[-1]["title"].startswith("qmtbus: ")


def test_given_a_hanging_endpoint_then_offer_never_waits_and_overflow_is_counted() -> None:
    with webhook() as hook:
        hook.hang = threading.Event()
        s = sender("json", hook.url, timeout=5.0)
        try:
            start = time.monotonic()
            for i in range(1500):
                s.offer(Notice("fill", f"fill {i}", ""))
            assert time.monotonic() - start < 0.5
            assert s.dropped >= 1500 - 1000 - 20
        finally:
            hook.hang.set()
            s.stop()


def test_given_an_smtp_server_then_a_notice_arrives_as_an_email() -> None:
    with smtp_server() as box:
        config = EmailConfig(port=box.port, from_addr="bus@example.com", to=["me@example.com"])
        s = Sender(Email(config, 5.0), NotifyConfig(retry_initial=0.05), ALL)
        s.start()
        try:
            s.offer(Notice("gateway", "gateway not ready for 61 s", "state disconnected"))
            wait_for(lambda: box.messages, 10, "the e-mail")
        finally:
            s.stop()
    (mail,) = box.messages
    assert (mail["from"], mail["to"]) == ("bus@example.com", ["me@example.com"])
    assert "Subject: gateway not ready for 61 s" in mail["data"]
    assert "state disconnected" in mail["data"]


def test_given_no_smtp_server_then_the_failure_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with smtp_server() as box:
        port = box.port
    config = EmailConfig(port=port, to=["me@example.com"])
    with caplog.at_level(logging.ERROR, logger="notify"):
        s = Sender(Email(config, 2.0), NotifyConfig(retry_initial=0.05, retries=1), ALL)
        s.start()
        try:
            s.offer(Notice("process", "recorder exited", ""))
            wait_for(lambda: s.failed == 1, 10, "the delivery given up")
        finally:
            s.stop()
    assert len([r for r in caplog.records if r.name == "notify"]) == 1
