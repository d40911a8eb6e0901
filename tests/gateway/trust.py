"""The money invariants, checked from outside a real gateway: its journal (by `replay`) and
the simulated broker's own book files (data/sim), never the gateway's insides."""

from __future__ import annotations

import collections
import re
import threading
from pathlib import Path
from typing import Any

from qmtbus import protocol as p
from qmtbus.gateway.broker.sim.ledger import read_ledger
from tests.gateway.conftest import order
from tests.support import Proc, Stack, call, wait_for

_EPOCH = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")


def journal_events(stack: Stack) -> list[Any]:
    """Every event of every epoch the journal holds, replayed through the running gateway."""
    folder = stack.data_dir / "journal"
    epochs = sorted(e.name for e in folder.iterdir() if _EPOCH.match(e.name))
    events: list[Any] = []
    for epoch in epochs:
        seq = 1
        while True:
            reply = call(stack.commands_address, p.Replay(epoch=epoch, from_seq=seq, limit=10_000))
            assert isinstance(reply, p.ReplayReply), reply
            events += reply.events
            if not reply.more or not reply.events:
                break
            seq = reply.events[-1].seq + 1
    return events


def outcomes(events: list[Any]) -> dict[str, list[str]]:
    """client_order_id -> its client_order statuses, in journal order."""
    out: dict[str, list[str]] = collections.defaultdict(list)
    for e in events:
        if isinstance(e, p.ClientOrderEvent):
            out[e.client_order_id].append(e.status)
    return out


def check_invariants(stack: Stack, client_order_ids: list[str], timeout: float = 30.0) -> None:
    """Every fill at the broker exactly once in the journal; no remark twice at the broker;
    every order's outcome an event (the last one not "sending", and true to the broker)."""

    def settled() -> tuple[list[Any], Any] | None:
        events = journal_events(stack)
        broker = read_ledger(stack.data_dir)
        journaled = {t.traded_id for t in events if isinstance(t, p.TradeEvent)}
        at_broker = {str(t["traded_id"]) for t in broker.trades}
        last = {c: s[-1] for c, s in outcomes(events).items()}
        if at_broker <= journaled and all(last.get(c, "sending") != "sending" for c in last):
            return events, broker
        return None

    events, broker = wait_for(settled, timeout, "every fill and outcome in the journal")
    fills = collections.Counter(t.traded_id for t in events if isinstance(t, p.TradeEvent))
    assert [t for t, n in fills.items() if n > 1] == [], "a fill journaled twice"
    assert {str(t["traded_id"]) for t in broker.trades} == set(fills), "a fill never journaled"
    remarks = collections.Counter(str(o["order_remark"]) for o in broker.orders_received)
    assert [r for r, n in remarks.items() if n > 1] == [], "an order placed twice"
    last = {c: s[-1] for c, s in outcomes(events).items()}
    for coid in client_order_ids:
        if remarks[coid]:
            assert last.get(coid) == "accepted", (coid, outcomes(events).get(coid))
        else:
            assert last.get(coid, "unknown") in ("unknown", "not_placed", "rejected"), coid


def place_until_dead(
    stack: Stack, gateway: Proc, client_order_ids: list[str], clients: int = 3
) -> dict[str, Any]:
    """`clients` clients at once, each sending its share of marketable buys one by one
    until the gateway dies; the acks it gave."""
    acks: dict[str, Any] = {}

    def client(mine: list[str]) -> None:
        for coid in mine:
            if not gateway.alive():
                return
            try:
                acks[coid] = stack.call(order(coid), timeout=3.0)
            except TimeoutError:
                return

    shares = [client_order_ids[i::clients] for i in range(clients)]
    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return acks


def resend_all(stack: Stack, client_order_ids: list[str]) -> dict[str, Any]:
    """What a client does after a timeout: the same orders with the same client_order_ids."""
    acks = {c: stack.call(order(c), timeout=5.0) for c in client_order_ids}
    assert all(isinstance(a, p.OrderAck) for a in acks.values()), acks
    return acks


def wipe_gateway_data(data_dir: Path) -> None:
    """Delete the gateway's data folder but the simulator's (it stands for the broker)."""
    import shutil

    for entry in data_dir.iterdir():
        if entry.name == "sim":
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
