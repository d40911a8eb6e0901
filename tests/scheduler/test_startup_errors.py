"""A bad job entry stops `python -m qmtbus.scheduler` before anything runs, with one sentence that
names the job and says what to fix (stderr `error: ...`, exit code 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from tests.support import ROOT, Stack

JOBS = "tests.scheduler.jobs_for_tests"


def start_scheduler(stack: Stack, *jobs: dict[str, Any], **scheduler: Any) -> tuple[int, str]:
    stack.write_config(scheduler={"jobs": list(jobs), **scheduler})
    done = subprocess.run(
        [sys.executable, "-m", "qmtbus.scheduler", "--config", str(stack.config_path)],
        cwd=stack.dir,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stderr


def job(name: str = "morning_buy", **values: Any) -> dict[str, Any]:
    return {"name": name, "cron": "30 9 * * 1-5", "callable": f"{JOBS}:mark", **values}


@pytest.mark.parametrize(
    ("entry", "sentence"),
    [
        (
            job(callable="tests.scheduler.no_such_module:run"),
            'scheduler job "morning_buy": cannot import module "tests.scheduler.no_such_module"',
        ),
        (
            job(callable=f"{JOBS}:no_such_function"),
            f'scheduler job "morning_buy": module "{JOBS}" has no attribute "no_such_function"',
        ),
        (
            job(callable=f"{JOBS}:NOT_A_FUNCTION"),
            f'scheduler job "morning_buy": "{JOBS}:NOT_A_FUNCTION" is not callable',
        ),
        (
            job(callable=f"{JOBS}:takes_two"),
            f'scheduler job "morning_buy": "{JOBS}:takes_two" must take exactly one argument',
        ),
        (
            job(callable=f"{JOBS}.mark"),
            'is not of the form "package.module:function"',
        ),
        (
            job(cron="30 9 * *"),
            'scheduler job "morning_buy": bad cron "30 9 * *" (it has 4 fields, not 5 or 6)',
        ),
        (
            job(cron="30 9 * * 1-8"),
            'scheduler job "morning_buy": bad cron "30 9 * * 1-8"',
        ),
        (
            job("pre_open_check"),
            'scheduler job name "pre_open_check" belongs to a built-in job',
        ),
    ],
    ids=[
        "unimportable_module",
        "missing_function",
        "not_callable",
        "wrong_parameters",
        "no_colon",
        "four_field_cron",
        "weekday_out_of_range",
        "builtin_name",
    ],
)
def test_given_bad_job_entry_then_start_up_stops_with_one_sentence_naming_it(
    stack, entry, sentence
):
    code, stderr = start_scheduler(stack, entry)

    assert code == 2, stderr
    assert stderr.startswith("error: "), stderr
    assert sentence in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr  # a sentence, not a traceback


def test_given_two_jobs_with_one_name_then_start_up_says_give_each_its_own(stack):
    code, stderr = start_scheduler(stack, job(), job(callable=f"{JOBS}:fail"))

    assert code == 2
    assert stderr.strip() == (
        'error: scheduler job name "morning_buy" is used twice; give each '
        "[[scheduler.jobs]] entry its own name"
    )


def test_given_bad_built_in_cron_then_start_up_names_the_setting(stack):
    code, stderr = start_scheduler(stack, pre_open_cron="20 9 * * * * *")

    assert code == 2
    assert stderr.startswith('error: scheduler.pre_open_cron: bad cron "20 9 * * * * *"')


def test_given_job_name_with_a_space_then_the_config_check_names_the_key(stack):
    code, stderr = start_scheduler(stack, job("morning buy"))

    assert code == 2
    assert stderr.startswith("error: config file ")
    assert "scheduler.jobs[0].name" in stderr


def test_given_disabled_job_with_bad_cron_then_it_is_still_checked(stack):
    # switching a job on later must not be the moment its typo is found; its module
    # is not imported though (it may not be installed yet)
    code, stderr = start_scheduler(stack, job(cron="30 9 * * 1-8", enabled=False))

    assert code == 2
    assert 'scheduler job "morning_buy": bad cron' in stderr
