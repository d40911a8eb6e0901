"""The recorder loses nothing and stores nothing twice: crashes, restarts, new epochs."""

from __future__ import annotations

from qmtbus import protocol
from tests.recorder.helpers import (
    NoteSender,
    assert_epoch_complete,
    send_notes,
    sql,
    start_recorder,
    status,
    wait_caught_up,
    wait_recorded,
)
from tests.support import Proc, Stack, start_gateway, wait_for


def notes_of(stack: Stack, run: str) -> tuple[int, int]:
    """(rows, distinct i) of the notes a NoteSender run published."""
    rows = sql(
        stack,
        "SELECT count(*), count(DISTINCT data->>'i') FROM notes "
        f"WHERE topic = 'test' AND data->>'run' = '{run}'",
    )
    return int(rows[0][0]), int(rows[0][1])


def test_given_events_before_the_recorder_starts_then_it_replays_them_all(
    stack: Stack, gateway: Proc
) -> None:
    send_notes(stack, 1500, run="early")
    recorder = start_recorder(stack)
    epoch, _ = wait_caught_up(stack)
    assert_epoch_complete(stack, epoch)
    assert notes_of(stack, "early") == (1500, 1500)
    assert recorder.stop() == 0


def test_given_kill_9_mid_stream_when_restarted_then_every_seq_is_stored_exactly_once(
    stack: Stack, gateway: Proc
) -> None:
    recorder = start_recorder(stack)
    sender = NoteSender(stack, 6000, run="kill", window=8).start()
    epoch = stack.call(protocol.GetStatus()).epoch
    wait_recorded(stack, epoch, 1000)
    recorder.kill()  # SIGKILL with batches in flight: no flush, no goodbye
    killed_at = stack.call(protocol.GetStatus()).last_seq
    assert sender.thread.is_alive(), "the stream should still be running when the recorder dies"
    recorder = start_recorder(stack)
    assert sender.join() == 6000
    wait_caught_up(stack)
    high = assert_epoch_complete(stack, epoch)
    assert high > killed_at
    assert notes_of(stack, "kill") == (6000, 6000)
    assert recorder.stop() == 0


def test_given_gateway_restart_mid_stream_then_both_epochs_are_complete(stack: Stack) -> None:
    gateway = start_gateway(stack)
    recorder = start_recorder(stack)
    first_epoch = stack.call(protocol.GetStatus()).epoch
    sender = NoteSender(stack, 100_000, run="first", window=8).start()
    wait_recorded(stack, first_epoch, 1500)
    assert gateway.stop() == 0  # SIGTERM in the middle of the stream
    sender.stop.set()
    sender.join()
    gateway = start_gateway(stack)
    second_epoch = stack.call(protocol.GetStatus()).epoch
    assert second_epoch != first_epoch
    send_notes(stack, 2000, run="second")
    wait_caught_up(stack)
    # the old epoch's end, as the new gateway's journal holds it
    old_last = stack.call(protocol.Replay(epoch=first_epoch, from_seq=1, limit=1)).last_seq
    assert assert_epoch_complete(stack, first_epoch) == old_last
    assert_epoch_complete(stack, second_epoch)
    assert notes_of(stack, "second") == (2000, 2000)
    assert recorder.stop() == 0
    gateway.stop()


def test_given_recorder_down_across_a_gateway_restart_then_the_old_epoch_tail_is_fetched(
    stack: Stack,
) -> None:
    gateway = start_gateway(stack)
    recorder = start_recorder(stack)
    first_epoch = stack.call(protocol.GetStatus()).epoch
    send_notes(stack, 500, run="seen")
    wait_caught_up(stack)
    recorder.kill()
    send_notes(stack, 700, run="missed-tail")  # only the old journal has these now
    assert gateway.stop() == 0
    gateway = start_gateway(stack)
    send_notes(stack, 300, run="new-epoch")
    recorder = start_recorder(stack)
    second_epoch, _ = wait_caught_up(stack)
    assert second_epoch != first_epoch
    assert_epoch_complete(stack, first_epoch)
    assert_epoch_complete(stack, second_epoch)
    assert notes_of(stack, "missed-tail") == (700, 700)
    assert notes_of(stack, "new-epoch") == (300, 300)
    assert recorder.stop() == 0
    gateway.stop()


def test_given_sigterm_mid_stream_then_it_commits_what_it_holds_and_exits_0(
    stack: Stack, gateway: Proc
) -> None:
    recorder = start_recorder(stack)
    sender = NoteSender(stack, 5000, run="term", window=8).start()
    epoch = stack.call(protocol.GetStatus()).epoch
    wait_recorded(stack, epoch, 800)
    assert recorder.stop() == 0
    log = recorder.log()
    assert "stopped; committed up to" in log
    committed = int(log.rsplit(f"committed up to {epoch}/", 1)[1].split()[0])
    sender.join()
    # what the log says was committed is what the file holds, and restarting completes it
    recorder = start_recorder(stack)
    assert status(stack).last_seq >= committed
    wait_caught_up(stack)
    assert_epoch_complete(stack, epoch)
    assert notes_of(stack, "term") == (5000, 5000)
    assert recorder.stop() == 0


def test_given_restart_with_nothing_new_then_nothing_is_stored_twice(
    stack: Stack, gateway: Proc
) -> None:
    recorder = start_recorder(stack)
    send_notes(stack, 300, run="once")
    epoch, _ = wait_caught_up(stack)
    assert recorder.stop() == 0
    for _ in range(2):  # each start replays from the committed position: never before it
        recorder = start_recorder(stack)
        wait_caught_up(stack)
        assert recorder.stop() == 0
    recorder = start_recorder(stack)
    wait_caught_up(stack)
    assert_epoch_complete(stack, epoch)
    assert notes_of(stack, "once") == (300, 300)
    wait_for(lambda: status(stack).events >= 300, 5, "status counts")
    assert recorder.stop() == 0
