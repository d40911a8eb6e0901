"""The README's configuration block is the real defaults: decoded, it equals Config()."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from qmtbus.config import Config, load_config
from tests.support import ROOT


def test_readme_configuration_block_states_the_built_in_defaults(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1]
    block = re.search(r"```toml\n(.*?)```", section, re.S)
    assert block, "README's Configuration section has no ```toml block"
    path = tmp_path / "readme.toml"
    path.write_text(block.group(1))
    stated = load_config(path)
    defaults = Config()
    raw = tomllib.loads(block.group(1))
    for name in ("gateway", "xtquant", "sim"):
        section = getattr(defaults, name)
        missing = set(section.__struct_fields__) - set(raw[name])
        assert not missing, f"README [{name}] does not state {sorted(missing)}"
        assert getattr(stated, name) == section, f"README [{name}] has drifted from the defaults"
