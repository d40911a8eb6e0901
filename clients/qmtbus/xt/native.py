"""`xtquant.xtpythonclient` over the bus: the native module beneath xttrader.py, on a gateway.

xtquant's own xttrader.py runs unchanged on top of this module (qmtbus.xt.install puts
it in sys.modules first). It builds `XtQuantAsyncClient(path, 'xtquant', session)`,
binds its callbacks with `bindOn…Callback`, fills `<Name>Req` objects and sends them
with `…WithSeq(seq, req)`. Here every request becomes a gateway command (orders with a
fresh client_order_id, so the risk gate and idempotency apply) and every push comes from
an EventStream (holes and gateway restarts filled from the journal by replay). Answers
and pushes reach xttrader on this client's one native thread, in order.

The userdata path and the session id are kept but unused: the gateway owns the one
miniQMT session. What the bus does not carry (credit, transfers, SMT, smart algos)
raises NotImplementedError naming the xttrader call.
"""

from __future__ import annotations

import itertools
import logging
import queue
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qmtbus import protocol
from qmtbus.client import Gateway
from qmtbus.config import Config, load_config
from qmtbus.errors import GatewayError
from qmtbus.sansio import new_client_order_id
from qmtbus.stream import EventStream
from qmtbus.xt import objects
from qmtbus.xtrequests import (  # noqa: F401 - xttrader.py builds them from here
    CancelOrderStockReq,
    NotCarriedReq,
    OrderStockReq,
    QueryAccountInfosReq,
    QueryAccountStatusReq,
    QueryStockAssetReq,
    QueryStockOrdersReq,
    QueryStockPositionsReq,
    QueryStockTradesReq,
    SubscribeReq,
    UnsubscribeReq,
)

log = logging.getLogger("qmtbus.xt")

# Set by qmtbus.xt.install(): which gateway, and how long a silence means it is gone.
CONFIG: Config | None = None
GONE_AFTER = 60.0
BUS = True  # tells qmtbus.xt.install that xttrader runs over this module
NOT_CONNECTED = "not sent: this XtQuantTrader is not connected to a qmtbus gateway"


# -- request structs: xttrader.py reaches them as attributes of this module -----


def __getattr__(name: str) -> Any:
    # xttrader.py names ~20 more request classes; each is a _NotCarried of its own name.
    if name.endswith(("Req", "Param")):
        cls = type(name, (NotCarriedReq,), {})
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def xttrader_name(native_call: str) -> str:
    """queryCreditDetailWithSeq → query_credit_detail: the call the script made."""
    stem = native_call.removesuffix("WithSeq")
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", stem).lower()


_XTTRADER_HELPERS = frozenset({"apply", "common_op_sync_with_seq", "common_op_async_with_seq"})


