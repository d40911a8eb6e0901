"""Sans-IO sequencing of one gateway's events, shared by the client streams and the recorder.

Events come stamped (epoch, seq): seq 1, 2, 3, ... per epoch, and an epoch's
name sorts after every older one. The sequencer keeps the position reached in
each epoch and says what must be replayed before an event can be taken (a hole,
a heartbeat naming a seq not seen yet, the rest of older epochs when a new one
starts). It does no I/O: the caller replays, and tells it what it took or lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

Position = tuple[str, int]  # (epoch, seq of the last event seen)


class Stamped(Protocol):
    """What sequencing reads of an event; a heartbeat also carries `last_seq`."""

    @property
    def epoch(self) -> str: ...

    @property
    def seq(self) -> int: ...


@dataclass(frozen=True)
class Gap:
    """Events `from_seq`..`to_seq` of `epoch` not seen yet; `to_seq` None: to the epoch's end."""

    epoch: str
    from_seq: int
    to_seq: int | None


def tail(ev: Stamped) -> int:
    """The `last_seq` a heartbeat reports (0 for any other event)."""
    return int(getattr(ev, "last_seq", 0) or 0)


def unsequenced(ev: Stamped) -> bool:
    """A heartbeat that takes no seq of its own (seq <= last_seq) only reports the tail;
    one that does (this gateway's) is sequenced like any event."""
    return ev.seq <= tail(ev)


def before(ev: Stamped) -> int:
    """The newest seq of its epoch that must be taken before `ev`."""
    return tail(ev) if unsequenced(ev) else ev.seq - 1


class Sequencer:
    """The position reached in each epoch; what to replay before an event; what is new.

    `start_from` is where a stream starts (epoch "" stands for "no gateway was
    running": everything of the epoch it starts is new); `positions` what a
    recorder already holds of each epoch. `held()` tells it which epochs the
    gateway's journal holds (the `epochs` command); then `gaps()` and `unfinished()`
    include the epochs it never saw live.
    """

    def __init__(
        self, start_from: Position | None = None, positions: Mapping[str, int] | None = None
    ) -> None:
        self.positions: dict[str, int] = dict(positions or {})
        if start_from is not None:
            epoch, seq = start_from
            self.positions[epoch] = max(seq, self.positions.get(epoch, 0))
        self.epoch: str | None = max(self.positions) if self.positions else None
        self.ends: dict[str, int] = {}  # old epochs: the last seq the gateway holds
        self.finished: set[str] = set()  # old epochs fetched to their end, or given up
        self.new_epochs = 0  # gateway restarts noticed

    @property
    def seq(self) -> int:
        """The last seq taken in the current epoch."""
        return 0 if self.epoch is None else self.positions.get(self.epoch, 0)

    def position(self, epoch: str) -> int:
        return self.positions.get(epoch, 0)

    def is_old(self, epoch: str) -> bool:
        """An epoch older than the current one: the gateway wrote its last event already."""
        return self.epoch is not None and epoch < self.epoch

    def gaps(self, ev: Stamped) -> list[Gap]:
        """What to replay, in order, before `ev` can be taken."""
        if self.epoch is None or self.is_old(ev.epoch):
            return []
        top = before(ev)
        if ev.epoch == self.epoch:
            return [Gap(ev.epoch, self.seq + 1, top)] if top > self.seq else []
        # The gateway restarted: the rest of every older epoch, then the new one's head.
        gaps = self.unfinished(until=ev.epoch)
        if top >= 1:
            gaps.append(Gap(ev.epoch, self.position(ev.epoch) + 1, top))
        return gaps

    def accept(self, ev: Stamped) -> bool:
        """Take `ev` if it is new in seq order (True); False for a duplicate, an event of an
        old epoch, or a heartbeat that takes no seq. A newer epoch becomes the current one."""
        if self.is_old(ev.epoch):
            return False
        if ev.epoch != self.epoch:
            self.switch(ev.epoch, before(ev))
        if unsequenced(ev) or ev.seq <= self.position(ev.epoch):
            return False
        self.positions[ev.epoch] = ev.seq
        return True

    def take(self, epoch: str, seq: int) -> bool:
        """A replayed event of any epoch: True when it is the next one to keep."""
        if seq <= self.position(epoch):
            return False
        self.positions[epoch] = seq
        return True

    def switch(self, epoch: str, seq: int = 0) -> None:
        """`epoch` is the gateway's current one; positions below `seq` are not wanted
        (a stream that starts there) unless this sequencer already tracks that epoch."""
        if self.epoch is not None and epoch <= self.epoch:
            return
        if self.epoch is not None:
            self.new_epochs += 1
        self.epoch = epoch
        self.positions.setdefault(epoch, seq)

    def skip_to(self, epoch: str, seq: int) -> None:
        """Give up on events up to `seq` (the gateway no longer holds them)."""
        if seq > self.position(epoch):
            self.positions[epoch] = seq

    def finish(self, epoch: str) -> None:
        """An old epoch is done: fetched to its end, or its loss written down."""
        self.finished.add(epoch)

    def held(self, epochs: Iterable[tuple[str, int, int]], current: str) -> list[str]:
        """The gateway's journal holds these (epoch, first_seq, last_seq), `current` running.
        Old epochs held up to where we are count as finished. Returns the epochs this
        sequencer tracks, older than `current` and unfinished, that it no longer holds."""
        listed = set()
        for epoch, _first, last in epochs:
            listed.add(epoch)
            if epoch != current:
                self.ends[epoch] = last
        for epoch, end in self.ends.items():
            if epoch < current and self.position(epoch) >= end:
                self.finished.add(epoch)
        return [
            e
            for e in sorted(self.positions)
            if e and e < current and e not in listed and e not in self.finished
        ]

    def unfinished(self, until: str | None = None) -> list[Gap]:
        """What is still to fetch of each epoch before `until` (default: all but the
        current one's live head), oldest first; an old epoch goes to its known end."""
        gaps = []
        for epoch in sorted(set(self.positions) | set(self.ends)):
            if not epoch or epoch in self.finished or (until is not None and epoch >= until):
                continue
            have = self.position(epoch)
            end = self.ends.get(epoch)
            if epoch == self.epoch and until is None:
                gaps.append(Gap(epoch, have + 1, None))
            elif end is None or have < end:
                gaps.append(Gap(epoch, have + 1, end))
        return gaps
