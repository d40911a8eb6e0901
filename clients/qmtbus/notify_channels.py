"""Where notices go: group robots (WeCom, DingTalk, Feishu, with their signing), a plain
JSON webhook, e-mail over SMTP; each behind a Sender thread of its own.

A Sender never blocks whoever hands it a notice: `offer()` puts it on a bounded
queue (a full queue drops the notice and says so, once per overflow). The
thread sends at most `per_minute` messages a minute; notices that pile up
meanwhile go out merged in one message. A failed delivery is tried again with
doubling waits; when it still fails, one log line says so, and the notices are
given up (alerts are for now; the event log keeps everything).
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
import logging
import queue
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Protocol

from qmtbus.config import EmailConfig, NotifyConfig, WebhookConfig

log = logging.getLogger("notify")

QUEUE_SIZE = 1000
MERGE_MAX = 20  # notices in one merged message at most
MAX_RETRY_WAIT = 60.0


@dataclass(frozen=True)
class Notice:
    """One thing to tell: its kind (config NoticeKind), a one-line title and the detail."""

    kind: str
    title: str
    text: str
    time: float = field(default_factory=time.time)
    data: dict[str, Any] = field(default_factory=dict)


class Channel(Protocol):
    name: str

    def deliver(self, notices: list[Notice]) -> None:
        """Send the notices as one message; raise on any failure."""


class DeliveryError(Exception):
    pass


def _text(notices: list[Notice]) -> tuple[str, str]:
    if len(notices) == 1:
        n = notices[0]
        return n.title, f"{n.title}\n{n.text}" if n.text else n.title
    title = f"qmtbus: {len(notices)} notices"
    lines = [title] + [f"- {n.title}" + (f": {n.text}" if n.text else "") for n in notices]
    return title, "\n".join(lines)


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk robot signing: base64(HMAC-SHA256(secret, "<ms>\\n<secret>")), URL-quoted."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest).decode())


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu robot signing: base64(HMAC-SHA256(key="<s>\\n<secret>", message=""))."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


class Webhook:
    """A group robot or a plain JSON endpoint, over HTTP POST."""

    def __init__(self, config: WebhookConfig, timeout: float) -> None:
        self.config = config
        self.timeout = timeout
        host = urllib.parse.urlsplit(config.url).hostname or "?"
        self.name = f"{config.kind} webhook at {host}"  # never the URL: it holds the key

    def request(self, notices: list[Notice]) -> tuple[str, dict[str, Any]]:
        """The URL and JSON body to POST (signed where the robot wants it)."""
        title, text = _text(notices)
        url, kind, secret = self.config.url, self.config.kind, self.config.secret
        if kind == "wecom":
            return url, {"msgtype": "text", "text": {"content": text}}
        if kind == "dingtalk":
            if secret:
                ms = int(time.time() * 1000)
                join = "&" if "?" in url else "?"
                url = f"{url}{join}timestamp={ms}&sign={dingtalk_sign(secret, ms)}"
            return url, {"msgtype": "text", "text": {"content": text}}
        if kind == "feishu":
            body: dict[str, Any] = {"msg_type": "text", "content": {"text": text}}
            if secret:
                now = int(time.time())
                body = {"timestamp": str(now), "sign": feishu_sign(secret, now), **body}
            return url, body
        return url, {
            "title": title,
            "text": text,
            "notices": [
                {"kind": n.kind, "title": n.title, "text": n.text, "time": n.time, "data": n.data}
                for n in notices
            ],
        }

    def deliver(self, notices: list[Notice]) -> None:
        url, body = self.request(notices)
        request = urllib.request.Request(
            url,
            data=json.dumps(body, ensure_ascii=False, default=str).encode(),
            headers={"Content-Type": "application/json; charset=utf-8"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            raise DeliveryError(f"HTTP {err.code}") from None
        except (urllib.error.URLError, OSError) as err:
            raise DeliveryError(str(getattr(err, "reason", err))) from None
        if self.config.kind != "json":
            # the robots answer 200 with their own error code
            try:
                answer = json.loads(raw or b"{}")
            except ValueError:
                raise DeliveryError(f"not a JSON answer: {raw[:80]!r}") from None
            code = answer.get("errcode", answer.get("code", answer.get("StatusCode", 0)))
            if code not in (0, None):
                message = answer.get("errmsg") or answer.get("msg") or answer.get("StatusMessage")
                raise DeliveryError(f"the robot refused: {code} {message}")


class Email:
    """Notices by e-mail over SMTP (plain, STARTTLS or TLS)."""

    def __init__(self, config: EmailConfig, timeout: float) -> None:
        self.config = config
        self.timeout = timeout
        self.name = f"e-mail via {config.host}:{config.port}"

    def message(self, notices: list[Notice]) -> EmailMessage:
        title, text = _text(notices)
        msg = EmailMessage()
        msg["Subject"] = title
        msg["From"] = self.config.from_addr
        msg["To"] = ", ".join(self.config.to)
        msg.set_content(text)
        return msg

    def deliver(self, notices: list[Notice]) -> None:
        c = self.config
        try:
            smtp: smtplib.SMTP
            if c.security == "ssl":
                smtp = smtplib.SMTP_SSL(
                    c.host, c.port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(c.host, c.port, timeout=self.timeout)
            with smtp:
                if c.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if c.username:
                    smtp.login(c.username, c.password)
                smtp.send_message(self.message(notices))
        except (smtplib.SMTPException, OSError) as err:
            raise DeliveryError(str(err) or type(err).__name__) from None


class Sender(threading.Thread):
    """One channel's queue, rate limit and retries."""

    def __init__(self, channel: Channel, config: NotifyConfig, kinds: set[str]) -> None:
        super().__init__(name=f"notify-{channel.name}", daemon=True)
        self.channel = channel
        self.kinds = kinds
        self.per_minute = config.per_minute
        self.retries = config.retries
        self.retry_initial = config.retry_initial
        self.inbox: queue.Queue[Notice] = queue.Queue(QUEUE_SIZE)
        self.stopping = threading.Event()
        self.window = 60.0  # seconds in which at most per_minute messages go out
        self.sent: list[float] = []  # monotonic times of the messages in the last window
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self._overflowing = False

    def offer(self, notice: Notice) -> None:
        """Hand over a notice without ever waiting."""
        if notice.kind not in self.kinds:
            return
        try:
            self.inbox.put_nowait(notice)
            self._overflowing = False
        except queue.Full:
            self.dropped += 1
            if not self._overflowing:
                name = self.channel.name
                log.error("%s: %d notices waiting; dropping new ones", name, QUEUE_SIZE)
                self._overflowing = True

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self.join(timeout)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                first = self.inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            self._wait_for_room()
            batch = collections.deque([first])
            while len(batch) < MERGE_MAX:
                try:
                    batch.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            self._send(list(batch))

    def _wait_for_room(self) -> None:
        """Rate limit: at most per_minute messages in any 60 s."""
        while not self.stopping.is_set():
            now = time.monotonic()
            self.sent = [t for t in self.sent if now - t < self.window]
            if len(self.sent) < self.per_minute:
                return
            self.stopping.wait(self.window - (now - self.sent[0]))

    def _send(self, notices: list[Notice]) -> None:
        wait = self.retry_initial
        for attempt in range(self.retries + 1):
            self.sent.append(time.monotonic())
            try:
                self.channel.deliver(notices)
            except DeliveryError as err:
                if attempt == self.retries or self.stopping.is_set():
                    self.failed += 1
                    log.error(
                        "could not deliver %d notice(s) (%s) to %s after %d tries: %s",
                        len(notices),
                        notices[0].title,
                        self.channel.name,
                        attempt + 1,
                        err,
                    )
                    return
                if self.stopping.wait(wait):
                    continue
                wait = min(wait * 2, MAX_RETRY_WAIT)
                continue
            self.delivered += len(notices)
            return
