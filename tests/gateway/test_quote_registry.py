"""The quote registry and the tick buffer alone: ref counts, leases, coalescing (unit tier)."""

from __future__ import annotations

from typing import Any

from qmtbus.gateway.handoff import TicksReady
from qmtbus.gateway.quotes import Registry, TickBuffer


def test_given_two_clients_on_one_code_then_it_stays_until_the_last_lets_go() -> None:
    reg = Registry(lease=30.0)
    assert reg.subscribe("a", ["600000.SH", "000001.SZ"], now=0.0) == ["600000.SH", "000001.SZ"]
    assert reg.subscribe("b", ["600000.SH"], now=1.0) == []  # already in the union
    assert reg.union() == ["000001.SZ", "600000.SH"]
    assert reg.unsubscribe("a", ["600000.SH"]) == []  # b still holds it
    assert "600000.SH" in reg and reg.held_by("a") == ["000001.SZ"]
    assert reg.unsubscribe("b", ["600000.SH", "600000.SH"]) == ["600000.SH"]
    assert "600000.SH" not in reg and reg.held_by("b") == []


def test_given_a_lease_not_renewed_then_it_lapses_and_a_renewed_one_stays() -> None:
    reg = Registry(lease=10.0)
    reg.subscribe("a", ["600000.SH"], now=0.0)
    reg.subscribe("b", ["600000.SH", "000001.SZ"], now=0.0)
    reg.subscribe("b", ["600000.SH"], now=8.0)  # renewed until 18
    assert reg.expire(now=9.9) == []
    assert reg.expire(now=10.0) == ["000001.SZ"]  # a's lapses too, but b still holds 600000
    assert reg.union() == ["600000.SH"] and reg.held_by("a") == []
    assert reg.expire(now=18.0) == ["600000.SH"]
    assert reg.union() == []


def test_given_a_code_a_client_never_held_then_unsubscribe_changes_nothing() -> None:
    reg = Registry(lease=10.0)
    reg.subscribe("a", ["600000.SH"], now=0.0)
    assert reg.unsubscribe("b", ["600000.SH"]) == []
    assert reg.union() == ["600000.SH"]


def _raw(code: str, last: float) -> dict[str, Any]:
    return {"stock_code": code, "lastPrice": last, "time": 0}


def test_given_a_storm_then_the_buffer_keeps_the_latest_tick_per_code_and_wakes_once() -> None:
    posted: list[Any] = []
    buf = TickBuffer(posted.append, epoch="e1", account_id="SIM0001")
    buf.put([_raw("600000.SH", 10.0), _raw("000001.SZ", 5.0)])
    buf.put([_raw("600000.SH", 10.1)])
    assert [type(item) for item in posted] == [TicksReady]  # one wake-up for the batch
    assert buf.received == 3 and buf.coalesced == 1
    first, more = buf.take(1)
    assert more and [t.stock_code for t in first] == ["600000.SH"]
    assert first[0].lastPrice == 10.1 and first[0].epoch == "e1"
    rest, more = buf.take(10)
    assert not more and [t.stock_code for t in rest] == ["000001.SZ"]
    buf.put([_raw("600000.SH", 10.2)])
    assert len(posted) == 2  # drained: the next tick wakes the I/O thread again


def test_given_a_malformed_tick_then_only_it_is_dropped() -> None:
    buf = TickBuffer(lambda _item: None, epoch="e1", account_id="SIM0001")
    buf.put([{"no": "code"}, _raw("600000.SH", 10.0)])
    ticks, _ = buf.take(10)
    assert [t.stock_code for t in ticks] == ["600000.SH"]
