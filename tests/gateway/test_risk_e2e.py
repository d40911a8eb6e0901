"""The risk gate through a real gateway: denied orders never reach the simulator, each rule
at its boundary from a real [risk] config, and the kill switch across a kill -9.

Prices are those of the still market (volatility 0): 600000.SH trades at price() = 47.51,
so its day's limits are 42.76-52.26 and the 5% fat-finger band is 45.14-49.88.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zmq

from qmtbus import protocol as p
from qmtbus.config import load_config
from qmtbus.gateway.broker.sim.broker import SimBroker
from qmtbus.gateway.broker.sim.ledger import read_ledger
from tests.gateway.conftest import CODE, order, price, start_listened
from tests.gateway.sim_support import DAY, Clock, Sim, response_for, wait_status
from tests.support import Proc, Stack, Subscriber, start_gateway

STAR = "688001.SH"  # STAR board: buys of at least 200 shares
OTHER = "600004.SH"

Start = Callable[..., Proc]


@pytest.fixture
def start(stack: Stack, events: Subscriber) -> Iterator[Start]:
    """Start a gateway with extra config sections (`risk={...}`, `sim={...}`); stopped after."""
    procs: list[Proc] = []

    def _start(**sections: dict[str, Any]) -> Proc:
        # A loaded machine must not turn a slow broker response into a "pending" ack.
        stack.write_config(gateway={"order_reply_timeout": 10.0})
        stack.write_config(**sections)
        proc = start_listened(stack, events)
        procs.append(proc)
        return proc

    yield _start
    for proc in procs:
        if proc.alive():
            proc.stop()


def restart(stack: Stack, events: Subscriber, gateway: Proc) -> Proc:
    """kill -9 and start again; returns once `events` hears the new epoch."""
    gateway.kill()
    proc = start_gateway(stack)
    epoch = stack.call(p.GetStatus()).epoch
    events.wait(lambda e: isinstance(e, p.HeartbeatEvent) and e.epoch == epoch, 5, "new epoch live")
    return proc


def _order(
    client_order_id: str,
    volume: int = 100,
    at: float | None = None,
    sell: bool = False,
    code: str = CODE,
    strategy_name: str = "",
) -> p.PlaceOrder:
    return p.PlaceOrder(
        client_order_id=client_order_id,
        stock_code=code,
        order_type=24 if sell else 23,  # STOCK_SELL, STOCK_BUY
        order_volume=volume,
        price_type=p.FIX_PRICE,
        price=price(code=code) if at is None else at,
        strategy_name=strategy_name,
    )


def _received(stack: Stack) -> list[str]:
    return [o["order_remark"] for o in read_ledger(stack.data_dir).orders_received]


def denied(stack: Stack, events: Subscriber, cmd: p.PlaceOrder, rule: str) -> p.ErrorReply:
    """Assert the whole story of a denial: RISK_DENIED naming `rule`, a risk_denied event
    with the same words and the order's fields, and nothing sent to the simulator."""
    reply = stack.call(cmd)
    assert isinstance(reply, p.ErrorReply), reply
    assert (reply.code, reply.rule) == (p.RISK_DENIED, rule), reply
    event = events.wait(
        lambda e: isinstance(e, p.RiskDeniedEvent) and e.client_order_id == cmd.client_order_id,
        10,
        f"risk_denied {cmd.client_order_id}",
    )
    assert isinstance(event, p.RiskDeniedEvent)
    assert (event.rule, event.message) == (rule, reply.message)
    assert (event.stock_code, event.order_type, event.order_volume, event.price) == (
        cmd.stock_code,
        cmd.order_type,
        cmd.order_volume,
        cmd.price,
    )
    assert event.strategy_name == cmd.strategy_name
    assert cmd.client_order_id not in _received(stack)
    return reply


