"""Result files: one JSON per job, validated on write and on read, written atomically.

Layout: ``<results>/runs/<suite>/<task>/<method>/seed<k>.json`` with the member logits beside
it (``seed<k>.logits.npz``, float16), and ``<results>/runs/<suite>/<task>/skipped.json`` for a
task whose data or weights are missing. Entries scored from outside the suite's methods live
under ``<results>/runs/external/<suite>/<task>/<name>/`` and carry an ``external`` field.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

SCHEMA_VERSION = 1

# field -> type, for a finished job ("ok") and for a skipped task or job ("skipped")
_FIELDS_OK = {
    "schema": int, "status": str, "suite": str, "task": str, "method": str, "seed": int,
    "params": dict, "task_config": dict, "config_hash": str, "metrics": dict, "cost": dict,
    "wall": dict, "provenance": dict, "extra": dict, "logits": str,
}
_FIELDS_SKIPPED = {"schema": int, "status": str, "suite": str, "task": str, "reason": str, "provenance": dict}


class ResultError(ValueError):
    """A result file that is unreadable or does not match the schema."""


@dataclass(frozen=True)
class JobId:
    suite: str
    task: str
    method: str
    seed: int

    def path(self, root: Path) -> Path:
        return root / "runs" / self.suite / self.task / self.method / f"seed{self.seed}.json"


def skip_path(root: Path, suite: str, task: str, method: str | None = None) -> Path:
    base = root / "runs" / suite / task
    return (base / method if method else base) / "skipped.json"


def plan_path(root: Path, suite: str) -> Path:
    """What a suite asked of this results folder when it last ran (``suite.Suite.plan``)."""
    return Path(root) / "plans" / f"{suite}.json"


def write_plan(root: Path, plan: dict[str, Any]) -> None:
    write_atomic(plan_path(root, plan["suite"]), json.dumps(plan, indent=1) + "\n")


def read_plans(root: Path) -> dict[str, dict[str, Any]]:
    """Every suite's recorded plan, by suite name: the leaderboard reads these, never suite files."""
    out = {}
    for path in sorted((Path(root) / "plans").glob("*.json")):
        try:
            out[path.stem] = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ResultError(f"{path}: unreadable plan ({type(e).__name__}: {e})") from None
    return out


def ran_with(obj: dict[str, Any], params: dict[str, Any]) -> bool:
    """Whether the result ``obj`` ran with the hyper-parameters ``params`` (a key the result
    predates counts as its default): after a code default changes, the results that relied on
    the old one are stale."""
    return all(obj["params"].get(k, v) == v for k, v in params.items())


def stale(plan: dict[str, Any], obj: dict[str, Any]) -> bool:
    """Whether a suite's recorded ``plan`` now runs ``obj``'s entry with other hyper-parameters
    than those ``obj`` ran with (its run resumes it); False where the plan or ``obj`` does not say."""
    params = plan.get("params", {}).get(obj["method"])
    return params is not None and "params" in obj and not ran_with(obj, params)


def missing(plan: dict[str, Any], jobs: list[dict], skipped: list[dict]) -> list[tuple[str, str | None, list[int]]]:
    """The jobs a suite's recorded ``plan`` asks for that have neither a current result among
    ``jobs`` nor a skip record: (task, entry, seeds), the entry None where every entry misses
    every seed."""
    done = {(j["task"], j["method"], j["seed"]) for j in jobs if not stale(plan, j)}
    skip_task = {k["task"] for k in skipped if not k.get("method")}
    skip_job = {(k["task"], k["method"]) for k in skipped if k.get("method")}
    out: list[tuple[str, str | None, list[int]]] = []
    for t in (t for t in plan.get("tasks", []) if t["name"] not in skip_task):
        todo = {m: v for m in plan["entries"] if (t["name"], m) not in skip_job
                and (v := [s for s in t["seeds"] if (t["name"], m, s) not in done])}
        if len(todo) == len(plan["entries"]) and all(len(v) == len(t["seeds"]) for v in todo.values()):
            out.append((t["name"], None, t["seeds"]))
        else:
            out += [(t["name"], m, v) for m, v in todo.items()]
    return out


def external_path(root: Path, suite: str, task: str, name: str, seed: int) -> Path:
    """An entry scored from outside the suite's methods (``bench.external``)."""
    return root / "runs" / "external" / suite / task / name / f"seed{seed}.json"


def validate(obj: Any, where: str) -> dict[str, Any]:
    """Check a result object against the schema; raise ``ResultError`` naming ``where``."""
    if not isinstance(obj, dict):
        raise ResultError(f"{where}: not a JSON object")
    if obj.get("schema") != SCHEMA_VERSION:
        raise ResultError(f"{where}: schema version {obj.get('schema')!r}, expected {SCHEMA_VERSION}")
    fields = {"ok": _FIELDS_OK, "skipped": _FIELDS_SKIPPED}.get(obj.get("status"))
    if fields is None:
        raise ResultError(f"{where}: status {obj.get('status')!r} is neither 'ok' nor 'skipped'")
    for key, typ in fields.items():
        if key not in obj:
            raise ResultError(f"{where}: missing field {key!r}")
        if not isinstance(obj[key], typ) or (typ is int and isinstance(obj[key], bool)):
            raise ResultError(f"{where}: field {key!r} should be {typ.__name__}")
    if not isinstance(obj.get("val_metrics", {}), dict):
        raise ResultError(f"{where}: field 'val_metrics' should be dict")
    cal = obj.get("calibrated", {})
    if not isinstance(cal, dict) or (cal and not isinstance(cal.get("metrics", cal.get("reason")), (dict, str))):
        raise ResultError(f"{where}: field 'calibrated' should be a dict with 'metrics' or a 'reason'")
    t = cal.get("temperature", 1.0)
    if "metrics" in cal and (not isinstance(t, (int, float)) or isinstance(t, bool) or not t > 0):
        raise ResultError(f"{where}: calibrated temperature {t!r} is not a positive number")
    tables = {"metrics": obj.get("metrics", {}), "val_metrics": obj.get("val_metrics", {}), "cost": obj.get("cost", {}),
              "calibrated metrics": cal.get("metrics", {})}
    for key, table in tables.items() if obj["status"] == "ok" else ():
        for k, v in table.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                if key == "cost" and isinstance(v, str):
                    continue
                raise ResultError(f"{where}: {key}[{k!r}] is not a number")
            if isinstance(v, float) and math.isnan(v) and key != "cost":
                raise ResultError(f"{where}: {key}[{k!r}] is NaN")
    return obj


