"""The broker thread: connection state machine, reconciliation queries, and every broker call.

starting → outside_window → connecting → connected → reconciling → ready;
on on_disconnected, a failed probe or a failed step: disconnected → connecting
again after a capped, jittered backoff. Each attempt uses a new trader object
with a new session id, as xtquant requires.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from qmtbus import protocol as p
from qmtbus.config import Config
from qmtbus.gateway import convert
from qmtbus.gateway.broker.xtquant import release
from qmtbus.gateway.callbacks import Callbacks
from qmtbus.gateway.handoff import (
    Answer,
    BrokerEvent,
    CancelFailed,
    Item,
    Job,
    OrderFailed,
    OrderSent,
    ResolvePending,
    RunQuery,
    SendCancel,
    SendOrder,
    Snapshot,
    StateChanged,
)
from qmtbus.gateway.window import Window

log = logging.getLogger("gateway.lifecycle")

PROBE_INTERVAL = 10.0  # seconds between health probes of an idle connection


class Backoff:
    """Capped exponential backoff with jitter: 1, 2, 4 … seconds up to `cap`."""

    def __init__(self, initial: float, cap: float, rng: random.Random | None = None):
        self.initial, self.cap = initial, cap
        self.failures = 0
        self.rng = rng or random.Random()

    def next_delay(self) -> float:
        base = min(self.cap, self.initial * (2**self.failures))
        self.failures += 1
        return base * self.rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.failures = 0


class Disconnected(Exception):
    """The current session is gone; the reason is the message."""


class Lifecycle:
    def __init__(self, config: Config, broker: Any, post: Callable[[Item], None]):
        self.config = config
        self.broker = broker
        self.post = post
        self.window = Window(config.gateway.window)
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.stopping = threading.Event()
        self.session_id = 0
        self.trader: Any = None
        self._lost_session = 0  # session id reported by on_disconnected
        self.account = broker.account()
        self.thread = threading.Thread(target=self._run, name="broker", daemon=True)

    # -- called from other threads -------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def submit(self, job: Job) -> None:
        self.jobs.put(job)

    def post_event(self, event: p.Event) -> None:
        self.post(BrokerEvent(event))

    def post_disconnected(self, session_id: int) -> None:
        self._lost_session = session_id
        self.jobs.put(None)  # wake the broker thread

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.jobs.put(None)
        self.thread.join(timeout)

    # -- the broker thread -------------------------------------------------------
    def _state(self, state: p.GatewayState, reason: str = "") -> None:
        log.info("state %s (session %s) %s", state, self.session_id, reason)
        self.post(StateChanged(state, self.session_id, reason))

    def _run(self) -> None:
        backoff = Backoff(self.config.gateway.reconnect_initial, self.config.gateway.reconnect_max)
        while not self.stopping.is_set():
            window = self.window.state()
            if not window.open:
                self._state("outside_window", window.reason)
                self._idle(min(window.next_check, 30.0))
                continue
            try:
                self._connect()
                backoff.reset()
                self._serve()
            except Disconnected as err:
                if self.stopping.is_set():
                    break
                self._state("disconnected", str(err))
            finally:
                self._drop_trader()
            if not self.stopping.is_set():
                self._idle(backoff.next_delay())
        self._drop_trader()

    def _connect(self) -> None:
        self.session_id = self.broker.new_session_id()
        self._lost_session = 0
        self._state("connecting", f"new session {self.session_id}")
        trader = self.broker.new_trader(self.session_id)
        self.trader = trader
        trader.register_callback(Callbacks(self, self.session_id))
        trader.start()
        rc = trader.connect()
        if rc != 0:
            raise Disconnected(f"connect() returned {rc}")
        self._state("connected")
        rc = trader.subscribe(self.account)
        if rc != 0:
            raise Disconnected(f"subscribe() returned {rc}")
        self._state("reconciling")
        self.post(self._snapshot(reconcile=True))
        self._state("ready")

    def _snapshot(self, reconcile: bool) -> Snapshot:
        t = self.trader
        asset = t.query_stock_asset(self.account)
        if asset is None:
            raise Disconnected("query_stock_asset returned None")
        orders = t.query_stock_orders(self.account, False)
        trades = t.query_stock_trades(self.account)
        positions = t.query_stock_positions(self.account)
        if orders is None or trades is None or positions is None:
            raise Disconnected("a reconciliation query returned None")
        return Snapshot(
            asset=convert.asset(asset),
            orders=[convert.order(o) for o in orders],
            trades=[convert.trade(x) for x in trades],
            positions=[convert.position(x) for x in positions],
            reconcile=reconcile,
        )

    def _serve(self) -> None:
        next_probe = time.monotonic() + PROBE_INTERVAL
        while not self.stopping.is_set():
            try:
                job = self.jobs.get(timeout=max(0.0, next_probe - time.monotonic()))
            except queue.Empty:
                job = None
            self._check_session()
            if job is not None:
                try:
                    self._do(job)
                except Exception as err:
                    # A broker call that raises leaves its outcome unknown for orders:
                    # the order stays "sent"/"sending" and reconciliation resolves it.
                    log.exception("broker call for %s failed", type(job).__name__)
                    if not isinstance(job, SendOrder):
                        self._refuse(job, f"broker call failed: {err}")
            if time.monotonic() >= next_probe:
                self._probe()
                next_probe = time.monotonic() + PROBE_INTERVAL
        raise Disconnected("gateway stopping")

    def _check_session(self) -> None:
        if self._lost_session and self._lost_session == self.session_id:
            raise Disconnected("on_disconnected")

    def _probe(self) -> None:
        window = self.window.state()
        if not window.open:
            raise Disconnected(f"connection window closed: {window.reason}")
        if self.trader.query_stock_asset(self.account) is None:
            raise Disconnected("health probe failed: query_stock_asset returned None")

    def _idle(self, seconds: float) -> None:
        """Wait while not connected, refusing whatever work arrives."""
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                job = self.jobs.get(timeout=left)
            except queue.Empty:
                return
            if job is not None:
                self._refuse(job, "the gateway is not connected to the broker")

    def _drop_trader(self) -> None:
        trader, self.trader = self.trader, None
        if trader is not None:
            try:
                release(trader)
            except Exception as err:  # a dead session may fail to stop cleanly
                log.warning("stopping session %s: %s", self.session_id, err)

    # -- jobs ------------------------------------------------------------------------
    def _refuse(self, job: Job, why: str) -> None:
        if isinstance(job, SendOrder):
            self.post(OrderFailed(job.cmd.client_order_id, why))
        elif isinstance(job, SendCancel):
            self.post(CancelFailed(job.order_id, why))
        elif isinstance(job, RunQuery):
            error = p.ErrorReply(code=p.NOT_CONNECTED, message=why)
            self.post(Answer(job.envelope, job.json, error))

    def _do(self, job: Job) -> None:
        t = self.trader
        if isinstance(job, SendOrder):
            c = job.cmd
            seq = t.order_stock_async(
                self.account,
                c.stock_code,
                c.order_type,
                c.order_volume,
                c.price_type,
                c.price,
                strategy_name=c.strategy_name,
                order_remark=c.client_order_id,
            )
            if seq is None or seq < 0:
                self.post(OrderFailed(c.client_order_id, f"order_stock_async returned {seq}"))
            else:
                self.post(OrderSent(c.client_order_id, seq))
        elif isinstance(job, SendCancel):
            seq = t.cancel_order_stock_async(self.account, job.order_id)
            if seq is None or seq < 0:
                self.post(CancelFailed(job.order_id, f"cancel_order_stock_async returned {seq}"))
        elif isinstance(job, RunQuery):
            self.post(self._query(job))
        elif isinstance(job, ResolvePending):
            orders = t.query_stock_orders(self.account, False)
            if orders is not None:
                self.post(Snapshot(orders=[convert.order(o) for o in orders]))

    def _query(self, job: RunQuery) -> Answer:
        t, cmd = self.trader, job.command
        if isinstance(cmd, p.QueryAsset):
            raw = t.query_stock_asset(self.account)
            if raw is None:
                return Answer(job.envelope, job.json, _broker_error("query_stock_asset"))
            asset = convert.asset(raw)
            reply: Any = p.AssetReply(**msgspec.structs.asdict(asset))
            return Answer(job.envelope, job.json, reply, Snapshot(asset=asset))
        if isinstance(cmd, p.QueryOrders):
            orders = t.query_stock_orders(self.account, cmd.cancelable_only)
            if orders is None:
                return Answer(job.envelope, job.json, _broker_error("query_stock_orders"))
            reply = p.OrdersReply(orders=[convert.order(o) for o in orders])
            return Answer(job.envelope, job.json, reply)
        if isinstance(cmd, p.QueryTrades):
            trades = t.query_stock_trades(self.account)
            if trades is None:
                return Answer(job.envelope, job.json, _broker_error("query_stock_trades"))
            reply = p.TradesReply(trades=[convert.trade(x) for x in trades])
            return Answer(job.envelope, job.json, reply)
        positions = t.query_stock_positions(self.account)
        if positions is None:
            return Answer(job.envelope, job.json, _broker_error("query_stock_positions"))
        reply = p.PositionsReply(positions=[convert.position(x) for x in positions])
        return Answer(job.envelope, job.json, reply)


def _broker_error(call: str) -> p.ErrorReply:
    return p.ErrorReply(code=p.BROKER_ERROR, message=f"{call} returned no answer from the broker")
