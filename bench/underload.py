"""Order round trip under load: three event subscribers and a 10,000 ticks/s quote stream.

A real gateway on the simulator with `symbols` codes subscribed and
`sim.quote_interval` seconds between their quotes (100 codes every 10 ms: 10,000
ticks/s on the quotes socket); a helper process holds three SUB sockets reading
every event and one reading every tick. Meanwhile one client sends resting limit
buys one at a time, as in the round trip scenario, and times each to its
`order_ack`. The tick rate reported is what the tick reader received.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bench.common import (
    CODE,
    Figures,
    Peer,
    bench_stack,
    percentile,
    resting_buy_price,
    start_gateway_timed,
    stop_all,
)
from qmtbus import Gateway, protocol
from qmtbus.client import new_client_order_id
from tests.support import call


@dataclass
class Settings:
    runs: int = 3
    orders: int = 2000
    warmup: int = 200
    symbols: int = 100
    quote_interval: float = 0.01
    subscribers: int = 3


@dataclass
class Result:
    figures: Figures = field(default_factory=Figures)


def _codes(n: int) -> list[str]:
    return [f"{600000 + i:06d}.SH" for i in range(n)]


def one_run(settings: Settings, result: Result) -> None:
    stack = bench_stack("underload", sim={"quote_interval": settings.quote_interval})
    started = start_gateway_timed(stack)
    try:
        ack = call(
            stack.commands_address,
            protocol.SubscribeQuotes(stock_codes=_codes(settings.symbols), client_id="bench"),
        )
        if not isinstance(ack, protocol.QuotesAck):
            raise RuntimeError(f"subscribe_quotes failed: {ack}")
        address = (stack.events_address, stack.quotes_address, str(settings.subscribers))
        with Peer("readers", *address) as readers:
            time.sleep(0.5)  # the readers' subscriptions reach the gateway; ticks start
            price = resting_buy_price()
            lat: list[float] = []
            with Gateway(stack.commands_address, stack.events_address, timeout=10, retries=0) as gw:
                for i in range(settings.warmup + settings.orders):
                    t = time.perf_counter_ns()
                    reply = gw.buy(CODE, 100, price, client_order_id=new_client_order_id())
                    elapsed = time.perf_counter_ns() - t
                    if reply.status != "accepted":
                        raise RuntimeError(f"order {i} was not accepted: {reply}")
                    if i >= settings.warmup:
                        lat.append(elapsed / 1000)
            read = readers.ask(stop=True)
    finally:
        stop_all([started.proc])
    f = result.figures
    f.add("p50", percentile(lat, 50))
    f.add("p99", percentile(lat, 99))
    f.add("max", max(lat))
    f.add("ticks_per_s", read["ticks"] / read["seconds"] if read["seconds"] else 0.0)
    f.add("events_min", min(read["events"]))


def run(settings: Settings, log: Any = print) -> Result:
    result = Result()
    for run_no in range(settings.runs):
        one_run(settings, result)
        f = result.figures
        log(
            f"  run {run_no + 1}/{settings.runs}: order p50 {f['p50'].values[-1]:.0f} us, "
            f"p99 {f['p99'].values[-1]:.0f} us with {f['ticks_per_s'].values[-1]:,.0f} "
            f"ticks/s and {settings.subscribers} event readers"
        )
    return result
