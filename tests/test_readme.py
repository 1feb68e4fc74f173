"""The README's worked example suite is valid: it parses and passes the suite checks."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from uqbench.bench import suite

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_suite_loads(tmp_path):
    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no TOML example"
    path = tmp_path / "my-suite.toml"
    path.write_text(blocks[0])
    root = Path(os.environ["UQBENCH_DATA"])
    with pytest.raises(ValueError, match="train not found: .*leaves/train"):  # paths are checked on load
        suite.load(str(path))
    for folder in ("leaves/train", "leaves/test", "bark", "sky", "tickets"):
        (root / folder).mkdir(parents=True)
    for file in ("tickets/train.csv", "tickets/test.csv", "tickets/spam.csv"):
        (root / file).write_text("body,queue\n")
    s = suite.load(str(path))
    assert [t.kind for t in s.tasks] == ["imagefolder", "textcsv"]
    assert s.tasks[0].params["ood"] == {"bark": "bark", "sky": "sky"}
