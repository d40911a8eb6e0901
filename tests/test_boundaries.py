"""The rooms of the code base and who may import whom (README, folder table; docs/internals.md).

`qmtbus` (clients/qmtbus: protocol, config, file formats, client, CLI) imports none of the
processes; each process (`qmtbus.gateway`, `qmtbus.recorder`, `qmtbus.scheduler`) imports
the core and never another process; nothing imports the old top-level names.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

ROOMS = {
    "qmtbus": ROOT / "clients" / "qmtbus",
    "qmtbus.gateway": ROOT / "gateway",
    "qmtbus.recorder": ROOT / "recorder",
    "qmtbus.scheduler": ROOT / "scheduler",
}
PROCESSES = ("qmtbus.gateway", "qmtbus.recorder", "qmtbus.scheduler")
OLD_NAMES = ("gateway", "recorder", "scheduler")


def _module_name(room: str, path: Path) -> str:
    parts = list(path.relative_to(ROOMS[room]).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([room, *parts])


def imports(path: Path, module: str | None) -> set[str]:
    """Every module `path` (module `module`) imports, with relative imports made absolute
    (left out when `module` is None)."""
    found: set[str] = set()
    package = "" if module is None else module
    if module is not None and path.name != "__init__.py":
        package = module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and module is None:
                continue
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def room_of(module: str) -> str | None:
    """The room a module name lies in (the longest matching room name)."""
    rooms = [r for r in ROOMS if module == r or module.startswith(r + ".")]
    return max(rooms, key=len) if rooms else None


def crossings() -> list[str]:
    """`file: imports X` for every import that leaves its room where it may not."""
    bad = []
    for room, folder in ROOMS.items():
        for path in sorted(folder.rglob("*.py")):
            for name in imports(path, _module_name(room, path)):
                target = room_of(name)
                if target is None or target == room or target == "qmtbus":
                    continue
                # the core imports no process; a process imports no other process
                bad.append(f"{path.relative_to(ROOT)}: imports {name}")
    return bad


def test_given_the_rooms_then_no_process_imports_another_and_the_core_imports_none() -> None:
    assert crossings() == []


def test_given_a_gateway_module_importing_the_recorder_then_the_check_sees_it(
    tmp_path: Path,
) -> None:
    # the check itself can fail: a relative and an absolute import across rooms
    fake = tmp_path / "orders.py"
    fake.write_text("from ..recorder import writer\nimport qmtbus.scheduler.jobs\n")
    found = imports(fake, "qmtbus.gateway.orders")
    assert {room_of(n) for n in found} >= {"qmtbus.recorder", "qmtbus.scheduler"}


@pytest.mark.parametrize("process", PROCESSES)
def test_given_a_process_imported_then_the_client_facade_stays_unloaded(process: str) -> None:
    # every module of the process's room, as its running process may load them
    modules = sorted(
        _module_name(process, path)
        for path in ROOMS[process].rglob("*.py")
        if path.name != "__main__.py" or path.parent == ROOMS[process]
    )
    main = f"{process}.__main__"
    code = (
        f"import importlib, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('qmtbus'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert main in loaded
    if process == "qmtbus.gateway":
        assert not loaded & {"qmtbus.client", "qmtbus.aio", "qmtbus.stream"}, loaded
    assert not loaded & (set(PROCESSES) - {process}), loaded


def python_files() -> list[Path]:
    """Every .py file of the repo, without virtual environments, node_modules and caches."""
    skip = {".venv", "node_modules", ".git", ".mypy-tree", "__pycache__", "data", "logs"}
    found = []
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in skip and not d.startswith(".")]
        found += [Path(folder) / n for n in names if n.endswith(".py")]
    return sorted(found)


def test_given_any_python_file_then_none_imports_the_old_top_level_names() -> None:
    bad = []
    for path in python_files():
        for name in imports(path, None):
            if name.split(".")[0] in OLD_NAMES:
                bad.append(f"{path.relative_to(ROOT)}: imports {name}")
    assert bad == []
