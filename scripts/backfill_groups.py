"""Add the leaderboard group to Packed-Ensembles results written before it was recorded.

Packed-Ensembles trains its own network from random weights. On a task whose backbone is
pretrained, the other methods start from that model, so its results carry
``extra.group = "trained from scratch"`` and the leaderboard shows them apart. For every such
result under ``RESULTS/runs`` without the field, the task is rebuilt from its recorded
``task_config`` (the data root is read; nothing is trained) and the field is written when the
task is pretrained. Metrics and every other field are left as they are.

    UQBENCH_DATA=/path/to/data python scripts/backfill_groups.py [RESULTS]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from uqbench.bench import results
from uqbench.bench.data.root import MissingData
from uqbench.methods.packed import GROUP, PackedEnsembles

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backfill_analytic_cost import _task  # noqa: E402


def main(root: Path) -> None:
    pretrained: dict[str, bool] = {}
    for path in sorted((root / "runs").rglob("seed*.json")):
        obj = results.read(path)
        if obj.get("status") != "ok" or obj["params"].get("method") != PackedEnsembles.name or "group" in obj["extra"]:
            continue
        key = json.dumps(obj["task_config"], sort_keys=True)
        if key not in pretrained:
            try:
                pretrained[key] = _task(obj["task_config"]).pretrained
            except MissingData as e:
                print(f"left {path}: {e}")
                continue
        if pretrained[key]:
            obj["extra"]["group"] = GROUP
            results.write(path, obj)
            print(f"grouped {path}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("results"))
