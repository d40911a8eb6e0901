"""EventStream against a real gateway: order, filtering, holes filled from the journal, silence."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from qmtbus import (
    AsyncEventStream,
    EventStream,
    Gateway,
    GatewaySilent,
    QuoteStream,
    endpoints,
    protocol,
)
from qmtbus.config import SimConfig
from qmtbus.gateway.ashare import round_price
from qmtbus.gateway.broker.sim.market import initial_price
from qmtbus.stream import Gap, Sequencer
from tests.support import ANY_PORT, NOBODY, Proc, Stack, start_gateway, wait_for

CODE = "600000.SH"


def last_price() -> float:
    return round_price(initial_price(SimConfig().seed, CODE), 0.01)


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(
        tmp_path,
        {
            "sim": {"volatility": 0.0, "quote_interval": 0.05},
            "client": {"timeout": 2.0, "retries": 2},
        },
    )


@pytest.fixture
def gateway(stack: Stack) -> Iterator[Proc]:
    proc = start_gateway(stack)
    yield proc
    if proc.alive():
        os.kill(proc.pid, signal.SIGCONT)
        proc.stop()


@pytest.fixture
def gw(stack: Stack, gateway: Proc) -> Iterator[Gateway]:
    with Gateway.from_config(stack.config_path) as client:
        yield client


def take(stream: EventStream, n: int, cls: type[Any] = object, timeout: float = 10.0) -> list[Any]:
    """The next `n` delivered events that are instances of `cls`."""
    got: list[Any] = []

    def more() -> bool:
        ev = stream.next(timeout=0.1)
        if isinstance(ev, cls):
            got.append(ev)
        return len(got) >= n

    wait_for(more, timeout, f"{n} {cls.__name__} events")
    return got


def assert_in_order_once(events: list[Any]) -> None:
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs)), f"out of order or repeated: {seqs}"


def test_given_stream_made_before_a_note_then_it_sees_the_note_despite_the_slow_joiner(
    stack: Stack, gw: Gateway
) -> None:
    with EventStream.from_config(stack.config_path, types=["note"]) as stream:
        seq = gw.note("first", {"x": 1})  # published before the SUB's subscription settles
        note = stream.next(timeout=10)
    assert isinstance(note, protocol.NoteEvent)
    assert (note.seq, note.topic, note.data) == (seq, "first", {"x": 1})


def test_given_trade_filter_when_an_order_fills_then_only_trade_events_with_its_id_arrive(
    stack: Stack, gw: Gateway
) -> None:
    with gw.stream("trade.") as stream:
        ack = gw.buy(CODE, 300, last_price())
        trades = take(stream, 1, protocol.TradeEvent)
        while sum(t.traded_volume for t in trades) < 300:
            ev = stream.next(timeout=10)
            assert ev is not None
            trades.append(ev)
    assert all(isinstance(t, protocol.TradeEvent) for t in trades)
    assert {t.client_order_id for t in trades} == {ack.client_order_id}
    assert_in_order_once(trades)


def test_given_start_from_an_earlier_seq_then_every_later_event_is_replayed_once_in_order(
    stack: Stack, gw: Gateway
) -> None:
    seqs = [gw.note("n", {"i": i}) for i in range(30)]
    epoch = gw.status().epoch
    with EventStream.from_config(
        stack.config_path, types=["note"], start_from=(epoch, seqs[9])
    ) as stream:
        notes = take(stream, 20, protocol.NoteEvent)
    assert [n.seq for n in notes] == seqs[10:]
    assert [n.data["i"] for n in notes] == list(range(10, 30))


def test_given_position_of_one_stream_then_a_new_stream_resumes_right_after_it(
    stack: Stack, gw: Gateway
) -> None:
    with gw.stream("note") as first:
        gw.note("a", {})
        take(first, 1, protocol.NoteEvent)
        position = first.position
    assert position is not None
    later = gw.note("b", {})
    with gw.stream("note", start_from=position) as second:
        note = take(second, 1, protocol.NoteEvent)[0]
    assert (note.topic, note.seq) == ("b", later)


class LossyLink:
    """A forwarder between the gateway's PUB and a stream that drops some events: a bad network."""

    def __init__(self, upstream: str, drop: float) -> None:
        self.address = ""  # the port the kernel gives the bind below
        self.dropped: list[int] = []
        self._drop = drop
        self._upstream = upstream
        self._stop = threading.Event()
        self._bound = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._bound.wait(5)

    def _run(self) -> None:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        sub, pub = ctx.socket(zmq.SUB), ctx.socket(zmq.PUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(self._upstream)
        self.address = endpoints.bind(pub, ANY_PORT)
        self._bound.set()
        rng = random.Random(7)
        while not self._stop.is_set():
            if sub.poll(50):
                topic, payload = sub.recv_multipart()
                if not topic.startswith(b"heartbeat.") and rng.random() < self._drop:
                    self.dropped.append(protocol.decode_event(payload).seq)
                    continue
                pub.send_multipart([topic, payload])
        sub.close(0)
        pub.close(0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def test_given_lossy_link_drops_events_then_the_stream_fills_every_hole_from_the_journal(
    stack: Stack, gw: Gateway
) -> None:
    link = LossyLink(stack.events_address, drop=0.3)
    try:
        stream = EventStream(link.address, types=["note"], gateway=gw)
        with stream:
            seqs = [gw.note("lossy", {"i": i}) for i in range(60)]
            notes = take(stream, 60, protocol.NoteEvent, timeout=20)
    finally:
        link.close()
    assert set(link.dropped) & set(seqs), "the link should have dropped some notes"
    assert [n.seq for n in notes] == seqs
    assert [n.data["i"] for n in notes] == list(range(60))
    assert stream.lost == []


def test_given_a_dropped_last_event_then_the_next_heartbeat_reveals_it_and_it_is_delivered(
    stack: Stack, gw: Gateway
) -> None:
    link = LossyLink(stack.events_address, drop=1.0)  # every non-heartbeat event is lost
    try:
        with EventStream(link.address, types=["note"], gateway=gw) as stream:
            seq = gw.note("tail", {})
            note = stream.next(timeout=10)
    finally:
        link.close()
    assert seq in link.dropped
    assert isinstance(note, protocol.NoteEvent) and note.seq == seq


def test_given_gateway_paused_then_stream_raises_gateway_silent_and_recovers_after(
    stack: Stack, gw: Gateway, gateway: Proc
) -> None:
    with gw.stream(stale_after=1.0) as stream:
        take(stream, 1, protocol.HeartbeatEvent)
        os.kill(gateway.pid, signal.SIGSTOP)
        try:
            with pytest.raises(GatewaySilent) as err:
                while True:
                    stream.next(timeout=5)
        finally:
            os.kill(gateway.pid, signal.SIGCONT)
        assert "is it running?" in str(err.value)
        assert err.value.silent_for >= 1.0
        beat = take(stream, 1, protocol.HeartbeatEvent)[0]
    assert beat.epoch == gw.status().epoch


def test_given_on_silent_handler_then_run_reports_silence_and_keeps_delivering(
    stack: Stack, gw: Gateway, gateway: Proc
) -> None:
    silences: list[GatewaySilent] = []
    beats: list[protocol.HeartbeatEvent] = []
    stream = gw.stream("heartbeat", stale_after=1.0)
    stream.on_silent(silences.append)
    stream.on("heartbeat", beats.append)
    thread = stream.run_in_thread()
    try:
        wait_for(lambda: beats, 5, "a heartbeat")
        os.kill(gateway.pid, signal.SIGSTOP)
        try:
            wait_for(lambda: silences, 5, "the silence to be reported")
        finally:
            os.kill(gateway.pid, signal.SIGCONT)
        heard = len(beats)
        wait_for(lambda: len(beats) > heard, 5, "heartbeats again")
    finally:
        stream.stop()
        thread.join(5)
        stream.close()
    assert stream.error is None
    assert_in_order_once(beats)


def test_given_gateway_restarted_then_stream_reports_new_epoch_and_delivers_it_from_seq_1(
    stack: Stack, gateway: Proc
) -> None:
    epochs: list[str] = []
    with EventStream.from_config(stack.config_path, stale_after=60) as stream:
        stream.on_new_epoch(epochs.append)
        take(stream, 1, protocol.HeartbeatEvent)
        old_epoch = stream.position[0] if stream.position else ""
        assert gateway.stop() == 0
        restarted = start_gateway(stack)
        try:
            seen = take(stream, 1, protocol.GatewayEvent)
            while not (isinstance(seen[-1], protocol.GatewayEvent) and seen[-1].state == "ready"):
                ev = stream.next(timeout=10)
                if ev is not None and ev.epoch != old_epoch:
                    seen.append(ev)
        finally:
            restarted.stop()
    new = [e for e in seen if e.epoch != old_epoch]
    assert epochs == [new[0].epoch]
    assert new[0].seq == 1
    assert [e.seq for e in new] == list(range(1, len(new) + 1))


def test_given_callbacks_when_run_in_thread_then_each_event_goes_to_its_type_and_to_star(
    stack: Stack, gw: Gateway
) -> None:
    notes: list[protocol.NoteEvent] = []
    everything: list[Any] = []
    stream = gw.stream("note", "heartbeat")
    stream.on("note", notes.append)
    stream.on("*", everything.append)
    thread = stream.run_in_thread()
    try:
        seq = gw.note("cb", {})
        wait_for(lambda: any(n.seq == seq for n in notes), 10, "the note callback")
        wait_for(lambda: any(isinstance(e, protocol.HeartbeatEvent) for e in everything), 5)
    finally:
        stream.stop()
        thread.join(5)
        stream.close()
    assert not thread.is_alive() and stream.error is None
    assert all(isinstance(n, protocol.NoteEvent) for n in notes)
    assert {n.seq for n in notes} <= {e.seq for e in everything}


def test_given_async_stream_then_async_for_delivers_notes_in_order(
    stack: Stack, gw: Gateway
) -> None:
    async def main() -> list[protocol.NoteEvent]:
        async with AsyncEventStream.from_config(stack.config_path, types=["note"]) as stream:
            for i in range(5):
                await stream.gateway.note("async", {"i": i})
            got: list[protocol.NoteEvent] = []
            async for ev in stream:
                assert isinstance(ev, protocol.NoteEvent)
                got.append(ev)
                if len(got) == 5:
                    return got
        return got

    notes = asyncio.run(asyncio.wait_for(main(), 20))
    assert [n.data["i"] for n in notes] == list(range(5))
    assert_in_order_once(notes)


def test_given_quote_stream_then_ticks_of_its_codes_only_and_close_drops_the_hold(
    stack: Stack, gw: Gateway
) -> None:
    other = "000001.SZ"
    with Gateway.from_config(stack.config_path) as neighbour:
        neighbour.subscribe_quotes([other])  # ticking too, but not for this stream
        with gw.quote_stream(CODE) as quotes:
            ticks = [quotes.next(timeout=10) for _ in range(3)]
        assert all(isinstance(t, protocol.TickEvent) and t.stock_code == CODE for t in ticks)
        assert [t.seq for t in ticks if t] == sorted(t.seq for t in ticks if t)
        assert neighbour.subscribe_quotes([other]).subscribed == [other]


def test_given_a_restarted_gateway_then_the_quote_stream_subscribes_again_and_ticks_resume(
    stack: Stack, gateway: Proc
) -> None:
    with (
        Gateway.from_config(stack.config_path) as client,
        QuoteStream(client, [CODE], resubscribe_after=0.5) as quotes,
    ):
        first = quotes.next(timeout=10)
        assert first is not None and first.stock_code == CODE
        gateway.stop()
        restarted = start_gateway(stack)  # it holds nothing: subscriptions live in memory
        try:
            after = wait_for(
                lambda: (
                    (t := quotes.next(timeout=0.5)) is not None and t.epoch != first.epoch and t
                ),
                20,
                "a tick of the new epoch",
            )
            assert after.stock_code == CODE
        finally:
            restarted.stop()


def test_given_a_listening_quote_stream_then_it_gets_held_ticks_and_holds_nothing(
    stack: Stack, gw: Gateway
) -> None:
    other = "000001.SZ"
    gw.subscribe_quotes([CODE, other])
    with Gateway.from_config(stack.config_path) as listener:
        with QuoteStream(listener, [], hold=False) as every:
            codes = {t.stock_code for t in (every.next(timeout=10) for _ in range(6)) if t}
        assert codes == {CODE, other}
        with QuoteStream(listener, [other], hold=False) as one:
            assert {one.next(timeout=10).stock_code for _ in range(3)} == {other}  # type: ignore[union-attr]
    assert gw.unsubscribe_quotes([CODE, other]).subscribed == [], "the listener held nothing"


def test_given_tick_type_for_the_event_stream_then_it_points_to_quote_stream() -> None:
    with pytest.raises(ValueError, match="QuoteStream"):
        EventStream(NOBODY, types=["tick"], start_from=("e", 0))
    assert QuoteStream.__doc__


def test_given_unknown_event_type_then_value_error_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown event type .trades.*trade"):
        EventStream(NOBODY, types=["trades"], start_from=("e", 0))


# -- the sequencer alone (no I/O) ------------------------------------------------------


def note(epoch: str, seq: int) -> protocol.NoteEvent:
    return protocol.NoteEvent(epoch=epoch, seq=seq)


def test_given_sequencer_when_seq_jumps_then_the_hole_is_asked_for() -> None:
    s = Sequencer(("e1", 3))
    assert s.gaps(note("e1", 4)) == []
    assert s.accept(note("e1", 4))
    assert s.gaps(note("e1", 8)) == [Gap("e1", 5, 7)]
    assert not s.accept(note("e1", 4)), "a duplicate is dropped"


def test_given_sequencer_when_heartbeat_is_ahead_then_the_tail_is_asked_for() -> None:
    s = Sequencer(("e1", 3))
    beat = protocol.HeartbeatEvent(epoch="e1", seq=7, last_seq=6)
    assert s.gaps(beat) == [Gap("e1", 4, 6)]


def test_given_sequencer_when_epoch_changes_then_old_tail_and_new_head_are_asked_for() -> None:
    s = Sequencer(("e1", 3))
    assert s.gaps(note("e2", 5)) == [Gap("e1", 4, None), Gap("e2", 1, 4)]
    assert s.accept(note("e2", 1))
    assert s.new_epochs == 1
    assert not s.accept(note("e1", 9)), "the old epoch is over"
