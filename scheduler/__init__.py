"""qmtbus scheduler: the user's timed jobs on trading days, through the gateway client.

A job is a function `def my_job(ctx: JobContext) -> object` named in
`[[scheduler.jobs]]`; see docs/scheduler.md.
"""

from qmtbus.scheduler.context import JobContext

__all__ = ["JobContext"]
