"""The sans-IO sequencer the client streams and the recorder share (no sockets, no gateway)."""

from __future__ import annotations

from qmtbus import protocol
from qmtbus.sequencer import Gap, Sequencer

E1, E2, E3 = "20261201T010000Z-000001", "20261202T010000Z-000002", "20261203T010000Z-000003"


def note(epoch: str, seq: int) -> protocol.NoteEvent:
    return protocol.NoteEvent(epoch=epoch, seq=seq)


def test_given_positions_of_several_epochs_then_the_newest_is_current() -> None:
    s = Sequencer(positions={E1: 40, E2: 7})
    assert (s.epoch, s.seq, s.position(E1)) == (E2, 7, 40)
    assert s.is_old(E1) and not s.is_old(E3)


def test_given_the_listing_of_held_epochs_then_every_unfinished_one_is_asked_for_in_order() -> None:
    s = Sequencer(positions={E1: 40})
    gone = s.held([(E1, 1, 50), (E2, 1, 30), (E3, 1, 9)], current=E3)
    assert gone == []
    s.switch(E3)
    assert s.unfinished() == [Gap(E1, 41, 50), Gap(E2, 1, 30), Gap(E3, 1, None)]
    assert s.unfinished(until=E3) == [Gap(E1, 41, 50), Gap(E2, 1, 30)]


def test_given_an_old_epoch_held_to_where_we_are_then_it_is_finished() -> None:
    s = Sequencer(positions={E1: 50})
    s.held([(E1, 1, 50), (E2, 1, 3)], current=E2)
    assert E1 in s.finished
    assert s.unfinished(until=E2) == []


def test_given_an_unfinished_epoch_the_journal_no_longer_holds_then_it_is_reported_once() -> None:
    s = Sequencer(positions={E1: 40})
    assert s.held([(E2, 1, 3)], current=E2) == [E1]
    s.finish(E1)
    assert s.held([(E2, 1, 3)], current=E2) == []


def test_given_a_new_epoch_live_then_the_old_tails_come_before_its_head() -> None:
    s = Sequencer(positions={E1: 40})
    s.held([(E1, 1, 45), (E2, 1, 6), (E3, 1, 2)], current=E3)
    # still in E1 (a stream that learns of E2 and E3 from the gateway's `epochs`)
    assert s.gaps(note(E3, 3)) == [Gap(E1, 41, 45), Gap(E2, 1, 6), Gap(E3, 1, 2)]


def test_given_replayed_events_then_take_keeps_each_seq_once() -> None:
    s = Sequencer(positions={E1: 2})
    assert s.take(E1, 3)
    assert not s.take(E1, 3)
    assert not s.take(E1, 1)
    s.skip_to(E1, 9)
    assert s.position(E1) == 9


def test_given_an_unsequenced_heartbeat_then_it_names_the_tail_and_takes_no_seq() -> None:
    s = Sequencer((E1, 3))
    beat = protocol.HeartbeatEvent(epoch=E1, seq=5, last_seq=5)
    assert s.gaps(beat) == [Gap(E1, 4, 5)]
    assert not s.accept(beat)
    assert s.seq == 3


def test_given_no_gateway_at_start_then_a_new_epoch_is_wanted_from_seq_1() -> None:
    s = Sequencer(("", 0))
    assert s.gaps(note(E1, 4)) == [Gap(E1, 1, 3)]
