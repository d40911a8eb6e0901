"""The broker thread: the connection state machine, reconciliation queries, and every broker call.

starting → outside_window → connecting → connected → reconciling → ready;
on on_disconnected, a failed account status, a failed or unanswered probe or a
failed step: disconnected → connecting again after a capped, jittered backoff.
Each attempt uses a new trader object with a new session id, as xtquant
requires. The states and their transitions are gateway/connection.py's table.

Nothing waits for ever: the trader's own set_timeout is set, and every
synchronous call is also waited for at most broker_timeout + 1 s (a call that
overruns drops the session). An idle session is probed every probe_interval,
so a broker that stops answering takes the gateway out of ready within
probe_interval + broker_timeout + 1 s. Any other exception ends the broker
thread: the thread says so (state stopping, with the reason) and stops the
process, which exits non-zero for supervisord to restart it.
"""

from __future__ import annotations

import logging
import queue
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from qmtbus import protocol as p
from qmtbus.config import Config
from qmtbus.failpoints import failpoint
from qmtbus.gateway import convert
from qmtbus.gateway.broker.calls import BrokerTimeout, call_with_deadline
from qmtbus.gateway.broker.xtquant import release
from qmtbus.gateway.callbacks import Callbacks
from qmtbus.gateway.connection import Connection, State
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
from qmtbus.gateway.inbox import Inbox
from qmtbus.gateway.window import Window

log = logging.getLogger("gateway.lifecycle")

# How much longer than the trader's own set_timeout a synchronous call is waited for.
DEADLINE_MARGIN = 1.0


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


def stop_the_process() -> None:
    """What a dead broker thread does by default: the gateway's own SIGTERM handler stops
    the I/O loop gracefully, and the process exits non-zero (see __main__)."""
    signal.raise_signal(signal.SIGTERM)


