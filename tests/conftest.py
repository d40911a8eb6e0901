"""Shared fixtures: a fresh Stack (ports, config, data dir) per test, processes cleaned up.

Two tiers: a test that starts a process (a qmtbus process, supervisord, node, any
subprocess), itself or through a fixture or helper, is marked `process` here at
collection; the rest is the unit tier (`pytest -m "not process"`, `make test-fast`).
In the unit tier a test that starts a process anyway fails and says where it belongs.
"""

from __future__ import annotations

import inspect
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Proc, Stack, Subscriber, start_gateway

# What starting a process looks like in this suite's source.
_STARTS = re.compile(r"\b(Proc|Supervised|Popen|start_gateway|start_recorder|subprocess\.run)\(")


def _starts_processes(obj: Any, seen: dict[int, bool]) -> bool:
    """True if `obj` (a function or class of the test suite) starts a process, directly or
    through a function, fixture or class of the suite that it uses."""
    key = id(obj)
    if key in seen:
        return seen[key]
    seen[key] = False
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):
        return False
    if _STARTS.search(source):
        seen[key] = True
        return True
    module = inspect.getmodule(obj)
    names = set(re.findall(r"\b[A-Za-z_]\w*\b", source))
    for name in names:
        used = getattr(module, name, None)
        own = getattr(used, "__module__", "") or ""
        ours = (inspect.isfunction(used) or inspect.isclass(used)) and own.startswith("tests")
        if ours and used is not obj and _starts_processes(used, seen):
            seen[key] = True
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    seen: dict[int, bool] = {}
    for item in items:
        if item.get_closest_marker("process") is not None:
            continue
        function: Callable[..., Any] | None = getattr(item, "function", None)
        info = getattr(item, "_fixtureinfo", None)
        fixtures = [
            d.func for defs in (info.name2fixturedefs.values() if info else ()) for d in defs
        ]
        candidates = [function, *fixtures] if function is not None else fixtures
        if any(_starts_processes(c, seen) for c in candidates):
            item.add_marker(pytest.mark.process)


@pytest.fixture(autouse=True)
def _no_process_left_running(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """A process a test starts is gone when the test is: one left running is killed and
    fails the test that left it (dropped, it would fail a later test with a ResourceWarning
    from its Popen, far from the cause). Fixtures of wider scope start theirs before this."""
    started: list[subprocess.Popen[Any]] = []
    init = subprocess.Popen.__init__

    def tracked(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        started.append(self)

    monkeypatch.setattr(subprocess.Popen, "__init__", tracked)
    yield
    left = [proc for proc in started if proc.poll() is None]
    for proc in left:  # asked first: a supervisord stops the programs it runs
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    if left:
        names = "; ".join(str(proc.args) for proc in left)
        pytest.fail(f"{request.node.nodeid} left running: {names}")


@pytest.fixture(autouse=True)
def _unit_tier_starts_no_process(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a run without the process tier, a test that starts a process fails at once."""
    if "not process" not in (request.config.getoption("markexpr") or ""):
        return
    if request.node.get_closest_marker("process") is not None:
        return

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(
            f"{request.node.nodeid} starts a process: mark it @pytest.mark.process "
            "(tests/conftest.py did not see it)"
        )

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(tmp_path)


@pytest.fixture
def gateway(stack: Stack) -> Iterator[Proc]:
    """A real gateway process on the simulator, ready."""
    proc = start_gateway(stack)
    yield proc
    if proc.alive():
        proc.stop()


@pytest.fixture
def events(stack: Stack) -> Iterator[Subscriber]:
    """A raw SUB on the stack's event address (connect before the gateway starts to see all)."""
    sub = Subscriber(lambda: stack.events_address)
    yield sub
    sub.close()
