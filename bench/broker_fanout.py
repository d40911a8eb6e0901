"""Broker-made events to one subscriber: a burst of fills made on the broker side.

The gateway's `note` fan-out (bench/fanout.py) measures events the I/O thread makes
from a command. Here the events come the way a real account's do: N limit buys rest
on the simulator's book, then one `sim_set_price` moves the price through them and
the simulator fills every one, pushing (on its push thread, as xtquant does)
an order update, a trade, and position/asset updates for each. A raw SUB socket
(RCVHWM 100,000, as EventStream) counts them: rate = broker-made events received /
(last one received - first one received); lost = gaps in the seqs received. Each event is
stamped when the socket hands it over and decoded after the burst (decoding every event
inline, with a poll per event, cost the subscriber 8-13 µs an event and capped a run at
80,000-130,000/s whatever the gateway did: bench/CHANGES.md, third pass).
A second rate counts the same events from the moment the price move is sent (`whole`): it
includes the simulator's matching and the wait for the I/O thread's first turn, which the
first one leaves out, and it moves less with when that first turn comes. `cpu_us`: the
gateway process's CPU time (user + system, every thread) from the price move to the burst's
2N-th event received, per event: the burst's cost, which moves least with the machine's load.
The burst ends with the last of its N order updates and N trades: a later event (the
gateway's periodic probe reports a changed asset seconds after) is not part of it; before
this rule, one such straggler made a run read 226 events/s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psutil
import zmq

from bench.common import (
    CODE,
    Figures,
    bench_stack,
    resting_buy_price,
    start_gateway_timed,
    stop_all,
)
from qmtbus import Gateway, protocol
from tests.support import call

BROKER_MADE = (
    protocol.OrderEvent,
    protocol.TradeEvent,
    protocol.PositionEvent,
    protocol.AssetEvent,
    protocol.ClientOrderEvent,
)


@dataclass
class Settings:
    runs: int = 5
    orders: int = 5000


@dataclass
class Result:
    figures: Figures = field(default_factory=Figures)
    events: list[int] = field(default_factory=list)  # broker-made events per run
    kinds: dict[str, int] = field(default_factory=dict)  # of the last run, by type


def one_run(settings: Settings, result: Result) -> None:
    # depth for every order at once, so one price move fills them all in one match
    stack = bench_stack("brokerfan", sim={"depth_volume": settings.orders * 100})
    started = start_gateway_timed(stack)
    ctx: zmq.Context[Any] = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    try:
        price = resting_buy_price()
        with Gateway(stack.commands_address, stack.events_address, timeout=10, retries=0) as gw:
            for _ in range(settings.orders):
                ack = gw.buy(CODE, 100, price)
                if ack.status != "accepted":
                    raise RuntimeError(f"resting order not accepted: {ack}")
            sub.setsockopt(zmq.RCVHWM, 100_000)
            sub.setsockopt(zmq.LINGER, 0)
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            sub.connect(stack.events_address)
            # the subscription is in place once a note published after it arrives
            deadline = time.monotonic() + 10
            seen = False
            while not seen and time.monotonic() < deadline:
                gw.note("bench", {"ready": True})
                if sub.poll(100):
                    seen = True
            while sub.poll(50):  # drop what came before the burst
                sub.recv_multipart()
            decode = protocol.decode_event
            gateway = psutil.Process(started.proc.pid)
            cpu_before = sum(gateway.cpu_times()[:2])
            cpu_after = 0.0
            moved = time.perf_counter_ns()
            reply = call(
                stack.commands_address,
                protocol.SimSetPrice(stock_code=CODE, price=round(price * 0.99, 2)),
            )
            if not isinstance(reply, protocol.SimAck):
                raise RuntimeError(f"sim_set_price failed: {reply}")
            # Read as fast as the socket gives them, stamped on receipt; decoded after the
            # burst, so the subscriber's own decoding (several µs an event in Python) is not
            # taken for the gateway's rate.
            # Until a second after the burst's size has come (stragglers and any gap in the
            # seqs show by then), or a quiet second, or a minute: heartbeats come every
            # second, so a quiet second alone kept the reader waiting for minutes at times.
            received: list[tuple[int, bytes]] = []
            stamp, recv = time.perf_counter_ns, sub.recv_multipart
            until = time.monotonic() + 60.0
            while time.monotonic() < until and sub.poll(1000):
                while True:
                    try:
                        _, payload = recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    received.append((stamp(), payload))
                    if len(received) == 2 * settings.orders:  # the burst's size, give or take
                        cpu_after = sum(gateway.cpu_times()[:2])
                        until = time.monotonic() + 1.0
            if not cpu_after:  # fewer came (a lost event shows in `lost`): up to the quiet end
                cpu_after = sum(gateway.cpu_times()[:2])
            first = last = 0
            count = 0
            fills_left = 2 * settings.orders  # an order update and a trade per fill
            seqs: list[int] = []
            kinds: dict[str, int] = {}
            for now, payload in received:
                ev = decode(payload)
                seqs.append(ev.seq)
                if not isinstance(ev, BROKER_MADE) or not fills_left:
                    continue
                if isinstance(ev, (protocol.OrderEvent, protocol.TradeEvent)):
                    fills_left -= 1
                first = first or now
                last = now
                count += 1
                kinds[type(ev).__name__] = kinds.get(type(ev).__name__, 0) + 1
            lost = (max(seqs) - min(seqs) + 1 - len(set(seqs))) if seqs else 0
    finally:
        sub.close(0)
        stop_all([started.proc])
    seconds = (last - first) / 1e9
    result.events.append(count)
    result.kinds = kinds
    result.figures.add("events", count)
    result.figures.add("rate", count / seconds if seconds > 0 else 0.0)
    # the same events over the whole burst, from the price move sent: the simulator's matching
    # and the wait for the I/O thread's first turn count too
    whole = (last - moved) / 1e9
    result.figures.add("whole", count / whole if whole > 0 else 0.0)
    # the gateway's CPU time (all threads, user + system) per event, the burst's load on it
    result.figures.add("cpu_us", (cpu_after - cpu_before) / count * 1e6 if count else 0.0)
    result.figures.add("lost", lost)


def run(settings: Settings, log: Any = print) -> Result:
    result = Result()
    for run_no in range(settings.runs):
        one_run(settings, result)
        f = result.figures
        log(
            f"  run {run_no + 1}/{settings.runs}: {f['events'].values[-1]:,.0f} broker-made "
            f"events at {f['rate'].values[-1]:,.0f}/s ({f['whole'].values[-1]:,.0f}/s from "
            f"the price move), lost {f['lost'].values[-1]:,.0f}"
        )
    return result


if __name__ == "__main__":
    print(run(Settings(runs=1, orders=500)).kinds)
