"""The disk as the recorder sees it: how much room is left, and what a full disk looks like."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path


def free_bytes(folder: Path) -> int:
    """Bytes free for this process on the disk that holds `folder`."""
    return shutil.disk_usage(folder).free


def disk_full(err: BaseException) -> bool:
    """True when `err` (an OSError, or DuckDB's text) says the disk or a quota is full."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(err).lower()
    return "no space left" in text or "disk quota" in text or "disk is full" in text
