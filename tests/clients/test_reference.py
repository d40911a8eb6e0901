"""The generated protocol reference and JSON Schema: never stale, complete, and correct."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from qmtbus import protocol as p
from qmtbus import reference
from tests.support import ROOT

DOCS = ROOT / "docs"
ALL_MESSAGES = tuple(
    dict.fromkeys(
        (
            *p.COMMAND_TYPES,
            *p.REPLY_TYPES,
            *p.EVENT_TYPES,
            *reference.RECORDER_COMMAND_TYPES,
            *reference.RECORDER_REPLY_TYPES,
        )
    )
)


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return reference.generate()


@pytest.fixture(scope="module")
def schema(generated: dict[str, str]) -> dict[str, Any]:
    return dict(json.loads(generated[reference.SCHEMA_FILE]))


# ---------------------------------------------------------------- drift


@pytest.mark.parametrize("name", [reference.SCHEMA_FILE, reference.REFERENCE_FILE])
def test_checked_in_file_equals_what_the_protocol_types_generate(
    name: str, generated: dict[str, str]
) -> None:
    path = DOCS / name
    on_disk = path.read_text(encoding="utf-8") if path.exists() else ""
    assert on_disk == generated[name], (
        f"docs/{name} is stale: the protocol types changed; run python -m qmtbus.reference"
    )


def test_generation_is_deterministic(generated: dict[str, str]) -> None:
    assert reference.generate() == generated


def test_check_flag_exits_1_naming_the_stale_file_and_0_when_fresh(tmp_path: Path) -> None:
    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "qmtbus.reference", "--check", "--docs", str(tmp_path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    missing = check()
    assert missing.returncode == 1
    assert str(tmp_path / reference.SCHEMA_FILE) in missing.stderr
    assert "run python -m qmtbus.reference" in missing.stderr

    assert reference.main(["--docs", str(tmp_path)], write=lambda _: None) == 0
    assert check().returncode == 0

    stale = tmp_path / reference.REFERENCE_FILE
    stale.write_text(stale.read_text(encoding="utf-8") + "hand edit\n", encoding="utf-8")
    result = check()
    assert result.returncode == 1
    assert f"{stale} is stale" in result.stderr
    assert reference.SCHEMA_FILE not in result.stderr


# ---------------------------------------------------------------- completeness


@pytest.mark.parametrize("cls", ALL_MESSAGES, ids=lambda c: c.__name__)
def test_every_message_type_appears_in_both_files(
    cls: type[Any], generated: dict[str, str], schema: dict[str, Any]
) -> None:
    tag = reference.tag(cls)
    assert cls.__name__ in schema["$defs"]
    assert schema["$defs"][cls.__name__]["properties"]["type"] == {"enum": [tag]}
    text = generated[reference.REFERENCE_FILE]
    assert f'<a id="{reference.anchor(cls)}"></a>' in text
    assert f'| `type` | `"{tag}"` | required |' in text
    for field in msgspec.structs.fields(cls):
        assert f"| `{field.encode_name}` |" in text


def test_schema_index_lists_each_role_with_every_type(schema: dict[str, Any]) -> None:
    index = schema["x-qmtbus"]
    assert index["protocol"] == p.PROTOCOL_VERSION
    tags = reference.tag
    assert set(index["commands"]) == {tags(c) for c in p.COMMAND_TYPES}
    assert set(index["replies"]) == {tags(c) for c in p.REPLY_TYPES}
    assert set(index["events"]) == {tags(c) for c in p.EVENT_TYPES}
    assert set(index["recorder_commands"]) == {tags(c) for c in reference.RECORDER_COMMAND_TYPES}
    assert index["commands"]["order"] == {
        "schema": "#/$defs/PlaceOrder",
        "reply": "#/$defs/OrderAck",
    }
    assert index["error_codes"] == list(reference.error_codes())


def test_every_command_names_its_reply() -> None:
    for command in (*p.COMMAND_TYPES, *reference.RECORDER_COMMAND_TYPES):
        assert reference.REPLY_OF[command] in (*p.REPLY_TYPES, *reference.RECORDER_REPLY_TYPES)


def test_every_error_code_and_xtquant_code_is_described(generated: dict[str, str]) -> None:
    text = generated[reference.REFERENCE_FILE]
    for code, note in reference.error_codes().items():
        assert note, f"describe error code {code} in qmtbus.reference.ERROR_NOTES"
        assert f"| `{code}` | {note} |" in text
    statuses = {v for k, v in vars(p).items() if k.startswith("ORDER_") and isinstance(v, int)}
    assert statuses == set(reference.ORDER_STATUS_NOTES)
    assert {p.FIX_PRICE, p.LATEST_PRICE, *p.MARKET_PRICE_TYPES} == set(reference.PRICE_TYPE_NOTES)
    assert {p.STOCK_BUY, p.STOCK_SELL} == set(reference.ORDER_TYPE_NOTES)
    assert "| 56 | filled — final |" in text


def test_reference_states_the_framing_rules(generated: dict[str, str]) -> None:
    text = generated[reference.REFERENCE_FILE]
    for rule in (
        "`[topic, payload]`",
        '`"<type>.<account_id>"`',
        "A request whose first byte is `{` is read as JSON",
        'sends `[b"", payload]`',
        "MessagePack",
    ):
        assert rule in text


# ---------------------------------------------------------------- examples


def _examples(text: str) -> dict[str, Any]:
    """anchor -> the JSON example under it."""
    found = re.findall(r'<a id="([^"]+)"></a>.*?```json\n(.*?)\n```', text, re.S)
    return {anchor: json.loads(body) for anchor, body in found}


@pytest.mark.parametrize("cls", ALL_MESSAGES, ids=lambda c: c.__name__)
def test_each_example_decodes_as_its_own_type(cls: type[Any], generated: dict[str, str]) -> None:
    examples = _examples(generated[reference.REFERENCE_FILE])
    data = examples[reference.anchor(cls)]
    assert data["type"] == reference.tag(cls)
    decoded = msgspec.json.decode(json.dumps(data), type=cls)
    assert msgspec.to_builtins(decoded) == data


def test_json_command_examples_pass_the_gateways_own_decoder(generated: dict[str, str]) -> None:
    examples = _examples(generated[reference.REFERENCE_FILE])
    for cls in p.COMMAND_TYPES:
        body = json.dumps(examples[reference.anchor(cls)]).encode()
        assert p.is_json(body)
        assert type(p.command_json_decoder.decode(body)) is cls


# ---------------------------------------------------------------- schema validates real messages


def _real_messages() -> list[tuple[str, Any]]:
    """(role, message) as the gateway and recorder really encode them."""
    order = p.Order(stock_code="600000.SH", order_id=7, order_status=p.ORDER_REPORTED)
    event = p.TradeEvent(
        account_id="SIM0001", epoch="e", seq=3, ts=p.now_ns(), traded_id="T1", traded_volume=100
    )
    return [
        ("commands", p.PlaceOrder(client_order_id="c1", stock_code="000001.SZ", order_type=24,
                                  order_volume=200, price=12.34)),
        ("commands", p.Replay(epoch="e", from_seq=1)),
        ("commands", p.PublishNote(topic="job.done", data={"n": 1, "ok": True, "x": [1.5]})),
        ("replies", p.Status(epoch="e", last_seq=9, state="ready")),
        ("replies", p.OrdersReply(orders=[order, order])),
        ("replies", p.ReplayReply(epoch="e", events=[event], last_seq=3, more=True)),
        ("replies", p.ErrorReply(code=p.RISK_DENIED, message="too big", rule="max_order_notional")),
        ("events", event),
        ("events", p.CancelErrorEvent(market="SH", error_id=-1)),
        ("events", p.HeartbeatEvent(seq=10, last_seq=9, state="disconnected")),
        ("recorder_replies", p.SqlResult(columns=["a"], types=["INTEGER"], rows=[[1], [None]])),
    ]  # fmt: skip


def _tag_ref(schema: dict[str, Any], role: str, tag: str) -> str:
    entry = schema["x-qmtbus"][role][tag]
    return str(entry["schema"] if isinstance(entry, dict) else entry)


@pytest.mark.parametrize("encoding", ["msgpack", "json"])
def test_schema_accepts_real_encoded_messages(schema: dict[str, Any], encoding: str) -> None:
    for role, message in _real_messages():
        if encoding == "msgpack":
            data = msgspec.msgpack.decode(p.encode(message))
        else:
            data = json.loads(p.encode(message, json=True))
        validate(data, schema, schema)
        validate(data, {"$ref": _tag_ref(schema, role, data["type"])}, schema)


@pytest.mark.parametrize(
    ("ref", "broken", "why"),
    [
        ("#/$defs/PlaceOrder", {"type": "order", "stock_code": "600000.SH"}, "required"),
        ("#/$defs/PlaceOrder", {"type": "order", "client_order_id": "c1",
         "stock_code": "600000.XX", "order_type": 23, "order_volume": 100}, "pattern"),
        ("#/$defs/PlaceOrder", {"type": "order", "client_order_id": "c1",
         "stock_code": "600000.SH", "order_type": 25, "order_volume": 100}, "enum"),
        ("#/$defs/Replay", {"type": "replay", "epoch": "e", "from_seq": 0}, "minimum"),
        ("#/$defs/TradeEvent", {"type": "trade", "traded_volume": "100"}, "type"),
        ("#/$defs/Ping", {"type": "pong"}, "enum"),
    ],
)  # fmt: skip
def test_schema_rejects_broken_messages(
    schema: dict[str, Any], ref: str, broken: dict[str, Any], why: str
) -> None:
    with pytest.raises(Invalid, match=why):
        validate(broken, {"$ref": ref}, schema)


# A validator for the keywords msgspec's schemas use; the `jsonschema` package, when installed,
# is used instead. Unknown keywords fail, so a new kind of schema is never passed unchecked.
class Invalid(AssertionError):
    pass


_ANNOTATIONS = {"title", "description", "default", "discriminator", "$schema", "x-qmtbus", "$defs"}
_TYPES = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "array": list,
    "object": dict,
    "null": type(None),
}


def validate(data: Any, node: dict[str, Any], root: dict[str, Any]) -> None:
    try:
        import jsonschema
    except ImportError:
        _validate(data, node, root, "$")
        return
    schema = {**node, "$defs": root["$defs"]}
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as err:
        raise Invalid(f"{err.validator}: {err.message}") from None


def _validate(data: Any, node: dict[str, Any], root: dict[str, Any], at: str) -> None:
    unknown = set(node) - _ANNOTATIONS - {
        "$ref", "anyOf", "type", "enum", "properties", "required", "items", "minimum",
        "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern",
        "additionalProperties",
    }  # fmt: skip
    if unknown:
        raise AssertionError(f"test validator does not know {sorted(unknown)}; extend it")
    if "$ref" in node:
        _validate(data, _resolve(node["$ref"], root), root, at)
    if "anyOf" in node:
        errors = []
        for option in node["anyOf"]:
            try:
                _validate(data, option, root, at)
                break
            except Invalid as err:
                errors.append(str(err))
        else:
            raise Invalid(f"{at}: matches no anyOf option: {errors}")
    if "type" in node:
        wanted = _TYPES[node["type"]]
        is_bool = isinstance(data, bool)
        if not isinstance(data, wanted) or (is_bool and node["type"] != "boolean"):
            raise Invalid(f"{at}: type {node['type']} wanted, got {data!r}")
    if "enum" in node and data not in node["enum"]:
        raise Invalid(f"{at}: enum {node['enum']} does not hold {data!r}")
    if "minimum" in node and data < node["minimum"]:
        raise Invalid(f"{at}: minimum {node['minimum']}, got {data}")
    if "maximum" in node and data > node["maximum"]:
        raise Invalid(f"{at}: maximum {node['maximum']}, got {data}")
    if "exclusiveMinimum" in node and data <= node["exclusiveMinimum"]:
        raise Invalid(f"{at}: exclusiveMinimum {node['exclusiveMinimum']}, got {data}")
    if "minLength" in node and len(data) < node["minLength"]:
        raise Invalid(f"{at}: minLength {node['minLength']}")
    if "maxLength" in node and len(data) > node["maxLength"]:
        raise Invalid(f"{at}: maxLength {node['maxLength']}")
    if "pattern" in node and not re.search(node["pattern"], data):
        raise Invalid(f"{at}: pattern {node['pattern']} does not match {data!r}")
    for name in node.get("required", []):
        if name not in data:
            raise Invalid(f"{at}: required field {name!r} missing")
    for name, sub in node.get("properties", {}).items():
        if name in data:
            _validate(data[name], sub, root, f"{at}.{name}")
    if "items" in node:
        for i, item in enumerate(data):
            _validate(item, node["items"], root, f"{at}[{i}]")


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    assert ref.startswith("#/$defs/"), ref
    return dict(root["$defs"][ref.removeprefix("#/$defs/")])