def passes(stack: Stack, cmd: p.PlaceOrder) -> p.OrderAck:
    """Assert the gate let the order through: the broker accepted it and the simulator has it."""
    ack = stack.call(cmd)
    assert isinstance(ack, p.OrderAck), ack
    assert ack.status == "accepted" and not ack.duplicate, ack
    assert _received(stack).count(cmd.client_order_id) == 1
    return ack


def filled(events: Subscriber, ack: p.OrderAck) -> None:
    events.wait(
        lambda e: (
            isinstance(e, p.OrderEvent) and e.order_id == ack.order_id and e.order_status == 56
        ),
        10,
        f"{ack.client_order_id} filled",
    )


def hold_since_yesterday(stack: Stack, volume: int) -> None:
    """Buy `volume` of CODE in the simulator a day before the gateway starts, so the
    account opens today holding shares it may sell (T+1)."""
    yesterday = Clock(time.time() - DAY)
    sim = Sim(SimBroker(load_config(stack.config_path), clock=yesterday), yesterday)
    try:
        trader, recorder = sim.session()
        seq = sim.buy(trader, volume, price(), remark="yesterday")
        wait_status(recorder, response_for(recorder, seq).order_id, p.ORDER_SUCCEEDED)
    finally:
        sim.close()


# -- the denial itself ---------------------------------------------------------------


def test_given_denied_order_then_never_reaches_simulator_and_is_published_with_rule_and_numbers(
    stack: Stack, start: Start, events: Subscriber
) -> None:
    start()
    cmd = _order("fat-1", at=49.89, strategy_name="momentum")
    reply = denied(stack, events, cmd, "fat_finger")
    assert reply.message == (
        "buy price 49.89 is 5.01% from the last price 47.51, beyond fat_finger_pct 5% (45.14-49.88)"
    )
    # The same refusal to a JSON client, in JSON.
    json_reply = stack.call(_order("fat-json", at=49.89), json=True)
    assert isinstance(json_reply, p.ErrorReply)
    assert (json_reply.code, json_reply.rule) == (p.RISK_DENIED, "fat_finger")
    # A denial is not remembered as an order: the same client_order_id may be used again.
    passes(stack, _order("fat-1", at=49.88))
    assert "fat-json" not in _received(stack)


# -- rules at their boundary ------------------------------------------------------------


def test_given_lot_and_tick_rules_then_whole_lots_on_the_tick_pass_and_others_are_denied(
    stack: Stack, start: Start, events: Subscriber
) -> None:
    start()
    reply = denied(stack, events, _order("lot-150", volume=150), "lot_size")
    assert reply.message == "buy volume 150 of 600000.SH: buys are in lots of 100 shares"
    passes(stack, _order("lot-100", volume=100))
    reply = denied(stack, events, _order("star-100", volume=100, code=STAR), "lot_size")
    assert "STAR buys are at least 200 shares" in reply.message
    passes(stack, _order("star-200", volume=200, code=STAR))
    reply = denied(stack, events, _order("tick-half", at=47.515), "tick_size")
    assert reply.message == "limit price 47.515 is not a multiple of the tick 0.01"


def test_given_price_limits_then_the_stop_prices_pass_and_one_tick_beyond_is_denied(
    stack: Stack, start: Start, events: Subscriber
) -> None:
    start(risk={"fat_finger_pct": 0.0})
    reply = denied(stack, events, _order("up-over", at=52.27), "price_limits")
    assert reply.message == "buy price 52.27 is above the up-stop price 52.26"
    reply = denied(stack, events, _order("down-under", at=42.75), "price_limits")
    assert reply.message == "buy price 42.75 is below the down-stop price 42.76"
    passes(stack, _order("up-stop", at=52.26))
    passes(stack, _order("down-stop", at=42.76))


def test_given_fat_finger_band_then_its_edges_pass_and_a_tick_beyond_is_denied(
    stack: Stack, start: Start, events: Subscriber
) -> None:
    start()  # fat_finger_pct defaults to 5: 45.1345-49.8855 around 47.51
    reply = denied(stack, events, _order("ff-high", at=49.89), "fat_finger")
    assert "5.01% from the last price 47.51" in reply.message
    passes(stack, _order("ff-high-edge", at=49.88))
    # a buy far below the market rests in the book: not a fat finger
    passes(stack, _order("ff-low-rests", at=45.13))


