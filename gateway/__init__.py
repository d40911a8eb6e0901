"""qmtbus gateway: the one process that holds the broker connection (python -m qmtbus.gateway)."""

from qmtbus.extras import require

require("gateway")  # without the server extra: one sentence, not an ImportError
