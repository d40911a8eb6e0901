"""Quotes through a real gateway on the simulator: subscriptions held per client with leases,
ticks on their own socket filtered by topic, query_quote agreeing with how the simulator
fills, unknown codes, and a tick storm that never costs an order event or a fast ack."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator

import pytest
import zmq

from qmtbus import protocol as p
from qmtbus.gateway.broker.sim.ticks import LOT
from tests.gateway.conftest import CODE, price
from tests.support import Proc, Stack, Subscriber, start_gateway, wait_for

OTHER = "000001.SZ"
CONTROL = "600001.SH"
FAST = {"quote_interval": 0.02}


class Ticks:
    """A SUB on the quotes socket, collecting decoded ticks."""

    def __init__(self, stack: Stack, prefix: bytes = b"tick."):
        self.sub = Subscriber(lambda: stack.quotes_address, prefix)  # once the gateway bound

    def drain(self) -> list[p.TickEvent]:
        return [t for t in self.sub.drain(0.01) if isinstance(t, p.TickEvent)]

    def of(self, code: str) -> list[p.TickEvent]:
        return [t for t in self.drain() if t.stock_code == code]

    def wait_for(self, code: str, after_seq: int = 0, count: int = 1) -> list[p.TickEvent]:
        """Wait until `count` ticks of `code` with seq > after_seq have arrived."""
        return wait_for(
            lambda: (got := [t for t in self.of(code) if t.seq > after_seq])[count - 1 :] and got,
            10,
            f"{count} tick(s) of {code} after seq {after_seq}",
        )

    def close(self) -> None:
        self.sub.close()


def subscribe(stack: Stack, codes: list[str], client_id: str = "") -> p.QuotesAck:
    ack = stack.call(p.SubscribeQuotes(stock_codes=codes, client_id=client_id))
    assert isinstance(ack, p.QuotesAck), ack
    return ack


def unsubscribe(stack: Stack, codes: list[str], client_id: str = "") -> p.QuotesAck:
    ack = stack.call(p.UnsubscribeQuotes(stock_codes=codes, client_id=client_id))
    assert isinstance(ack, p.QuotesAck), ack
    return ack


def assert_stopped(ticks: Ticks, code: str) -> None:
    """No tick of `code` published after now: CONTROL keeps ticking, and ticks arrive in seq
    order, so once several CONTROL beats have passed, any later tick of `code` would show."""
    recent = ticks.wait_for(CONTROL, max((t.seq for t in ticks.drain()), default=0), count=6)
    after = recent[3].seq  # published well after the command was answered
    assert not [t.seq for t in ticks.of(code) if t.seq > after], f"{code} still ticks"


@pytest.fixture
def quoting(stack: Stack) -> Iterator[Proc]:
    """A ready gateway whose simulator ticks every 20 ms."""
    stack.write_config(sim=FAST)
    proc = start_gateway(stack)
    yield proc
    if proc.alive():
        proc.stop()


@pytest.fixture
def ticks(stack: Stack) -> Iterator[Ticks]:
    sub = Ticks(stack)
    yield sub
    sub.close()


def test_given_two_clients_on_one_code_then_ticks_stop_only_when_both_unsubscribed(
    stack: Stack, quoting: Proc, ticks: Ticks
) -> None:
    subscribe(stack, [CONTROL], "control")
    first = subscribe(stack, [CODE], "a")
    second = subscribe(stack, [CODE, OTHER], "b")
    assert first.stock_codes == [CODE]
    assert second.stock_codes == sorted([CODE, OTHER])
    assert second.subscribed == sorted([CODE, OTHER, CONTROL])
    assert second.quote_lease == 300.0
    ticks.wait_for(CODE)

    after_a = unsubscribe(stack, [CODE], "a")
    assert after_a.stock_codes == []
    assert CODE in after_a.subscribed, "b still holds it"
    last = max(t.seq for t in ticks.drain())
    ticks.wait_for(CODE, after_seq=last, count=3)

    after_b = unsubscribe(stack, [CODE], "b")
    assert after_b.stock_codes == [OTHER]
    assert CODE not in after_b.subscribed
    assert_stopped(ticks, CODE)
    assert ticks.wait_for(OTHER, after_seq=last, count=3)


def test_given_no_client_id_then_each_socket_is_its_own_client(stack: Stack, quoting: Proc) -> None:
    subscribe(stack, [CODE])  # stack.call opens a fresh REQ socket per request
    ack = unsubscribe(stack, [CODE])
    assert ack.stock_codes == []
    assert ack.subscribed == [CODE], "another socket cannot release the first one's holding"


def test_given_a_short_lease_then_a_code_nobody_renews_is_dropped_and_renewed_ones_stay(
    stack: Stack, ticks: Ticks
) -> None:
    stack.write_config(sim=FAST, gateway={"quote_lease": 1.0})
    proc = start_gateway(stack)
    try:
        subscribe(stack, [CODE], "forgetful")
        ack = subscribe(stack, [CONTROL], "renewing")
        assert ack.subscribed == sorted([CODE, CONTROL]) and ack.quote_lease == 1.0
        ticks.wait_for(CODE)

        # Renewing CONTROL (as a client does well within the lease) while CODE lapses.
        ack = wait_for(
            lambda: CODE not in (a := subscribe(stack, [CONTROL], "renewing")).subscribed and a,
            10,
            "the unrenewed code to lapse",
        )
        assert ack.subscribed == [CONTROL]
        assert_stopped(ticks, CODE)
        assert "quote lease ran out for 600000.SH" in proc.log()
    finally:
        proc.stop()


def test_given_a_sub_on_one_code_then_it_gets_only_that_codes_ticks(
    stack: Stack, quoting: Proc
) -> None:
    one = Ticks(stack, f"tick.{CODE}".encode())
    every = Ticks(stack)
    raw: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    raw.setsockopt(zmq.LINGER, 0)
    raw.setsockopt(zmq.SUBSCRIBE, b"tick.000001")
    raw.connect(stack.quotes_address)
    try:
        subscribe(stack, [CODE, OTHER, CONTROL], "topics")
        every.wait_for(OTHER, count=3)
        every.wait_for(CONTROL, count=3)
        one.wait_for(CODE, count=3)
        every.wait_for(CODE, count=3)
        assert {t.stock_code for t in one.drain()} == {CODE}
        topic, payload = wait_for(lambda: raw.poll(100) and raw.recv_multipart(), 5, "raw tick")
        assert topic == f"tick.{OTHER}".encode()
        tick = p.decode_event(payload)
        assert isinstance(tick, p.TickEvent) and tick.stock_code == OTHER
    finally:
        raw.close()
        one.close()
        every.close()


def test_given_ticks_then_they_carry_the_days_prices_and_their_own_seq_off_the_event_stream(
    stack: Stack, ticks: Ticks, events: Subscriber
) -> None:
    stack.write_config(sim={**FAST, "volatility": 0.01})
    proc = start_gateway(stack)
    try:
        events.wait(lambda e: isinstance(e, p.HeartbeatEvent), 5, "events live")
        status = stack.call(p.GetStatus())
        subscribe(stack, [CODE], "fields")
        got = ticks.wait_for(CODE, count=20)
        seqs = [t.seq for t in got]
        assert seqs == sorted(seqs) and seqs[0] >= 1
        for t in got:
            assert (t.epoch, t.account_id) == (status.epoch, status.account_id)
            assert t.ts > 0 and abs(t.time - t.ts // 1_000_000) < 5_000
            assert t.low <= t.lastPrice <= t.high and t.low <= t.open <= t.high
            assert t.downStopPrice <= t.low and t.high <= t.upStopPrice
            assert len(t.askPrice) == len(t.bidPrice) == len(t.askVol) == len(t.bidVol) == 5
        assert got[-1].volume >= got[0].volume and got[-1].amount >= got[0].amount
        assert len({t.lastPrice for t in got}) > 1, "the walk moves the ticks"
        events.drain()
        assert not [e for e in events.events if isinstance(e, p.TickEvent)]
        main = [e.seq for e in events.events]
        assert main == list(range(main[0], main[0] + len(main))), "event seq has holes"
    finally:
        proc.stop()


def test_given_the_simulators_book_then_buys_at_ask1_fill_there_up_to_askvol1_and_below_rest(
    stack: Stack, events: Subscriber
) -> None:
    # The market holds still (no steps): the depth a fill takes is not refilled.
    stack.write_config(sim={"tick_interval": 3600.0})
    proc = start_gateway(stack)
    try:
        events.wait(lambda e: isinstance(e, p.HeartbeatEvent), 5, "events live")
        [quote] = stack.call(p.QueryQuote(stock_codes=[CODE])).quotes
        assert quote.seq == 0, "a queried tick is not on the quotes stream"
        assert quote.stock_code == CODE and quote.lastPrice == price()
        assert quote.askPrice[0] == quote.bidPrice[0] == quote.lastPrice
        assert quote.askPrice == [round(quote.lastPrice + k * 0.01, 2) for k in range(5)]
        assert quote.bidPrice == [round(quote.lastPrice - k * 0.01, 2) for k in range(5)]
        assert quote.askVol[1:] == quote.bidVol[1:] == [0, 0, 0, 0]
        assert quote.downStopPrice < quote.lastPrice < quote.upStopPrice
        assert quote.lastClose == price()

        def buy(coid: str, volume: int, limit: float) -> p.OrderAck:
            ack = stack.call(
                p.PlaceOrder(
                    client_order_id=coid,
                    stock_code=CODE,
                    order_type=23,  # STOCK_BUY
                    order_volume=volume,
                    price_type=p.FIX_PRICE,
                    price=limit,
                )
            )
            assert isinstance(ack, p.OrderAck) and ack.status == "accepted", ack
            return ack

        def filled(coid: str) -> None:
            events.wait(
                lambda e: (
                    isinstance(e, p.OrderEvent)
                    and e.client_order_id == coid
                    and e.order_status == p.ORDER_SUCCEEDED
                ),
                10,
                f"{coid} filled",
            )

        buy("at-ask1", LOT, quote.askPrice[0])
        filled("at-ask1")
        trades = [e for e in events.drain() if isinstance(e, p.TradeEvent)]
        assert [(t.traded_price, t.traded_volume) for t in trades] == [(quote.askPrice[0], LOT)]
        [after] = stack.call(p.QueryQuote(stock_codes=[CODE])).quotes
        assert after.askVol[0] == quote.askVol[0] - 1, "the fill took one lot of ask1"
        assert after.volume == quote.volume + 1 and after.amount > quote.amount

        buy("rest-below", LOT, round(quote.askPrice[0] - 0.01, 2))
        buy("all-of-ask1", after.askVol[0] * LOT, after.askPrice[0])
        filled("all-of-ask1")
        [empty] = stack.call(p.QueryQuote(stock_codes=[CODE])).quotes
        assert empty.askVol[0] == 0
        buy("rest-at-ask1", LOT, empty.askPrice[0])
        orders = {o.client_order_id: o for o in stack.call(p.QueryOrders()).orders}
        assert orders["rest-below"].order_status == p.ORDER_REPORTED, "below ask1: it rests"
        assert orders["rest-at-ask1"].order_status == p.ORDER_REPORTED, "ask1 is empty: it rests"
        assert orders["rest-at-ask1"].traded_volume == 0
    finally:
        proc.stop()


def test_given_the_default_spread_then_a_buy_at_ask2_walks_the_asks_and_one_at_last_rests(
    stack: Stack, events: Subscriber
) -> None:
    stack.write_config(sim={"tick_interval": 3600.0, "spread_ticks": 1, "depth_volume": 1000})
    proc = start_gateway(stack)
    try:
        events.wait(lambda e: isinstance(e, p.HeartbeatEvent), 5, "events live")
        [quote] = stack.call(p.QueryQuote(stock_codes=[CODE])).quotes
        assert quote.bidPrice[0] == quote.lastPrice == price()
        assert quote.askPrice[0] == round(quote.bidPrice[0] + 0.01, 2)
        assert quote.askVol == quote.bidVol == [10] * 5

        def buy(coid: str, volume: int, limit: float) -> None:
            cmd = p.PlaceOrder(
                client_order_id=coid, stock_code=CODE, order_type=23, order_volume=volume,
                price=limit,
            )  # fmt: skip
            ack = stack.call(cmd)
            assert isinstance(ack, p.OrderAck) and ack.status == "accepted", ack

        buy("at-last", LOT, quote.lastPrice)
        buy("walks", 1100, quote.askPrice[1])
        events.wait(
            lambda e: (
                isinstance(e, p.OrderEvent)
                and e.client_order_id == "walks"
                and e.order_status == p.ORDER_SUCCEEDED
            ),
            10,
            "walks filled",
        )
        trades = [e for e in events.drain() if isinstance(e, p.TradeEvent)]
        assert [(t.traded_price, t.traded_volume) for t in trades] == [
            (quote.askPrice[0], 1000),
            (quote.askPrice[1], 100),
        ]
        orders = {o.client_order_id: o for o in stack.call(p.QueryOrders()).orders}
        assert orders["at-last"].order_status == p.ORDER_REPORTED, "nobody sells at bid1"
    finally:
        proc.stop()


@pytest.mark.parametrize("json", [False, True])
def test_given_a_code_outside_the_simulators_universe_then_not_found_names_it(
    stack: Stack, quoting: Proc, json: bool
) -> None:
    # 000001.SH is the SSE Composite index and 900901.SH a B share: not A-share securities
    # the simulator trades, so it has no quote for them.
    reply = stack.call(p.QueryQuote(stock_codes=[CODE, "000001.SH"]), json=json)
    assert isinstance(reply, p.ErrorReply) and reply.code == p.NOT_FOUND
    assert "000001.SH" in reply.message and CODE not in reply.message

    reply = stack.call(p.SubscribeQuotes(stock_codes=[CODE, "900901.SH"]), json=json)
    assert isinstance(reply, p.ErrorReply) and reply.code == p.NOT_FOUND
    assert "900901.SH" in reply.message
    assert subscribe(stack, [OTHER], "probe").subscribed == [OTHER], "nothing else is held"

    malformed = stack.call({"type": "query_quote", "stock_codes": ["600000"]}, json=json)
    assert isinstance(malformed, p.ErrorReply) and malformed.code == p.BAD_REQUEST
    assert stack.call(p.QueryQuote(stock_codes=[CODE]), json=json).quotes[0].stock_code == CODE


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _place_orders(stack: Stack, prefix: str, count: int) -> tuple[list[float], list[int]]:
    """Marketable buys, one at a time on one REQ socket: (ack latencies in s, order ids)."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(stack.commands_address)
    latencies, order_ids = [], []
    try:
        for i in range(count):
            cmd = p.PlaceOrder(
                client_order_id=f"{prefix}-{i}",
                stock_code=CODE,
                order_type=23,  # STOCK_BUY
                order_volume=LOT,
                price_type=p.FIX_PRICE,
                price=price(1.01),
            )
            started = time.perf_counter()
            sock.send(p.encode(cmd))
            assert sock.poll(10_000), "no order_ack within 10 s"
            ack = p.decode_reply(sock.recv())
            latencies.append(time.perf_counter() - started)
            assert isinstance(ack, p.OrderAck) and ack.status == "accepted", ack
            order_ids.append(ack.order_id)
    finally:
        sock.close()
    return latencies, order_ids


