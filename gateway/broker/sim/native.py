"""A pure-Python `xtquant.xtpythonclient`: the native module beneath xttrader.py, simulated.

xtquant's own xttrader.py runs unchanged on top of this module (see
gateway/broker/xtload.py): it builds `XtQuantAsyncClient(path, 'xtquant',
session)`, binds its callbacks with `bindOn…Callback`, fills `<Name>Req`
objects and sends them with `…WithSeq(seq, req)`. Here the requests reach the
simulated terminal that serves `path` (gateway/broker/sim/terminal.py), and
every answer and push comes back to xttrader's bound callbacks in order, as the
compiled client delivers them: responses as `(seq, resp)` with the native `m_…`
field names, pushes as objects with xttype's attribute names. xttrader's
callbacks only hand each one to its own worker thread (`executor.submit`), so
an order's pushes are handed over at once on the thread that made them (the
terminal's caller) when nothing is queued ahead of them; delayed pushes (the
delay_callbacks fault, sim.callback_delay) and query answers go through this
client's own native thread, and later pushes queue behind them.

`setTimeout(ms)`: a query or subscribe not answered within `ms` is answered
with None (xttrader then returns None). Orders and cancels are never answered
by a timeout: their outcome comes from the terminal, or from a later query.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from qmtbus.gateway.broker.sim import objects as xt
from qmtbus.gateway.broker.sim import terminal as terminals
from qmtbus.gateway.inbox import Inbox
from qmtbus.xtrequests import (  # noqa: F401 - xttrader.py builds them from here
    CancelOrderStockReq,
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

if TYPE_CHECKING:
    from qmtbus.gateway.broker.sim.book import Book

log = logging.getLogger(__name__)

# Tells gateway/broker/xtload.py that xttrader runs over the simulator.
SIMULATED = True


# -- request structs -------------------------------------------------------------


class _NotServed:
    """Requests for products the simulator does not trade (credit, bank, SMT, algos): any
    field may be set; sending one raises NotImplementedError."""

    def __init__(self) -> None:
        pass


def __getattr__(name: str) -> Any:
    # xttrader.py names ~20 more request classes; each is a _NotServed of its own name.
    if name.endswith(("Req", "Param")):
        cls = type(name, (_NotServed,), {})
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- what the native client hands xttrader ------------------------------------------


class _Native:
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__dict__!r})"


class OrderStockResp(_Native):
    pass


class CancelOrderStockResp(_Native):
    pass


class AccountStatus(_Native):
    pass


def _order_response(r: xt.XtOrderResponse) -> tuple[int, OrderStockResp]:
    resp = OrderStockResp(
        m_strAccountID=r.account_id,
        m_nOrderID=r.order_id,
        m_strStrategyName=r.strategy_name,
        m_strOrderRemark=r.order_remark,
        m_strErrorMsg=r.error_msg,
    )
    return r.seq, resp


def _cancel_response(r: xt.XtCancelOrderResponse) -> tuple[int, CancelOrderStockResp]:
    resp = CancelOrderStockResp(
        m_strAccountID=r.account_id,
        m_nCancelResult=r.cancel_result,
        m_nOrderID=r.order_id,
        m_strOrderSysID=r.order_sysid,
        m_strErrorMsg=r.error_msg,
    )
    return r.seq, resp


def account_status(s: xt.XtAccountStatus) -> AccountStatus:
    return AccountStatus(
        m_strAccountID=s.account_id, m_nAccountType=s.account_type, m_nStatus=s.status
    )


# The terminal speaks XtQuantTraderCallback's names; the compiled client binds these.
_PUSHES: dict[str, tuple[str, Callable[[Any], tuple[Any, ...]]]] = {
    "on_disconnected": ("OnDisconnectedCallback", lambda _: ()),
    "on_account_status": ("OnUpdateAccountStatusCallback", lambda s: (account_status(s),)),
    "on_stock_asset": ("OnStockAssetCallback", lambda x: (x,)),
    "on_stock_order": ("OnStockOrderCallback", lambda x: (x,)),
    "on_stock_trade": ("OnStockTradeCallback", lambda x: (x,)),
    "on_stock_position": ("OnStockPositionCallback", lambda x: (x,)),
    "on_order_error": ("OnOrderErrorCallback", lambda x: (x,)),
    "on_cancel_error": ("OnCancelErrorCallback", lambda x: (x,)),
    "on_order_stock_async_response": ("OnOrderStockRespCallback", _order_response),
    "on_cancel_order_stock_async_response": (
        "OnCancelOrderStockRespCallback",
        _cancel_response,
    ),
}


# -- the client --------------------------------------------------------------------


class XtQuantAsyncClient:
    def __init__(self, path: bytes | str, name: str, session: int) -> None:
        self.path = path.decode("gb18030") if isinstance(path, bytes) else str(path)
        self.name = name
        self.session = int(session)
        self._bound: dict[str, Callable[..., Any]] = {}
        self._seqs = itertools.count(1)
        self._seq_lock = threading.Lock()
        self._timeout = 0.0
        # one consumer, the native thread: a deque and a wake-up flag (gateway/handoff.py)
        self._inbox: Inbox[tuple[float, str, tuple[Any, ...]] | None] = Inbox()
        # seq → (deadline, bound callback name) of requests answered by a timeout if late
        self._waiting: dict[int, str] = {}
        self._deadlines: list[tuple[float, int]] = []
        self._waiting_lock = threading.Lock()
        # held while a push or response is handed to xttrader: pushes reach it in order
        self._order = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._terminal: terminals.SimTerminal | None = None
        self._dead = False

    # -- bindings ------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name.startswith("bindOn") and name.endswith("Callback"):
            bound = self.__dict__["_bound"]
            return lambda fn: bound.__setitem__(name[len("bind") :], fn)
        if name.endswith("WithSeq"):

            def not_served(seq: int, req: Any) -> None:
                raise NotImplementedError(f"the simulated miniQMT does not serve {name[:-7]}")

            return not_served
        raise AttributeError(f"XtQuantAsyncClient has no attribute {name!r}")

    # -- lifecycle -------------------------------------------------------------------

    def init(self) -> None:
        pass

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"xtsim-native-{self.session}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._dead = True
        self._stopped.set()
        if self._terminal is not None:
            self._terminal.leave(self)
        self._inbox.put(None)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        # xttrader's closures hold the trader; dropping them here breaks the cycle, so a
        # stopped XtQuantTrader is freed (and its __del__ run) on the thread that drops it.
        self._bound.clear()

    def connect(self) -> int:
        if self._dead or self._thread is None or self._terminal is not None:
            return -1
        terminal = terminals.lookup(self.path)
        if terminal is None:
            return -1  # no miniQMT running at this path
        result = terminal.connect(self)
        if result == 0:
            self._terminal = terminal
        return result

    def nextSeq(self) -> int:
        with self._seq_lock:
            return next(self._seqs)

    def setTimeout(self, timeout: int) -> None:
        self._timeout = max(0, int(timeout)) / 1000.0

    # -- requests ----------------------------------------------------------------------

    def subscribeWithSeq(self, seq: int, req: Any) -> None:
        self._subscribe(seq, req, True, "OnSubscribeRespCallback")

    def unsubscribeWithSeq(self, seq: int, req: Any) -> None:
        self._subscribe(seq, req, False, "OnUnsubscribeRespCallback")

    def orderStockWithSeq(self, seq: int, req: Any) -> None:
        terminal = self._live()
        if terminal is None:
            return  # a dead session answers nothing
        terminal.place(
            self,
            seq,
            True,
            account_id=req.m_strAccountID,
            stock_code=str(req.m_strStockCode),
            order_type=int(req.m_nOrderType),
            order_volume=int(req.m_nOrderVolume),
            price_type=int(req.m_nPriceType),
            price=float(req.m_dPrice),
            strategy_name=str(req.m_strStrategyName),
            order_remark=str(req.m_strOrderRemark),
        )

    def cancelOrderStockWithSeq(self, seq: int, req: Any) -> None:
        terminal = self._live()
        if terminal is None:
            return
        if req.m_strOrderSysID:
            market: int | str = req.m_strMarket or req.m_nMarket
            terminal.cancel(
                self, seq, True, account_id=req.m_strAccountID, sysid=req.m_strOrderSysID,
                market=market,
            )  # fmt: skip
        else:
            terminal.cancel(
                self, seq, True, account_id=req.m_strAccountID, order_id=int(req.m_nOrderID)
            )

    def queryStockAssetWithSeq(self, seq: int, req: Any) -> None:
        self._query(seq, req, "OnQueryStockAssetCallback", lambda b: [b.asset()])

    def queryStockOrdersWithSeq(self, seq: int, req: Any) -> None:
        order_id, cancelable = int(req.m_nOrderID), bool(req.m_bCanCancel)

        def read(book: Book) -> list[Any]:
            if order_id >= 0:
                found = book.order_view(order_id)
                return [found] if found is not None else []
            return book.order_views(cancelable)

        self._query(seq, req, "OnQueryStockOrdersCallback", read)

    def queryStockTradesWithSeq(self, seq: int, req: Any) -> None:
        self._query(seq, req, "OnQueryStockTradesCallback", lambda b: b.trade_views())

    def queryStockPositionsWithSeq(self, seq: int, req: Any) -> None:
        code = str(req.m_strStockCode)

        def read(book: Book) -> list[Any]:
            if code:
                found = book.position_view(code)
                return [found] if found is not None else []
            return book.position_views()

        self._query(seq, req, "OnQueryStockPositionsCallback", read)

    def queryAccountStatusWithSeq(self, seq: int, req: Any) -> None:
        terminal = self._expect(seq, "OnQueryAccountStatusCallback")
        if terminal is not None and terminal.answers_queries():
            statuses = [account_status(s) for s in terminal.account_status()]
            self._answer(seq, "OnQueryAccountStatusCallback", statuses)

    def queryAccountInfosWithSeq(self, seq: int, req: Any) -> None:
        terminal = self._expect(seq, "OnQueryAccountInfosCallback")
        if terminal is not None and terminal.answers_queries():
            self._answer(seq, "OnQueryAccountInfosCallback", [])

    # -- called by the terminal (under its lock) -------------------------------------

    def deliver(self, name: str, payload: Any, delay: float | None) -> None:
        """One push or response, as deliver_many hands each."""
        self.deliver_many([(name, payload)], delay)

    def deliver_many(self, pushes: list[tuple[str, Any]], delay: float | None) -> None:
        """(name, payload) pushes in order: handed to xttrader's callbacks at once, on the
        caller's thread, when nothing is queued ahead of them; else queued with one wake-up
        of the native thread for all of them (a burst of fills is thousands)."""
        if self._stopped.is_set():
            return
        if not delay:
            with self._order:
                if not self._inbox:
                    for name, payload in pushes:
                        bound, shape = _PUSHES[name]
                        self._call(bound, shape(payload))
                    return
        wait = delay or 0.0
        self._inbox.put_many([(wait, name, (payload,)) for name, payload in pushes])

    def drop(self, delay: float | None) -> None:
        """The terminal dropped this session: every request goes unanswered from now on;
        `delay` not None means the session is told with on_disconnected."""
        self._dead = True
        if delay is not None:
            self.deliver("on_disconnected", None, delay)

    # -- internals -----------------------------------------------------------------------

    def _live(self) -> terminals.SimTerminal | None:
        return None if self._dead else self._terminal

    def _subscribe(self, seq: int, req: Any, on: bool, callback: str) -> None:
        terminal = self._expect(seq, callback)
        if terminal is None or not terminal.answers_queries():
            return
        result = terminal.subscribe(self, req.m_strAccountID, on)
        self._answer(seq, callback, result)

    def _query(self, seq: int, req: Any, callback: str, read: Callable[[Book], Any]) -> None:
        terminal = self._expect(seq, callback)
        if terminal is None or not terminal.answers_queries():
            return
        self._answer(seq, callback, terminal.query(req.m_strAccountID, read, []))

    def _expect(self, seq: int, callback: str) -> terminals.SimTerminal | None:
        """Note a request that a timeout answers if nothing else does; the live terminal."""
        if self._timeout > 0:
            with self._waiting_lock:
                self._waiting[seq] = callback
                heapq.heappush(self._deadlines, (time.monotonic() + self._timeout, seq))
            self._inbox.put((0.0, "", ()))  # wake the native thread to watch the deadline
        return self._live()

    def _answer(self, seq: int, callback: str, result: Any) -> None:
        self._inbox.put((0.0, "=" + callback, (seq, result)))

    def _run(self) -> None:
        inbox, stopped, deadlines, order = self._inbox, self._stopped, self._deadlines, self._order
        while True:
            # While no request waits for its timeout (orders, cancels and pushes never
            # do), no lock is taken and no clock read per item.
            came = inbox.wait(self._next_deadline() if deadlines else None)
            if stopped.is_set():
                return
            if came:
                item = inbox.peek()
                if item is None:
                    return
                if item[0] > 0 and stopped.wait(item[0]):  # a delayed push: wait first
                    return
                with order:  # taken off the inbox and delivered in one step: see deliver()
                    self._handle(inbox.take())
            if deadlines:
                with order:
                    self._time_out()

    def _handle(self, item: tuple[float, str, tuple[Any, ...]] | None) -> None:
        assert item is not None
        _, name, args = item
        if name.startswith("="):  # a response to a request
            with self._waiting_lock:
                self._waiting.pop(args[0], None)
                if not self._waiting:
                    # nothing waits for a timeout now: the deadlines left are moot, and
                    # while any is listed every item would take the lock and the clock
                    self._deadlines.clear()
            self._call(name[1:], args)
        elif name:
            bound, shape = _PUSHES[name]
            self._call(bound, shape(args[0]))

    def _next_deadline(self) -> float | None:
        with self._waiting_lock:
            if not self._deadlines:
                return None
            return max(0.0, self._deadlines[0][0] - time.monotonic())

    def _time_out(self) -> None:
        now = time.monotonic()
        late: list[tuple[int, str]] = []
        with self._waiting_lock:
            while self._deadlines and self._deadlines[0][0] <= now:
                _, seq = heapq.heappop(self._deadlines)
                callback = self._waiting.pop(seq, None)
                if callback is not None:
                    late.append((seq, callback))
            if not self._waiting:
                self._deadlines.clear()  # as in _run: none is needed now
        for seq, callback in late:
            log.info("session %s: request %s timed out", self.session, seq)
            self._call(callback, (seq, None))

    def _call(self, bound: str, args: tuple[Any, ...]) -> None:
        fn = self._bound.get(bound)
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:
            log.exception("xttrader's %s handler raised", bound)
