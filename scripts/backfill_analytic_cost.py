"""Add the analytic cost to result files written before the runner recorded it.

For every finished result under ``RESULTS/runs`` whose ``cost`` lacks ``analytic_flops``, the
task is rebuilt from its recorded ``task_config`` (the data root is read; nothing is trained)
and the method's networks are derived from its recorded hyper-parameters
(``UQMethod.inference_networks``); ``analytic_flops``, ``analytic_params`` and ``param_bytes``
are then written into the file. The analytic parameter count must equal the recorded,
measured one, otherwise the file is left as it is and reported: the derived networks would
not be the ones that ran. Cost micro-benchmark files (``RESULTS/cost/*.json``) get the analytic
FLOPs of each benchmarked network (``extra_info.flops``) from ``tests/test_cost_benchmark.py``.

    UQBENCH_DATA=/path/to/data python scripts/backfill_analytic_cost.py [RESULTS]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from uqbench import methods
from uqbench.bench import cost, results
from uqbench.bench.data.root import MissingData, data_root
from uqbench.bench.tasks import create_task, task_params


def _task(config: dict):
    name = config["task"]
    valid = set(task_params(name))
    return create_task(name, data_root(), **{k: v for k, v in config.items() if k in valid})


def backfill_timings(root: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.test_cost_benchmark import analytic_flops

    for path in sorted((root / "cost").glob("*.json")):
        data = json.loads(path.read_text())
        missing = [b for b in data["benchmarks"] if "flops" not in b["extra_info"]]
        for b in missing:
            b["extra_info"]["flops"] = analytic_flops(b["params"]["scale"], b["params"]["name"])
        if missing:
            results.write_atomic(path, json.dumps(data, indent=4) + "\n")
            print(f"{path}: analytic FLOPs added to {len(missing)} benchmarks")


def main(root: Path) -> int:
    backfill_timings(root)
    tasks: dict[str, object] = {}
    failed = 0
    for path in sorted((root / "runs").rglob("*.json")):
        obj = results.read(path)
        if obj["status"] != "ok" or "analytic_flops" in obj["cost"]:
            continue
        key = json.dumps(obj["task_config"], sort_keys=True)
        try:
            if key not in tasks:
                tasks[key] = _task(obj["task_config"])
        except (MissingData, ValueError) as e:
            print(f"{path}: task not rebuilt ({e})")
            failed += 1
            continue
        task = tasks[key]
        params = dict(obj["params"])
        method = methods.create(params.pop("method"), **params)
        networks = method.inference_networks(task.backbone(obj["seed"]).config)
        dtype = getattr(torch, obj["cost"].get("dtype", "float32"))
        a = cost.analytic(networks, task.example_inputs(1), dtype)
        if a["analytic_params"] != obj["cost"]["params"]:
            print(f"{path}: analytic parameters {a['analytic_params']:.0f} != recorded {obj['cost']['params']:.0f}; left as is")
            failed += 1
            continue
        obj["cost"].update(a)
        results.write(path, obj)
        print(f"{path}: analytic_flops {a['analytic_flops']:.6g} (counted {obj['cost']['flops']:.6g})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "results")))
