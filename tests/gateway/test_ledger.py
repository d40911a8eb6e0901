"""The day's ledger rebuilt from a real journal on disk: today's events of every epoch, only."""

from __future__ import annotations

from pathlib import Path

import msgspec

from qmtbus import protocol as p
from qmtbus.gateway.journal import Journal
from qmtbus.gateway.store import Ledger, Outcome, day_bounds_ns, epochs_touching, rebuild
from qmtbus.gateway.window import trading_day

DAY = trading_day()  # the journal names its epochs by the real clock
START, END = day_bounds_ns(DAY)


def _journal(folder: Path) -> Journal:
    return Journal(
        folder, fsync_interval=0, max_age_days=30, max_bytes=1 << 30, segment_bytes=1 << 20
    )


def _write(folder: Path, events: list[p.Event]) -> None:
    with _journal(folder) as j:
        for ev in events:
            seq = j.last_seq + 1
            j.append(seq, p.msgpack_encoder.encode(msgspec.structs.replace(ev, seq=seq)))
        j.flush()


def test_given_two_epochs_and_yesterday_then_the_ledger_holds_today_from_both(
    tmp_path: Path,
) -> None:
    sending = p.ClientOrderEvent(client_order_id="c-1", trading_day=DAY, notional=1000.0)
    _write(
        tmp_path,
        [
            p.TradeEvent(stock_code="600000.SH", traded_id="OLD", ts=START - 1),  # yesterday
            msgspec.structs.replace(sending, ts=START + 1),
        ],
    )
    accepted = msgspec.structs.replace(sending, status="accepted", order_id=7, ts=START + 2)
    fill = p.TradeEvent(stock_code="600000.SH", traded_id="T1", order_id=7, ts=START + 3)
    _write(tmp_path, [accepted, fill])
    journal = _journal(tmp_path)  # a third epoch: the restarted gateway's own
    ledger = Ledger(DAY)
    assert rebuild(journal, ledger) == 3
    rec = ledger.client_orders["c-1"]
    assert (rec.state, rec.order_id, rec.notional) == (Outcome.ACCEPTED, 7, 1000.0)
    assert ledger.fills == {(DAY, "SH", "T1")}
    assert ledger.by_order_id[7] is rec
    journal.close()


def test_given_epoch_names_then_those_started_today_and_the_last_before_touch_the_day() -> None:
    # Shanghai midnight of 2026-12-07 is 16:00 UTC the day before
    epochs = [
        "20261205T010000Z-000001",
        "20261206T150000Z-000002",
        "20261206T170000Z-000003",
        "20261207T020000Z-000004",
    ]
    assert epochs_touching(epochs, "2026-12-07") == epochs[1:]
