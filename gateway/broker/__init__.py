"""The broker seam: `open_broker(config)` gives the real XtQuantTrader or the simulator.

Everything above this seam (lifecycle, reconciliation, risk) is written once
against `Broker` and an XtQuantTrader-shaped trader object.
"""

from __future__ import annotations

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
        """Prices and limits of `stock_code`, or None when the broker does not know it."""
        ...

    def sim_command(self, command: SimFault | SimSetPrice) -> str:
        """Simulator only (faults, prices): a short description; others raise NotSupported."""
        ...

    def close(self) -> None: ...


def open_broker(config: Config) -> Broker:
    """The broker named by `config.gateway.broker`; BrokerUnavailable when it cannot run here."""
    # Imported lazily: the xtquant adapter must not be touched when the simulator is chosen.
    if config.gateway.broker == "xtquant":
        from gateway.broker.xtquant import XtQuantBroker

        return XtQuantBroker(config)
    from gateway.broker.sim.broker import SimBroker

    return SimBroker(config)


__all__ = ["Broker", "BrokerUnavailable", "Instrument", "NotSupported", "open_broker"]
