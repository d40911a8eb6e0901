"""Recorder tests: no recorder process outlives its test, even a failed one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.recorder.helpers import STARTED


@pytest.fixture(autouse=True)
def _no_leftover_recorders() -> Iterator[None]:
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.alive():
            proc.kill()