def _calling_method(native_call: str) -> str:
    """The XtQuantTrader method the script called (fund_transfer sends transferWithSeq)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_name
        if frame.f_code.co_filename.endswith("xttrader.py") and name not in _XTTRADER_HELPERS:
            return name
        frame = frame.f_back  # type: ignore[assignment]
    return xttrader_name(native_call)


class NotCarried(NotImplementedError):
    def __init__(self, native_call: str) -> None:
        super().__init__(
            f"XtQuantTrader.{_calling_method(native_call)} is not carried by the qmtbus bus "
            "(it carries stock orders, cancels and queries; credit, transfers, SMT and "
            "smart algos stay on miniQMT)"
        )


# -- the client --------------------------------------------------------------------


@dataclass
class _Placed:
    """An order this client sent: how to answer it and how to show it to the script."""

    seq: int
    account_id: str
    strategy_name: str
    order_remark: str
    answered: bool = False


class XtQuantAsyncClient:
    def __init__(self, path: bytes | str, name: str, session: int) -> None:
        self.path = path.decode("gb18030") if isinstance(path, bytes) else str(path)
        self.name = name
        self.session = int(session)
        self.config = CONFIG if CONFIG is not None else load_config(None)
        self.gone_after = GONE_AFTER
        self._bound: dict[str, Callable[..., Any]] = {}
        self._seqs = itertools.count(1)
        self._seq_lock = threading.Lock()
        self._timeout = 0.0
        self._outbox: queue.Queue[tuple[str, tuple[Any, ...]] | None] = queue.Queue()
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._stopped = threading.Event()
        self._gone = threading.Event()
        self._threads: list[threading.Thread] = []
        self._gateway: Gateway | None = None
        self._stream: EventStream | None = None
        self._account_id = ""
        self._subscribed: set[str] = set()
        self._lock = threading.Lock()
        self._placed: dict[str, _Placed] = {}  # client_order_id → this client's order

    # -- bindings ------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name.startswith("bindOn") and name.endswith("Callback"):
            bound = self.__dict__["_bound"]
            return lambda fn: bound.__setitem__(name[len("bind") :], fn)
        if name.endswith("WithSeq"):

            def not_carried(*_: Any) -> None:
                raise NotCarried(name)

            return not_carried
        raise AttributeError(f"XtQuantAsyncClient has no attribute {name!r}")

    # -- lifecycle -------------------------------------------------------------------

    def init(self) -> None:
        pass

    def start(self) -> None:
        if self._threads:
            return
        for target, role in ((self._deliver, "native"), (self._work, "requests")):
            thread = threading.Thread(
                target=target, name=f"qmtbus-xt-{role}-{self.session}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopped.set()
        self._jobs.put(None)
        self._outbox.put(None)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(10)
        if self._gateway is not None:
            self._gateway.close()
        # xttrader's closures hold the trader; dropping them lets a stopped one be freed.
        self._bound.clear()

    def connect(self) -> int:
        """0 when the gateway answers (its broker need not be connected yet), else -1."""
        if self._stopped.is_set() or not self._threads or self._gateway is not None:
            return -1
        gateway = Gateway.from_config(self.config)
        try:
            status = gateway.status()
        except (TimeoutError, GatewayError) as err:
            log.warning("qmtbus gateway at %s: %s", gateway.commands_address, err)
            gateway.close()
            return -1
        self._gateway = gateway
        self._account_id = status.account_id
        self._stream = EventStream(
            self.config.gateway.events_address,
            gateway=gateway,
            curve=gateway.curve,
            start_from=(status.epoch, status.last_seq),
        )
        thread = threading.Thread(
            target=self._listen, name=f"qmtbus-xt-events-{self.session}", daemon=True
        )
        thread.start()
        self._threads.append(thread)
        return 0

    def nextSeq(self) -> int:
        with self._seq_lock:
            return next(self._seqs)

    def setTimeout(self, timeout: int) -> None:
        self._timeout = max(0, int(timeout)) / 1000.0

    # -- requests ----------------------------------------------------------------------

    def subscribeWithSeq(self, seq: int, req: Any) -> None:
        account_id = str(req.m_strAccountID)

        def job() -> None:
            ours = account_id == self._account_id
            if ours:
                with self._lock:
                    self._subscribed.add(account_id)
            self._answer("OnSubscribeRespCallback", seq, 0 if ours else -1)

        self._submit(job, "OnSubscribeRespCallback", seq, -1)

    def unsubscribeWithSeq(self, seq: int, req: Any) -> None:
        account_id = str(req.m_strAccountID)

        def job() -> None:
            with self._lock:
                known = account_id in self._subscribed
                self._subscribed.discard(account_id)
            self._answer("OnUnsubscribeRespCallback", seq, 0 if known else -1)

        self._submit(job, "OnUnsubscribeRespCallback", seq, -1)

    def orderStockWithSeq(self, seq: int, req: Any) -> None:
        account_id = str(req.m_strAccountID)
        strategy_name, remark = str(req.m_strStrategyName), str(req.m_strOrderRemark)
        client_order_id = new_client_order_id("xt")
        command = protocol.PlaceOrder(
            client_order_id=client_order_id,
            stock_code=str(req.m_strStockCode),
            order_type=int(req.m_nOrderType),  # type: ignore[arg-type]
            order_volume=int(req.m_nOrderVolume),
            price_type=int(req.m_nPriceType),  # type: ignore[arg-type]
            price=float(req.m_dPrice),
            strategy_name=strategy_name,
        )

        def job() -> None:
            if account_id != self._account_id:
                why = f"account {account_id!r} is not the gateway's ({self._account_id!r})"
                self._reject(seq, account_id, strategy_name, remark, client_order_id, why)
                return
            # Known before it is sent: a push may come before the reply.
            with self._lock:
                self._placed[client_order_id] = _Placed(seq, account_id, strategy_name, remark)
            try:
                ack = self._until_answered(command)
            except GatewayError as err:
                self._reject(seq, account_id, strategy_name, remark, client_order_id, err.message)
                return
            if ack is None:
                return  # stopped: the outcome is the gateway's, found by the remark later
            assert isinstance(ack, protocol.OrderAck)
            if ack.status == "pending":
                # Answered by the client_order event that resolves it, never guessed: an
                # order whose intent outlived a gateway crash may stay unknown all day.
                log.warning(
                    "order %s (remark %r): %s; it is answered when the gateway finds it",
                    client_order_id,
                    remark,
                    ack.error_msg or "outcome pending at the broker",
                )
                return
            self._answer_order(client_order_id, ack.order_id, ack.error_msg)

        not_sent = objects.order_response(account_id, -1, strategy_name, remark, NOT_CONNECTED)
        self._submit(job, "OnOrderStockRespCallback", seq, not_sent)

    def cancelOrderStockWithSeq(self, seq: int, req: Any) -> None:
        account_id = str(req.m_strAccountID)
        order_id, sysid = int(req.m_nOrderID), str(req.m_strOrderSysID)

        def job() -> None:
            target = order_id
            try:
                if sysid:
                    orders = self._until_answered(protocol.QueryOrders())
                    found = [
                        o.order_id for o in getattr(orders, "orders", []) if o.order_sysid == sysid
                    ]
                    if not found:
                        raise GatewayError("NOT_FOUND", f"no order with order_sysid {sysid}")
                    target = found[0]
                ack = self._until_answered(protocol.CancelOrder(order_id=max(target, 0)))
            except GatewayError as err:
                resp = objects.cancel_response(account_id, -1, order_id, sysid, err.message)
                self._answer("OnCancelOrderStockRespCallback", seq, resp)
                return
            if ack is None:
                return
            assert isinstance(ack, protocol.CancelAck)
            resp = objects.cancel_response(
                account_id, ack.cancel_result, order_id, sysid, ack.error_msg
            )
            self._answer("OnCancelOrderStockRespCallback", seq, resp)

        not_sent = objects.cancel_response(account_id, -1, order_id, sysid, NOT_CONNECTED)
        self._submit(job, "OnCancelOrderStockRespCallback", seq, not_sent)

    def queryStockAssetWithSeq(self, seq: int, req: Any) -> None:
        read: Callable[[Any], list[Any]] = lambda reply: [objects.asset(reply)]  # noqa: E731
        self._query(seq, "OnQueryStockAssetCallback", protocol.QueryAsset(), read)

    def queryStockOrdersWithSeq(self, seq: int, req: Any) -> None:
        order_id, cancelable = int(req.m_nOrderID), bool(req.m_bCanCancel)

        def read(reply: protocol.OrdersReply) -> list[Any]:
            found = [o for o in reply.orders if order_id < 0 or o.order_id == order_id]
            return [objects.order(o, self._remark(o.client_order_id)) for o in found]

        command = protocol.QueryOrders(cancelable_only=cancelable)
        self._query(seq, "OnQueryStockOrdersCallback", command, read)

    def queryStockTradesWithSeq(self, seq: int, req: Any) -> None:
        def read(reply: protocol.TradesReply) -> list[Any]:
            return [objects.trade(t, self._remark(t.client_order_id)) for t in reply.trades]

        self._query(seq, "OnQueryStockTradesCallback", protocol.QueryTrades(), read)

    def queryStockPositionsWithSeq(self, seq: int, req: Any) -> None:
        code = str(req.m_strStockCode)

        def read(reply: protocol.PositionsReply) -> list[Any]:
            return [
                objects.position(p) for p in reply.positions if not code or p.stock_code == code
            ]

        self._query(seq, "OnQueryStockPositionsCallback", protocol.QueryPositions(), read)

    def queryAccountStatusWithSeq(self, seq: int, req: Any) -> None:
        def read(status: protocol.Status) -> list[Any]:
            return [
                objects.account_status(status.account_id, objects.status_of_state(status.state))
            ]

        self._query(seq, "OnQueryAccountStatusCallback", protocol.GetStatus(), read)

    def queryAccountInfosWithSeq(self, seq: int, req: Any) -> None:
        def read(status: protocol.Status) -> list[Any]:
            info = objects.XtAccountInfo(
                account_id=status.account_id,
                account_type=objects.STOCK_ACCOUNT,
                platform_id=0,
                account_classification=0,
                login_status=objects.status_of_state(status.state),
            )
            return [info]

        self._query(seq, "OnQueryAccountInfosCallback", protocol.GetStatus(), read)

    # -- internals -----------------------------------------------------------------------

    def _submit(self, job: Callable[[], None], callback: str, seq: int, refused: Any) -> None:
        """Queue `job` for the request thread; before connect() (or after stop()) answer
        `refused` at once: nothing was sent, and a script must not wait for ever."""
        if self._gateway is None or self._stopped.is_set():
            log.warning("%s before connect() succeeded: not sent", callback)
            self._answer(callback, seq, refused)
            return
        self._jobs.put(job)

    def _query(
        self, seq: int, callback: str, command: Any, read: Callable[[Any], list[Any]]
    ) -> None:
        def job() -> None:
            deadline = time.monotonic() + self._timeout if self._timeout > 0 else None
            try:
                reply = self._until_answered(command, deadline, give_up_when_gone=True)
            except GatewayError as err:
                log.warning("%s refused by the gateway: %s", type(command).__name__, err)
                reply = None
            self._answer(callback, seq, None if reply is None else read(reply))

        self._submit(job, callback, seq, None)

    def _until_answered(
        self, command: Any, deadline: float | None = None, give_up_when_gone: bool = False
    ) -> Any:
        """The gateway's reply to `command`, sent again (same client_order_id for an order,
        so never placed twice) until it answers; None when stopped, past `deadline`, or
        (with give_up_when_gone) once the gateway is declared gone."""
        assert self._gateway is not None
        while not self._stopped.is_set():
            try:
                return self._gateway.request(command)
            except TimeoutError as err:
                log.warning("gateway did not answer %s: %s", type(command).__name__, err)
            if deadline is not None and time.monotonic() >= deadline:
                return None
            if give_up_when_gone and self._gone.is_set():
                return None
            self._stopped.wait(0.5)
        return None

    def _reject(
        self,
        seq: int,
        account_id: str,
        strategy_name: str,
        remark: str,
        client_order_id: str,
        message: str,
    ) -> None:
        """Refused before the broker (risk gate, bad request): a response with order_id -1,
        then on_order_error with the reason, as miniQMT answers a rejected order."""
        with self._lock:
            placed = self._placed.get(client_order_id)
            if placed is not None:
                placed.answered = True
        resp = objects.order_response(account_id, -1, strategy_name, remark, message)
        self._answer("OnOrderStockRespCallback", seq, resp)
        error = objects.order_error(
            account_id, -1, -1, message, strategy_name, remark, seq, client_order_id
        )
        self._push("OnOrderErrorCallback", error)

    def _answer_order(self, client_order_id: str, order_id: int, error_msg: str) -> None:
        with self._lock:
            placed = self._placed.get(client_order_id)
            if placed is None or placed.answered:
                return
            placed.answered = True
        resp = objects.order_response(
            placed.account_id,
            order_id if order_id > 0 else -1,
            placed.strategy_name,
            placed.order_remark,
            error_msg,
        )
        self._answer("OnOrderStockRespCallback", placed.seq, resp)

    def _remark(self, client_order_id: str) -> str | None:
        """The script's own order_remark of an order it placed (the broker holds the
        client_order_id in its place), None for any other order."""
        if not client_order_id:
            return None
        with self._lock:
            placed = self._placed.get(client_order_id)
        return None if placed is None else placed.order_remark

    def _answer(self, callback: str, seq: int, result: Any) -> None:
        self._outbox.put((callback, (seq, result)))

    def _push(self, callback: str, *args: Any) -> None:
        self._outbox.put((callback, args))

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None or self._stopped.is_set():
                return
            try:
                job()
            except Exception:
                log.exception("qmtbus xt request failed")

    def _deliver(self) -> None:
        while True:
            item = self._outbox.get()
            if item is None or self._stopped.is_set():
                return
            name, args = item
            fn = self._bound.get(name)
            if fn is None:
                continue
            try:
                fn(*args)
            except Exception:
                log.exception("xttrader's %s handler raised", name)

    # -- pushes ------------------------------------------------------------------------

    def _listen(self) -> None:
        """Read the bus in seq order (holes filled by replay, also across a gateway
        restart); tell the script on_disconnected once, only after `gone_after` seconds
        without a word from the gateway."""
        stream = self._stream
        assert stream is not None
        heard = time.monotonic()
        try:
            while not self._stopped.is_set():
                try:
                    ev = stream.next(timeout=0.2)
                except Exception as err:  # silent, or a replay it could not fetch yet
                    if not isinstance(err, TimeoutError):
                        # the held event is retried on the next call: nothing is skipped
                        log.warning("reading the gateway's events: %s", err)
                    if time.monotonic() - heard > self.gone_after and not self._gone.is_set():
                        log.warning("qmtbus gateway silent for %.0f s: gone", self.gone_after)
                        self._gone.set()
                        self._push("OnDisconnectedCallback")
                        return
                    self._stopped.wait(0.2)
                    continue
                if ev is None:
                    continue
                heard = time.monotonic()
                try:
                    self._on_event(ev)
                except Exception:  # one bad event must not end the script's callbacks
                    log.exception("could not pass %s event %s on", protocol.event_type(ev), ev.seq)
        finally:
            stream.close()

    def _on_event(self, ev: protocol.Event) -> None:
        if isinstance(ev, protocol.ClientOrderEvent):
            self._resolved(ev)
            return
        with self._lock:
            subscribed = ev.account_id in self._subscribed
        if not subscribed:
            return
        match ev:
            case protocol.OrderEvent():
                remark = self._remark(ev.client_order_id)
                self._push("OnStockOrderCallback", objects.order(ev, remark))
            case protocol.TradeEvent():
                remark = self._remark(ev.client_order_id)
                self._push("OnStockTradeCallback", objects.trade(ev, remark))
            case protocol.AssetEvent():
                self._push("OnStockAssetCallback", objects.asset(ev))
            case protocol.PositionEvent():
                self._push("OnStockPositionCallback", objects.position(ev))
            case protocol.AccountStatusEvent():
                status = objects.account_status(ev.account_id, ev.status)
                self._push("OnUpdateAccountStatusCallback", status)
            case protocol.OrderErrorEvent():
                self._push("OnOrderErrorCallback", self._order_error(ev))
            case protocol.CancelErrorEvent():
                self._push("OnCancelErrorCallback", objects.cancel_error(ev))
            case _:
                pass  # the gateway's own responses, heartbeats, notes, risk denials

    def _order_error(self, ev: protocol.OrderErrorEvent) -> objects.XtOrderError:
        with self._lock:
            placed = self._placed.get(ev.client_order_id) if ev.client_order_id else None
        # xttrader holds an error whose seq is still pending until its response
        seq = placed.seq if placed is not None else 0
        remark = placed.order_remark if placed is not None else ev.order_remark
        return objects.order_error(
            ev.account_id,
            ev.order_id,
            ev.error_id,
            ev.error_msg,
            ev.strategy_name,
            remark,
            seq,
            ev.client_order_id,
        )

    def _resolved(self, ev: protocol.ClientOrderEvent) -> None:
        """A pending order's outcome, found by the gateway: answer it now."""
        if ev.status == "accepted" or ev.status == "rejected":
            self._answer_order(ev.client_order_id, ev.order_id, ev.error_msg)
        elif ev.status == "not_placed":
            self._answer_order(ev.client_order_id, -1, ev.error_msg or "not placed")
