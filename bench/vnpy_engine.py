"""vnpy's own engine over the same simulated miniQMT as the gateway: the server of the round
trip's two vnpy engine lines (`python -m bench.peers vnpy-engine REP PUB sent|answered`).

One process holds what a vnpy user runs:

- `MainEngine(EventEngine())` with vnpy's default engines (log, OMS, email, WeChat) and
  vnpy's default settings, except `log.console` (stdout is this peer's answer pipe); the
  file log stays on, as vnpy ships it, in a temporary `.vntrader` folder.
- `SimXtGateway`, a `BaseGateway` modelled on vnpy_xt's trading side (repository
  vnpy/vnpy_xt, vnpy_xt/xt_gateway.py, `XtGateway` + `XtTdApi`, as published in vnpy-xt
  1.4.6): `send_order` checks the contract and the order type, makes a local order id,
  calls `XtQuantTrader.order_stock_async(...)` with that id as `order_remark`, pushes the
  submitting `OrderData` and returns the vt_orderid at once; `on_stock_order` turns the
  broker's pushes into `OrderData`; `on_order_stock_async_response` writes a log line;
  every two timer ticks it queries the account or the positions. vnpy-xt itself is not
  imported: its module imports `xtquant.xtdatacenter` (the Windows data service, which
  needs a token) at import time and fills its contracts from it.
- the broker below it: xtquant's own xttrader.py over gateway/broker/sim/native.py and a
  `SimTerminal`, as the gateway's `broker = "sim"` runs it (gateway/broker/sim/broker.py),
  with the bench's simulator settings (bench/common.py `bench_stack`).
- a vnpy `RpcServer` registering `MainEngine.send_order` and publishing every event but
  the timer's, as vnpy_rpcservice's `RpcEngine` does (vnpy/vnpy_rpcservice,
  vnpy_rpcservice/rpc_service/engine.py); the client calls `client.send_order(req, "XT")`
  as its `RpcGateway` does.

Mode `sent`: the client's call returns when `order_stock_async` has returned, before the
broker has answered (vnpy's own behaviour). Mode `answered`: the registered
`send_order_answered(req, gateway_name)` calls the same `MainEngine.send_order`, then
blocks until the gateway's `on_order_stock_async_response` for that order has come in
(the broker's answer, which qmtbus's `order_ack` waits for too), and raises if the broker
refused it. Neither mode has a risk gate or a journal: vnpy's MainEngine path has none.

Any line on stdin is answered with `{"queued": N}`: the events vnpy's one event thread
(OMS, file log, RPC publishing) has not handled yet (its EventEngine's queue).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

GATEWAY = "XT"
ACCOUNT = "SIM0001"
STOCK_CODE = "600000.SH"
CHINA_TZ = ZoneInfo("Asia/Shanghai")
ANSWER_TIMEOUT = 10.0  # seconds the answered line waits for the broker's response


def vnpy_home() -> Path:
    """A temporary folder holding vnpy's `.vntrader` (settings, logs), made the working
    directory before vnpy.trader is imported: vnpy picks `./.vntrader` over the home one."""
    home = Path(tempfile.mkdtemp(prefix="qmtbus-bench-vnpy-"))
    (home / ".vntrader").mkdir()
    # stdout answers the bench; every other vnpy setting stays its default (file log on)
    (home / ".vntrader" / "vt_setting.json").write_text(json.dumps({"log.console": False}))
    os.chdir(home)
    return home


def gateway_class(xttrader: Any, sim: Any) -> type[Any]:
    """A vnpy gateway over `xttrader` (xtquant's xttrader module, loaded over the
    simulator), modelled on vnpy_xt's `XtGateway` + `XtTdApi` (see the module's doc)."""
    from vnpy.event import EVENT_TIMER, Event, EventEngine
    from vnpy.trader.constant import Direction, Exchange, OrderType, Product, Status
    from vnpy.trader.gateway import BaseGateway
    from vnpy.trader.object import (
        AccountData,
        CancelRequest,
        ContractData,
        OrderData,
        OrderRequest,
        PositionData,
        SubscribeRequest,
    )
    from xtquant import xtconstant
    from xtquant.xttype import StockAccount

    status_xt2vt = {
        xtconstant.ORDER_UNREPORTED: Status.SUBMITTING,
        xtconstant.ORDER_WAIT_REPORTING: Status.SUBMITTING,
        xtconstant.ORDER_REPORTED: Status.NOTTRADED,
        xtconstant.ORDER_REPORTED_CANCEL: Status.CANCELLED,
        xtconstant.ORDER_PARTSUCC_CANCEL: Status.CANCELLED,
        xtconstant.ORDER_PART_CANCEL: Status.CANCELLED,
        xtconstant.ORDER_CANCELED: Status.CANCELLED,
        xtconstant.ORDER_PART_SUCC: Status.PARTTRADED,
        xtconstant.ORDER_SUCCEEDED: Status.ALLTRADED,
        xtconstant.ORDER_JUNK: Status.REJECTED,
    }
    direction_vt2xt = {Direction.LONG: xtconstant.STOCK_BUY, Direction.SHORT: xtconstant.STOCK_SELL}
    direction_xt2vt = {v: k for k, v in direction_vt2xt.items()}
    exchange_xt2vt = {"SH": Exchange.SSE, "SZ": Exchange.SZSE}
    exchange_vt2xt = {v: k for k, v in exchange_xt2vt.items()}
    contracts: dict[str, ContractData] = {}

    class TdApi(xttrader.XtQuantTraderCallback):  # type: ignore[misc]
        """vnpy_xt's `XtTdApi`, the stock limit-order path."""

        def __init__(self, gateway: SimXtGateway) -> None:
            super().__init__()
            self.gateway = gateway
            self.gateway_name = gateway.gateway_name
            self.order_count = 0
            self.client: Any = None
            self.account: Any = None
            self.connected = False
            self.active_sysids: dict[str, int] = {}  # local order id → broker's, for cancels
            # answered mode: the broker's response per local order id, until it is taken
            self.track_answers = False
            self.answers: dict[str, Any] = {}
            self.answered = threading.Condition()

        def connect(self, path: str, account_id: str) -> None:
            session = int(float(datetime.now().strftime("%H%M%S.%f")) * 1000)
            self.client = xttrader.XtQuantTrader(path, session)
            self.account = StockAccount(account_id, "STOCK")
            self.client.register_callback(self)
            self.client.start()
            if self.client.connect():
                raise RuntimeError("the simulated miniQMT refused the trader's connect()")
            self.connected = True
            if self.client.subscribe(self.account):
                raise RuntimeError(f"the simulated miniQMT refused a subscribe to {account_id}")
            self.query_account()
            self.query_position()

        def new_orderid(self) -> str:
            self.order_count += 1
            return datetime.now().strftime("1%m%d%H%M%S") + str(self.order_count).rjust(6, "0")

        def send_order(self, req: OrderRequest) -> str:
            contract = contracts.get(req.vt_symbol)
            if not contract:
                self.gateway.write_log(f"找不到该合约{req.vt_symbol}")
                return ""
            if req.type != OrderType.LIMIT:
                self.gateway.write_log(f"不支持的委托类型: {req.type.value}")
                return ""
            orderid = self.new_orderid()
            self.client.order_stock_async(
                account=self.account,
                stock_code=req.symbol + "." + exchange_vt2xt[req.exchange],
                order_type=direction_vt2xt[req.direction],
                order_volume=int(req.volume),
                price_type=xtconstant.FIX_PRICE,
                price=req.price,
                strategy_name=req.reference,
                order_remark=orderid,
            )
            order: OrderData = req.create_order_data(orderid, self.gateway_name)
            self.gateway.on_order(order)
            return order.vt_orderid

        def on_stock_order(self, xt_order: Any) -> None:
            if not xt_order.order_remark:
                return
            symbol, xt_exchange = xt_order.stock_code.split(".")
            order = OrderData(
                symbol=symbol,
                exchange=exchange_xt2vt[xt_exchange],
                orderid=xt_order.order_remark,
                direction=direction_xt2vt.get(xt_order.order_type),
                type=OrderType.LIMIT,
                price=xt_order.price,
                volume=xt_order.order_volume,
                traded=xt_order.traded_volume,
                status=status_xt2vt.get(xt_order.order_status, Status.SUBMITTING),
                datetime=datetime.fromtimestamp(xt_order.order_time, CHINA_TZ),
                gateway_name=self.gateway_name,
            )
            if order.is_active():
                self.active_sysids[xt_order.order_remark] = xt_order.order_id
            else:
                self.active_sysids.pop(xt_order.order_remark, None)
            self.gateway.on_order(order)

        def on_order_error(self, xt_error: Any) -> None:
            order = self.gateway.orders.get(xt_error.order_remark)
            if order:
                order.status = Status.REJECTED
                self.gateway.on_order(order)
            self.gateway.write_log(
                f"交易委托失败, 错误代码{xt_error.error_id}, 错误信息{xt_error.error_msg}"
            )

        def on_order_stock_async_response(self, response: Any) -> None:
            if response.error_msg:
                self.gateway.write_log(
                    f"委托请求提交失败：{response.error_msg}，本地委托号{response.order_remark}"
                )
            else:
                self.gateway.write_log(f"委托请求提交成功，本地委托号{response.order_remark}")
            if self.track_answers:
                with self.answered:
                    self.answers[response.order_remark] = response
                    self.answered.notify_all()

        def wait_answer(self, orderid: str) -> Any:
            """The broker's response to order `orderid` (answered mode)."""
            with self.answered:
                if not self.answered.wait_for(lambda: orderid in self.answers, ANSWER_TIMEOUT):
                    raise TimeoutError(f"no broker response to order {orderid} in 10 s")
                return self.answers.pop(orderid)

        def on_query_asset_async(self, xt_asset: Any) -> None:
            if xt_asset:
                account = AccountData(
                    accountid=xt_asset.account_id,
                    balance=xt_asset.total_asset,
                    frozen=xt_asset.frozen_cash,
                    gateway_name=self.gateway_name,
                )
                account.available = xt_asset.cash
                self.gateway.on_account(account)

        def on_query_positions_async(self, xt_positions: Any) -> None:
            for p in xt_positions or []:
                if not p.market_value:
                    continue
                symbol, xt_exchange = p.stock_code.split(".")
                self.gateway.on_position(
                    PositionData(
                        symbol=symbol,
                        exchange=exchange_xt2vt[xt_exchange],
                        direction=Direction.NET,
                        volume=p.volume,
                        yd_volume=p.can_use_volume,
                        frozen=p.volume - p.can_use_volume,
                        price=p.open_price,
                        gateway_name=self.gateway_name,
                    )
                )

        def query_account(self) -> None:
            if self.connected:
                self.client.query_stock_asset_async(self.account, self.on_query_asset_async)

        def query_position(self) -> None:
            if self.connected:
                self.client.query_stock_positions_async(self.account, self.on_query_positions_async)

        def close(self) -> None:
            if self.client is not None:
                from qmtbus.gateway.broker.xtquant import release

                release(self.client)

    class SimXtGateway(BaseGateway):  # type: ignore[misc]
        """vnpy_xt's `XtGateway`, trading side only, over the simulated miniQMT."""

        default_name = GATEWAY
        default_setting: ClassVar[dict[str, Any]] = {"路径": "", "资金账号": ""}
        exchanges: ClassVar[list[Exchange]] = [Exchange.SSE, Exchange.SZSE]

        def __init__(self, event_engine: EventEngine, gateway_name: str) -> None:
            super().__init__(event_engine, gateway_name)
            self.td_api = TdApi(self)
            self.orders: dict[str, OrderData] = {}
            self.count = 0
            self.query_functions = [self.query_account, self.query_position]

        def connect(self, setting: dict[str, Any]) -> None:
            # the contract vnpy_xt reads from xtdata, here from the simulator's xtdata answer
            symbol, xt_exchange = STOCK_CODE.split(".")
            detail = sim.instrument_detail(STOCK_CODE) or {}
            contract = ContractData(
                symbol=symbol,
                exchange=exchange_xt2vt[xt_exchange],
                name=str(detail.get("InstrumentName", symbol)),
                product=Product.EQUITY,
                size=1,
                pricetick=float(detail.get("PriceTick", 0.01)),
                gateway_name=self.gateway_name,
            )
            contracts[contract.vt_symbol] = contract
            self.on_contract(contract)
            self.td_api.connect(setting["路径"], setting["资金账号"])
            self.event_engine.register(EVENT_TIMER, self.process_timer_event)

        def subscribe(self, req: SubscribeRequest) -> None:
            return None

        def send_order(self, req: OrderRequest) -> str:
            return str(self.td_api.send_order(req))

        def cancel_order(self, req: CancelRequest) -> None:
            raise NotImplementedError("the bench's vnpy gateway only places orders")

        def query_account(self) -> None:
            self.td_api.query_account()

        def query_position(self) -> None:
            self.td_api.query_position()

        def on_order(self, order: OrderData) -> None:
            self.orders[order.orderid] = order
            super().on_order(order)

        def process_timer_event(self, event: Event) -> None:
            self.count += 1
            if self.count < 2:
                return
            self.count = 0
            func = self.query_functions.pop(0)
            func()
            self.query_functions.append(func)

        def close(self) -> None:
            self.td_api.close()

    return SimXtGateway


