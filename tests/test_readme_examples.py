"""Every shell and Python block of README.md runs as written against a running system.

The system is the real thing: gateway (on the simulator, its default market),
recorder and scheduler, started by tests/support.py on free ports. The blocks run
in a folder that looks like the repository to them: its `qmtbus.toml` is the
system's config (the only rewrite: the ports and paths) and `.venv` is this
interpreter's. Lines that set up or stop the whole installation (make, pip,
npm, supervisord) are the ones not run; everything else must exit 0.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT, Proc, Stack, start_gateway, wait_for

# Set-up and whole-system lines: they install, test or stop the installation itself.
NOT_RUN = (
    "make ",
    "python3 -m venv",
    "(cd clients/node",
    "git clone",
    ".venv/bin/pytest",
    ".venv/bin/supervisord",
    ".venv/bin/supervisorctl",
)
BLOCK = re.compile(r"^```(sh|python|js|console)\n(.*?)^```", re.S | re.M)
NODE = shutil.which("node")
NODE_DIR = ROOT / "clients" / "node"
# Pages whose Python blocks are whole programs (the rest show fragments of the code).
DOCS = ("docs/recorder.md",)


def blocks(kind: str, page: str = "README.md") -> list[tuple[int, str]]:
    text = (ROOT / page).read_text()
    return [
        (text.count("\n", 0, m.start()) + 1, m.group(2))
        for m in BLOCK.finditer(text)
        if m.group(1) == kind
    ]


def runnable(block: str) -> str:
    lines = [line for line in block.splitlines() if not line.strip().startswith(NOT_RUN)]
    return "\n".join(lines).strip()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The simulator's own defaults (the README's market), not the test suite's faster ticks.
    # the simulator's default book (a spread of one tick), as `make run` gives a newcomer
    stack = Stack(
        tmp_path_factory.mktemp("readme"), {"sim": {"tick_interval": 0.5, "spread_ticks": 1}}
    )
    stack.write_config(recorder={"snapshot_path": str(stack.data_dir / "qmtbus-snapshot.duckdb")})
    (stack.dir / ".venv").symlink_to(Path(sys.executable).parent.parent)
    gateway = start_gateway(stack)
    recorder = Proc("recorder", stack).start()
    scheduler = Proc("scheduler", stack).start()
    procs = [scheduler, recorder, gateway]
    try:
        wait_for(
            lambda: Path(stack.dir / "data" / "scheduler-state.json").exists(),
            30,
            "the scheduler's state file",
        )
        snapshot = stack.data_dir / "qmtbus-snapshot.duckdb"
        wait_for(snapshot.exists, 30, "the recorder's snapshot")
        yield stack
    finally:
        for proc in procs:
            if proc.alive():
                proc.stop()


def run_block(stack: Stack, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a block to its end; what it left in the background (`tail ... &`) is ended then,
    and does not hold the block up (its output goes to files, not pipes)."""
    env = {k: v for k, v in os.environ.items() if k != "QMTBUS_CONFIG"}
    env["PATH"] = f"{stack.dir / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    out, err = stack.dir / "block.out", stack.dir / "block.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            argv,
            cwd=stack.dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # whatever the block left in the background ends with it
        )
        try:
            proc.wait(timeout=120)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
    return subprocess.CompletedProcess(argv, proc.returncode, out.read_text(), err.read_text())


SHELL_BLOCKS = [(line, runnable(b)) for line, b in blocks("sh") if runnable(b)]
DOCS_SHELL_BLOCKS = [
    (page, line, runnable(b))
    for page in ("docs/recorder.md", "docs/scheduler.md", "docs/quotes.md", "docs/operations.md")
    for line, b in blocks("sh", page)
    if runnable(b)
]
# `console` blocks show a session: the `$ ` lines are the commands, the rest their output.
DOCS_SHELL_BLOCKS += [
    (page, line, script)
    for page in ("docs/operations.md",)
    for line, b in blocks("console", page)
    if (script := runnable("\n".join(x[2:] for x in b.splitlines() if x.startswith("$ "))))
]


