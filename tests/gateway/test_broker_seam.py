"""The broker seam: open_broker picks the simulator or refuses the real broker off Windows."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from qmtbus.config import Config, GatewayConfig, SimConfig, XtQuantConfig
from qmtbus.gateway.broker import BrokerUnavailable, Instrument, open_broker
from qmtbus.gateway.broker.sessions import SessionIds
from qmtbus.gateway.broker.xtquant import release
from tests.gateway.sim_support import main_thread_loop
from tests.support import wait_for


@pytest.mark.skipif(sys.platform == "win32", reason="on Windows the real broker may open")
def test_given_broker_xtquant_off_windows_then_broker_unavailable_says_use_sim() -> None:
    config = Config(
        gateway=GatewayConfig(broker="xtquant"),
        xtquant=XtQuantConfig(userdata_mini="C:/QMT/userdata_mini"),
    )
    with pytest.raises(BrokerUnavailable) as raised:
        open_broker(config)
    assert str(raised.value) == (
        "the xtquant broker runs only on Windows next to a running miniQMT "
        '(xtquant.xttrader needs its Windows .pyd); use broker = "sim" here'
    )
    # The real native module is never loaded off Windows (the sim's may be, by other tests).
    assert getattr(sys.modules.get("xtquant.xtpythonclient"), "SIMULATED", True)


def test_given_default_config_then_open_broker_gives_the_simulator(tmp_path: Path) -> None:
    config = Config(
        gateway=GatewayConfig(data_dir=str(tmp_path)), sim=SimConfig(tick_interval=3600.0)
    )
    with main_thread_loop():
        _open_the_simulator(config, tmp_path)


def _open_the_simulator(config: Config, tmp_path: Path) -> None:
    broker = open_broker(config)
    try:
        assert broker.name == "sim"
        account = broker.account()
        assert (account.account_id, account.account_type) == ("SIM0001", 2)
        # From the instrument cache: loaded off the caller's thread, at the first ask.
        instrument = wait_for(lambda: broker.instrument("600000.SH"), 10, "instrument data")
        assert isinstance(instrument, Instrument)
        assert instrument.down_stop_price < instrument.last_price < instrument.up_stop_price
        assert instrument.price_tick == 0.01
        wait_for(lambda: broker.instrument("bogus") is None and broker.instrument_note("bogus"))
        assert broker.instrument_note("bogus") == "the broker does not know it"
        assert (tmp_path / "sim").is_dir()
        first, second = broker.new_session_id(), broker.new_session_id()
        assert first != second and min(first, second) >= config.xtquant.session_base
        trader = broker.new_trader(first)
        trader.start()
        assert trader.connect() == 0
        release(trader)
    finally:
        broker.close()


def test_session_ids_are_never_reused_and_avoid_live_sessions() -> None:
    ids = SessionIds(100_000)
    drawn = [ids.next() for _ in range(5000)]
    assert len(set(drawn)) == len(drawn)
    assert all(100_000 <= i < 2**31 - 1 for i in drawn)
    live = set(range(100_000, 100_010))
    small = SessionIds(100_000)
    small._span = 11  # a tiny range: only 100010 is free
    assert small.next(live) == 100_010
