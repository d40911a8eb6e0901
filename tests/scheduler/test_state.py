"""The scheduler's state file: each cron time is dealt with once, across restarts and crashes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from qmtbus.calendar import SHANGHAI
from qmtbus.scheduler.state import StateFile, StateLocked

T0 = dt.datetime(2026, 11, 24, 9, 0, tzinfo=SHANGHAI)
LAST_DAY = dt.date(2026, 12, 31)


def minutes(n: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


def fresh(path: Path, names: list[str] | None = None) -> StateFile:
    state = StateFile(path)
    state.begin(names or ["buy"], T0, LAST_DAY)
    return state


def test_given_a_cron_time_claimed_then_it_cannot_be_claimed_again_even_after_restart(tmp_path):
    path = tmp_path / "state.json"
    state = fresh(path)

    assert state.claim("buy", minutes(30), minutes(30))
    assert not state.claim("buy", minutes(30), minutes(30.1))
    restarted = StateFile(path)
    restarted.begin(["buy"], minutes(31), LAST_DAY)
    assert not restarted.claim("buy", minutes(30), minutes(31))
    assert restarted.claim("buy", minutes(60), minutes(60))


def test_given_new_job_then_cron_times_before_it_was_first_seen_are_not_its_to_run(tmp_path):
    state = fresh(tmp_path / "state.json")

    assert not state.claim("buy", minutes(-1), T0)
    assert state.handled_until("buy") == T0


def test_given_kill_during_a_run_then_restart_reports_it_interrupted_and_keeps_it_claimed(
    tmp_path,
):
    path = tmp_path / "state.json"
    state = fresh(path)
    state.claim("buy", minutes(30), minutes(30))
    # no finish(): the process died here

    restarted = StateFile(path)
    interrupted = restarted.begin(["buy"], minutes(30.5), LAST_DAY)

    assert [(name, run.scheduled_for, run.outcome) for name, run in interrupted] == [
        ("buy", minutes(30), "interrupted")
    ]
    assert not restarted.claim("buy", minutes(30), minutes(30.5))
    assert StateFile(path).begin(["buy"], minutes(31), LAST_DAY) == []  # reported once


def test_given_finished_and_next_runs_then_the_file_holds_the_keys_health_reads(tmp_path):
    path = tmp_path / "state.json"
    state = fresh(path, ["buy", "sell"])
    state.claim("buy", minutes(30), minutes(30))
    state.finish("buy", minutes(30), minutes(31), "error", "RuntimeError: no prices")
    state.set_next_run("buy", minutes(60), minutes(31))
    state.skip("sell", minutes(30), minutes(40), "the scheduler was not running")

    doc = json.loads(path.read_text())

    assert doc["version"] == 1
    assert doc["calendar"] == "XSHG" and doc["calendar_last_day"] == "2026-12-31"
    buy = doc["jobs"]["buy"]
    assert buy["last_run"] == {
        "scheduled_for": "2026-11-24T09:30:00+08:00",
        "started": "2026-11-24T09:30:00+08:00",
        "finished": "2026-11-24T09:31:00+08:00",
        "outcome": "error",
        "error": "RuntimeError: no prices",
    }
    assert buy["next_run"] == "2026-11-24T10:00:00+08:00"
    assert doc["jobs"]["sell"]["last_skipped"]["reason"] == "the scheduler was not running"
    assert doc["jobs"]["sell"]["last_run"] is None


def test_given_job_removed_from_config_then_its_state_is_forgotten(tmp_path):
    path = tmp_path / "state.json"
    fresh(path, ["buy", "sell"])

    fresh(path, ["buy"])

    assert list(json.loads(path.read_text())["jobs"]) == ["buy"]


def test_given_every_write_then_no_temporary_file_is_left_behind(tmp_path):
    state = fresh(tmp_path / "state.json")
    for n in range(5):
        state.claim("buy", minutes(n + 1), minutes(n + 1))

    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_given_unreadable_state_file_then_it_is_moved_aside_and_nothing_old_reruns(tmp_path):
    path = tmp_path / "state.json"
    path.write_text('{"jobs": {"buy": ')

    state = fresh(path)

    assert any(p.name.startswith("state.json.corrupt-") for p in tmp_path.iterdir())
    assert not state.claim("buy", minutes(-5), T0)


def test_given_a_second_scheduler_on_the_same_state_file_then_it_is_refused(tmp_path):
    path = tmp_path / "state.json"
    first = StateFile(path)
    first.lock()

    try:
        with pytest.raises(StateLocked, match="another scheduler is running"):
            StateFile(path).lock()
    finally:
        first.close()
    second = StateFile(path)
    second.lock()  # free again once the first let go
    second.close()
