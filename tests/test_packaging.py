"""What `pip install qmtbus` gets: one top-level package, typed, and the client's two
dependencies alone; the processes behind the `server` extra, which they name when missing."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import msgspec
import pytest

from qmtbus import extras
from tests.support import ROOT

SOURCES = ("pyproject.toml", "README.md", "clients/qmtbus", "gateway", "recorder", "scheduler")


def test_given_the_wheel_built_then_its_only_top_level_package_is_qmtbus_with_py_typed(
    tmp_path: Path,
) -> None:
    # a copy, so the build leaves no build/ or egg-info in the repo
    source = tmp_path / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "node_modules")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, source / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path / "dist")],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("qmtbus-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"qmtbus"}
    assert "qmtbus/py.typed" in names
    for room in ("gateway", "recorder", "scheduler"):
        assert f"qmtbus/{room}/__main__.py" in names


def test_given_pyproject_then_the_client_needs_msgspec_and_pyzmq_alone_and_test_brings_server() -> (
    None
):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert sorted(d.split(">")[0] for d in project["dependencies"]) == ["msgspec", "pyzmq"]
    server = " ".join(project["optional-dependencies"]["server"])
    for needed in ("xtquant", "duckdb", "supervisor", "apscheduler", "exchange-calendars"):
        assert needed in server
    assert "qmtbus[server]" in project["optional-dependencies"]["test"]
    # every module a process checks for is in the server extra (under its import name)
    for modules in extras.NEEDS.values():
        for module in modules:
            assert module.replace("_", "-") in server


def client_only(tmp_path: Path) -> Path:
    """A folder holding what `pip install qmtbus` installs: the qmtbus package (linked from
    the repo, laid out as in the wheel), msgspec and pyzmq; nothing of the server extra."""
    root = tmp_path / "site"
    package = root / "qmtbus"
    package.mkdir(parents=True)
    for entry in (ROOT / "clients" / "qmtbus").iterdir():
        (package / entry.name).symlink_to(entry)
    for room in ("gateway", "recorder", "scheduler"):
        (package / room).symlink_to(ROOT / room)
    site = Path(msgspec.__file__).parent.parent
    for name in ("msgspec", "zmq", "pyzmq.libs"):
        if (site / name).exists():
            (root / name).symlink_to(site / name)
    return root


def run_bare(site: Path, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`code` in a Python that sees only `site` (no site-packages: -S)."""
    return subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
    )


def test_given_only_msgspec_and_pyzmq_then_the_client_imports_and_the_duckdb_is_absent(
    tmp_path: Path,
) -> None:
    site = client_only(tmp_path)
    done = run_bare(
        site,
        "import importlib.util as u\n"
        "from qmtbus import Gateway, EventStream, AsyncGateway, protocol\n"
        "assert u.find_spec('duckdb') is None and u.find_spec('apscheduler') is None\n"
        "print(Gateway.__name__, EventStream.__name__)\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Gateway EventStream\n"


@pytest.mark.parametrize("process", ["gateway", "recorder", "scheduler", "watchdog"])
def test_given_a_process_started_without_the_server_extra_then_one_sentence_names_it(
    process: str, tmp_path: Path
) -> None:
    site = client_only(tmp_path)
    done = run_bare(
        site, f"import runpy; runpy.run_module('qmtbus.{process}', run_name='__main__')", tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"error: the qmtbus {process} needs {', '.join(extras.NEEDS[process])}, which the "
        "server extra installs: pip install 'qmtbus[server]'\n"
    )