def test_given_a_tick_storm_then_every_order_event_arrives_in_order_and_acks_stay_fast(
    stack: Stack, events: Subscriber
) -> None:
    codes = [f"{600000 + i:06d}.SH" for i in range(200)]
    stack.write_config(sim={"quote_interval": 0.005}, gateway={"quotes_hwm": 100})
    proc = start_gateway(stack)
    stalled = Ticks(stack)  # connected, never read: the PUB drops its ticks at the HWM
    reader = Ticks(stack)
    try:
        events.wait(lambda e: isinstance(e, p.HeartbeatEvent), 5, "events live")
        quiet, _ = _place_orders(stack, "quiet", 30)
        for start in range(0, len(codes), 100):
            subscribe(stack, codes[start : start + 100], "storm")
        reader.wait_for(codes[-1], count=5)
        storm, order_ids = _place_orders(stack, "storm", 60)
        received = reader.drain()

        def all_filled() -> bool:
            filled = {
                e.order_id
                for e in events.drain()
                if isinstance(e, p.OrderEvent) and e.order_status == p.ORDER_SUCCEEDED
            }
            return filled >= set(order_ids)

        wait_for(all_filled, 20, "every storm order filled")
        print(
            f"\norder_ack latency, ms: quiet p50 {statistics.median(quiet) * 1e3:.2f} "
            f"p99 {_percentile(quiet, 0.99) * 1e3:.2f}; under {len(codes)} symbols ticking "
            f"every 5 ms p50 {statistics.median(storm) * 1e3:.2f} "
            f"p99 {_percentile(storm, 0.99) * 1e3:.2f} max {max(storm) * 1e3:.2f}; "
            f"{len(received)} ticks read, last quotes seq {received[-1].seq}"
        )
        assert max(storm) < 1.0, "a tick storm must not hold order acks back"
        seqs = [e.seq for e in events.events]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "the event stream lost events"
        for order_id in order_ids:
            mine = [e for e in events.events if getattr(e, "order_id", None) == order_id]
            kinds = [(type(e).__name__, getattr(e, "order_status", None)) for e in mine]
            assert ("OrderResponseEvent", None) in kinds, kinds
            assert ("TradeEvent", None) in kinds, kinds
            statuses = [s for k, s in kinds if k == "OrderEvent"]
            assert p.ORDER_REPORTED in statuses and statuses[-1] == p.ORDER_SUCCEEDED, kinds
            before = statuses[: statuses.index(p.ORDER_REPORTED)]
            assert before in ([], [48], [49], [48, 49]), kinds  # unreported, then waiting
        assert not [e for e in events.events if isinstance(e, p.TickEvent)]
        assert stack.call(p.GetStatus()).state == "ready"
    finally:
        stalled.close()
        reader.close()
        proc.stop()
