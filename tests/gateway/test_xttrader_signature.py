"""The gateway in sim mode runs xtquant's own XtQuantTrader, from the installed xttrader.py,
over the simulated native module, which provides everything xttrader.py asks of it.

xttrader.py is also read as text and parsed, to list what it asks of the native module.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from qmtbus.config import Config, GatewayConfig, SimConfig
from qmtbus.gateway.broker import open_broker
from qmtbus.gateway.broker.sim import native, objects
from qmtbus.gateway.broker.xtquant import release
from qmtbus.gateway.callbacks import Callbacks
from tests.gateway.sim_support import main_thread_loop

SIM_DIR = Path(__file__).resolve().parents[2] / "gateway" / "broker" / "sim"


def _xttrader_path() -> Path:
    spec = importlib.util.find_spec("xtquant")
    assert spec is not None and spec.submodule_search_locations, "xtquant is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "xttrader.py"


def _xttrader_tree() -> ast.Module:
    return ast.parse(_xttrader_path().read_text(encoding="utf-8"))


def _xttrader_classes() -> dict[str, ast.ClassDef]:
    tree = _xttrader_tree()
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def _attributes_of(owner: str) -> set[str]:
    """Every `<owner>.<name>` that xttrader.py reads (owner: _XTQC_ or async_client)."""
    found: set[str] = set()
    for node in ast.walk(_xttrader_tree()):
        if isinstance(node, ast.Attribute):
            base = node.value
            name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
            if name == owner:
                found.add(node.attr)
    return found


def _methods(cls: ast.ClassDef) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}


def test_given_broker_sim_then_the_gateways_trader_is_xtquants_own_xtquanttrader(
    tmp_path: Path,
) -> None:
    config = Config(
        gateway=GatewayConfig(data_dir=str(tmp_path)), sim=SimConfig(tick_interval=3600.0)
    )
    with main_thread_loop():
        broker = open_broker(config)
        try:
            from xtquant import xttrader

            trader = broker.new_trader(broker.new_session_id())
            assert type(trader) is xttrader.XtQuantTrader
            assert trader.__class__.__module__ == "xtquant.xttrader"
            # The installed file, unchanged, over the simulated native module.
            assert Path(inspect.getfile(xttrader)) == _xttrader_path()
            assert xttrader._XTQC_ is native and sys.modules["xtquant.xtpythonclient"] is native
            trader.start()
            release(trader)
        finally:
            broker.close()


def test_the_simulated_native_module_has_every_name_xttrader_uses() -> None:
    used = _attributes_of("_XTQC_")
    assert {"XtQuantAsyncClient", "OrderStockReq", "CancelOrderStockReq"} <= used
    assert all(hasattr(native, name) for name in used), sorted(
        n for n in used if not hasattr(native, n)
    )
    client = native.XtQuantAsyncClient(b"/nowhere", "xtquant", 1)
    calls = _attributes_of("async_client")
    assert {"nextSeq", "setTimeout", "orderStockWithSeq", "bindOnStockOrderCallback"} <= calls
    assert all(callable(getattr(client, name)) for name in calls)


@pytest.mark.parametrize(
    "name",
    ["OrderStockReq", "CancelOrderStockReq", "QueryStockOrdersReq", "QueryStockPositionsReq"],
)
def test_every_field_xttrader_sets_on_a_served_request_exists_and_no_other(name: str) -> None:
    # Fields set on `req` in the functions that build this request: slots refuse any other.
    tree = _xttrader_tree()
    fields: set[str] = set()
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef):
            continue
        if f"_XTQC_.{name}()" not in ast.unparse(fn):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Attribute) and getattr(node.value, "id", "") == "req":
                fields.add(node.attr)
    assert fields, f"xttrader.py builds no {name}"
    req = getattr(native, name)()
    for field in fields:
        setattr(req, field, getattr(req, field))
    with pytest.raises(AttributeError):
        req.m_strNoSuchField = ""


def test_the_gateways_callback_has_every_method_of_xtquanttradercallback() -> None:
    methods = set(_methods(_xttrader_classes()["XtQuantTraderCallback"]))
    assert methods <= set(dir(Callbacks))


def test_the_simulator_calls_only_callbacks_that_xtquant_trader_callback_defines() -> None:
    callback_methods = set(_methods(_xttrader_classes()["XtQuantTraderCallback"]))
    pushed = set(objects.PUSHED_CALLBACKS)
    assert pushed <= callback_methods
    assert "on_connected" in callback_methods and "on_connected" not in pushed

    used: set[str] = set()
    for source in SIM_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if is_text and re.fullmatch(r"on_[a-z_]+", node.value):
                used.add(node.value)
    assert used - {"on_connected"} == pushed, "every callback name the simulator uses is listed"
    assert used <= callback_methods


def test_importing_xtquant_makes_no_update_check_even_with_requests_installed() -> None:
    # A fresh interpreter whose `requests` records every call: xtquant's __init__ would call
    # requests.get("https://pypi.org/...") on import.
    script = (
        "import sys, types\n"
        "calls = []\n"
        "fake = types.ModuleType('requests')\n"
        "fake.get = lambda *a, **k: calls.append(a)\n"
        "sys.modules['requests'] = fake\n"
        "from qmtbus.xtimport import import_xtquant\n"
        "package = import_xtquant()\n"
        "assert sys.modules['requests'] is fake\n"
        "print(package.__version__, len(calls))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["xtquant_250807", "0"]


def test_given_xttrader_already_loaded_over_the_real_pyd_then_the_simulator_refuses_it() -> None:
    # On Windows the .pyd exists: if xttrader were already loaded over it, sim mode must not
    # quietly drive the real miniQMT. A fresh interpreter stands in for that process.
    script = (
        "import sys, types\n"
        "from qmtbus.gateway.broker import BrokerUnavailable\n"
        "from qmtbus.gateway.broker.sim import native\n"
        "from qmtbus.gateway.broker.xtload import load_xttrader\n"
        "from qmtbus.xtimport import import_xtquant\n"
        "import_xtquant()\n"
        "real = types.ModuleType('xtquant.xttrader')\n"
        "real._XTQC_ = types.ModuleType('xtquant.xtpythonclient')  # the .pyd\n"
        "sys.modules['xtquant.xttrader'] = real\n"
        "try:\n"
        "    load_xttrader(native)\n"
        "except BrokerUnavailable as err:\n"
        "    print(err)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "xtquant.xttrader is already loaded over the real miniQMT client in this process; "
        'run broker = "sim" in a process of its own'
    )
