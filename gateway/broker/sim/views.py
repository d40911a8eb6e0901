"""Fresh xttype look-alikes from the simulator's book state (callers may keep or mutate them)."""

from __future__ import annotations

from qmtbus.gateway.broker.sim import objects as xt
from qmtbus.gateway.broker.sim.market import instrument_name, to_yuan
from qmtbus.gateway.broker.sim.store import OrderState, PositionState, TradeRecord


def secu_account(stock_code: str) -> str:
    return f"SIM{stock_code[-2:]}0001"


def _offset_flag(order_type: int) -> int:
    return xt.OFFSET_FLAG_OPEN if order_type == xt.STOCK_BUY else xt.OFFSET_FLAG_CLOSE


def order(account_id: str, state: OrderState) -> xt.XtOrder:
    traded_price = (
        round(state.traded_amount_m / state.traded_volume / 1000, 4) if state.traded_volume else 0.0
    )
    return xt.XtOrder(
        account_id,
        state.stock_code,
        state.order_id,
        state.order_sysid,
        state.order_time,
        state.order_type,
        state.order_volume,
        state.price_type,
        state.price,
        state.traded_volume,
        traded_price,
        state.order_status,
        state.status_msg,
        state.strategy_name,
        state.order_remark,
        xt.DIRECTION_FLAG_LONG,
        _offset_flag(state.order_type),
        secu_account(state.stock_code),
        instrument_name(state.stock_code),
    )


def trade(record: TradeRecord) -> xt.XtTrade:
    return xt.XtTrade(
        record.account_id,
        record.stock_code,
        record.order_type,
        record.traded_id,
        record.traded_time,
        record.traded_price,
        record.traded_volume,
        record.traded_amount,
        record.order_id,
        record.order_sysid,
        record.strategy_name,
        record.order_remark,
        record.direction,
        record.offset_flag,
        record.commission,
        secu_account(record.stock_code),
        instrument_name(record.stock_code),
    )


def position(account_id: str, state: PositionState, last_m: int) -> xt.XtPosition:
    volume = state.volume
    market_value_m = volume * last_m
    avg_price = round(state.cost_m / volume / 1000, 4) if volume else 0.0
    open_price = round(state.open_cost_m / volume / 1000, 4) if volume else 0.0
    profit_rate = round((to_yuan(last_m) - avg_price) / avg_price, 6) if avg_price else 0.0
    float_profit = to_yuan(market_value_m - state.cost_m) if volume else 0.0
    return xt.XtPosition(
        account_id,
        state.stock_code,
        volume,
        state.can_use_volume,
        open_price,
        to_yuan(market_value_m),
        state.frozen_volume,
        0,
        state.yesterday_volume,
        avg_price,
        xt.DIRECTION_FLAG_LONG,
        to_yuan(last_m),
        profit_rate,
        secu_account(state.stock_code),
        instrument_name(state.stock_code),
        float_profit=float_profit,
        position_profit=float_profit,
    )


def asset(account_id: str, cash_m: int, frozen_m: int, market_value_m: int) -> xt.XtAsset:
    # Sum in mils first so that total_asset == cash + frozen_cash + market_value exactly.
    return xt.XtAsset(
        account_id,
        to_yuan(cash_m),
        to_yuan(frozen_m),
        to_yuan(market_value_m),
        to_yuan(cash_m + frozen_m + market_value_m),
        to_yuan(cash_m),
    )
