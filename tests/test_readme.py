"""The README's examples work: the example suite parses, and the three doors (your own model,
your own predictions, your own data) run as written, on the ``digits`` task and tiny data."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest
from test_tasks import make_image_tree, write_csv, write_images

from uqbench.bench import cli, results, suite

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(section: str) -> list[tuple[str, str]]:
    """``(language, code)`` of the fenced blocks under the README heading ``### section``."""
    text = README.read_text()
    start = text.index(f"\n### {section}\n")
    end = min(i for i in (text.find("\n## ", start + 1), text.find("\n### ", start + 1), len(text)) if i > 0)
    return re.findall(r"```(\w+)\n(.*?)```", text[start:end], flags=re.S)


def run_block(lang: str, code: str, monkeypatch, extra: dict[str, list[str]] | None = None) -> None:
    """Run a python block in-process, or each ``[VAR=value ...] python -m uqbench ...`` line of a
    bash block through the CLI (``extra`` appends arguments to a subcommand)."""
    if lang == "python":
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
        return
    if lang != "bash":
        return
    for line in code.splitlines():
        words = shlex.split(line.split("#")[0])
        while words and "=" in words[0]:
            monkeypatch.setenv(*words.pop(0).split("=", 1))
        assert words[:3] == ["python", "-m", "uqbench"], line
        args = words[3:] + (extra or {}).get(words[3], [])
        assert cli.main(args) == 0, line


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


def test_readme_own_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = blocks("Your own model")
    assert [lang for lang, _ in code] == ["python"]
    run_block(*code[0], monkeypatch)
    acc, auroc, latency = map(float, capsys.readouterr().out.split())
    obj = results.read(tmp_path / "results/runs/external/standard/digits/two-mlps/seed0.json")
    assert (acc, auroc, latency) == (obj["metrics"]["test/acc"], obj["metrics"]["ood_mean/auroc_msp"], obj["cost"]["latency_ms"])


def test_readme_own_predictions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = blocks("Your own predictions, from any framework")
    assert [lang for lang, _ in code] == ["bash", "python", "bash"]
    for lang, text in code:
        run_block(lang, text, monkeypatch)
    obj = results.read(tmp_path / "results/runs/external/standard/digits/my-model/seed0.json")
    assert obj["external"]["file"] == "preds.npz" and obj["cost"] == {"members": 1}
    assert "| `my-model` (external) | 1 |" in (tmp_path / "leaderboard.md").read_text()


@pytest.mark.slow
def test_readme_own_data(tmp_path, monkeypatch):
    """The worked suite on tiny data in its layout: one image task's single model trained, the
    text task's evaluation sets exported (run restricted to one task, method and seed)."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    make_image_tree(data / "leaves" / "train", ["oak", "elm"], 4, 12, seed=1)
    make_image_tree(data / "leaves" / "test", ["oak", "elm"], 2, 12, seed=2)
    write_images(data / "bark", 3, 12, seed=3)
    write_images(data / "sky", 3, 12, seed=4)
    rows = [[f"ticket {j}: my {'printer' if j % 2 else 'password'} is broken", "hw" if j % 2 else "it"] for j in range(6)]
    write_csv(data / "tickets" / "train.csv", ["body", "queue"], rows)
    write_csv(data / "tickets" / "test.csv", ["queue", "body"], [[q, b] for b, q in rows[:4]])
    write_csv(data / "tickets" / "spam.csv", ["body"], [["win a prize now"], ["cheap pills"]])
    (lang, toml), *rest = blocks("Your own data, no code")
    tiny = {"seeds = [0, 1, 2]": "seeds = [0, 1, 2]\nbatch_sizes = [1, 8]\ncost_repeats = 1",
            "image_size = 32\nepochs = 30": "image_size = 16\nepochs = 1\ndim = 24\ndepth = 1\nheads = 3"}
    for old, new in tiny.items():  # seconds-sized budgets
        assert old in toml
        toml = toml.replace(old, new)
    (tmp_path / "my-suite.toml").write_text(toml)
    assert [lang for lang, _ in rest] == ["bash"]
    run_block("bash", rest[0][1].replace("/path/to/my/data", str(data)), monkeypatch,
              extra={"run": ["--tasks", "leaves", "--methods", "single", "--seeds", "0"]})
    assert results.read(tmp_path / "results/runs/my-suite/leaves/single/seed0.json")["metrics"]["test/acc"] >= 0
    manifest = json.loads((tmp_path / "tickets-sets/manifest.json").read_text())
    assert [s["key"] for s in manifest["sets"]] == ["test", "ood/spam"] and manifest["num_classes"] == 2
    import numpy as np

    with np.load(tmp_path / "tickets-sets/test.npz") as z:
        assert "printer is broken" in " ".join(z["text"]) and z["input_ids"].shape[0] == 4
