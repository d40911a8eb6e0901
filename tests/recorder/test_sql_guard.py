"""The SQL endpoint's guard, in-process on a real DuckDB file: what reads pass, what else
is refused and why (tests/test_security.py tries the same through a real recorder)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qmtbus import protocol
from qmtbus.recorder.query import run_sql
from qmtbus.recorder.snapshot import private_dir
from qmtbus.recorder.writer import Database


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    folder = tmp_path_factory.mktemp("guard")
    database = Database(str(folder / "r.duckdb"), private_dir(folder / "snapshot.duckdb"))
    database.setup()
    yield database
    database.close()


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT count(*) FROM events",
        "FROM orders_today",
        "WITH x AS (SELECT seq FROM events) SELECT * FROM x",
        "SHOW TABLES",
        "DESCRIBE events",
        "SUMMARIZE progress",
        "VALUES (1, 'a')",
        "EXPLAIN SELECT * FROM fills",
        "-- why\nEXPLAIN ANALYZE SELECT count(*) FROM events",
        "SELECT * FROM range(3)",
        "SELECT * FROM duckdb_tables()",
        "SELECT * FROM pragma_table_info('events')",
        "SELECT * FROM information_schema.columns",
    ],
)
def test_given_a_read_of_the_recorders_data_then_it_runs(db: Database, statement: str) -> None:
    assert isinstance(run_sql(db, statement, 10), protocol.SqlResult)


@pytest.mark.parametrize(
    ("statement", "why"),
    [
        ("SELECT * FROM read_text('keys/gateway.key_secret')", "read_text() is refused"),
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv() is refused"),
        ("SELECT * FROM read_blob('/etc/passwd')", "read_blob() is refused"),
        ("SELECT * FROM glob('/*')", "glob() is refused"),
        ("SELECT * FROM read_parquet('x.parquet')", "read_parquet() is refused"),
        ("SELECT * FROM sniff_csv('/etc/passwd')", "sniff_csv() is refused"),
        ("SELECT * FROM query('SELECT 1')", "query() is refused"),
        ("SELECT * FROM checkpoint()", "checkpoint() is refused"),
        ("SELECT (SELECT count(*) FROM read_text('/etc/passwd'))", "read_text() is refused"),
        ("SUMMARIZE SELECT * FROM read_text('/etc/passwd')", "read_text() is refused"),
        ("SELECT * FROM '/etc/passwd'", "names a file"),
        ("SELECT * FROM 'trades.csv'", "names a file"),
        ("DESCRIBE '/etc/passwd'", "names a file"),
        ("EXPLAIN ANALYZE COPY (SELECT 1) TO 'keys/allowed/evil.key'", "EXPLAIN of COPY"),
        ("EXPLAIN ANALYZE SET threads=1", "EXPLAIN of SET"),
        ("EXPLAIN ANALYZE CHECKPOINT", "EXPLAIN of CALL"),
        ("EXPLAIN /* x */ ANALYZE DELETE FROM events", "EXPLAIN [ANALYZE] takes one SELECT"),
        ("COPY events TO 'out.csv'", "COPY is refused"),
        ("SET threads = 1", "SET is refused"),
        ("PRAGMA threads = 1", "SET is refused"),
        ("INSTALL httpfs", "is refused"),
        ("LOAD httpfs", "LOAD is refused"),
        ("ATTACH 'other.duckdb'", "ATTACH is refused"),
        ("EXPORT DATABASE 'out'", "EXPORT is refused"),
        ("CHECKPOINT", "CALL is refused"),
        ("DELETE FROM events", "DELETE is refused"),
        ("SELECT 1; SELECT 2", "exactly one SQL statement"),
    ],
)
def test_given_anything_but_a_read_then_bad_request_says_why(
    db: Database, statement: str, why: str
) -> None:
    reply = run_sql(db, statement, 10)
    assert isinstance(reply, protocol.ErrorReply), reply
    assert reply.code == protocol.BAD_REQUEST
    assert why in reply.message