@pytest.mark.parametrize(
    ("page", "line", "script"),
    [("README.md", line, b) for line, b in SHELL_BLOCKS] + DOCS_SHELL_BLOCKS,
    ids=lambda v: str(v)[:20],
)
def test_given_a_running_system_then_each_shell_block_runs_as_written(
    system: Stack, page: str, line: int, script: str
) -> None:
    done = run_block(system, ["bash", "-e", "-x", "-o", "pipefail", "-c", script])
    assert done.returncode == 0, f"{page} line {line}:\n{done.stderr}\n{done.stdout}"
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize(("line", "block"), blocks("python"), ids=lambda v: str(v)[:12])
def test_given_a_running_system_then_each_readme_python_block_runs_as_written(
    system: Stack, line: int, block: str
) -> None:
    script = system.dir / f"readme_{line}.py"
    script.write_text(block)
    done = run_block(system, [sys.executable, str(script)])
    assert done.returncode == 0, f"README line {line}:\n{done.stderr}\n{done.stdout}"
    assert done.stdout.strip(), "the example printed nothing"


def test_given_the_readme_then_it_has_shell_and_python_examples_to_run() -> None:
    assert len(SHELL_BLOCKS) >= 3 and len(blocks("python")) >= 1
    assert all("10.50" not in b for _, b in blocks("sh") + blocks("python"))


def node_ports(stack: Stack, script: str) -> str:
    """The Node README's blocks with this system's addresses (the only rewrite), and its
    `./qmtbus.js` found from anywhere."""
    for default, address in (
        ("tcp://127.0.0.1:7101", stack.events_address),
        ("tcp://127.0.0.1:7102", stack.commands_address),
    ):
        script = script.replace(default, address)
    script = script.replace(
        "new Gateway()", f'new Gateway({{ address: "{stack.commands_address}" }})'
    )
    script = script.replace(
        "new QuoteStream({ ", f'new QuoteStream({{ quotesAddress: "{stack.quotes_address}", '
    )
    return script.replace('"./qmtbus.js"', f'"{(NODE_DIR / "qmtbus.js").as_uri()}"')


@pytest.mark.skipif(NODE is None, reason="node is not installed (clients/node needs Node 20+)")
@pytest.mark.parametrize(("line", "block"), blocks("js", "clients/node/README.md"), ids=str)
def test_given_a_running_system_then_each_node_readme_block_runs_as_written(
    system: Stack, line: int, block: str
) -> None:
    assert NODE is not None
    if not (NODE_DIR / "node_modules" / "zeromq").is_dir():
        pytest.skip("clients/node/node_modules is missing: `make node` installs it")
    script = system.dir / f"node_readme_{line}.mjs"
    script.write_text(node_ports(system, block))
    done = run_block(system, [NODE, str(script)])
    assert done.returncode == 0, f"clients/node/README.md line {line}:\n{done.stderr}"
    assert done.stdout.strip(), "the example printed nothing"


def test_given_a_running_system_then_the_example_strategy_as_the_node_readme_runs_it_fills(
    system: Stack,
) -> None:
    [(line, block)] = [(n, b) for n, b in blocks("sh", "clients/node/README.md") if "node " in b]
    command = runnable(block).splitlines()[0]
    assert command == "node example-strategy.js", f"clients/node/README.md line {line}"
    if NODE is None or not (NODE_DIR / "node_modules" / "zeromq").is_dir():
        pytest.skip("node or clients/node/node_modules is missing: `make node` installs it")
    env = {
        **os.environ,
        "QMTBUS_COMMANDS": system.commands_address,
        "QMTBUS_EVENTS": system.events_address,
        "QMTBUS_QUOTES": system.quotes_address,
    }
    done = subprocess.run(
        [NODE, "example-strategy.js"],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    assert '"order_status":56' in done.stdout


@pytest.mark.parametrize(
    ("page", "line", "block"),
    [(page, n, b) for page in DOCS for n, b in blocks("python", page)],
    ids=str,
)
def test_given_a_running_system_then_each_docs_python_block_runs_as_written(
    system: Stack, page: str, line: int, block: str
) -> None:
    script = system.dir / f"docs_{line}.py"
    script.write_text(block.replace("tcp://127.0.0.1:7103", system.query_address))
    done = run_block(system, [sys.executable, str(script)])
    assert done.returncode == 0, f"{page} line {line}:\n{done.stderr}"
    assert done.stdout.strip(), "the example printed nothing"
