"""`qmtbus jobs`: each scheduler job, its next run, its last outcome and why a run was skipped.

Read from the config (the jobs and their cron) and the scheduler's state file
(scheduler.state_file, written by the running scheduler), so it works whether
or not the scheduler answers. A job in the config but not in the state file was
added after the scheduler started: the scheduler reads its jobs at start only.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import msgspec

from qmtbus import table
from qmtbus.config import Config

BUILTINS = (
    ("pre_open_check", "pre_open_check", "pre_open_cron"),
    ("after_close_snapshot", "after_close_snapshot", "after_close_cron"),
)
HEADERS = [
    "job",
    "cron",
    "days",
    "enabled",
    "next_run",
    "last_run",
    "outcome",
    "last_skipped",
    "note",
]


def job_rows(config: Config) -> tuple[Path, list[dict[str, Any]]]:
    """(the state file, one dict per configured job with what the scheduler knows of it)."""
    s = config.scheduler
    path = Path(s.state_file)
    try:
        state = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        state = None
    known: dict[str, Any] = (state or {}).get("jobs", {})
    # built-ins run on trading days only, like a job's default
    configured = [
        (name, getattr(s, cron), bool(getattr(s, on)), True) for name, on, cron in BUILTINS
    ]
    configured += [(j.name, j.cron, j.enabled, j.trading_days_only) for j in s.jobs]
    rows = []
    for name, cron, enabled, trading_days_only in configured:
        rec = known.get(name) or {}
        last, skipped = rec.get("last_run") or {}, rec.get("last_skipped") or {}
        note = rec.get("next_run_error", "")
        if state is not None and enabled and name not in known:
            note = "not in the running scheduler: restart it to pick up job changes"
        rows.append(
            {
                "job": name,
                "cron": cron,
                # why a cron time on a weekend or holiday never runs: "trading" days only
                "days": "trading" if trading_days_only else "all",
                "enabled": enabled,
                "next_run": rec.get("next_run"),
                "last_run": last.get("scheduled_for"),
                "outcome": last.get("outcome", "")
                + (f": {last['error']}" if last.get("error") else ""),
                "last_skipped": (
                    f"{_short(skipped['scheduled_for'])} {skipped['reason']}" if skipped else ""
                ),
                "note": note,
            }
        )
    return path, rows


def _short(iso: str | None) -> str:
    """`2026-12-07T09:35:00+08:00` → `2026-12-07 09:35` (Shanghai time, as the cron is)."""
    if not iso:
        return "-"
    try:
        return dt.datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def jobs_text(path: Path, rows: list[dict[str, Any]], state_found: bool) -> str:
    body = table.table(
        HEADERS,
        [
            [
                *(r["job"], r["cron"], r["days"], r["enabled"]),
                *(_short(r["next_run"]), _short(r["last_run"])),
                *(r["outcome"], r["last_skipped"], r["note"]),
            ]
            for r in rows
        ],
    )
    if not state_found:
        body += (
            f"\n(no scheduler state at {path}: the scheduler has not run with this config; "
            "next runs are shown once it starts)"
        )
    return body
