"""Shared fixtures: a fresh Stack (ports, config, data dir) per test, processes cleaned up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Proc, Stack, Subscriber, start_gateway


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