class Lifecycle:
    def __init__(
        self,
        config: Config,
        broker: Any,
        post: Callable[[Item], None],
        on_death: Callable[[], None] = stop_the_process,
        post_quietly: Callable[[Item], None] | None = None,
    ):
        self.config = config
        self.broker = broker
        self.post = post
        # for what can wait for the I/O loop's next turn: no wake-up of its own
        self.post_quietly = post_quietly or post
        self.on_death = on_death
        self.window = Window(config, alert=self.post_event)  # alert.calendar notes
        self.jobs: Inbox[Job | None] = Inbox()  # one consumer: the broker thread
        self.stopping = threading.Event()
        self.session_id = 0
        self.trader: Any = None
        self.timeout = config.gateway.broker_timeout
        self.probe_interval = config.gateway.probe_interval
        # (session id, reason) reported by on_disconnected or a failed account status
        self._lost: tuple[int, str] = (0, "")
        self._last_asset: p.Asset | None = None
        self.died = ""  # why the broker thread ended, when it died
        self.connection = Connection(self._publish)
        self.account = broker.account()
        self.thread = threading.Thread(target=self._run, name="broker", daemon=True)

    # -- called from other threads -------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def submit(self, job: Job) -> None:
        self.jobs.put(job)

    def post_event(self, event: p.Event) -> None:
        self.post(BrokerEvent(event))

    def post_disconnected(self, session_id: int, reason: str = "on_disconnected") -> None:
        self._lost = (session_id, reason)
        self.jobs.put(None)  # wake the broker thread

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.jobs.put(None)
        self.thread.join(timeout)

    # -- the broker thread -------------------------------------------------------
    def _publish(self, state: State, reason: str) -> None:
        log.info("state %s (session %s) %s", state.value, self.session_id, reason)
        self.post(StateChanged(state.value, self.session_id, reason))

    def _state(self, state: State, reason: str = "") -> None:
        self.connection.move(state, reason)

    def _run(self) -> None:
        try:
            self._state(State.STARTING)
            self._loop()
        except BaseException as err:
            self.died = f"{type(err).__name__}: {err}"
            log.critical("the broker thread died: %s", self.died, exc_info=True)
            self._drop_trader()
            self._state(State.STOPPING, f"the broker thread died ({self.died}); restarting")
            self.on_death()

    def _loop(self) -> None:
        backoff = Backoff(self.config.gateway.reconnect_initial, self.config.gateway.reconnect_max)
        while not self.stopping.is_set():
            window = self.window.state()
            if not window.open:
                self._state(State.OUTSIDE_WINDOW, window.reason)
                self._idle(min(window.next_check, 30.0))
                continue
            try:
                self._connect()
                backoff.reset()
                self._serve()
            except (Disconnected, BrokerTimeout) as err:
                if self.stopping.is_set():
                    break
                self._state(State.DISCONNECTED, str(err))
            finally:
                self._drop_trader()
            if not self.stopping.is_set():
                self._idle(backoff.next_delay())
        self._drop_trader()

    def _sync(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """A synchronous broker call, waited for at most broker_timeout + DEADLINE_MARGIN."""
        return call_with_deadline(what, self.timeout + DEADLINE_MARGIN, fn, *args)

    def _connect(self) -> None:
        self.session_id = self.broker.new_session_id()
        self._lost = (0, "")
        self._state(State.CONNECTING, f"new session {self.session_id}")
        trader = self.broker.new_trader(self.session_id)
        self.trader = trader
        account_id = self.config.gateway.account_id
        trader.register_callback(Callbacks(self, self.session_id, trader, account_id))
        trader.start()
        trader.set_timeout(int(self.timeout * 1000))
        rc = self._sync("connect", trader.connect)
        if rc != 0:
            raise Disconnected(f"connect() returned {rc}")
        self._state(State.CONNECTED)
        rc = self._sync("subscribe", trader.subscribe, self.account)
        if rc != 0:
            raise Disconnected(f"subscribe() returned {rc}")
        self._state(State.RECONCILING)
        snapshot = self._snapshot(reconcile=True)
        self.post(snapshot)
        held = {x.stock_code for x in snapshot.positions or []}
        held |= {o.stock_code for o in snapshot.orders or []}
        prefetch = getattr(self.broker, "prefetch", None)
        if prefetch is not None and held:
            prefetch(sorted(held))  # instrument data the risk gate will ask for
        self._state(State.READY)

    def _snapshot(self, reconcile: bool) -> Snapshot:
        t, acc = self.trader, self.account
        asset = self._sync("query_stock_asset", t.query_stock_asset, acc)
        if asset is None:
            raise Disconnected("query_stock_asset returned None")
        orders = self._sync("query_stock_orders", t.query_stock_orders, acc, False)
        trades = self._sync("query_stock_trades", t.query_stock_trades, acc)
        positions = self._sync("query_stock_positions", t.query_stock_positions, acc)
        if orders is None or trades is None or positions is None:
            raise Disconnected("a reconciliation query returned None")
        self._last_asset = convert.asset(asset)
        return Snapshot(
            asset=self._last_asset,
            orders=[convert.order(o) for o in orders],
            trades=[convert.trade(x) for x in trades],
            positions=[convert.position(x) for x in positions],
            reconcile=reconcile,
        )

    def _serve(self) -> None:
        next_probe = time.monotonic() + self.probe_interval
        while not self.stopping.is_set():
            try:
                job = self.jobs.get(timeout=max(0.0, next_probe - time.monotonic()))
            except queue.Empty:
                job = None
            self._check_session()
            if job is not None:
                try:
                    self._do(job)
                except BrokerTimeout as err:
                    # The session no longer answers: an order's outcome is unknown (it stays
                    # "sent" and is looked up by its remark on the next session).
                    if not isinstance(job, SendOrder):
                        self._refuse(job, f"broker call failed: {err}")
                    raise
                except Exception as err:
                    # A broker call that raises leaves its outcome unknown for orders:
                    # the order stays "sent"/"sending" and reconciliation resolves it.
                    log.exception("broker call for %s failed", type(job).__name__)
                    if not isinstance(job, SendOrder):
                        self._refuse(job, f"broker call failed: {err}")
            if time.monotonic() >= next_probe:
                self._probe()
                next_probe = time.monotonic() + self.probe_interval
        raise Disconnected("gateway stopping")

    def _check_session(self) -> None:
        session_id, reason = self._lost
        if session_id and session_id == self.session_id:
            raise Disconnected(reason)

    def _probe(self) -> None:
        """Is the session alive? Its answers also refresh the cash and positions the risk gate
        reads (miniQMT may skip asset and position pushes)."""
        window = self.window.state()
        if not window.open:
            raise Disconnected(f"connection window closed: {window.reason}")
        t, acc = self.trader, self.account
        raw = self._sync("query_stock_asset", t.query_stock_asset, acc)
        if raw is None:
            raise Disconnected("health probe failed: query_stock_asset returned None")
        positions = self._sync("query_stock_positions", t.query_stock_positions, acc)
        if positions is None:
            raise Disconnected("health probe failed: query_stock_positions returned None")
        asset = convert.asset(raw)
        changed = asset if asset != self._last_asset else None
        self._last_asset = asset
        self.post(Snapshot(asset=changed, positions=[convert.position(x) for x in positions]))

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
            self.post(OrderFailed(job.cmd.client_order_id, why, called=False))
        elif isinstance(job, SendCancel):
            self.post(CancelFailed(job.order_id, why))
        elif isinstance(job, RunQuery):
            error = p.ErrorReply(code=p.NOT_CONNECTED, message=why)
            self.post(Answer(job.envelope, job.json, error))

    def _do(self, job: Job) -> None:
        t, acc = self.trader, self.account
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
            failpoint("broker_called")
            if seq is None or seq < 0:
                self.post(OrderFailed(c.client_order_id, f"order_stock_async returned {seq}"))
            else:
                # Only a fallback for a response without its remark, which comes later with
                # a wake-up of its own: this item waits for that turn (a wake-up here costs
                # the I/O thread a turn and the broker thread a GIL hand-over per order).
                self.post_quietly(OrderSent(c.client_order_id, seq))
        elif isinstance(job, SendCancel):
            seq = t.cancel_order_stock_async(self.account, job.order_id)
            if seq is None or seq < 0:
                self.post(CancelFailed(job.order_id, f"cancel_order_stock_async returned {seq}"))
        elif isinstance(job, RunQuery):
            self.post(self._query(job))
        elif isinstance(job, ResolvePending):
            orders = self._sync("query_stock_orders", t.query_stock_orders, acc, False)
            if orders is not None:
                self.post(Snapshot(orders=[convert.order(o) for o in orders]))

    def _query(self, job: RunQuery) -> Answer:
        t, cmd = self.trader, job.command
        if isinstance(cmd, p.QueryAsset):
            raw = self._sync("query_stock_asset", t.query_stock_asset, self.account)
            if raw is None:
                return Answer(job.envelope, job.json, _broker_error("query_stock_asset"))
            asset = convert.asset(raw)
            reply: Any = p.AssetReply(**msgspec.structs.asdict(asset))
            return Answer(job.envelope, job.json, reply, Snapshot(asset=asset))
        if isinstance(cmd, p.QueryOrders):
            orders = self._sync(
                "query_stock_orders", t.query_stock_orders, self.account, cmd.cancelable_only
            )
            if orders is None:
                return Answer(job.envelope, job.json, _broker_error("query_stock_orders"))
            reply = p.OrdersReply(orders=[convert.order(o) for o in orders])
            return Answer(job.envelope, job.json, reply)
        if isinstance(cmd, p.QueryTrades):
            trades = self._sync("query_stock_trades", t.query_stock_trades, self.account)
            if trades is None:
                return Answer(job.envelope, job.json, _broker_error("query_stock_trades"))
            reply = p.TradesReply(trades=[convert.trade(x) for x in trades])
            return Answer(job.envelope, job.json, reply)
        positions = self._sync("query_stock_positions", t.query_stock_positions, self.account)
        if positions is None:
            return Answer(job.envelope, job.json, _broker_error("query_stock_positions"))
        held = [convert.position(x) for x in positions]
        reply = p.PositionsReply(positions=held)
        # the answer also refreshes the positions the risk gate reads
        return Answer(job.envelope, job.json, reply, Snapshot(positions=held))


def _broker_error(call: str) -> p.ErrorReply:
    return p.ErrorReply(code=p.BROKER_ERROR, message=f"{call} returned no answer from the broker")
