"""`python -m qmtbus`: the qmtbus CLI."""

from qmtbus.cli import main

raise SystemExit(main())
