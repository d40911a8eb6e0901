"""`python -m qmtbus.recorder [--config FILE]`: record every gateway event into DuckDB.

Exit codes: 0 after a clean stop (everything received was committed), 1 when
rows could not be written before stopping (they are replayed at the next
start), 2 for a problem the user must fix (config, a locked database file, a
query address in use).
"""

from __future__ import annotations

import argparse
import ctypes
import faulthandler
import logging
import signal
import sys
import threading
from typing import Any

import zmq

from qmtbus import calendar, endpoints, failpoints
from qmtbus.config import Config, ConfigError, config_path, load_config
from qmtbus.recorder.ingest import Ingest
from qmtbus.recorder.marks import Marker
from qmtbus.recorder.query import QueryServer
from qmtbus.recorder.retention import HeartbeatRetention
from qmtbus.recorder.snapshot import Snapshotter, private_dir
from qmtbus.recorder.state import Committed
from qmtbus.recorder.ticks import TickRecorder
from qmtbus.recorder.writer import (
    Database,
    DatabaseError,
    DatabaseLocked,
    Writer,
)
from qmtbus.security import check_binds, start_authenticator

log = logging.getLogger("recorder")

M_ARENA_MAX = -8  # glibc mallopt parameter
STOP_FLUSH_SECONDS = 10.0  # SIGTERM: how long the writer may take to commit what it holds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qmtbus-recorder", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="the qmtbus TOML file (default: $QMTBUS_CONFIG)")
    parser.add_argument(
        "--list-failpoints",
        action="store_true",
        help="print the crash points QMTBUS_FAILPOINT may name, and exit",
    )
    args = parser.parse_args(argv)
    if args.list_failpoints:
        print(failpoints.listing("recorder"))
        return 0
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(config_path(args.config))
        # the SQL endpoint serves the whole trading record: loopback, or CURVE
        check_binds(config, "recorder")
    except ConfigError as err:
        return _fail(str(err))
    _few_malloc_arenas()
    stop = threading.Event()
    # SIGBREAK: Windows, where supervisor-win stops programs with CTRL_BREAK_EVENT
    for name in ("SIGTERM", "SIGINT", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda *_: stop.set())
    if hasattr(signal, "SIGUSR1"):
        # `kill -USR1 <pid>` prints every thread's stack to the log: what is it doing?
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    if hasattr(signal, "SIGXFSZ"):
        # a file-size limit must surface as a write error we retry, not kill the process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        db = Database(config.recorder.database, private_dir(config.recorder.snapshot_path))
        db.setup()
    except (DatabaseLocked, DatabaseError) as err:
        return _fail(str(err))
    try:
        return _run(config, db, stop)
    finally:
        db.close()


def _run(config: Config, db: Database, stop: threading.Event) -> int:
    rc = config.recorder
    committed = Committed(rc.status_file)
    progress = db.progress()
    newest = max(((e, s) for e, (s, _) in progress.items()), default=("", 0))
    committed.load(newest[0], newest[1], db.count("events"), db.count("bad_events"))
    retention = HeartbeatRetention(rc.heartbeat_days)
    writer = Writer(db, committed, rc.write_retry_seconds, retention)
    writer.load(progress, db.complete())
    ctx: zmq.Context[Any] = zmq.Context.instance()
    auth = start_authenticator(ctx, config)
    # subscribe before anything is replayed, so no event falls between replay and live
    ingest = Ingest(config, writer, committed, stop, ctx)
    try:
        query = QueryServer(config, db, committed, ctx)
    except zmq.ZMQError as err:
        ingest.close()
        return _fail(
            f"cannot listen on recorder.query_address {rc.query_address}: {err}; is another "
            "recorder running, or pick a free port"
        )
    # a `*` port is known only now: the endpoints file tells tools and tests
    endpoints.write(
        endpoints.endpoints_file(config, "recorder"), "recorder", {"query": query.endpoint}
    )
    # Ticks only when asked for, on a thread and a cursor of their own (recorder/ticks.py).
    ticks = TickRecorder(config, db) if rc.tick_symbols else None
    writer.start()
    query.start()
    snapshots = Snapshotter(
        rc.snapshot_path,
        rc.snapshot_interval,
        db,
        committed,
        retention,
        min_free_bytes=int(rc.snapshot_min_free_mb * 1024 * 1024),
    )
    snapshots.start()
    if ticks is not None:
        ticks.start()
    marker = Marker(config, db) if rc.mark_interval > 0 else None
    if marker is not None:
        marker.start()
    committed.write_file(force=True)
    log.info(
        "recording events of %s into %s (at %s/%d); SQL endpoint %s; snapshot %s every %g s",
        config.gateway.events_address,
        rc.database,
        newest[0] or "-",
        newest[1],
        query.endpoint,
        rc.snapshot_path,
        rc.snapshot_interval,
    )
    calendar.warn_daily(config, stop, log)  # a WARNING a day when the calendar runs out
    flushed = False
    try:
        ingest.run()
    finally:
        ingest.close()
        if ticks is not None:
            ticks.stop()
        if marker is not None:
            marker.stop()
        flushed = writer.finish(STOP_FLUSH_SECONDS)
        committed.write_file(force=True)
        snapshots.stop()
        query.stop()
        if auth is not None:
            auth.stop()
    if not flushed or writer.fatal is not None:
        log.error("stopped with rows not written; they are replayed at the next start")
        return 1
    s = committed.status()
    log.info(
        "stopped; committed up to %s/%d (%d events); this run: %d transactions, %.1f s writing",
        s.epoch or "-",
        s.last_seq,
        s.events,
        writer.transactions,
        writer.write_seconds,
    )
    return 0


def _few_malloc_arenas() -> None:
    """glibc gives each busy thread its own malloc arena (64 MB of address space, and
    RSS that is never returned); the recorder's threads pass batches around, so two
    arenas are plenty. Must run before the threads start; a no-op off glibc."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_ARENA_MAX, 2)
    except (OSError, AttributeError):
        pass


def _fail(sentence: str) -> int:
    print(f"error: {sentence}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
