"""Each attack of issue 16, tried through the real processes, and refused.

- The recorder's SQL endpoint (a real recorder on a real DuckDB file): reading the
  gateway's secret key, writing a key into the allow-list with EXPLAIN ANALYZE COPY,
  reading /etc/passwd, globbing /, settings and checkpoints through EXPLAIN ANALYZE.
  And beneath the statement check, the database itself cannot touch a file.
- Key material as ssh checks it: an allowed-clients folder or key file others can
  write stops the gateway and the recorder at start-up, naming the file and the chmod.
- Out-of-range numbers at a real gateway: BAD_REQUEST naming the field, before the risk
  gate counts anything (a one-order-a-day limit still lets the next good order through).
- A replay of an unknown epoch names only that epoch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import msgspec
import pytest

from qmtbus import RecorderClient, protocol
from qmtbus.errors import GatewayError
from qmtbus.gateway.broker.sim.ledger import read_ledger
from qmtbus.keys import main_new
from qmtbus.recorder.snapshot import Snapshotter, private_dir
from qmtbus.recorder.state import Committed
from qmtbus.recorder.writer import Database
from tests.gateway.conftest import CODE, price
from tests.recorder.helpers import STARTED, start_recorder, wait_caught_up
from tests.support import Proc, Stack, Subscriber, start_gateway, wait_for


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    # a still market: a limit order at price() passes every risk check
    return Stack(tmp_path, {"sim": {"volatility": 0.0}, "risk": {"max_orders_per_day": 1}})


@pytest.fixture(autouse=True)
def _no_leftover_recorders() -> Iterator[None]:
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.alive():
            proc.kill()


@pytest.fixture
def keys(stack: Stack) -> Path:
    """A gateway key pair and an allow-list folder, as `qmtbus keys new` makes them."""
    folder = stack.dir / "keys"
    assert main_new("gateway", folder) == 0
    assert main_new("alice", folder) == 0
    (folder / "allowed").mkdir(mode=0o755)
    (folder / "allowed" / "alice.key").write_bytes((folder / "alice.key").read_bytes())
    (folder / "allowed" / "alice.key").chmod(0o644)
    return folder


def _refused(client: RecorderClient, statement: str) -> str:
    """The BAD_REQUEST message `statement` gets; fails when it runs."""
    try:
        result = client.sql(statement)
    except GatewayError as err:
        assert err.code == protocol.BAD_REQUEST, err
        return err.message
    raise AssertionError(f"{statement!r} ran and returned {result.rows[:3]}")


# -- the SQL endpoint ------------------------------------------------------------------------


def test_given_the_issues_sql_attacks_then_each_is_refused_and_no_file_is_read_or_written(
    stack: Stack, gateway: Proc, keys: Path
) -> None:
    recorder = start_recorder(stack)
    wait_caught_up(stack)
    secret = keys / "gateway.key_secret"
    evil = keys / "allowed" / "evil.key"
    out = stack.dir / "out"
    alice_public = (keys / "alice.key").read_text().split('"')[1]
    attacks = [
        f"SELECT * FROM read_text('{secret}')",
        "SELECT * FROM read_text('keys/gateway.key_secret')",
        f"SELECT content FROM read_text('{secret}') UNION ALL SELECT 'x'",
        f"EXPLAIN ANALYZE COPY (SELECT 'public-key = \"{alice_public}\"') TO '{evil}' "
        "(HEADER false, QUOTE '')",
        f"COPY (SELECT 1) TO '{evil}'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_blob('/etc/passwd')",
        "SELECT * FROM glob('/*')",
        "EXPLAIN ANALYZE SET threads=1",
        "EXPLAIN ANALYZE CHECKPOINT",
        "SELECT * FROM checkpoint()",
        "SELECT * FROM read_parquet('/etc/passwd')",
        f"SELECT * FROM '{secret}'",
        f"DESCRIBE '{secret}'",
        "SELECT * FROM query('SELECT 1')",
        "WITH x AS (SELECT * FROM glob('/*')) SELECT * FROM x",
        "SELECT (SELECT count(*) FROM read_text('/etc/passwd'))",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "PRAGMA threads=1",
        "INSTALL httpfs",
        "LOAD httpfs",
        f"ATTACH '{out}.duckdb' AS other",
        f"EXPORT DATABASE '{out}'",
        "CHECKPOINT",
    ]
    with RecorderClient(stack.query_address, timeout=10, retries=0) as client:
        messages = {attack: _refused(client, attack) for attack in attacks}
        # what an analyst is there for still works
        assert client.sql("SELECT count(*) FROM events").rows[0][0] >= 1
        assert client.sql("EXPLAIN ANALYZE SELECT count(*) FROM events").rows
    assert "read_text() is refused" in messages[attacks[0]]
    assert "EXPLAIN of COPY is refused" in messages[attacks[3]]
    assert all("docs/recorder.md" in m for m in messages.values())
    secret_text = secret.read_text()
    assert not any(secret_text.split('"')[3] in m for m in messages.values())
    assert not evil.exists() and not out.exists() and not Path(f"{out}.duckdb").exists()
    assert recorder.stop() == 0


def test_given_the_recorder_running_then_its_snapshot_and_writer_still_work_locked_down(
    stack: Stack, gateway: Proc
) -> None:
    stack.write_config(recorder={"snapshot_interval": 0.3})
    recorder = start_recorder(stack)
    epoch, seq = wait_caught_up(stack)
    snapshot = Path(stack.config()["recorder"]["snapshot_path"])
    staging = private_dir(snapshot)

    def snapshot_has(want: int) -> bool:
        if not snapshot.exists():
            return False
        with duckdb.connect(str(snapshot), read_only=True) as con:
            got = con.execute("SELECT max(seq) FROM events WHERE epoch = ?", [epoch]).fetchall()
        return bool(got[0][0] and got[0][0] >= want)

    wait_for(lambda: snapshot_has(seq), 20, "a snapshot of what was recorded")
    assert staging.is_dir() and os.stat(staging).st_mode & 0o077 == 0
    assert recorder.stop() == 0


def test_given_the_database_itself_then_no_file_can_be_touched_even_without_the_check(
    tmp_path: Path,
) -> None:
    snapshot = tmp_path / "snapshot.duckdb"
    db = Database(str(tmp_path / "r.duckdb"), private_dir(snapshot))
    db.setup()
    (tmp_path / "secret.txt").write_text("s3cret")
    try:
        with db.cursor() as cur:
            for statement in [
                f"SELECT * FROM read_text('{tmp_path}/secret.txt')",
                f"COPY (SELECT 1) TO '{tmp_path}/out.csv'",
                f"ATTACH '{tmp_path}/other.duckdb'",
                "INSTALL httpfs",
            ]:
                with pytest.raises(duckdb.PermissionException):
                    cur.execute(statement)
            for setting in ("enable_external_access = true", "lock_configuration = false"):
                with pytest.raises(duckdb.InvalidInputException, match="locked"):
                    cur.execute(f"SET {setting}")
        assert not (tmp_path / "out.csv").exists()
        # the recorder's own work goes on: the snapshot goes through its private folder
        snapshots = Snapshotter(str(snapshot), 1.0, db, Committed(tmp_path / "status.json"))
        assert snapshots.refresh() and snapshot.exists()
    finally:
        db.close()


# -- key material -----------------------------------------------------------------------------


def _curve(stack: Stack, keys: Path) -> None:
    stack.write_config(
        security={
            "curve": True,
            "server_secret_key": str(keys / "gateway.key_secret"),
            "allowed_clients_dir": str(keys / "allowed"),
        }
    )


@pytest.mark.parametrize("process", ["gateway", "recorder"])
@pytest.mark.parametrize("loose", ["allowed", "allowed/alice.key"])
def test_given_an_allow_list_others_can_write_then_start_up_stops_naming_the_chmod(
    stack: Stack, keys: Path, process: str, loose: str
) -> None:
    _curve(stack, keys)
    target = keys / loose
    target.chmod(0o777 if target.is_dir() else 0o666)
    proc = Proc(process, stack).start()
    assert proc.wait_exit(30) == 2
    assert "is writable by group or others" in proc.log()
    assert f"run `chmod go-w {target}`" in proc.log()


def test_given_a_secret_key_others_can_read_then_the_gateway_does_not_start(
    stack: Stack, keys: Path
) -> None:
    _curve(stack, keys)
    (keys / "gateway.key_secret").chmod(0o644)
    proc = Proc("gateway", stack).start()
    assert proc.wait_exit(30) == 2
    assert f"run `chmod 600 {keys / 'gateway.key_secret'}`" in proc.log()


# -- fields at the edge -----------------------------------------------------------------------

GOOD = {
    "type": "order",
    "client_order_id": "sec-ok",
    "stock_code": CODE,
    "order_type": protocol.STOCK_BUY,
    "order_volume": 100,
    "price_type": protocol.FIX_PRICE,
}


def _json_order(**raw: str) -> bytes:
    """A JSON order whose `raw` fields are written as given: numbers of any size or form
    JSON allows (msgspec would refuse to encode most of them)."""
    body = {k: v for k, v in {**GOOD, "price": price()}.items() if k not in raw}
    head = msgspec.json.encode(body)[:-1].decode()
    return (head + "".join(f', "{k}": {v}' for k, v in raw.items()) + "}").encode()


OUT_OF_RANGE: list[tuple[bytes, str]] = [
    (_json_order(order_volume="100000000000000000000000"), "order_volume"),
    (_json_order(order_volume="1e23"), "order_volume"),
    (_json_order(order_volume=str(2**63)), "order_volume"),
    (_json_order(price_type=str(2**63)), "price_type"),
    (_json_order(price_type="0"), "price_type"),
    (_json_order(price_type="18"), "price_type"),  # a futures-only price type
    (_json_order(price="1e999"), "price"),
    (_json_order(price="-1e999"), "price"),
    (_json_order(price="0"), "price"),  # FIX_PRICE without a price
    (msgspec.msgpack.encode({**GOOD, "price": math.inf}), "price"),
    (msgspec.msgpack.encode({**GOOD, "price": math.nan}), "price"),
    (msgspec.msgpack.encode({**GOOD, "price": 1e23}), "price"),
    (msgspec.msgpack.encode({**GOOD, "price": price(), "order_volume": 2**64 - 1}), "order_volume"),
    (msgspec.msgpack.encode({"type": "cancel", "order_id": 2**63}), "order_id"),
    (b'{"type": "cancel", "order_id": 100000000000000000000000}', "order_id"),
    (msgspec.msgpack.encode({"type": "replay", "epoch": "e", "from_seq": 2**63}), "from_seq"),
    (b'{"type": "note", "topic": "t", "data": {"n": 100000000000000000000000}}', "data"),
]


def test_given_out_of_range_numbers_then_bad_request_names_the_field_before_the_risk_gate(
    stack: Stack, events: Subscriber
) -> None:
    gateway = start_gateway(stack)
    try:
        for payload, field in OUT_OF_RANGE:
            reply = stack.call(payload, timeout=5.0)
            assert isinstance(reply, protocol.ErrorReply), (payload, reply)
            assert reply.code == protocol.BAD_REQUEST, (payload, reply)
            assert f"`$.{field}`" in reply.message, (payload, reply.message)
        # risk.max_orders_per_day = 1 counted none of them: this one order still goes
        ack = stack.call(_json_order(), timeout=10.0)
        assert isinstance(ack, protocol.OrderAck) and ack.status == "accepted", ack
        assert [o["order_remark"] for o in read_ledger(stack.data_dir).orders_received] == [
            "sec-ok"
        ]
        assert not [e for e in events.drain(0.2) if isinstance(e, protocol.RiskDeniedEvent)]
        assert gateway.alive()
    finally:
        gateway.stop()


def test_given_a_replay_of_an_unknown_epoch_then_not_found_names_only_that_epoch(
    stack: Stack, gateway: Proc
) -> None:
    held = stack.call(protocol.GetStatus()).epoch
    reply = stack.call(protocol.Replay(epoch="no-such-epoch", from_seq=1))
    assert isinstance(reply, protocol.ErrorReply) and reply.code == protocol.NOT_FOUND
    assert "no-such-epoch" in reply.message
    assert held not in reply.message