def read(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultError(f"{path}: unreadable result file ({type(e).__name__}: {e})") from None
    return validate(obj, str(path))


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` only when the block ends without error: written to a
    temporary file in the same folder (``.<name>.tmp<pid>``), fsynced, then renamed over
    ``path``. The one way files of this project are written; a failed block (disk full, Ctrl-C,
    a checksum mismatch raised inside it) leaves nothing behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_file``)."""
    with atomic_file(path) as f:
        f.write(data.encode() if isinstance(data, str) else data)


def write(path: Path, obj: dict[str, Any]) -> None:
    validate(obj, str(path))
    write_atomic(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired):
        return ""


@functools.cache
def code_version() -> dict[str, Any]:
    """The code this process runs, read once (a runner reads it when it starts): a runner whose
    checkout moves on while it works still names the commit it loaded, and ``git_dirty`` says
    whether tracked files outside the results (code, suites) differed from it. A copy of the
    tree on another machine (a GPU lease) names the commit it came from."""
    return {
        "git_commit": os.environ.get("UQBENCH_GIT_COMMIT") or _git("rev-parse", "HEAD") or "unknown",
        "git_dirty": bool(_git("-C", str(Path(__file__).resolve().parents[1]), "status", "--porcelain",
                               "--untracked-files=no", "--", ".", ":!results", ":!leaderboard.md",
                               ":!leaderboard.html")),
    }


def provenance(device: str) -> dict[str, Any]:
    """Where and with what a result was produced."""
    import numpy
    import timm
    import torch
    import transformers

    out = {
        **code_version(),
        "versions": {
            "python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__,
            "transformers": transformers.__version__, "numpy": numpy.__version__,
        },
        "device": device,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
    }
    if device.startswith("cuda"):
        out["accelerator"] = torch.cuda.get_device_name(torch.device(device))
    return out


def device(obj: dict[str, Any]) -> str:
    """The accelerator a result ran on (e.g. ``NVIDIA H200``) as its provenance names it, else its device."""
    return obj["provenance"].get("accelerator") or obj["provenance"].get("device", "?")


def save_logits(path: Path, logits: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> None:
    arrays = {f"logits|{k}": v.astype(np.float16) for k, v in logits.items()}
    arrays.update({f"labels|{k}": v.astype(np.int16) for k, v in labels.items()})
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_atomic(path, buf.getvalue())


def load_logits(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    with np.load(path) as z:
        logits = {k.split("|", 1)[1]: z[k].astype(np.float32) for k in z.files if k.startswith("logits|")}
        labels = {k.split("|", 1)[1]: z[k].astype(np.int64) for k in z.files if k.startswith("labels|")}
    return logits, labels


def cache_root() -> Path:
    """Where trained models, decoded images and large logit files live (``UQBENCH_CACHE``)."""
    return Path(os.environ.get("UQBENCH_CACHE", Path.home() / ".cache" / "uqbench"))


def logits_location(root: Path, ref: str) -> Path:
    """Resolve a result's ``logits`` field: relative to the results root, or ``cache:``."""
    if ref.startswith("cache:"):
        return cache_root() / "logits" / ref.removeprefix("cache:")
    return root / ref


# -- indexes of a results folder ------------------------------------------------------------
def summary_csv(jobs: list[dict]) -> str:
    """One row per result (``_path``: its file under the results folder; post-processed variants
    left out): its identity, provenance, metrics, cost and wall times."""
    fixed = ["suite", "task", "method", "seed", "members", "device", "commit", "file"]
    df = pd.DataFrame([{"suite": j["suite"], "task": j["task"], "method": j["method"], "seed": j["seed"],
                        "members": j["cost"].get("members", math.nan), "device": device(j),
                        "commit": j["provenance"].get("git_commit", "")[:10], "file": j["_path"], **j["metrics"],
                        **{f"cost/{k}": v for k, v in j["cost"].items()},
                        **{f"wall/{k}": v for k, v in j["wall"].items()}}
                       for j in jobs if "post_hoc" not in j])
    if not df.empty:
        df = df[fixed + sorted(c for c in df.columns if c not in fixed)].sort_values(fixed[:4])
    return df.to_csv(index=False, float_format="%.6g", lineterminator="\n")


def runs_json(jobs: list[dict], skipped: list[dict]) -> str:
    """Every result and skip record, with its provenance and ``file`` (its path under the results folder)."""
    clean = lambda obj: {"file": obj["_path"], **{k: v for k, v in obj.items() if k != "_path"}}  # noqa: E731
    doc = {"schema": SCHEMA_VERSION, "runs": [clean(j) for j in jobs if "post_hoc" not in j],
           "skipped": [clean(s) for s in skipped]}
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"
