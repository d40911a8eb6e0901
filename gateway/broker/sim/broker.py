"""SimBroker: the Broker seam over an embedded simulated miniQMT (the default broker).

The trader is xtquant's own XtQuantTrader, as with broker = "xtquant"; only the
native module beneath it differs: gateway/broker/sim/native.py instead of the
.pyd, talking to the simulated terminal that keeps its books in <data_dir>/sim.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from qmtbus.gateway.broker import BrokerUnavailable, Instrument, TickSink
from qmtbus.gateway.broker.instruments import InstrumentCache
from qmtbus.gateway.broker.sim import hours, native
from qmtbus.gateway.broker.sim.terminal import SimTerminal
from qmtbus.gateway.broker.xtquant import XtTraders
from qmtbus.protocol import SimFault, SimSetPrice

if TYPE_CHECKING:
    from qmtbus.config import Config


class SimBroker:
    name: Literal["sim"] = "sim"

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time) -> None:
        """Open (or create) the book under <data_dir>/sim and start its market; `clock` gives
        epoch seconds (tests move it to change the trading day)."""
        self.path = str(Path(config.gateway.data_dir) / "sim")
        self._account_id = config.gateway.account_id
        tick_file = config.sim.tick_file
        if tick_file and not Path(tick_file).is_file():
            raise BrokerUnavailable(
                f"sim.tick_file {tick_file!r} does not exist; fix the path or leave it empty "
                "for a random walk"
            )
        # Before the terminal: a process already holding the real xttrader is refused here.
        self._traders = XtTraders(native, self.path, self._account_id, config.xtquant.session_base)
        self.terminal = SimTerminal(Path(self.path), config.sim, self._account_id, clock)
        self.terminal.start()
        # Market data as xtdata gives it: off the I/O thread (slow_xtdata and fail_xtdata
        # faults act in terminal.instrument).
        self._instruments = InstrumentCache(
            self.terminal.instrument, lambda: hours.trading_day(clock())
        )

    def new_trader(self, session_id: int) -> Any:
        """xtquant.xttrader.XtQuantTrader, over the simulated native client."""
        return self._traders.new_trader(session_id)

    def account(self) -> Any:
        return self._traders.account()

    def new_session_id(self) -> int:
        return self._traders.new_session_id(self.terminal.live_sessions())

    def instrument(self, stock_code: str) -> Instrument | None:
        return self._instruments.get(stock_code)

    def instrument_note(self, stock_code: str) -> str:
        return self._instruments.note(stock_code)

    def prefetch(self, codes: list[str]) -> None:
        self._instruments.prefetch(codes)

    def sim_command(self, command: SimFault | SimSetPrice) -> str:
        if isinstance(command, SimFault):
            return self.terminal.fault(command.fault, command.value)
        if isinstance(command, SimSetPrice):
            return self.terminal.set_price(command.stock_code, command.price)
        raise TypeError(f"not a simulator command: {command!r}")

    def set_tick_sink(self, sink: TickSink) -> None:
        self.terminal.set_tick_sink(sink)

    def subscribe_quotes(self, codes: list[str]) -> list[str]:
        return self.terminal.subscribe_quotes(codes)

    def unsubscribe_quotes(self, codes: list[str]) -> None:
        self.terminal.unsubscribe_quotes(codes)

    def quote(self, stock_code: str) -> dict[str, Any] | None:
        return self.terminal.full_tick(stock_code)

    def bars(
        self, stock_code: str, period: str, count: int, start_ms: int = 0, end_ms: int = 0
    ) -> list[dict[str, Any]] | None:
        return self.terminal.bars(stock_code, period, count, start_ms, end_ms)

    def instrument_detail(self, stock_code: str) -> dict[str, Any] | None:
        return self.terminal.instrument_detail(stock_code)

    def close(self) -> None:
        self._instruments.close()
        self.terminal.close()
