"""Load the installed xtquant package's own xttrader.py, over the native module of our choice.

`xtquant.xttrader` drives the compiled `xtquant.xtpythonclient` (a Windows .pyd).
The simulator gives a pure-Python module of the same surface instead: it is put
in sys.modules as `xtquant.xtpythonclient` before xttrader.py is imported, so
the real file runs unchanged and its `from . import xtpythonclient` finds the
stand-in, never the .pyd, even on Windows where the .pyd exists. One process
holds one native module: asking for another once xttrader is loaded is refused.

xtquant itself is imported without its network update check
(`qmtbus.xtimport`).
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from qmtbus.gateway.broker import BrokerUnavailable
from qmtbus.xtimport import import_xtquant
from qmtbus.xtimport import lock as _lock

NATIVE = "xtquant.xtpythonclient"


def load_xttrader(native: ModuleType | None) -> ModuleType:
    """`xtquant.xttrader`, driving `native` (None: the installed .pyd).

    Raises BrokerUnavailable when xttrader is already loaded over another native module."""
    package = import_xtquant()
    with _lock:
        loaded = sys.modules.get("xtquant.xttrader")
        if loaded is None:
            if native is not None:
                sys.modules[NATIVE] = native
                setattr(package, "xtpythonclient", native)  # noqa: B010 - as the import would
            loaded = importlib.import_module("xtquant.xttrader")
        driving = getattr(loaded, "_XTQC_", None)
        if native is not None and driving is not native:
            raise BrokerUnavailable(
                "xtquant.xttrader is already loaded over the real miniQMT client in this "
                'process; run broker = "sim" in a process of its own'
            )
        if native is None and getattr(driving, "SIMULATED", False):
            raise BrokerUnavailable(
                "xtquant.xttrader is already loaded over the simulator in this process; "
                'run broker = "xtquant" in a process of its own'
            )
        return loaded
