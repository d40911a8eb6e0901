"""The recorder's ingest logic alone, against in-memory fakes of its ports (gateway, writer).

No process, no DuckDB: a fake journal of epochs answers `epochs` and `replay` as the
gateway does (structured `lost` included), a fake writer keeps the batches handed over.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from qmtbus import GatewayError, protocol
from qmtbus.config import Config, GatewayConfig
from qmtbus.recorder.ingest import Ingest
from qmtbus.recorder.state import Committed
from qmtbus.recorder.writer import Batch

E1, E2, E3 = "20261201T010000Z-000001", "20261202T010000Z-000002", "20261203T010000Z-000003"


def note(epoch: str, seq: int) -> protocol.NoteEvent:
    return protocol.NoteEvent(account_id="T1", epoch=epoch, seq=seq, ts=1, topic="t")


class FakeJournal:
    """The gateway's command port over epochs held in memory: `held[epoch]` maps seq to
    event; a seq missing between an epoch's first and last is damaged on disk."""

    def __init__(self) -> None:
        self.held: dict[str, dict[int, protocol.NoteEvent]] = {}
        self.ends: dict[str, int] = {}
        self.down = False
        self.knows_epochs = True
        self.replays: list[tuple[str, int]] = []

    def write(self, epoch: str, first: int, last: int) -> None:
        self.held.setdefault(epoch, {}).update({s: note(epoch, s) for s in range(first, last + 1)})
        self.ends[epoch] = max(last, self.ends.get(epoch, 0))

    @property
    def current(self) -> str:
        return max(self.held)

    def _check(self) -> None:
        if self.down:
            raise TimeoutError("no reply from the fake gateway")

    def status(self) -> protocol.Status:
        self._check()
        return protocol.Status(epoch=self.current, last_seq=self.ends[self.current])

    def epochs(self) -> protocol.EpochsReply:
        self._check()
        if not self.knows_epochs:
            raise GatewayError(protocol.UNKNOWN_TYPE, "unknown request type 'epochs'")
        listing = [
            protocol.HeldEpoch(epoch=e, first_seq=min(h, default=1), last_seq=self.ends[e])
            for e, h in sorted(self.held.items())
        ]
        return protocol.EpochsReply(epochs=listing, current=self.current)

    def replay(self, epoch: str, from_seq: int, limit: int = 1000) -> protocol.ReplayReply:
        self._check()
        self.replays.append((epoch, from_seq))
        events = self.held.get(epoch)
        if events is None:
            lost = protocol.Lost(epoch=epoch, from_seq=from_seq)
            raise GatewayError(protocol.NOT_FOUND, f"epoch {epoch} is not held", lost=lost)
        first, last = min(events), self.ends[epoch]
        if from_seq < first:
            lost = protocol.Lost(
                epoch=epoch, from_seq=from_seq, to_seq=first - 1, reason="trimmed",
                first_seq=first, last_seq=last,
            )  # fmt: skip
            raise GatewayError(protocol.NOT_FOUND, "no longer held", lost=lost)
        out: list[protocol.Event] = []
        seq = from_seq
        while seq <= last and len(out) < limit and seq in events:
            out.append(events[seq])
            seq += 1
        if not out and seq <= last:  # starts in a damaged stretch
            end = next(s for s in range(seq, last + 2) if s in events or s > last) - 1
            lost = protocol.Lost(
                epoch=epoch, from_seq=from_seq, to_seq=end, reason="damaged",
                first_seq=first, last_seq=last,
            )  # fmt: skip
            raise GatewayError(protocol.NOT_FOUND, "damaged", lost=lost)
        return protocol.ReplayReply(epoch=epoch, events=out, last_seq=last, more=seq <= last)

    def close(self) -> None:
        pass