def test_given_shares_bought_today_then_selling_them_is_denied_by_t_plus_1(
    stack: Stack, start: Start, events: Subscriber
) -> None:
    hold_since_yesterday(stack, 100)
    start()
    today = passes(stack, _order("buy-today", volume=100))
    filled(events, today)
    events.wait(
        lambda e: isinstance(e, p.PositionEvent) and e.stock_code == CODE and e.volume == 200,
        10,
        "position of 200",
    )
    reply = denied(stack, events, _order("sell-200", volume=200, sell=True), "sellable")
    assert reply.message == (
        "sell volume 200 exceeds can_use_volume 100 of 600000.SH "
        "(T+1: today's buys sell tomorrow; open sells hold shares)"
    )
    filled(events, passes(stack, _order("sell-100", volume=100, sell=True)))


def test_given_fresh_account_when_buy_then_sell_same_day_then_sell_is_denied(
    stack: Stack, start: Start, events: Subscriber
) -> None:
    start()
    filled(events, passes(stack, _order("t1-buy")))
    reply = denied(stack, events, _order("t1-sell", sell=True), "sellable")
    assert "exceeds can_use_volume 0 of 600000.SH" in reply.message


def test_given_free_cash_then_a_buy_costing_exactly_the_cash_passes_and_a_tick_more_is_denied(
    stack: Stack, start: Start, events: Subscriber
) -> None:
    # 100 x 47.51 = 4,751.00, plus the estimated fees 5.05 (commission minimum 5 + transfer fee)
    start(sim={"initial_cash": 4756.05})
    reply = denied(stack, events, _order("cash-over", at=47.52), "cash")
    assert reply.message == (
        "buy notional 4,752.00 + estimated fees 5.05 exceeds free cash 4,756.05"
    )
    passes(stack, _order("cash-exact", at=47.51))


def test_given_max_volume_and_notional_then_orders_at_the_cap_pass_and_above_are_denied(
    stack: Stack, start: Start, events: Subscriber
) -> None:
    start(risk={"max_order_volume": 200, "max_order_notional": 9502.0})  # 200 x 47.51
    reply = denied(stack, events, _order("vol-300", volume=300), "max_order_volume")
    assert reply.message == "order volume 300 exceeds max_order_volume 200"
    reply = denied(
        stack, events, _order("notional-over", volume=200, at=47.52), "max_order_notional"
    )
    assert reply.message == "order notional 9,504.00 exceeds max_order_notional 9,502.00"
    passes(stack, _order("at-both-caps", volume=200, at=47.51))


def test_given_rate_limit_when_a_burst_exceeds_it_then_the_excess_is_denied_not_queued(
    stack: Stack, start: Start, events: Subscriber
) -> None:
    start(risk={"max_orders_per_second": 2})
    # Pipelined on one DEALER, the three orders reach the gateway within a millisecond.
    sock: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(stack.commands_address)
    try:
        for coid in ("burst-1", "burst-2", "burst-3"):
            sock.send_multipart([b"", p.encode(_order(coid))])
        replies: list[Any] = []
        for _ in range(3):
            assert sock.poll(10_000), f"only {len(replies)} replies"
            replies.append(p.decode_reply(sock.recv_multipart()[-1]))
    finally:
        sock.close()
    acks = sorted(r.client_order_id for r in replies if isinstance(r, p.OrderAck))
    errors = [r for r in replies if isinstance(r, p.ErrorReply)]
    assert acks == ["burst-1", "burst-2"]
    assert len(errors) == 1 and errors[0].rule == "max_orders_per_second"
    assert errors[0].message.startswith(
        "more than 2 orders per second (max_orders_per_second); the next order is allowed in "
    )
    wait = float(errors[0].message.rsplit(" in ", 1)[1].removesuffix(" s"))
    assert 0 < wait <= 0.5
    events.wait(
        lambda e: isinstance(e, p.RiskDeniedEvent) and e.client_order_id == "burst-3", 5, "denied"
    )
    time.sleep(wait + 0.05)  # the bucket refills with time alone: there is no event to wait on
    passes(stack, _order("after-refill"))
    assert "burst-3" not in _received(stack), "a denied order must never be sent later"


