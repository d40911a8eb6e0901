"""The blocking Gateway client against a real gateway process on the simulator."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qmtbus import (
    Gateway,
    GatewayError,
    GatewayUnreachable,
    NotConnected,
    RiskDenied,
    new_client_order_id,
    protocol,
)
from qmtbus.config import SimConfig, load_config
from qmtbus.gateway.ashare import round_price
from qmtbus.gateway.broker.sim.market import initial_price
from tests.support import NOBODY, Proc, Stack, start_gateway, wait_for

CODE = "600000.SH"


def last_price(code: str = CODE) -> float:
    """The still market's (volatility 0) price of `code`."""
    return round_price(initial_price(SimConfig().seed, code), 0.01)


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(tmp_path, {"sim": {"volatility": 0.0}, "client": {"timeout": 2.0, "retries": 2}})


@pytest.fixture
def gateway(stack: Stack) -> Iterator[Proc]:
    proc = start_gateway(stack)
    yield proc
    if proc.alive():
        proc.stop()


@pytest.fixture
def gw(stack: Stack, gateway: Proc) -> Iterator[Gateway]:
    with Gateway.from_config(stack.config_path) as client:
        yield client


def test_given_running_gateway_then_ping_and_status_report_a_ready_sim_account(
    gw: Gateway,
) -> None:
    assert isinstance(gw.ping(), protocol.Pong)
    status = gw.status()
    assert status.state == "ready"
    assert status.broker == "sim"
    assert status.protocol == protocol.PROTOCOL_VERSION
    assert status.account_id == "SIM0001"
    assert status.trading == "active"
    assert status.epoch


def test_given_marketable_buy_then_accepted_and_listed_in_orders_trades_positions_asset(
    gw: Gateway,
) -> None:
    cash_before = gw.asset().cash
    ack = gw.buy(CODE, 100, last_price(), strategy_name="t1")
    assert ack.status == "accepted" and ack.order_id > 0 and not ack.duplicate
    assert re.fullmatch(r"q[0-9A-Z]{19}", ack.client_order_id)

    def filled() -> protocol.Order | None:
        mine = [o for o in gw.orders() if o.client_order_id == ack.client_order_id]
        return mine[0] if mine and mine[0].order_status == protocol.ORDER_SUCCEEDED else None

    order = wait_for(filled, 10, "the order to fill")
    assert order.order_id == ack.order_id
    assert order.stock_code == CODE and order.strategy_name == "t1"
    assert order.order_remark == ack.client_order_id
    trades = [t for t in gw.trades() if t.order_id == ack.order_id]
    assert sum(t.traded_volume for t in trades) == 100
    position = next(p for p in gw.positions() if p.stock_code == CODE)
    assert position.volume == 100
    assert gw.asset().cash < cash_before - 100 * last_price() + 1


def test_given_same_client_order_id_twice_then_second_ack_is_the_first_marked_duplicate(
    gw: Gateway,
) -> None:
    first = gw.buy(CODE, 100, last_price(), client_order_id="dup-1")
    again = gw.buy(CODE, 100, last_price(), client_order_id="dup-1")
    assert not first.duplicate and again.duplicate
    assert again.order_id == first.order_id and again.client_order_id == "dup-1"
    assert len([o for o in gw.orders() if o.order_remark == "dup-1"]) == 1


def test_given_resting_buy_when_cancelled_by_client_order_id_then_it_ends_cancelled(
    gw: Gateway,
) -> None:
    ack = gw.buy(CODE, 100, round_price(last_price() * 0.98, 0.01))
    assert ack.status == "accepted"
    assert ack.order_id in {o.order_id for o in gw.orders(cancelable_only=True)}

    cancel = gw.cancel(client_order_id=ack.client_order_id)
    assert cancel.order_id == ack.order_id and cancel.cancel_result == 0

    def cancelled() -> bool:
        order = next(o for o in gw.orders() if o.order_id == ack.order_id)
        return order.order_status == protocol.ORDER_CANCELED

    wait_for(cancelled, 10, "the order to be cancelled")
    assert ack.order_id not in {o.order_id for o in gw.orders(cancelable_only=True)}


def test_given_cancel_with_both_or_no_ids_then_value_error_before_sending(gw: Gateway) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        gw.cancel()
    with pytest.raises(ValueError, match="exactly one"):
        gw.cancel(order_id=1, client_order_id="x")


def test_given_halt_then_buy_raises_risk_denied_naming_the_rule_and_resume_allows_it(
    gw: Gateway,
) -> None:
    status = gw.halt("test says stop")
    assert status.trading == "halted" and status.trading_reason == "test says stop"
    with pytest.raises(RiskDenied) as denied:
        gw.buy(CODE, 100, last_price())
    assert denied.value.code == protocol.RISK_DENIED
    assert denied.value.rule and denied.value.message
    assert isinstance(denied.value, GatewayError)

    assert gw.reduce_only("only sells").trading == "reduce_only"
    with pytest.raises(RiskDenied):
        gw.buy(CODE, 100, last_price())
    assert gw.resume().trading == "active"
    assert gw.buy(CODE, 100, last_price()).status == "accepted"


def test_given_note_then_its_seq_is_returned_and_replay_returns_that_note(gw: Gateway) -> None:
    seq = gw.note("job.done", {"job": "rebalance", "ok": True})
    epoch = gw.status().epoch
    replay = gw.replay(epoch, seq, limit=1)
    assert replay.epoch == epoch
    assert len(replay.events) == 1
    note = replay.events[0]
    assert isinstance(note, protocol.NoteEvent)
    assert (note.seq, note.topic, note.data) == (seq, "job.done", {"job": "rebalance", "ok": True})
    assert replay.last_seq >= seq


