"""Unchanged xtquant scripts on the bus: xtquant's own XtQuantTrader over a gateway.

`install()` puts qmtbus.xt.native in sys.modules as `xtquant.xtpythonclient` (and
qmtbus.xt.xtdata as `xtquant.xtdata`) before anything imports xttrader.py, so a
script's `from xtquant.xttrader import XtQuantTrader` gets xtquant's own class,
unchanged, speaking to the gateway the config names. `qmtbus xt run script.py`
does this and then runs the script as __main__.
"""

from __future__ import annotations

import importlib
import os
import runpy
import sys
from collections.abc import Sequence

from qmtbus.config import Config, config_path, load_config
from qmtbus.xtimport import import_xtquant
from qmtbus.xtimport import lock as _lock

NATIVE = "xtquant.xtpythonclient"
GONE_AFTER_ENV = "QMTBUS_XT_GONE_AFTER"


def install(config: Config | str | os.PathLike[str] | None = None) -> None:
    """Make `xtquant.xttrader` and `xtquant.xtdata` speak to the gateway of `config` (a
    Config, a TOML path, or None: $QMTBUS_CONFIG, else the defaults). Call it before the
    script imports xtquant.xttrader; calling it again changes the gateway for new traders."""
    from qmtbus.xt import native, xtdata

    if not isinstance(config, Config):
        config = load_config(config_path(None if config is None else str(config)))
    native.CONFIG = config
    gone_after = os.environ.get(GONE_AFTER_ENV)
    if gone_after:
        native.GONE_AFTER = float(gone_after)
    xtdata.CONFIG = native.CONFIG
    package = import_xtquant()
    with _lock:
        loaded = sys.modules.get("xtquant.xttrader")
        if loaded is not None and getattr(loaded, "_XTQC_", None) is not native:
            raise RuntimeError(
                "xtquant.xttrader was imported before qmtbus.xt.install(): call install() "
                "first, or start the script with `qmtbus xt run script.py`"
            )
        sys.modules[NATIVE] = native
        setattr(package, "xtpythonclient", native)  # noqa: B010 - as the import would
        sys.modules["xtquant.xtdata"] = xtdata
        setattr(package, "xtdata", xtdata)  # noqa: B010
        importlib.import_module("xtquant.xttrader")


def run(script: str, args: Sequence[str], config: Config | str | None = None) -> None:
    """Run `script` as __main__ with `args` as its sys.argv[1:], over the bus."""
    if not os.path.isfile(script):
        raise FileNotFoundError(f"no script at {script}: give the path of a Python file")
    install(config)
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
