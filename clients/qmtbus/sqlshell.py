"""`qmtbus duckdb`: an SQL shell on the recorder's snapshot, with the installed duckdb package.

The recorder holds its own DuckDB file for writing, and DuckDB locks everyone else
out; the snapshot is a copy it refreshes every few seconds for analysts. A
`duckdb` command of another major version cannot read the file, so the shell
uses the duckdb Python package that qmtbus itself installed. Each statement
opens the snapshot afresh (read-only), so a query sees the latest copy.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, TextIO

from qmtbus import table

PROMPT, MORE = "qmtbus-snapshot> ", "             ...> "


def run_shell(path: Path, command: str | None, stdin: TextIO = sys.stdin) -> int:
    """Run `command`, or read statements (ending in `;`) until EOF or `.quit`. 0 ok, 1 an error."""
    duckdb = _duckdb()
    if not path.is_file():
        raise ValueError(
            f"no snapshot at {path}: the recorder writes it every recorder.snapshot_interval "
            "seconds once it runs (`make run`), or give the file"
        )
    if command is not None:
        return 0 if _run(duckdb, path, command) else 1
    interactive = stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
        print(f"DuckDB {duckdb.__version__} on {path} (read-only). End statements with ';'.")
        print("Tables: .tables   quit: .quit or Ctrl-D")
    buffer: list[str] = []
    while True:
        line = _read(PROMPT if not buffer else MORE, stdin, interactive)
        if line is None:
            return 0
        if not buffer and line.strip() in (".quit", ".exit"):
            return 0
        if not buffer and line.strip() == ".tables":
            _run(duckdb, path, "SELECT table_name, table_type FROM information_schema.tables")
            continue
        buffer.append(line)
        if line.rstrip().endswith(";"):
            _run(duckdb, path, "\n".join(buffer))
            buffer = []


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError:
        raise ValueError(
            "qmtbus duckdb needs the duckdb package: install qmtbus with it "
            "(`pip install -e .` in the repository)"
        ) from None
    return duckdb


def _read(prompt: str, stdin: TextIO, interactive: bool) -> str | None:
    try:
        if interactive:
            return input(prompt)
        line = stdin.readline()
        return line.rstrip("\n") if line else None
    except EOFError:
        return None


def _run(duckdb: Any, path: Path, sql: str) -> bool:
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            cursor = con.execute(sql)
            if cursor.description is None:
                return True
            columns = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
    except duckdb.Error as err:
        sys.stderr.write(f"error: {' '.join(str(err).split())}\n")
        return False
    print(table.table(columns, rows))
    return True
