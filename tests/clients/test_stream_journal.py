"""EventStream over what the gateway's journal holds: epochs it never heard, damaged frames."""

from __future__ import annotations

import asyncio
from pathlib import Path

from qmtbus import AsyncEventStream, EventStream, Gateway, protocol
from qmtbus.gateway.journal import MAGIC
from tests.support import Proc, Stack, start_gateway


def test_given_a_damaged_frame_in_a_resumed_epoch_then_the_stream_reports_it_and_goes_on(
    tmp_path: Path,
) -> None:
    stack = Stack(tmp_path, {"client": {"timeout": 2.0, "retries": 2}})
    gateway = start_gateway(stack)
    with Gateway.from_config(stack.config_path) as gw:
        for i in range(50):
            gw.note("test", {"i": i})
        old = gw.status().epoch
    assert gateway.stop() == 0
    (segment,) = sorted((stack.data_dir / "journal" / old).glob("*.seg"))
    data = bytearray(segment.read_bytes())
    # the first frame's header: one flipped bit in its seq breaks its checksum
    data[len(MAGIC) + 8] ^= 0x01
    segment.write_bytes(bytes(data))
    gateway = start_gateway(stack)
    try:
        with Gateway.from_config(stack.config_path) as gw:
            last = next(e.last_seq for e in gw.epochs().epochs if e.epoch == old)
            with EventStream.from_config(stack.config_path, start_from=(old, 0)) as stream:
                got = []
                while not got or got[-1].epoch == old:
                    ev = stream.next(timeout=10)
                    assert ev is not None, "the stream stalled at the damaged frame"
                    got.append(ev)
                seen = [e.seq for e in got if e.epoch == old]
                assert seen == list(range(2, last + 1))
                assert stream.lost[0].epoch == old
                assert (stream.lost[0].from_seq, stream.lost[0].to_seq) == (1, 1)
    finally:
        gateway.stop()


def three_epochs(stack: Stack) -> tuple[list[str], Proc]:
    """Notes in three gateway runs; the third gateway still runs. Returns the epochs."""
    epochs = []
    for run in range(3):
        gateway = start_gateway(stack)
        with Gateway.from_config(stack.config_path) as gw:
            for i in range(20):
                gw.note("test", {"run": run, "i": i})
            epochs.append(gw.status().epoch)
        if run < 2:
            assert gateway.stop() == 0
    return epochs, gateway


def notes_by_epoch(events: list[protocol.Event]) -> dict[str, int]:
    out: dict[str, int] = {}
    for ev in events:
        if isinstance(ev, protocol.NoteEvent) and ev.topic == "test":
            out[ev.epoch] = out.get(ev.epoch, 0) + 1
    return out


def test_given_a_stream_resumed_after_two_gateway_restarts_then_the_middle_epoch_is_delivered(
    tmp_path: Path,
) -> None:
    stack = Stack(tmp_path, {"client": {"timeout": 2.0, "retries": 2}})
    (first, middle, last), gateway = three_epochs(stack)
    try:
        with Gateway.from_config(stack.config_path) as gw:
            # resume from early in the first epoch, as a strategy that saved its position
            with EventStream.from_config(stack.config_path, start_from=(first, 3)) as stream:
                got: list[protocol.Event] = []
                while notes_by_epoch(got).get(last, 0) < 20:
                    ev = stream.next(timeout=10)
                    assert ev is not None, f"stalled after {notes_by_epoch(got)}"
                    got.append(ev)
            order = [(e.epoch, e.seq) for e in got]
            assert order == sorted(order), "delivered in (epoch, seq) order"
            assert len(set(order)) == len(order), "each once"
            assert notes_by_epoch(got)[middle] == 20, "the epoch never heard live"
            held = {e.epoch: e.last_seq for e in gw.epochs().epochs}
            assert [s for e, s in order if e == middle] == list(range(1, held[middle] + 1))
    finally:
        gateway.stop()


def test_given_an_async_stream_resumed_after_two_restarts_then_the_middle_epoch_is_delivered(
    tmp_path: Path,
) -> None:
    stack = Stack(tmp_path, {"client": {"timeout": 2.0, "retries": 2}})
    (first, middle, last), gateway = three_epochs(stack)

    async def read() -> list[protocol.Event]:
        got: list[protocol.Event] = []
        stream = AsyncEventStream.from_config(stack.config_path, start_from=(first, 3))
        async with stream:
            while notes_by_epoch(got).get(last, 0) < 20:
                ev = await stream.next(timeout=10)
                assert ev is not None, f"stalled after {notes_by_epoch(got)}"
                got.append(ev)
        return got

    try:
        got = asyncio.run(read())
        assert notes_by_epoch(got)[middle] == 20
        order = [(e.epoch, e.seq) for e in got]
        assert order == sorted(order) and len(set(order)) == len(order)
    finally:
        gateway.stop()
