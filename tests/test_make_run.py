"""`make run`: installs once (again only when pyproject.toml changes), so it starts offline;
Ctrl-C stops supervisord and everything under it, and make reports no "Interrupt".

The Makefile is the repository's own, run in a folder of its own with a real supervisord
(from this venv) supervising one program, so no qmtbus port is touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, wait_for

MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")

SUPERVISORD_CONF = """\
[supervisord]
nodaemon=true
logfile=%(here)s/logs/supervisord.log
pidfile=%(here)s/run/supervisord.pid
[unix_http_server]
file=%(here)s/run/supervisor.sock
[program:sleeper]
command=sleep 600
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder like the repository to make: its Makefile and pyproject.toml, a venv whose
    python and supervisord are this interpreter's."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "supervisord.conf").write_text(SUPERVISORD_CONF)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    real_bin = Path(sys.executable).parent
    for name in ("python", "supervisord", "pip"):
        (bin_dir / name).symlink_to(real_bin / name)
    return tmp_path


def dry_run(folder: Path) -> str:
    done = subprocess.run(
        [str(MAKE), "-n", "run"], cwd=folder, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_given_an_installed_venv_then_make_run_installs_nothing_until_pyproject_changes(
    folder: Path,
) -> None:
    assert "pip install" in dry_run(folder)  # never installed: install first
    stamp = folder / ".venv" / ".installed"
    stamp.touch()
    assert "pip install" not in dry_run(folder)  # installed: straight to supervisord
    later = stamp.stat().st_mtime + 10
    os.utime(folder / "pyproject.toml", (later, later))
    assert "pip install" in dry_run(folder)  # the dependencies changed: install again


def test_given_make_run_when_ctrl_c_then_everything_stops_and_make_reports_no_interrupt(
    folder: Path,
) -> None:
    (folder / ".venv" / ".installed").touch()
    with subprocess.Popen(
        [str(MAKE), "run"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    ) as make:
        log = folder / "logs" / "supervisord.log"
        wait_for(
            lambda: log.exists() and "sleeper entered RUNNING state" in log.read_text(),
            30,
            "supervisord to start its program",
        )
        os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground group
        out, _ = make.communicate(timeout=30)
    assert "Interrupt" not in out and "***" not in out, out
    assert "stopped: sleeper" in log.read_text()
    assert not (folder / "run" / "supervisord.pid").exists()
