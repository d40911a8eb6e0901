"""Benchmarks of qmtbus next to the raw transport and vnpy.rpc (`python -m bench`)."""
