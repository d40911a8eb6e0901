"""qmtbus recorder: every event into DuckDB, and a SQL endpoint (python -m qmtbus.recorder)."""

from qmtbus.extras import require

require("recorder")  # without the server extra: one sentence, not an ImportError
