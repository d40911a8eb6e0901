"""The design's floor (bench/floor.py): the gateway's thread hand-overs with no work, and how
RESULTS.md reports it against the targets. Correctness only: no speed is checked here."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from bench.common import Figures, resting_buy_price
from bench.floor import Floor
from bench.report import Run, render, verdicts
from bench.roundtrip import Result as RoundtripResult
from bench.roundtrip import Settings as RoundtripSettings
from qmtbus import protocol
from qmtbus.client import new_client_order_id


@pytest.fixture
def floor() -> Iterator[Floor]:
    floor = Floor("tcp://127.0.0.1:*")
    io = threading.Thread(target=floor.run, name="floor-io")
    io.start()
    yield floor
    floor.stop()
    io.join(5)
    floor.close()


def _order() -> protocol.PlaceOrder:
    return protocol.PlaceOrder(
        client_order_id=new_client_order_id(),
        stock_code="600000.SH",
        order_type=23,
        order_volume=100,
        price_type=protocol.FIX_PRICE,
        price=resting_buy_price(),
    )


def _req(floor: Floor) -> zmq.Socket[Any]:
    """A REQ socket to the floor that gives up after 5 s."""
    ctx: zmq.Context[Any] = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(floor.address)
    return sock


def test_given_orders_then_the_floor_acks_each_after_its_broker_thread_had_it(
    floor: Floor,
) -> None:
    sock = _req(floor)
    sent: list[tuple[str, int, int]] = []
    try:
        for expected_id in range(1, 21):
            cmd = _order()
            before = time.time_ns()
            sock.send(protocol.msgpack_encoder.encode(cmd))
            ack = protocol.decode_reply(sock.recv())
            assert isinstance(ack, protocol.OrderAck)
            assert ack.client_order_id == cmd.client_order_id
            assert ack.order_id == expected_id  # one broker call per order, in order
            sent.append((cmd.client_order_id, before, time.time_ns()))
    finally:
        sock.close(0)
    for coid, before, acked in sent:
        assert before <= floor.received[coid] <= acked  # the broker thread had it in between


def _run(floor_p50: float, floor_intake_p50: float) -> Run:
    f = Figures()
    for system, p50 in (
        ("echo", 80.0),
        ("hop", 50.0),
        ("gateway", 500.0),
        ("ping", 85.0),
        ("floor", floor_p50),
        ("floor.intake", floor_intake_p50),
    ):
        f.add(f"{system}.p50", p50)
        f.add(f"{system}.p99", p50 * 2)
        f.add(f"{system}.max", p50 * 3)
    for stage, p50 in (("intake", 200.0), ("broker", 150.0), ("reply", 100.0)):
        f.add(f"stage.{stage}.p50", p50)
        f.add(f"stage.{stage}.p99", p50 * 2)
    rt = RoundtripResult(figures=f, systems=["echo", "hop", "floor", "gateway"])
    return Run(mode="quick", roundtrip=rt, roundtrip_settings=RoundtripSettings())


def test_given_a_floor_above_the_targets_then_they_are_missed_by_design() -> None:
    run = _run(floor_p50=280.0, floor_intake_p50=120.0)  # 3.5x echo, 2.4x hop
    by_target = {v.target: v for v in verdicts(run)}

    rt = by_target["order round trip p50 ≤ 3x the bare echo"]
    assert rt.met is False
    assert "design floor 280 µs = 3.5x echo; qmtbus above the floor: 220 µs" in rt.measured
    assert "missed by design: the floor alone is 3.50x" in rt.gap
    intake = by_target["order intake (client send → broker call) p50 ≤ 2x a bare one-way hop"]
    assert "design floor 120 µs = 2.4x hop; qmtbus above the floor: 80 µs" in intake.measured
    assert "missed by design" in intake.gap

    text = render(run)
    assert (
        "The round-trip target (3x the echo) is below that floor, so it is missed by design" in text
    )
    assert "The intake target (2x the hop) is below that floor, so it is missed by design" in text
    assert "| design floor: I/O → broker → push worker → I/O threads, no work | 280 " in text
    assert "| design floor intake (client send → broker thread has it; wall clock) | 120 " in text


def test_given_a_floor_under_the_targets_then_it_says_what_it_leaves_for_the_work() -> None:
    run = _run(floor_p50=200.0, floor_intake_p50=70.0)  # 2.5x echo, 1.4x hop
    rt = next(v for v in verdicts(run) if v.target == "order round trip p50 ≤ 3x the bare echo")
    assert rt.met is False  # qmtbus itself is still 6.2x
    assert "missed by design" not in rt.gap

    text = render(run)
    assert "missed by design" not in text
    assert "takes 200 µs a round trip (2.50x the echo) and 70 µs from send" in text
    assert (
        "The round-trip floor leaves 40 µs under the 3x target for the work; "
        "qmtbus's work takes 300 µs."
    ) in text
    assert "The intake floor leaves 30 µs under the 2x target for the work; " in text


def test_given_no_floor_figures_then_the_verdicts_read_as_before() -> None:
    run = _run(floor_p50=200.0, floor_intake_p50=70.0)
    assert run.roundtrip is not None
    for system in ("floor", "floor.intake"):
        for q in ("p50", "p99", "max"):
            del run.roundtrip.figures[f"{system}.{q}"]
    rt = next(v for v in verdicts(run) if v.target == "order round trip p50 ≤ 3x the bare echo")
    assert rt.measured == "500 µs vs echo 80 µs = 6.2x"
    assert "design's floor" not in render(run)


def test_given_a_request_that_is_not_an_order_then_the_floor_says_so_and_serves_on(
    floor: Floor,
) -> None:
    sock = _req(floor)
    try:
        for request, said in (
            (protocol.msgpack_encoder.encode(protocol.Ping()), "orders only, not Ping"),
            (b"\xc1", "could not read the request"),
        ):
            sock.send(request)
            error = protocol.decode_reply(sock.recv())
            assert isinstance(error, protocol.ErrorReply)
            assert error.code == protocol.BAD_REQUEST
            assert said in error.message
        cmd = _order()
        sock.send(protocol.msgpack_encoder.encode(cmd))
        ack = protocol.decode_reply(sock.recv())
        assert isinstance(ack, protocol.OrderAck) and ack.client_order_id == cmd.client_order_id
    finally:
        sock.close(0)
