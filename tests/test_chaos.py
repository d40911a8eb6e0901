"""Chaos under supervisord: orders flow while the gateway, recorder and scheduler die by kill -9.

Three strategy threads (the Python client, each order with its own
client_order_id, resent with the same id until answered) and a scheduler job
(an order every 2 s) trade on the simulator, which fills them. Meanwhile the
test kill -9s the gateway, the recorder and the scheduler in turns. Afterwards
everything must be running again, and nothing lost or doubled:

- the recorder's DuckDB holds every epoch's events, seq 1..last, no hole;
- every fill in the simulator's own ledger is in the `trades` table exactly once;
- no client_order_id reached the simulator twice.
"""

from __future__ import annotations

import collections
import threading
from pathlib import Path
from typing import Any

import pytest

from qmtbus import Gateway, GatewayError, GatewayUnreachable, NotConnected, RecorderClient
from qmtbus import protocol as p
from qmtbus.gateway.broker.sim.ledger import read_ledger
from tests.supervised import PROGRAMS, Supervised
from tests.support import wait_for, wait_ready

CODES = ("600000.SH", "000001.SZ", "601318.SH", "300750.SZ")
STRATEGIES = 3
ROUNDS = 3  # each round kills the gateway, the recorder and the scheduler once
ORDERS_BETWEEN_KILLS = 15

JOBS = '''\
"""The chaos test's scheduler job: a market buy every run, its id derived from the run."""

from qmtbus import protocol


def buy(ctx):
    ack = ctx.gateway.order(
        "600000.SH",
        protocol.STOCK_BUY,
        100,
        0.0,
        price_type=protocol.LATEST_PRICE,
        strategy_name="chaos-job",
        client_order_id="job" + ctx.scheduled_for.strftime("%H%M%S"),
    )
    return ack.status
'''


