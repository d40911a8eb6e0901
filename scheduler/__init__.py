"""qmtbus scheduler: the user's timed jobs on trading days, through the gateway client.

A job is a function `def my_job(ctx: JobContext) -> object` named in
`[[scheduler.jobs]]`; see docs/scheduler.md.
"""

from qmtbus.extras import require

require("scheduler")  # without the server extra: one sentence, not an ImportError

from qmtbus.scheduler.context import JobContext  # noqa: E402

__all__ = ["JobContext"]
