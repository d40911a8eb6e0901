"""SimTrader must match the real XtQuantTrader's methods, and call only its callback names.

xttrader.py is read as text and parsed: importing xtquant would run its update
check, and xtquant.xttrader does not import off Windows anyway.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from qmtbus.gateway.broker.sim import objects
from qmtbus.gateway.broker.sim.trader import SimTrader

METHODS = [
    "__init__",
    "register_callback",
    "start",
    "stop",
    "connect",
    "subscribe",
    "unsubscribe",
    "set_relaxed_response_order_enabled",
    "order_stock",
    "order_stock_async",
    "cancel_order_stock",
    "cancel_order_stock_async",
    "cancel_order_stock_sysid",
    "cancel_order_stock_sysid_async",
    "query_stock_asset",
    "query_stock_order",
    "query_stock_orders",
    "query_stock_trades",
    "query_stock_position",
    "query_stock_positions",
    "query_account_status",
]
SIM_DIR = Path(__file__).resolve().parents[2] / "gateway" / "broker" / "sim"


def _xttrader_classes() -> dict[str, ast.ClassDef]:
    had_xtquant = "xtquant" in sys.modules
    spec = importlib.util.find_spec("xtquant")
    assert spec is not None and spec.submodule_search_locations, "xtquant is not installed"
    assert ("xtquant" in sys.modules) == had_xtquant, "find_spec must not import xtquant"
    path = Path(next(iter(spec.submodule_search_locations))) / "xttrader.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def _methods(cls: ast.ClassDef) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}


def _real_signature(fn: ast.FunctionDef) -> list[tuple[str, Any]]:
    args = fn.args
    assert not args.posonlyargs and not args.kwonlyargs and not args.vararg and not args.kwarg
    names = [a.arg for a in args.args]
    defaults: list[Any] = [inspect.Parameter.empty] * (len(names) - len(args.defaults))
    defaults += [ast.literal_eval(d) for d in args.defaults]
    return list(zip(names, defaults, strict=True))


def _sim_signature(name: str) -> list[tuple[str, Any]]:
    parameters = inspect.signature(getattr(SimTrader, name)).parameters.values()
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters)
    return [(p.name, p.default) for p in parameters]


@pytest.mark.parametrize("name", METHODS)
def test_sim_trader_method_has_the_real_parameter_names_order_and_defaults(name: str) -> None:
    real = _methods(_xttrader_classes()["XtQuantTrader"])
    assert name in real, f"XtQuantTrader has no {name}: update METHODS"
    assert hasattr(SimTrader, name), f"SimTrader lacks {name}"
    assert _sim_signature(name) == _real_signature(real[name])


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