def test_given_replay_of_unknown_epoch_then_gateway_error_not_found(gw: Gateway) -> None:
    with pytest.raises(GatewayError) as err:
        gw.replay("no-such-epoch", 1)
    assert err.value.code == protocol.NOT_FOUND
    assert not isinstance(err.value, RiskDenied | NotConnected)


def test_given_malformed_order_then_bad_request_and_gateway_keeps_serving(gw: Gateway) -> None:
    with pytest.raises(ValueError, match="stock codes look like"):
        gw.buy("not-a-code", 100, 10.0)  # the library names the rule before sending
    raw = protocol.PlaceOrder(
        client_order_id="bad-code-1",
        stock_code="not-a-code",
        order_type=protocol.STOCK_BUY,
        order_volume=100,
        price_type=protocol.FIX_PRICE,
        price=10.0,
    )
    with pytest.raises(GatewayError) as err:
        gw.request(raw)  # sent as is: the gateway's own check
    assert err.value.code == protocol.BAD_REQUEST
    assert gw.ping()


def test_given_request_with_sim_set_price_then_the_market_moves(gw: Gateway) -> None:
    reply = gw.request(protocol.SimSetPrice(stock_code=CODE, price=round(last_price() * 1.02, 2)))
    assert isinstance(reply, protocol.SimAck)
    # a buy at the old price no longer fills at once: it rests
    ack = gw.buy(CODE, 100, last_price())
    assert ack.status == "accepted"
    assert ack.order_id in {o.order_id for o in gw.orders(cancelable_only=True)}


def test_given_request_with_error_reply_then_raises_not_returns(gw: Gateway) -> None:
    with pytest.raises(GatewayError) as err:
        gw.request(protocol.Replay(epoch="gone", from_seq=1))
    assert err.value.code == protocol.NOT_FOUND


def test_given_quote_subscription_then_held_under_this_client_and_quotes_query_answers(
    gw: Gateway,
) -> None:
    ack = gw.subscribe_quotes([CODE, CODE])
    assert ack.stock_codes == [CODE] and CODE in ack.subscribed and ack.quote_lease > 0
    # another request (on another pooled socket) still speaks for the same holder
    assert gw.subscribe_quotes([CODE]).stock_codes == [CODE]
    [tick] = gw.quotes([CODE])
    assert tick.stock_code == CODE and tick.lastPrice == last_price()
    assert gw.unsubscribe_quotes([CODE]).stock_codes == []
    with pytest.raises(GatewayError) as err:
        gw.quotes(["000001.SH"])  # an index: the simulator has no quote for it
    assert err.value.code == protocol.NOT_FOUND


def test_given_threads_sharing_one_client_then_each_call_gets_its_own_reply(
    gw: Gateway,
) -> None:
    results: dict[int, list[int]] = {}

    def worker(n: int) -> None:
        results[n] = [gw.note("thread", {"n": n, "i": i}) for i in range(20)]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    seqs = [s for n in range(8) for s in results[n]]
    assert len(seqs) == 160 and len(set(seqs)) == 160
    epoch = gw.status().epoch
    events = gw.replay(epoch, min(seqs), limit=1000).events
    by_seq = {e.seq: e for e in events if isinstance(e, protocol.NoteEvent)}
    for n in range(8):
        assert [by_seq[s].data["n"] for s in results[n]] == [n] * 20


def test_given_generated_client_order_ids_then_short_printable_time_ordered_and_unique() -> None:
    ids = [new_client_order_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(1 <= len(i) <= 24 and re.fullmatch(r"[\x21-\x7e]+", i) for i in ids)
    later = new_client_order_id()
    time.sleep(0.002)
    assert new_client_order_id()[:10] > later[:10]
    assert new_client_order_id("s1-").startswith("s1-")
    with pytest.raises(ValueError):
        new_client_order_id("far too long")


def test_given_no_gateway_then_unreachable_after_retries_in_one_sentence() -> None:
    address = NOBODY
    with Gateway(address, timeout=0.2, retries=2) as gw:
        start = time.monotonic()
        with pytest.raises(GatewayUnreachable) as err:
            gw.status()
        elapsed = time.monotonic() - start
    assert str(err.value) == f"gateway not reachable at {address} — is it running?"
    assert isinstance(err.value, TimeoutError)
    assert err.value.sent is False
    assert 0.5 < elapsed < 2.0  # three tries of 0.2 s, not the default 5 s


def test_given_no_gateway_then_note_is_retried_because_it_provably_never_left() -> None:
    with Gateway(NOBODY, timeout=0.2, retries=2) as gw:
        start = time.monotonic()
        with pytest.raises(GatewayUnreachable, match="is it running"):
            gw.note("x", {})
        assert time.monotonic() - start > 0.5


def test_given_from_config_then_client_uses_its_addresses_timeout_and_retries(
    stack: Stack,
) -> None:
    gw = Gateway.from_config(load_config(stack.config_path))
    assert gw.commands_address == stack.commands_address
    assert gw.events_address == stack.events_address
    assert (gw.endpoint.timeout, gw.endpoint.retries) == (2.0, 2)
    gw.close()


def test_given_closed_client_then_requests_are_refused(gw: Gateway) -> None:
    gw.close()
    with pytest.raises(RuntimeError, match="closed"):
        gw.ping()


def test_given_a_lower_case_or_bad_code_then_the_library_normalises_or_names_the_rule() -> None:
    from qmtbus.sansio import order_command

    command = order_command(
        "600000.sh ", protocol.STOCK_BUY, 100, 10.0, protocol.FIX_PRICE, "", None
    )
    assert command.stock_code == "600000.SH"
    with pytest.raises(ValueError, match=r"stock codes look like 600000\.SH"):
        order_command("60000.SH", protocol.STOCK_BUY, 100, 10.0, protocol.FIX_PRICE, "", None)