class Strategy(threading.Thread):
    """Sends market buys one after the other; an unanswered order is resent, same id."""

    def __init__(self, name: str, commands: str, events: str, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.gateway = Gateway(commands, events, timeout=2.0, retries=2)
        self.stop = stop
        self.acks: dict[str, p.OrderAck] = {}
        self.refused: list[tuple[str, str]] = []  # answers other than an ack, by id
        self.loading = 0  # refusals that asked for the order again in a moment

    def run(self) -> None:
        try:
            n = 0
            while not self.stop.is_set():
                self._place(f"{self.name}-{n:05d}", CODES[n % len(CODES)])
                n += 1
                self.stop.wait(0.05)
        finally:
            self.gateway.close()

    def _place(self, client_order_id: str, code: str) -> None:
        while not self.stop.is_set():
            try:
                ack = self.gateway.order(
                    code,
                    p.STOCK_BUY,
                    100,
                    0.0,
                    price_type=p.LATEST_PRICE,
                    strategy_name=self.name,
                    client_order_id=client_order_id,
                )
            except (GatewayUnreachable, NotConnected):
                self.stop.wait(0.2)  # the gateway is down or reconnecting: same id again
                continue
            except GatewayError as err:
                if err.code == p.RISK_DENIED and "send the order again in a moment" in err.message:
                    # market data still loading after a restart (a busy machine): as asked
                    self.loading += 1
                    self.stop.wait(0.2)
                    continue
                self.refused.append((client_order_id, f"{err.code}: {err.message}"))
                return
            self.acks[client_order_id] = ack
            return


def _resend_status(commands: str, events: str, client_order_id: str) -> str:
    """What the gateway answers now for an order it once said was pending."""
    with Gateway(commands, events, timeout=5.0, retries=1) as gw:
        try:
            ack = gw.order(
                CODES[0], p.STOCK_BUY, 100, 0.0, p.LATEST_PRICE, client_order_id=client_order_id
            )
        except GatewayError as err:
            return f"{err.code}: {err.message}"
        return f"{ack.status} (duplicate={ack.duplicate})"


def _rows(recorder: RecorderClient, sql: str) -> list[list[Any]]:
    return recorder.sql(sql, limit=100_000).rows


@pytest.mark.timeout(300)
def test_given_orders_flowing_when_gateway_recorder_and_scheduler_are_killed_in_turns_then_nothing_is_lost_or_doubled(  # noqa: E501
    tmp_path: Path,
) -> None:
    job = {
        "name": "chaos_buy",
        "cron": "*/2 * * * * *",
        "callable": "chaos_jobs:buy",
        "trading_days_only": False,
    }
    sv = Supervised(
        tmp_path,
        {
            "sim": {"initial_cash": 1e9, "volatility": 0.001},
            "scheduler": {"jobs": [job], "pre_open_check": False, "after_close_snapshot": False},
        },
    )
    (sv.dir / "chaos_jobs.py").write_text(JOBS)  # the scheduler runs in sv.dir: importable
    stack = sv.stack
    sv.start()
    stop = threading.Event()
    strategies = [
        Strategy(f"s{i}", stack.commands_address, stack.events_address, stop)
        for i in range(STRATEGIES)
    ]
    try:
        epochs = [wait_ready(stack, timeout=30).epoch]
        for s in strategies:
            s.start()

        def acked() -> int:
            return sum(len(s.acks) for s in strategies)

        for victim in ("gateway", "recorder", "scheduler") * ROUNDS:
            target = acked() + ORDERS_BETWEEN_KILLS
            wait_for(lambda t=target: acked() >= t, 60, "orders flowing")  # type: ignore[misc]
            old_pid = sv.kill9(victim)
            sv.wait_restarted(victim, old_pid, 60)
            if victim == "gateway":
                epochs.append(wait_ready(stack, timeout=30).epoch)
        target = acked() + ORDERS_BETWEEN_KILLS
        wait_for(lambda: acked() >= target, 60, "orders flowing after the last kill")
    finally:
        stop.set()
        for s in strategies:
            s.join(15)

    try:
        # every process is running again
        done = sv.ctl("status")
        states = dict(line.split()[:2] for line in done.stdout.splitlines())
        assert states == {name: "RUNNING" for name in (*PROGRAMS, "watchdog")}, done.stdout
        assert len(set(epochs)) == ROUNDS + 1
        assert not any(s.refused for s in strategies), [s.refused for s in strategies]

        with RecorderClient(stack.query_address, timeout=5.0, retries=3) as recorder:
            # each epoch's events, 1..last with no hole, once the recorder has caught up
            last_seq = {
                e: stack.call(p.Replay(epoch=e, from_seq=1, limit=1)).last_seq for e in epochs
            }
            last_seq[epochs[-1]] = stack.call(p.GetStatus()).last_seq

            def epochs_complete() -> dict[str, tuple[int, int, int]] | None:
                rows = _rows(
                    recorder,
                    "SELECT epoch, count(*), min(seq), max(seq) FROM events GROUP BY epoch",
                )
                stored = {row[0]: (row[1], row[2], row[3]) for row in rows}
                done = all(stored.get(e, (0, 0, 0))[2] >= last for e, last in last_seq.items())
                return stored if done else None

            stored = wait_for(epochs_complete, 60, "the recorder to hold every epoch")
            for epoch, last in last_seq.items():
                count, first, top = stored[epoch]
                assert (first, count) == (1, top), f"epoch {epoch}: a hole in seq"
                if epoch != epochs[-1]:
                    assert top == last, f"epoch {epoch}: recorded past the journal's end"
            assert _rows(recorder, "SELECT count(*) FROM gaps") == [[0]]

            # every fill of the simulator's own ledger is in `trades` exactly once
            ledger = read_ledger(stack.data_dir)
            fills = {t["traded_id"] for t in ledger.trades}
            assert len(fills) == len(ledger.trades) and len(fills) > 100

            def recorded_fills() -> collections.Counter[str] | None:
                rows = _rows(recorder, "SELECT traded_id FROM trades")
                counts = collections.Counter(row[0] for row in rows)
                return counts if fills <= set(counts) else None

            counts = wait_for(recorded_fills, 60, "every ledger fill in the trades table")
            assert set(counts) == fills, "a recorded fill the simulator never made"
            doubled = {traded_id: n for traded_id, n in counts.items() if n > 1}
            assert not doubled, f"fills recorded more than once: {doubled}"

        # no client_order_id reached the simulator twice, and every acked one reached it
        remarks = collections.Counter(o["order_remark"] for o in ledger.orders_received)
        sessions = {o["session_id"] for o in ledger.orders_received}
        assert len(sessions) > ROUNDS, "orders did not flow through every gateway's life"
        twice = {remark: n for remark, n in remarks.items() if n > 1}
        assert not twice, f"client_order_ids sent to the broker more than once: {twice}"
        acks = {coid: ack for s in strategies for coid, ack in s.acks.items()}
        accepted = {coid for coid, ack in acks.items() if ack.status == "accepted"}
        missing = {coid: acks[coid] for coid in accepted - set(remarks)}
        assert not missing, f"accepted orders the simulator never received: {missing}"
        # an order the gateway reports rejected never reached the broker, or the broker
        # rejected it: then the client is not told "rejected" about an order that trades
        rejected = {coid for coid, ack in acks.items() if ack.status == "rejected"}
        traded = {t["order_remark"] for t in ledger.trades}
        assert not rejected & traded, f"orders acked as rejected that traded: {rejected & traded}"
        assert any(remark.startswith("job") for remark in remarks), "the scheduler's job never ran"

        # A kill between "sending" is written down and the broker call leaves an order
        # that never reached the broker; the gateway then says so (rejected) once the
        # periodic resolution finds it old enough and absent, never "pending" for ever.
        never_placed = [
            coid for coid, ack in acks.items() if ack.status == "pending" and coid not in remarks
        ]

        def answered() -> dict[str, str] | None:
            now = {
                coid: _resend_status(stack.commands_address, stack.events_address, coid)
                for coid in never_placed
            }
            return None if any(a.startswith("pending") for a in now.values()) else now

        if never_placed:
            now = wait_for(answered, 60, "orders that never reached the broker to be answered")
            assert all(a.startswith("rejected") for a in now.values()), now
    finally:
        sv.stop()
