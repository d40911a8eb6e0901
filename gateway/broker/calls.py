"""Synchronous broker calls with a deadline.

xttrader's synchronous calls wait on a future for ever unless the native
client answers (set_timeout asks it to answer in time, but whether a stuck
terminal honours it is the terminal's business). Each call here runs on a
daemon thread of its own and is waited for `timeout` seconds; a call that
overruns raises BrokerTimeout and its thread is left behind, blocked on a
session the caller then drops. A daemon thread, not a pool: a stuck worker
must never hold up the process's exit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class BrokerTimeout(Exception):
    """The broker did not answer a synchronous call in time; str(err) names the call."""


def call_with_deadline(what: str, timeout: float, fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) on a thread of its own, waited for at most `timeout` seconds."""
    done = threading.Event()
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, fn(*args)))
        except BaseException as err:
            outcome.append((False, err))
        finally:
            done.set()

    threading.Thread(target=run, name=f"broker-call-{what}", daemon=True).start()
    if not done.wait(timeout):
        raise BrokerTimeout(f"{what}: no answer from the broker within {timeout:g} s")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value
