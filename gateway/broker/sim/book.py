"""The simulated account: orders, fills, cash and positions, with A-share fees and T+1.

Every operation returns the pushes it causes, in the order a miniQMT sends
them, after writing its records to the store. Money is kept in integer mils
so that total_asset == cash + frozen_cash + market_value holds exactly.
Not thread-safe: the terminal calls it under its lock.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from qmtbus.gateway import ashare
from qmtbus.gateway.broker.sim import objects as xt
from qmtbus.gateway.broker.sim import rules, views
from qmtbus.gateway.broker.sim.market import Market, Quote, to_mils, to_yuan
from qmtbus.gateway.broker.sim.store import (
    Cash,
    OrderState,
    PositionState,
    Record,
    Request,
    Snapshot,
    Store,
    TradeRecord,
)

Fault = Literal["reject", "reject_error_first", "silent"] | None


class Push(NamedTuple):
    """One callback: `private` ones (responses, errors) go to the requesting session only."""

    name: str
    payload: Any
    private: bool = False


class Book:
    def __init__(
        self,
        *,
        account_id: str,
        fees: ashare.Fees,
        initial_cash: float,
        market: Market,
        store: Store,
    ) -> None:
        self.account_id = account_id
        self._fees = fees
        self._initial_cash_m = to_mils(initial_cash)
        self._market = market
        self._store = store
        self.trading_day = ""
        self.cash_m = 0
        # Cash frozen by resting buys, kept as a running total (asset pushes are frequent).
        self._frozen_m = 0
        self.orders: dict[int, OrderState] = {}
        self._by_sysid: dict[str, int] = {}
        self.trades: list[TradeRecord] = []
        self.positions: dict[str, PositionState] = {}
        # Resting order ids per symbol, in time priority.
        self._resting: dict[str, list[int]] = {}
        self.next_order_id = 1
        self._next_sysid = 1
        self._next_traded_id = 1
        self._records: list[Record] = []
        self._dirty_orders: dict[int, OrderState] = {}
        self._dirty_positions: dict[str, PositionState] = {}
        self._dirty_cash = False
        self._pushes: list[Push] = []

    # -- loading and the trading day ------------------------------------------

    def load(self, today: str) -> list[Push]:
        """Rebuild the state from the store; on a new trading day, roll over first.
        (A clock that went back to an earlier day keeps the book's day: days only advance.)"""
        day, records = self._store.load()
        if not records:
            self.trading_day = today
            self.cash_m = self._initial_cash_m
            self._store.start_day(self._snapshot())
            return []
        for record in records:
            self._apply(record)
        self.trading_day = day
        for state in sorted(self.orders.values(), key=lambda o: o.order_id):
            if state.order_status in xt.RESTING_STATUSES:
                self._resting.setdefault(state.stock_code, []).append(state.order_id)
                self._frozen_m += state.frozen_m
        return self.roll_day(today) if today > day else []

    def _apply(self, record: Record) -> None:
        match record:
            case Snapshot():
                self.cash_m = record.cash_m
                self.positions = {p.stock_code: p for p in record.positions}
                self.orders.clear()
                self._by_sysid.clear()
                self.trades.clear()
                self.next_order_id = record.next_order_id
                self._next_sysid = record.next_sysid
                self._next_traded_id = record.next_traded_id
            case Request():
                self.next_order_id = max(self.next_order_id, record.order_id + 1)
            case OrderState():
                self.orders[record.order_id] = record
                self.next_order_id = max(self.next_order_id, record.order_id + 1)
                if record.order_sysid:
                    self._by_sysid[record.order_sysid] = record.order_id
                    self._next_sysid = max(self._next_sysid, int(record.order_sysid[1:]) + 1)
            case TradeRecord():
                self.trades.append(record)
                self._next_traded_id = max(self._next_traded_id, int(record.traded_id[1:]) + 1)
            case PositionState():
                self.positions[record.stock_code] = record
            case Cash():
                self.cash_m = record.cash_m

    def _snapshot(self) -> Snapshot:
        return Snapshot(
            trading_day=self.trading_day,
            account_id=self.account_id,
            cash_m=self.cash_m,
            positions=list(self.positions.values()),
            next_order_id=self.next_order_id,
            next_sysid=self._next_sysid,
            next_traded_id=self._next_traded_id,
        )

    def roll_day(self, day: str) -> list[Push]:
        """Day orders expire; today's buys become sellable; a new segment starts."""
        for code in list(self._resting):
            for order_id in list(self._resting.get(code, ())):
                state = self.orders[order_id]
                state.order_status = (
                    xt.ORDER_PART_CANCEL if state.traded_volume else xt.ORDER_CANCELED
                )
                state.status_msg = f"expired at the end of trading day {self.trading_day}"
                self._finish(state)
                self._push_order(state)
        pushes = self._commit()
        for code, held in list(self.positions.items()):
            if held.volume == 0:
                del self.positions[code]
                continue
            held.yesterday_volume = held.can_use_volume = held.volume
            held.frozen_volume = 0
        self.orders.clear()
        self._by_sysid.clear()
        self.trades.clear()
        self._resting.clear()
        self.trading_day = day
        self._store.start_day(self._snapshot())
        for held in self.positions.values():
            self._dirty_positions[held.stock_code] = held
        self._dirty_cash = True
        # The new segment's snapshot already holds this state: push it, do not log it again.
        pushes += self._commit(write=False)
        return pushes

    # -- orders ----------------------------------------------------------------

    def place(
        self,
        *,
        account_id: str,
        stock_code: str,
        order_type: int,
        order_volume: int,
        price_type: int,
        price: float,
        strategy_name: str,
        order_remark: str,
        session_id: int,
        seq: int,
        respond: bool,
        phase: ashare.Phase,
        fault: Fault,
        now: float,
    ) -> tuple[int, list[Push]]:
        """Take an order request; returns (order_id, pushes)."""
        order_id = self.next_order_id
        self.next_order_id += 1
        self._records.append(
            Request(
                order_id=order_id,
                account_id=account_id,
                stock_code=stock_code,
                order_type=order_type,
                order_volume=order_volume,
                price_type=price_type,
                price=price,
                strategy_name=strategy_name,
                order_remark=order_remark,
                session_id=session_id,
                seq=seq,
                received_ns=int(now * 1e9),
                trading_day=self.trading_day,
            )
        )
        state = OrderState(
            order_id=order_id,
            stock_code=stock_code,
            order_type=order_type,
            order_volume=order_volume,
            price_type=price_type,
            price=price,
            strategy_name=strategy_name,
            order_remark=order_remark,
            order_time=int(now),
        )
        self.orders[order_id] = state
        self._dirty_orders[order_id] = state
        if fault == "silent":
            # The order reached the counter and died there, and nobody was told.
            state.order_status = xt.ORDER_JUNK
            state.status_msg = "rejected without notice (silent_reject_next fault)"
            return order_id, self._commit()

        quote: Quote | None = None
        estimate_m = 0
        rejection = rules.check_request(
            account_id == self.account_id, stock_code, order_type, price_type
        )
        if rejection is None:
            quote = self._market.quote(stock_code)
            held = self.positions.get(stock_code)
            rejection = rules.check_market(
                stock_code,
                order_type,
                order_volume,
                price_type,
                price,
                phase=phase,
                quote=quote,
                can_use_volume=held.can_use_volume if held else 0,
            )
        if rejection is None and quote is not None:
            state.limit_m = (
                to_mils(price)
                if price_type == xt.FIX_PRICE
                else _market_limit(quote, order_type, price_type)
            )
            if order_type == xt.STOCK_BUY:
                amount_m = state.limit_m * order_volume
                estimate_m = amount_m + to_mils(self._fees.total(to_yuan(amount_m), False))
                if estimate_m > self.cash_m:
                    rejection = rules.Rejection(
                        rules.ERR_CASH,
                        f"insufficient cash: the order needs {to_yuan(estimate_m):.2f} CNY, "
                        f"{to_yuan(self.cash_m):.2f} CNY available",
                    )
        if rejection is None and fault in ("reject", "reject_error_first"):
            rejection = rules.Rejection(rules.ERR_SIMULATED, f"rejected by the {fault} fault")
        if rejection is not None or quote is None:
            assert rejection is not None
            error_first = fault == "reject_error_first"
            return order_id, self._reject(state, rejection, seq, respond, error_first)

        if respond:
            self._pushes.append(
                Push("on_order_stock_async_response", self._response(state, seq), True)
            )
        # The counter takes it (48), queues it for the exchange (49), the exchange has it (50,
        # with its sysid), as a real terminal may push them.
        for status in (xt.ORDER_UNREPORTED, xt.ORDER_WAIT_REPORTING):
            state.order_status = status
            self._push_order(state)
        state.order_sysid = f"S{self._next_sysid:06d}"
        self._next_sysid += 1
        self._by_sysid[state.order_sysid] = order_id
        state.order_status = xt.ORDER_REPORTED
        if order_type == xt.STOCK_BUY:
            state.frozen_m = estimate_m
            self._frozen_m += estimate_m
            self.cash_m -= estimate_m
            self._dirty_cash = True
        else:
            held = self.positions[stock_code]
            held.can_use_volume -= order_volume
            held.frozen_volume += order_volume
            self._dirty_positions[stock_code] = held
        self._push_order(state)
        self._resting.setdefault(stock_code, []).append(order_id)
        if phase == "continuous":
            self._match_new(state, quote, now)
        return order_id, self._commit()

    def _reject(
        self,
        state: OrderState,
        rejection: rules.Rejection,
        seq: int,
        respond: bool,
        error_first: bool = False,
    ) -> list[Push]:
        """Junk: the response carries the error and on_order_error follows; or (error_first)
        on_order_error comes first and the response carries none (xttrader pairs them)."""
        state.order_status = xt.ORDER_JUNK
        state.status_msg = rejection.error_msg
        error = xt.XtOrderError(
            self.account_id,
            state.order_id,
            rejection.error_id,
            rejection.error_msg,
            state.strategy_name,
            state.order_remark,
            seq,
        )
        if error_first:
            self._pushes.append(Push("on_order_error", error, True))
        if respond:
            message = "" if error_first else rejection.error_msg
            response = self._response(state, seq, message)
            self._pushes.append(Push("on_order_stock_async_response", response, True))
        self._push_order(state)
        if not error_first:
            self._pushes.append(Push("on_order_error", error, True))
        return self._commit()

    def _response(self, state: OrderState, seq: int, error_msg: str = "") -> xt.XtOrderResponse:
        return xt.XtOrderResponse(
            self.account_id, state.order_id, state.strategy_name, state.order_remark, error_msg, seq
        )

    def _match_new(self, state: OrderState, quote: Quote, now: float) -> None:
        """A new order meets the market at once; market types deal with what is left."""
        is_buy = state.order_type == xt.STOCK_BUY
        depth = quote.available(is_buy, state.limit_m)
        if state.price_type == xt.FILL_OR_KILL and depth < state.order_volume:
            self._end(state, xt.ORDER_CANCELED, "fill-or-kill: not enough volume at the market")
            return
        self._match(state, quote, now)
        if state.price_type in xt.CANCEL_REST_PRICE_TYPES and state.order_status in (
            xt.ORDER_REPORTED,
            xt.ORDER_PART_SUCC,
        ):
            status = xt.ORDER_PART_CANCEL if state.traded_volume else xt.ORDER_CANCELED
            self._end(state, status, "the unfilled remainder of a market order is cancelled")

    def _match(self, state: OrderState, quote: Quote, now: float) -> None:
        """Fill what the book side offers within the order's limit, a trade per price level."""
        is_buy = state.order_type == xt.STOCK_BUY
        fills = self._market.take(
            state.stock_code, is_buy, state.order_volume - state.traded_volume, state.limit_m
        )
        for price_m, volume in fills:
            self._fill(state, price_m, volume, now)

    def match(self, codes: list[str], now: float) -> list[Push]:
        """After a tick: resting orders of `codes` that the price now crosses fill, oldest first."""
        for code in codes:
            resting = self._resting.get(code)
            if not resting:
                continue
            quote = self._market.quote(code)
            # A buy can fill only if the best ask is within its limit, a sell only if the best
            # bid is (0: no level inside the day's limits): a cheap look first, so a tick
            # costs little with thousands of orders resting out of reach.
            ask1, bid1 = quote.ask_prices()[0], quote.bid_prices()[0]
            orders = self.orders
            for order_id in list(resting):
                state = orders[order_id]
                if state.order_type == xt.STOCK_BUY:
                    if not ask1 or ask1 > state.limit_m:
                        continue
                elif not bid1 or bid1 < state.limit_m:
                    continue
                self._match(state, quote, now)
        return self._commit()

    def _fill(self, state: OrderState, price_m: int, volume: int, now: float) -> None:
        is_buy = state.order_type == xt.STOCK_BUY
        amount_m = price_m * volume
        amount = to_yuan(amount_m)
        # The commission minimum applies per order: charge what the order's total now owes.
        commission_m = to_mils(self._fees.commission(to_yuan(state.traded_amount_m + amount_m)))
        fee_m = max(0, commission_m - state.commission_m)
        state.commission_m += fee_m
        fee_m += to_mils(round(amount * self._fees.transfer_fee_rate, 2))
        if not is_buy and ashare.stamp_duty_applies(state.stock_code):
            fee_m += to_mils(round(amount * self._fees.stamp_duty_rate, 2))
        state.traded_volume += volume
        state.traded_amount_m += amount_m
        held = self.positions.get(state.stock_code)
        if held is None:
            held = self.positions[state.stock_code] = PositionState(stock_code=state.stock_code)
        if is_buy:
            from_frozen = min(state.frozen_m, amount_m + fee_m)
            state.frozen_m -= from_frozen
            self._frozen_m -= from_frozen
            self.cash_m -= amount_m + fee_m - from_frozen
            held.volume += volume
            if ashare.t_plus_zero(state.stock_code):  # funds and ETFs sell the same day
                held.can_use_volume += volume
            held.cost_m += amount_m + fee_m
            held.open_cost_m += amount_m
        else:
            self.cash_m += amount_m - fee_m
            held.cost_m -= held.cost_m * volume // held.volume
            held.open_cost_m -= held.open_cost_m * volume // held.volume
            held.volume -= volume
            held.frozen_volume -= volume
        self._dirty_cash = True
        self._dirty_positions[state.stock_code] = held
        record = TradeRecord(
            account_id=self.account_id,
            stock_code=state.stock_code,
            order_type=state.order_type,
            traded_id=f"T{self._next_traded_id:09d}",
            traded_time=int(now),
            traded_price=to_yuan(price_m),
            traded_volume=volume,
            traded_amount=amount,
            order_id=state.order_id,
            order_sysid=state.order_sysid,
            strategy_name=state.strategy_name,
            order_remark=state.order_remark,
            direction=xt.DIRECTION_FLAG_LONG,
            offset_flag=xt.OFFSET_FLAG_OPEN if is_buy else xt.OFFSET_FLAG_CLOSE,
            commission=to_yuan(fee_m),
            trading_day=self.trading_day,
        )
        self._next_traded_id += 1
        self.trades.append(record)
        self._records.append(record)
        self._pushes.append(Push("on_stock_trade", views.trade(record)))
        if state.traded_volume == state.order_volume:
            self._end(state, xt.ORDER_SUCCEEDED, "")
        else:
            state.order_status = xt.ORDER_PART_SUCC
            self._push_order(state)

    def cancel(
        self,
        *,
        seq: int,
        respond: bool,
        order_id: int | None = None,
        sysid: str | None = None,
        market: int | str | None = None,
        refused: str | None = None,
    ) -> tuple[int, list[Push]]:
        """Cancel by order_id or by (market, sysid); returns (cancel_result, pushes).
        `refused`: why the exchange takes no cancel now (the order stays as it is)."""
        if order_id is not None:
            found = self.orders.get(order_id)
        else:
            found = self.orders.get(self._by_sysid.get(sysid or "", -1))
            if found is not None and _market_enum(market) != _market_enum(found.stock_code[-2:]):
                found = None
        if found is None or found.order_status in xt.FINAL_STATUSES or refused:
            result = -1 if found is None else 0
            if refused and found is not None and found.order_status not in xt.FINAL_STATUSES:
                message = refused
            elif found is None:
                message = f"order {order_id if order_id is not None else sysid} not found"
            else:
                message = f"order {found.order_id} is final (status {found.order_status})"
            self._cancel_failed(found, order_id, sysid, market, seq, respond, result, message)
            return result, self._commit()
        if respond:
            response = xt.XtCancelOrderResponse(
                self.account_id, 0, found.order_id, found.order_sysid, seq, ""
            )
            self._pushes.append(Push("on_cancel_order_stock_async_response", response, True))
        part = found.traded_volume > 0
        found.order_status = xt.ORDER_PARTSUCC_CANCEL if part else xt.ORDER_REPORTED_CANCEL
        self._push_order(found)
        self._end(found, xt.ORDER_PART_CANCEL if part else xt.ORDER_CANCELED, "cancelled")
        return 0, self._commit()

    def _cancel_failed(
        self,
        found: OrderState | None,
        order_id: int | None,
        sysid: str | None,
        market: int | str | None,
        seq: int,
        respond: bool,
        result: int,
        message: str,
    ) -> None:
        the_id = found.order_id if found else (order_id if order_id is not None else 0)
        the_sysid = found.order_sysid if found else (sysid or "")
        the_market = _market_enum(found.stock_code[-2:] if found else market)
        if respond:
            response = xt.XtCancelOrderResponse(
                self.account_id, result, the_id, the_sysid, seq, message
            )
            self._pushes.append(Push("on_cancel_order_stock_async_response", response, True))
        error = xt.XtCancelError(
            self.account_id, the_id, the_market, the_sysid, rules.ERR_BAD_PARAMETER, message
        )
        self._pushes.append(Push("on_cancel_error", error, True))

    def _end(self, state: OrderState, status: int, status_msg: str) -> None:
        state.order_status = status
        state.status_msg = status_msg
        self._finish(state)
        self._push_order(state)

    def _finish(self, state: OrderState) -> None:
        """The order will not trade again: release what it still holds."""
        resting = self._resting.get(state.stock_code)
        if resting and state.order_id in resting:
            resting.remove(state.order_id)
        self._dirty_orders[state.order_id] = state
        if state.order_type == xt.STOCK_BUY:
            if state.frozen_m:
                self.cash_m += state.frozen_m
                self._frozen_m -= state.frozen_m
                state.frozen_m = 0
                self._dirty_cash = True
            return
        left = state.order_volume - state.traded_volume
        held = self.positions.get(state.stock_code)
        if left and held is not None:
            held.frozen_volume -= left
            held.can_use_volume += left
            self._dirty_positions[state.stock_code] = held

    # -- pushes and records ----------------------------------------------------

    def _push_order(self, state: OrderState) -> None:
        self._dirty_orders[state.order_id] = state
        self._pushes.append(Push("on_stock_order", views.order(self.account_id, state)))

    def _commit(self, write: bool = True) -> list[Push]:
        """Write this operation's records (one os.write), then hand back its pushes."""
        records = self._records
        records.extend(self._dirty_orders.values())
        pushes = self._pushes
        for held in self._dirty_positions.values():
            records.append(held)
            pushes.append(Push("on_stock_position", self._position_view(held)))
        if self._dirty_cash:
            records.append(Cash(cash_m=self.cash_m))
            pushes.append(Push("on_stock_asset", self.asset()))
        if write:
            self._store.append(records)
        self._records, self._pushes = [], []
        self._dirty_orders, self._dirty_positions = {}, {}
        self._dirty_cash = False
        # Asset before positions reads better, as XTQUANT.md lists them.
        return _asset_first(pushes)

    # -- queries ---------------------------------------------------------------

    def frozen_cash_m(self) -> int:
        return self._frozen_m

    def market_value_m(self) -> int:
        return sum(p.volume * self._market.quote(c).last_m for c, p in self.positions.items())

    def asset(self) -> xt.XtAsset:
        return views.asset(
            self.account_id, self.cash_m, self.frozen_cash_m(), self.market_value_m()
        )

    def order_views(self, cancelable_only: bool = False) -> list[xt.XtOrder]:
        return [
            views.order(self.account_id, s)
            for s in self.orders.values()
            if not cancelable_only or s.order_status in xt.RESTING_STATUSES
        ]

    def order_view(self, order_id: int) -> xt.XtOrder | None:
        state = self.orders.get(order_id)
        return views.order(self.account_id, state) if state else None

    def trade_views(self) -> list[xt.XtTrade]:
        return [views.trade(t) for t in self.trades]

    def position_views(self) -> list[xt.XtPosition]:
        return [self._position_view(p) for p in self.positions.values()]

    def position_view(self, stock_code: str) -> xt.XtPosition | None:
        held = self.positions.get(stock_code)
        return self._position_view(held) if held else None

    def _position_view(self, held: PositionState) -> xt.XtPosition:
        return views.position(self.account_id, held, self._market.quote(held.stock_code).last_m)

    def resting_codes(self) -> list[str]:
        return [code for code, ids in self._resting.items() if ids]


def _market_limit(quote: Quote, order_type: int, price_type: int) -> int:
    """The price a market order reaches: the far side's fifth level (or the last one quoted);
    the last price for the latest-price type, or when the book has no spread."""
    if price_type == xt.LATEST_PRICE or not quote.spread_ticks:
        return quote.last_m
    prices = quote.ask_prices() if order_type == xt.STOCK_BUY else quote.bid_prices()
    quoted = [p for p in prices if p]
    return quoted[-1] if quoted else quote.last_m


def _market_enum(market: int | str | None) -> int:
    if isinstance(market, str):
        return xt.MARKET_ENUM.get(market.upper(), -1)
    return market if market is not None else -1


def _asset_first(pushes: list[Push]) -> list[Push]:
    tail = [p for p in pushes if p.name in ("on_stock_asset", "on_stock_position")]
    if not tail:
        return pushes
    head = [p for p in pushes if p.name not in ("on_stock_asset", "on_stock_position")]
    tail.sort(key=lambda p: p.name != "on_stock_asset")
    return head + tail


__all__ = ["Book", "Fault", "Push"]