def test_given_daily_order_cap_then_denials_do_not_count_and_the_cap_survives_a_restart(
    stack: Stack, start: Start, events: Subscriber
) -> None:
    gateway = start(risk={"max_orders_per_day": 2})
    denied(stack, events, _order("cap-odd-lot", volume=150), "lot_size")
    passes(stack, _order("cap-1"))
    passes(stack, _order("cap-2"))
    reply = denied(stack, events, _order("cap-3"), "max_orders_per_day")
    assert reply.message == "2 orders today already reach max_orders_per_day 2"
    again = restart(stack, events, gateway)
    try:
        reply = denied(stack, events, _order("cap-4"), "max_orders_per_day")
        assert reply.message == "2 orders today already reach max_orders_per_day 2"
    finally:
        again.stop()


def test_given_daily_turnover_cap_then_reaching_it_exactly_passes_and_beyond_is_denied(
    stack: Stack, start: Start, events: Subscriber
) -> None:
    start(risk={"max_turnover_per_day": 14253.0})  # 300 x 47.51
    passes(stack, _order("turn-100", volume=100))
    passes(stack, _order("turn-200", volume=200))
    reply = denied(stack, events, _order("turn-over", volume=100), "max_turnover_per_day")
    assert reply.message == (
        "turnover today 14,253.00 + this order 4,751.00 exceeds max_turnover_per_day 14,253.00"
    )


def test_given_per_strategy_caps_then_one_strategy_at_its_cap_does_not_stop_another(
    stack: Stack, start: Start, events: Subscriber
) -> None:
    start(
        risk={
            "max_orders_per_day_per_strategy": 2,
            "max_turnover_per_day_per_strategy": 4751.0,  # one lot of 600000.SH
        }
    )
    passes(stack, _order("a-1", strategy_name="alpha"))
    reply = denied(
        stack,
        events,
        _order("a-2", strategy_name="alpha", code=OTHER),
        "max_turnover_per_day_per_strategy",
    )
    assert reply.message.startswith("strategy 'alpha': turnover today 4,751.00 + this order")
    passes(stack, _order("b-1", strategy_name="beta"))
    reply = denied(
        stack, events, _order("unnamed-1", volume=200), "max_turnover_per_day_per_strategy"
    )
    assert reply.message.startswith("strategy '(unnamed)': turnover today 0.00")


def test_given_per_strategy_order_cap_then_the_next_order_of_that_strategy_is_denied(
    stack: Stack, start: Start, events: Subscriber
) -> None:
    start(risk={"max_orders_per_day_per_strategy": 1})
    passes(stack, _order("s-a-1", strategy_name="alpha"))
    reply = denied(
        stack, events, _order("s-a-2", strategy_name="alpha"), "max_orders_per_day_per_strategy"
    )
    assert reply.message == (
        "strategy 'alpha': 1 orders today already reach max_orders_per_day_per_strategy 1"
    )
    passes(stack, _order("s-b-1", strategy_name="beta"))


def test_given_allow_and_deny_lists_then_only_allowed_codes_not_denied_pass(
    stack: Stack, start: Start, events: Subscriber
) -> None:
    start(risk={"allow_symbols": ["600*"], "deny_symbols": ["600000.SH"]})
    reply = denied(stack, events, _order("deny-1"), "deny_symbols")
    assert reply.message == "600000.SH matches deny_symbols entry '600000.SH'"
    reply = denied(stack, events, _order("allow-1", code="000001.SZ"), "allow_symbols")
    assert reply.message == "000001.SZ is not in allow_symbols ['600*']"
    passes(stack, _order("ok-1", code=OTHER))


