"""Import xtquant without its network update check, once, for the gateway and the xt bridge.

`import xtquant` runs an update check (an HTTP request with a 10 s timeout) when
`requests` is importable. The package offers no switch, so it is imported here with
`requests` hidden (sys.modules["requests"] = None makes `import requests` raise
ImportError, which xtquant's __init__ swallows); the previous entry is put back at once.
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType

# said by every program that needs xtquant when it is not installed
MISSING = "xtquant is not installed; install it with pip install 'qmtbus[xt]'"

lock = threading.RLock()  # also held by callers that load xttrader over a native module


def import_xtquant() -> ModuleType:
    """The xtquant package, imported without its network update check."""
    with lock:
        if "xtquant" in sys.modules:
            return sys.modules["xtquant"]
        missing = object()
        saved = sys.modules.get("requests", missing)
        sys.modules["requests"] = None  # type: ignore[assignment]
        try:
            return importlib.import_module("xtquant")
        finally:
            if saved is missing:
                del sys.modules["requests"]
            else:
                sys.modules["requests"] = saved  # type: ignore[assignment]
