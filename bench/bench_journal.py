"""Journal benchmark: append+flush throughput and replay latency, printed as figures.

Run: .venv/bin/python bench/bench_journal.py [--events 1000000] [--batch 100] [--payload-bytes 300]
Target: 100,000 events/s appended and flushed (payloads ~300 bytes, batches of ~100).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from qmtbus import protocol
from qmtbus.gateway.journal import Journal


def sample_payloads(count: int) -> list[bytes]:
    """Real encoded events (trade and order, ~300 bytes) to cycle through."""
    out = []
    for i in range(count):
        common = dict(
            account_id="SIM0001",
            stock_code="600000.SH",
            order_id=100_000 + i,
            order_sysid=f"SYS{i:08d}",
            strategy_name="momentum-1",
            order_remark=f"c-{i:06d}",
            client_order_id=f"c-{i:06d}",
            instrument_name="浦发银行",
            epoch="20261124T041732Z-3fa9c1",
            seq=i + 1,
            ts=protocol.now_ns(),
        )
        if i % 2:
            event: object = protocol.TradeEvent(
                traded_id=f"T{i:010d}", traded_price=10.51, traded_volume=100, **common
            )
        else:
            event = protocol.OrderEvent(order_status=50, price=10.51, order_volume=100, **common)
        out.append(protocol.encode(event))
    return out


def open_journal(directory: Path, fsync_interval: float) -> Journal:
    return Journal(
        directory,
        fsync_interval=fsync_interval,
        max_age_days=7.0,
        max_bytes=1 << 40,
        segment_bytes=16 * 1024 * 1024,
    )


def bench_append(journal: Journal, payloads: list[bytes], events: int, batch: int) -> float:
    """Events per second for append + one flush per batch."""
    n = len(payloads)
    start = time.perf_counter()
    seq = journal.last_seq
    while seq < events:
        for _ in range(min(batch, events - seq)):
            seq += 1
            journal.append(seq, payloads[seq % n])
        journal.flush()
    return events / (time.perf_counter() - start)


def bench_replay(journal: Journal, epoch: str, last: int, count: int, rounds: int) -> list[float]:
    """Milliseconds to read `count` events from spread-out points of the epoch."""
    times = []
    for r in range(rounds):
        from_seq = 1 + (last - count) * (r + 1) // (rounds + 1)
        start = time.perf_counter()
        events, _, _ = journal.read(epoch, from_seq, count)
        times.append((time.perf_counter() - start) * 1000)
        assert len(events) == count
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--replay", type=int, default=1000, help="events per replay read")
    parser.add_argument(
        "--payload-bytes", type=int, default=0, help="fixed-size random payloads instead of events"
    )
    parser.add_argument("--dir", type=Path, default=None, help="default: a temporary folder")
    args = parser.parse_args()
    if args.payload_bytes:
        payloads = [os.urandom(args.payload_bytes) for _ in range(1000)]
    else:
        payloads = sample_payloads(1000)
    avg = statistics.mean(len(p) for p in payloads)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        print(f"payload ~{avg:.0f} bytes, batch {args.batch}, {args.events:,} events, in {root}")

        journal = open_journal(root / "main", fsync_interval=1.0)
        rate = bench_append(journal, payloads, args.events, args.batch)
        size = sum(p.stat().st_size for p in (root / "main").rglob("*.seg"))
        print(
            f"append+flush, fsync every 1 s: {rate:,.0f} events/s "
            f"({rate * avg / 1e6:.0f} MB/s), {size / 1e6:.0f} MB on disk"
        )
        small = min(args.events, 20_000)
        with open_journal(root / "sync", fsync_interval=0.0) as per_flush:
            rate0 = bench_append(per_flush, payloads, small, args.batch)
        print(f"append+flush, fsync every flush: {rate0:,.0f} events/s ({small:,} events)")

        times = bench_replay(journal, journal.epoch, args.events, args.replay, 20)
        print(
            f"replay {args.replay} events, current epoch: median {statistics.median(times):.2f} "
            f"ms, max {max(times):.2f} ms"
        )
        old_epoch = journal.epoch
        journal.close()

        reopened = open_journal(root / "main", fsync_interval=1.0)
        start = time.perf_counter()
        reopened.epochs()
        print(f"reopen + epochs() (scans the old tail segment): {_ms(start):.1f} ms")
        start = time.perf_counter()
        reopened.read(old_epoch, args.events // 2, args.replay)
        print(
            f"replay {args.replay} events, old epoch, first read (indexes one segment): "
            f"{_ms(start):.1f} ms"
        )
        cold = bench_replay(reopened, old_epoch, args.events, args.replay, 20)
        warm = bench_replay(reopened, old_epoch, args.events, args.replay, 20)
        print(
            f"replay {args.replay} events, old epoch, first touch of a segment: median "
            f"{statistics.median(cold):.1f} ms; warm: median {statistics.median(warm):.2f} ms, "
            f"max {max(warm):.2f} ms"
        )
        start = time.perf_counter()
        reopened.trim()
        print(f"trim() with nothing to delete: {_ms(start):.2f} ms")
        reopened.close()


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


if __name__ == "__main__":
    main()
