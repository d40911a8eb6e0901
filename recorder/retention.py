"""How long heartbeats stay in DuckDB: a stated period (`recorder.heartbeat_days`), the rest
for ever.

A heartbeat a second is 86,400 rows a day that say only "the gateway was alive";
once older than the period they are deleted (their seqs are then the only holes
in `events`). Every other event is kept for ever. The writer thread prunes
between batches, so nothing else ever writes; the snapshot drops the same rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import duckdb

log = logging.getLogger("recorder.retention")

PRUNE_EVERY = 60.0  # seconds between prunes: a minute of heartbeats is 60 rows
DELETE = "DELETE FROM {events} WHERE type = 'heartbeat' AND ts < ?"


class HeartbeatRetention:
    """Deletes heartbeats older than `days` (0: keeps them for ever)."""

    def __init__(
        self, days: float, clock: Callable[[], float] = time.time, every: float = PRUNE_EVERY
    ) -> None:
        self.keep_ns = int(days * 86_400 * 1e9)
        self.clock = clock
        self.every = min(every, days * 86_400 / 10)  # a short period is kept to, roughly
        self.cutoff_ns = 0  # heartbeats before this are gone from the database
        self.deleted = 0
        self._next = 0.0

    @property
    def enabled(self) -> bool:
        return self.keep_ns > 0

    def maybe_prune(self, con: duckdb.DuckDBPyConnection) -> int:
        """Prune if a minute has passed since the last time; returns the rows deleted."""
        now = self.clock()
        if not self.enabled or now < self._next:
            return 0
        self._next = now + self.every
        cutoff = int(now * 1e9) - self.keep_ns
        con.execute("BEGIN")
        try:
            deleted = con.execute(DELETE.format(events="events"), [cutoff]).fetchone()
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self.cutoff_ns = cutoff
        count = int(deleted[0]) if deleted else 0
        self.deleted += count
        if count:
            log.info("deleted %d heartbeats older than %s", count, _days(self.keep_ns))
        return count

    def prune_copy(self, cur: duckdb.DuckDBPyConnection, events: str) -> None:
        """Drop from a copy (the snapshot's staging file) what the database no longer holds."""
        if self.cutoff_ns:
            cur.execute(DELETE.format(events=events), [self.cutoff_ns])


def _days(ns: int) -> str:
    days = ns / 86_400e9
    return f"{days:g} days" if days >= 1 else f"{days * 24:g} hours"
