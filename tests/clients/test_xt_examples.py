"""examples/xtquant_demo.py is xtquant's own demo, as the installed package's doc gives it,
with only the miniQMT path and the account id edited."""

from __future__ import annotations

from pathlib import Path

from qmtbus.xtimport import import_xtquant
from tests.clients.xt_support import EXAMPLES


def the_docs_demo() -> list[str]:
    doc = Path(import_xtquant().__file__).parent / "doc" / "xttrader.md"  # type: ignore[arg-type]
    text = doc.read_text(encoding="utf-8").replace("\r\n", "\n")
    start = text.index("```Python\n#coding=utf-8", text.index("### 创建策略"))
    body = text[start + len("```Python\n") :]
    return body[: body.index("```")].splitlines()


def test_given_the_demo_in_examples_then_only_the_path_and_the_account_differ_from_xtquants() -> (
    None
):
    ours = (EXAMPLES / "xtquant_demo.py").read_text(encoding="utf-8").splitlines()
    theirs = the_docs_demo()
    assert len(ours) == len(theirs)
    edited = [(a, b) for a, b in zip(theirs, ours, strict=True) if a != b]
    assert [b.split("#")[0].strip() for _, b in edited] == [
        "path = 'userdata_mini'",
        "acc = StockAccount('SIM0001')",
    ]
    assert [a.split("=")[0].strip() for a, _ in edited] == ["path", "acc"]