class FakeWriter:
    """The writer port: keeps every batch handed over; DuckDB's content is their sum."""

    def __init__(self, positions: dict[str, int] | None = None, complete: set[str] | None = None):
        self.positions = dict(positions or {})
        self.complete = set(complete or ())
        self.fatal: BaseException | None = None
        self.failing = False
        self.batches: list[Batch] = []

    @property
    def idle(self) -> bool:
        return True

    def submit(self, batch: Batch, timeout: float) -> bool:
        self.batches.append(batch)
        return True

    def stored(self) -> list[tuple[str, int]]:
        return [h for b in self.batches for h in b.headers]

    def gaps(self) -> list[tuple[str, int, int | None, str]]:
        return [(g[1], g[2], g[3], g[4].split(":")[0]) for b in self.batches for g in b.gaps]

    def finished(self) -> set[str]:
        return {e for b in self.batches for e in b.finished}


MADE: list[Ingest] = []


@pytest.fixture
def journal() -> Iterator[FakeJournal]:
    yield FakeJournal()
    while MADE:
        MADE.pop().close()


def make_ingest(tmp_path: Path, journal: FakeJournal, writer: FakeWriter) -> Ingest:
    gateway = GatewayConfig(events_address="inproc://qmtbus-test-ingest-nowhere")
    config = Config(gateway=gateway)
    committed = Committed(tmp_path / "status.json")
    ingest = Ingest(config, writer, committed, threading.Event(), gateway=journal)
    MADE.append(ingest)
    return ingest


def live(ingest: Ingest, ev: Any) -> None:
    ingest.on_live([b"note.T1", protocol.msgpack_encoder.encode(ev)])


def seqs(epoch: str, first: int, last: int) -> list[tuple[str, int]]:
    return [(epoch, s) for s in range(first, last + 1)]


def test_given_recorder_down_across_two_restarts_then_every_epoch_is_fetched_in_order(
    tmp_path: Path, journal: FakeJournal
) -> None:
    journal.write(E1, 1, 10)
    journal.write(E2, 1, 7)  # the middle epoch: never seen live
    journal.write(E3, 1, 4)
    writer = FakeWriter({E1: 5})
    ingest = make_ingest(tmp_path, journal, writer)
    ingest.start()
    ingest.hand_off()
    assert writer.stored() == seqs(E1, 6, 10) + seqs(E2, 1, 7) + seqs(E3, 1, 4)
    assert writer.finished() == {E1, E2}
    assert writer.gaps() == []


def test_given_a_damaged_stretch_then_later_events_are_taken_and_the_hole_is_a_gap(
    tmp_path: Path, journal: FakeJournal
) -> None:
    journal.write(E1, 1, 20)
    for s in (8, 9, 10):
        del journal.held[E1][s]
    writer = FakeWriter()
    ingest = make_ingest(tmp_path, journal, writer)
    ingest.start()
    ingest.hand_off()
    assert writer.stored() == seqs(E1, 1, 7) + seqs(E1, 11, 20)
    assert writer.gaps() == [(E1, 8, 10, "damaged")]
    assert writer.batches[-1].reached[E1] == 20


def test_given_a_trimmed_start_then_a_gap_names_it_and_the_rest_is_fetched(
    tmp_path: Path, journal: FakeJournal
) -> None:
    journal.write(E1, 50, 60)
    writer = FakeWriter()
    ingest = make_ingest(tmp_path, journal, writer)
    ingest.start()
    ingest.hand_off()
    assert writer.gaps() == [(E1, 1, 49, "trimmed")]
    assert writer.stored() == seqs(E1, 50, 60)


def test_given_an_unfinished_epoch_no_longer_held_then_one_open_gap_and_never_again(
    tmp_path: Path, journal: FakeJournal
) -> None:
    journal.write(E2, 1, 3)
    writer = FakeWriter({E1: 40})
    ingest = make_ingest(tmp_path, journal, writer)
    ingest.start()
    ingest.hand_off()
    assert writer.gaps() == [(E1, 41, None, "not_held")]
    assert writer.finished() == {E1}
    # the next start reads E1 as complete from DuckDB: no second gap row
    again = FakeWriter({E1: 40, E2: 3}, complete={E1})
    ingest = make_ingest(tmp_path, journal, again)
    ingest.start()
    ingest.hand_off()
    assert again.gaps() == [] and again.stored() == []


