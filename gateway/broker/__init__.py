"""The broker seam: `open_broker(config)` gives the real XtQuantTrader or the simulator.

Everything above this seam (lifecycle, reconciliation, risk, quotes) is written
once against `Broker` and an XtQuantTrader-shaped trader object. Market data
crosses the seam as xtdata's full-tick dicts (field names as xtdata's, plus
"stock_code"); the gateway turns them into `tick` events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from qmtbus.config import Config
    from qmtbus.protocol import SimFault, SimSetPrice


class NotSupported(Exception):
    """The broker cannot do this (e.g. faults on the real broker); str(err) says what to do."""


class BrokerUnavailable(Exception):
    """The broker cannot be opened here; str(err) is one sentence telling the user what to do."""


@dataclass(frozen=True, slots=True)
class Instrument:
    """Today's prices and limits of one security, for the risk gate."""

    stock_code: str
    instrument_name: str
    last_price: float
    prev_close: float
    up_stop_price: float
    down_stop_price: float
    price_tick: float


# Receives ticks of subscribed symbols, a batch at a time, on a thread of the broker's own.
TickSink = Callable[[list[dict[str, Any]]], None]


class Broker(Protocol):
    """What the gateway holds: a factory of XtQuantTrader look-alikes plus market facts."""

    @property
    def name(self) -> Literal["sim", "xtquant"]: ...

    def new_trader(self, session_id: int) -> Any:
        """An XtQuantTrader(path, session) look-alike, not started."""
        ...

    def account(self) -> Any:
        """A StockAccount look-alike (.account_id, .account_type == 2)."""
        ...

    def new_session_id(self) -> int:
        """A session id this process has never used, unique among live sessions."""
        ...

    def instrument(self, stock_code: str) -> Instrument | None:
        """Today's prices and limits of `stock_code` from a cache filled off the caller's
        thread (gateway/broker/instruments.py): None when the broker does not know it or
        its data is not loaded yet. Never blocks on the broker."""
        ...

    def instrument_note(self, stock_code: str) -> str:
        """Why instrument() gave None, in one phrase ("" when it did not)."""
        ...

    def prefetch(self, codes: list[str]) -> None:
        """Load these codes' instrument data in the background."""
        ...

    def sim_command(self, command: SimFault | SimSetPrice) -> str:
        """Simulator only (faults, prices): a short description; others raise NotSupported."""
        ...

    def set_tick_sink(self, sink: TickSink) -> None:
        """Where ticks of subscribed symbols go. The sink is called on the broker's own
        thread; it only hands the batch over (it never blocks)."""
        ...

    def subscribe_quotes(self, codes: list[str]) -> list[str]:
        """Tick `codes` from now on (subscribing twice is harmless); returns the codes the
        broker does not know, which are not subscribed. May block: the gateway calls the
        quote methods on its quote thread only."""
        ...

    def unsubscribe_quotes(self, codes: list[str]) -> None: ...

    def quote(self, stock_code: str) -> dict[str, Any] | None:
        """The latest full tick of `stock_code` (xtdata field names, plus "stock_code"),
        or None when the broker does not know the code. May block."""
        ...

    def bars(
        self, stock_code: str, period: str, count: int, start_ms: int = 0, end_ms: int = 0
    ) -> list[dict[str, Any]] | None:
        """The last `count` bars ("1m", "5m", "1d") of `stock_code` starting from `start_ms` to
        `end_ms` (epoch ms; 0: open), oldest first, as dicts of protocol.Bar's fields; None
        when the broker does not know the code. May block: the gateway calls it on its
        quote thread only."""
        ...

    def instrument_detail(self, stock_code: str) -> dict[str, Any] | None:
        """xtdata.get_instrument_detail's dict for `stock_code` (None: not known). May block."""
        ...

    def close(self) -> None: ...


def open_broker(config: Config) -> Broker:
    """The broker named by `config.gateway.broker`; BrokerUnavailable when it cannot run here."""
    # Imported lazily: the xtquant adapter must not be touched when the simulator is chosen.
    if config.gateway.broker == "xtquant":
        from qmtbus.gateway.broker.xtquant import XtQuantBroker

        return XtQuantBroker(config)
    from qmtbus.gateway.broker.sim.broker import SimBroker

    return SimBroker(config)


__all__ = ["Broker", "BrokerUnavailable", "Instrument", "NotSupported", "TickSink", "open_broker"]
