"""qmtbus."""