# -- the kill switch ----------------------------------------------------------------------


def test_given_halt_then_every_order_is_refused_with_the_reason_and_cancels_still_pass(
    stack: Stack, start: Start, events: Subscriber
) -> None:
    start()
    resting = passes(stack, order("rest-1", factor=0.98))
    events.wait(
        lambda e: (
            isinstance(e, p.OrderEvent) and e.order_id == resting.order_id and e.order_status == 50
        ),
        10,
        "resting order reported",
    )
    status = stack.call(p.Halt(reason="desk stop"))
    assert isinstance(status, p.Status)
    assert (status.trading, status.trading_reason) == ("halted", "desk stop")
    note = events.wait(lambda e: isinstance(e, p.NoteEvent) and e.topic == "trading", 5, "note")
    assert isinstance(note, p.NoteEvent)
    assert note.data == {"trading": "halted", "reason": "desk stop"}

    halted = "trading is halted (desk stop): no new orders until resume; cancels still pass"
    for cmd in (_order("h-buy"), _order("h-sell", sell=True), _order("h-odd", volume=150)):
        assert denied(stack, events, cmd, "trading_state").message == halted
    # A resend of an order accepted before the halt is answered as before: nothing is sent.
    again = stack.call(order("rest-1", factor=0.98))
    assert isinstance(again, p.OrderAck)
    assert again.duplicate and again.order_id == resting.order_id
    status = stack.call(p.GetStatus())
    assert (status.trading, status.trading_reason, status.state) == (
        "halted",
        "desk stop",
        "ready",
    )

    cancel = stack.call(p.CancelOrder(client_order_id="rest-1"))
    assert isinstance(cancel, p.CancelAck), cancel
    assert cancel.cancel_result == 0
    events.wait(
        lambda e: (
            isinstance(e, p.OrderEvent) and e.order_id == resting.order_id and e.order_status == 54
        ),
        10,
        "cancelled while halted",
    )

    resumed = stack.call(p.Resume(reason="all clear"))
    assert (resumed.trading, resumed.trading_reason) == ("active", "all clear")
    passes(stack, _order("after-resume"))


def test_given_reduce_only_then_a_sell_within_the_position_passes_and_buys_are_refused(
    stack: Stack, start: Start, events: Subscriber
) -> None:
    hold_since_yesterday(stack, 200)
    start()
    status = stack.call(p.ReduceOnly(reason="drawdown"))
    assert (status.trading, status.trading_reason) == ("reduce_only", "drawdown")
    reply = denied(stack, events, _order("ro-buy"), "trading_state")
    assert reply.message == (
        "trading is reduce_only (drawdown): buys are refused, sells may reduce positions"
    )
    reply = denied(stack, events, _order("ro-sell-300", volume=300, sell=True), "trading_state")
    assert reply.message == (
        "trading is reduce_only (drawdown): sell volume 300 exceeds the position of 200 "
        "in 600000.SH"
    )
    filled(events, passes(stack, _order("ro-sell-100", volume=100, sell=True)))
    assert stack.call(p.GetStatus()).trading == "reduce_only"


def test_given_halted_when_gateway_is_killed_and_restarted_then_still_halted_until_resume(
    stack: Stack, start: Start, events: Subscriber
) -> None:
    gateway = start()
    stack.call(p.Halt(reason="broker maintenance"))
    again = restart(stack, events, gateway)
    try:
        status = stack.call(p.GetStatus())
        assert (status.trading, status.trading_reason) == ("halted", "broker maintenance")
        reply = denied(stack, events, _order("after-crash"), "trading_state")
        assert "(broker maintenance)" in reply.message
        assert stack.call(p.Resume()).trading == "active"
        passes(stack, _order("after-resume"))
    finally:
        again.stop()