def test_given_a_finished_epoch_trimmed_later_then_no_gap_is_written(
    tmp_path: Path, journal: FakeJournal
) -> None:
    journal.write(E1, 1, 5)
    journal.write(E2, 1, 2)
    writer = FakeWriter({E1: 5, E2: 2})
    ingest = make_ingest(tmp_path, journal, writer)
    ingest.start()
    ingest.hand_off()
    assert E1 in writer.finished(), "an old epoch held to its end is marked complete"
    del journal.held[E1]
    later = FakeWriter({E1: 5, E2: 2}, complete={E1})
    ingest = make_ingest(tmp_path, journal, later)
    ingest.start()
    ingest.hand_off()
    assert later.gaps() == []


def test_given_a_hole_in_the_live_stream_then_it_is_replayed_before_the_next_event(
    tmp_path: Path, journal: FakeJournal
) -> None:
    journal.write(E1, 1, 3)
    writer = FakeWriter()
    ingest = make_ingest(tmp_path, journal, writer)
    ingest.start()
    journal.write(E1, 4, 9)
    live(ingest, note(E1, 9))  # 4..8 dropped by the bus
    live(ingest, note(E1, 9))  # a redelivery changes nothing
    ingest.hand_off()
    assert writer.stored() == seqs(E1, 1, 9)


def test_given_a_heartbeat_ahead_then_the_tail_is_replayed(
    tmp_path: Path, journal: FakeJournal
) -> None:
    journal.write(E1, 1, 2)
    writer = FakeWriter()
    ingest = make_ingest(tmp_path, journal, writer)
    ingest.start()
    journal.write(E1, 3, 6)
    beat = protocol.HeartbeatEvent(account_id="T1", epoch=E1, seq=6, ts=1, last_seq=6)
    live(ingest, beat)  # an unsequenced heartbeat: names seq 6, takes none
    ingest.hand_off()
    assert writer.stored() == seqs(E1, 1, 6)


def test_given_two_restarts_while_the_bus_dropped_them_then_the_middle_epoch_is_fetched(
    tmp_path: Path, journal: FakeJournal
) -> None:
    journal.write(E1, 1, 3)
    writer = FakeWriter()
    ingest = make_ingest(tmp_path, journal, writer)
    ingest.start()
    journal.write(E1, 4, 5)
    journal.write(E2, 1, 4)
    journal.write(E3, 1, 2)
    live(ingest, note(E3, 2))  # the first live event after two restarts
    ingest.hand_off()
    assert writer.stored() == seqs(E1, 1, 5) + seqs(E2, 1, 4) + seqs(E3, 1, 2)
    assert writer.finished() == {E1, E2}


def test_given_the_gateway_unreachable_then_nothing_is_skipped_and_it_catches_up_later(
    tmp_path: Path, journal: FakeJournal
) -> None:
    journal.write(E1, 1, 3)
    writer = FakeWriter()
    ingest = make_ingest(tmp_path, journal, writer)
    ingest.start()
    journal.write(E1, 4, 8)
    journal.down = True
    live(ingest, note(E1, 8))
    assert ingest.pending
    journal.down = False
    ingest.retry_at = 0.0
    assert ingest.sync()
    ingest.hand_off()
    assert writer.stored() == seqs(E1, 1, 8)


def test_given_an_older_gateway_without_epochs_then_its_status_is_used(
    tmp_path: Path, journal: FakeJournal
) -> None:
    journal.knows_epochs = False
    journal.write(E1, 1, 6)
    journal.write(E2, 1, 2)
    writer = FakeWriter({E1: 4})
    ingest = make_ingest(tmp_path, journal, writer)
    ingest.start()
    ingest.hand_off()
    assert writer.stored() == seqs(E1, 5, 6) + seqs(E2, 1, 2)


def test_given_an_event_the_recorder_cannot_type_then_it_keeps_its_seq(
    tmp_path: Path, journal: FakeJournal
) -> None:
    journal.write(E1, 1, 1)
    writer = FakeWriter()
    ingest = make_ingest(tmp_path, journal, writer)
    ingest.start()
    odd = {"type": "margin_call", "epoch": E1, "seq": 2, "ts": 5, "account_id": "T1"}
    ingest.on_live([b"margin_call.T1", msgspec.msgpack.encode(odd)])
    ingest.hand_off()
    assert writer.stored() == seqs(E1, 1, 2)
    assert len(writer.batches[-1].bad) == 1