def run(rep_address: str, pub_address: str, mode: str) -> None:
    """Serve until stdin closes, answering the bench on stdout (one JSON line each)."""
    if mode not in ("sent", "answered"):
        raise SystemExit(f"vnpy-engine mode must be sent or answered, not {mode!r}")
    # stdout carries only the answers to the bench: anything else printed goes to stderr
    answers, sys.stdout = sys.stdout, sys.stderr

    def say(**message: Any) -> None:
        answers.write(json.dumps(message) + "\n")
        answers.flush()

    import shutil

    home = vnpy_home()
    from qmtbus.config import SimConfig
    from qmtbus.gateway.broker.sim import native, terminal
    from qmtbus.gateway.broker.xtload import load_xttrader

    xttrader = load_xttrader(native)
    # the settings of bench_stack's simulator: still market, cash for thousands of orders
    config = SimConfig(volatility=0.0, initial_cash=1e10, tick_interval=0.5)
    sim = terminal.SimTerminal(home / "sim", config, ACCOUNT)
    sim.start()
    from vnpy.event import EVENT_TIMER, Event, EventEngine
    from vnpy.rpc import RpcServer
    from vnpy.trader.engine import MainEngine
    from vnpy.trader.object import OrderRequest

    main_engine = MainEngine(EventEngine())
    gateway = main_engine.add_gateway(gateway_class(xttrader, sim))
    gateway.td_api.track_answers = mode == "answered"
    main_engine.connect({"路径": str(home / "sim"), "资金账号": ACCOUNT}, GATEWAY)

    server = RpcServer()

    def send_order_answered(req: OrderRequest, gateway_name: str) -> str:
        vt_orderid = str(main_engine.send_order(req, gateway_name))
        if not vt_orderid:
            raise RuntimeError(f"the vnpy gateway refused the order {req}")
        response = gateway.td_api.wait_answer(vt_orderid.split(".", 1)[1])
        if response.error_msg or response.order_id <= 0:
            raise RuntimeError(f"the broker refused order {vt_orderid}: {response.error_msg}")
        return vt_orderid

    def publish(event: Event) -> None:
        if event.type != EVENT_TIMER:
            server.publish("", event)

    def bye() -> bool:
        # wakes a client's SUB thread shortly after this reply, so it can notice stop()
        threading.Timer(0.05, server.publish, ("bye", None)).start()
        return True

    server.register(main_engine.send_order)
    server.register(send_order_answered)
    server.register(bye)
    main_engine.event_engine.register_general(publish)
    server.start(rep_address, pub_address)
    say(ready=True, mode=mode)
    for line in sys.stdin:  # any line: how many events vnpy's event thread has yet to handle
        if line.strip():
            say(queued=main_engine.event_engine._queue.qsize())
    main_engine.close()  # its event thread first: it publishes on the server's socket
    server.stop()
    server.join()
    sim.close()
    os.chdir(tempfile.gettempdir())
    shutil.rmtree(home, ignore_errors=True)
