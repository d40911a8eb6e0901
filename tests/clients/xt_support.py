"""Helpers of the `qmtbus xt run` tests: a script run as a real subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

from tests.support import Stack, wait_for

# seed 351 opens 600000.SH at 10.81: xtquant's demo buys at 10.50, inside the day's
# limits and the fat-finger band, and rests unfilled
SEED = 351
SIM = {"seed": SEED, "volatility": 0.0, "quote_interval": 0.05}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


XT_RUN = (sys.executable, "-m", "qmtbus.xt", "run")
QMTBUS_XT_RUN = (sys.executable, "-m", "qmtbus", "xt", "run")  # the `qmtbus xt run` command
PLAIN = (sys.executable,)  # a script that calls qmtbus.xt.install() itself


class Script:
    """`python -m qmtbus.xt run <script>` (or `launcher`) as a subprocess, its output
    collected line by line."""

    def __init__(
        self,
        stack: Stack,
        script: Path,
        *args: str,
        env: dict[str, str] | None = None,
        launcher: tuple[str, ...] = XT_RUN,
    ):
        self.lines: list[str] = []
        self.popen = subprocess.Popen(
            [*launcher, str(script), *args],
            cwd=stack.dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "QMTBUS_CONFIG": str(stack.config_path),
                "PYTHONUNBUFFERED": "1",
                **(env or {}),
            },
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_line(self, text: str, timeout: float = 60.0) -> int:
        """Index of the first line equal to `text` (or containing it)."""

        def found() -> int | None:
            for i, line in enumerate(self.lines):
                if line == text or text in line:
                    return i
            if self.popen.poll() is not None:
                raise AssertionError(f"script exited {self.popen.returncode}:\n{self.output}")
            return None

        return int(wait_for(lambda: found() is not None, timeout, text) and found())  # type: ignore[arg-type]

    def wait_word(self, word: str, what: str, timeout: float = 60.0) -> None:
        """Until `word` is in the output as a word of its own. A callback's
        print(a, b, c) on xtquant's push thread writes each piece on its own, and under load
        the script's main-thread prints fall between them, as on miniQMT: its line cannot
        be looked for whole."""
        alone = re.compile(rf"(?<!\S){re.escape(word)}(?!\S)")
        wait_for(lambda: alone.search(self.output), timeout, what)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._reader.join(5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
