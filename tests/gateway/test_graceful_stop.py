"""A graceful stop (SIGTERM) with an order in flight: the answer the gateway gives on its
way out reaches a client that reads it a moment later, even one whose REQ socket connects
with ZMQ_IMMEDIATE (ZeroMQ drops a reply not yet read when the connection closes under it),
and a stop with no answer to give waits for nothing."""

from __future__ import annotations

import time

import msgspec
import zmq

from qmtbus import protocol as p
from tests.support import Stack, Subscriber, start_gateway

CODE = "600000.SH"


def test_given_an_order_in_flight_at_sigterm_then_its_answer_is_there_after_the_stopping_event(
    stack: Stack, events: Subscriber
) -> None:
    # The broker's pushes come 30 s late (its query answers wait behind them: nothing
    # tells the gateway the outcome sooner) and the gateway would wait as long: the answer,
    # pending at the stop's 3 s, is given after the signal, sent once the intent is seen.
    stack.write_config(sim={"volatility": 0.0}, gateway={"order_reply_timeout": 30.0})
    gateway = start_gateway(stack)
    events.wait(lambda e: isinstance(e, p.HeartbeatEvent), 10, "the subscriber reading")
    stack.call(p.SimFault(fault="delay_callbacks", value=30))
    req = zmq.Context.instance().socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.setsockopt(zmq.IMMEDIATE, 1)  # the option under which an unread reply is dropped
    req.connect(stack.commands_address)
    try:
        order = p.PlaceOrder(
            client_order_id="late-reader", stock_code=CODE, order_type=p.STOCK_BUY,
            order_volume=100, price_type=p.LATEST_PRICE, price=0.0,
        )  # fmt: skip
        req.send(msgspec.msgpack.encode(order))
        events.wait(
            lambda e: isinstance(e, p.ClientOrderEvent) and e.status == "sending",
            10,
            "the order's intent journaled",
        )
        gateway.popen.terminate()  # type: ignore[union-attr]
        # the answer is sent before the `stopping` event is published; without the grace
        # the sockets close a few ms after it
        events.wait(
            lambda e: isinstance(e, p.GatewayEvent) and e.state == "stopping", 15, "stopping"
        )
        time.sleep(0.05)  # not a wait: the scenario's client is busy a moment before it reads
        assert req.poll(5000), "the answer given at the stop never reached the client"
        ack = p.decode_reply(req.recv())
        assert isinstance(ack, p.OrderAck) and ack.status == "pending", ack
        assert gateway.wait_exit(15) == 0
        assert "answers given since the signal get 1 s to be read" in gateway.log()
    finally:
        req.close()
        if gateway.alive():
            gateway.stop()


def test_given_no_request_since_the_signal_then_the_stop_waits_no_grace(stack: Stack) -> None:
    gateway = start_gateway(stack)  # its readiness asked and answered before the signal
    gateway.stop()
    assert "answers given since the signal" not in gateway.log()
