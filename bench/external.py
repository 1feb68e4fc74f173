"""Benchmark a model or predictions made outside the benchmark's methods: external entries.

Three ways in, one record: ``evaluate(predict, task)`` runs a callable (an ``nn.Module``
ensemble, say) on every evaluated set of a suite's task; ``score_predictions(file, task)``
scores member logits saved in a ``.npz`` file; ``export(task, out)`` writes those sets in
their fixed order so that a model in any framework can predict them. All three score with the
runner's own ``evaluate`` / ``make_record``, so an external entry is a result file like any
other, written under ``<results>/runs/external/<suite>/<task>/<name>/seed<k>.json`` with an
``external`` field (what was scored, its SHA-256, the command, the time) that the leaderboard
marks.

Predictions file: one array per evaluated set, keyed by the set's name (``test``,
``ood/<name>``, ``shift/<corruption>/<severity>``, exactly the task's sets, see ``export``),
of shape ``(M, N, C)`` member logits or ``(N, C)`` for one model, in the exported order.
Log-probabilities are valid logits.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import metrics, results, runner
from . import suite as suites
from .tasks.base import Inputs, SupervisedTask, config_hash
from ..methods.base import unknown_name

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def load_task(task: str, suite: str = "standard") -> tuple[suites.Suite, SupervisedTask]:
    """A suite's task, built with the suite's parameters (may raise ``MissingData``)."""
    s = suites.load(suite)
    entry = next((t for t in s.tasks if t.name == task), None)
    if entry is None:
        raise unknown_name(f"task of suite {s.name}", task, [t.name for t in s.tasks])
    return s, suites.build_task(entry, runner.checked_data_root())


def _entry_path(root: Path, s: suites.Suite, task: str, name: str, seed: int, force: bool) -> Path:
    """Where an external entry goes; refuses names of the suite's own entries and, unless
    ``force``, an entry that exists."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"entry name {name!r}: use up to 64 letters, digits, '.', '_' or '-'")
    if name in {m.name for m in s.methods}:
        raise ValueError(f"entry name {name!r} is a method entry of suite {s.name}; choose another")
    path = results.external_path(Path(root), s.name, task, name, seed)
    if path.exists() and not force:
        raise ValueError(f"{path} exists; use another name or seed, or --force to replace it")
    return path


def _provenance(kind: str, command: str | None, **facts: Any) -> dict[str, Any]:
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    return {"kind": kind, "time": now, "command": command or shlex.join(sys.argv), **facts}


def _members(out: Tensor, batch: int, classes: int) -> Tensor:
    """``(M, B, C)`` from a prediction of shape ``(M, B, C)`` or ``(B, C)``."""
    out = out[None] if out.dim() == 2 else out
    if out.dim() != 3 or out.shape[1:] != (batch, classes):
        raise ValueError(f"predict returned shape {tuple(out.shape)}; expected (M, {batch}, {classes}) or ({batch}, {classes})")
    return out


def evaluate(
    predict: Callable[[Inputs], Tensor],
    task: str = "clinc150-minilm",
    seed: int = 0,
    suite: str = "standard",
    name: str | None = None,
    results_root: str | Path | None = None,
    device: str = "cpu",
    force: bool = False,
) -> dict[str, Any]:
    """Benchmark ``predict`` on every evaluated set of ``task`` (as ``suite`` defines it).

    ``predict`` maps an input batch, exactly as the task's models see it (images: normalised
    float ``(B, C, H, W)``; text: ``{"input_ids", "attention_mask"}`` ``(B, L)`` int64), to
    member logits ``(M, B, C)`` or ``(B, C)``. An ``nn.Module`` is put in eval mode and its
    inference cost is measured as the suite measures the methods'. ``seed`` labels the entry
    and seeds the random generators before predicting. Returns the result record; with
    ``results_root``, also writes it there as the external entry ``name``.
    """
    s, t = load_task(task, suite)
    name = name or getattr(predict, "__name__", type(predict).__name__)
    path = _entry_path(Path(results_root), s, t.name, name, seed, force) if results_root is not None else None
    t.device, t.seed = runner.resolve_device(device), seed
    if t.device.type == "cpu":
        torch.set_num_threads(s.threads)
    module = predict if isinstance(predict, nn.Module) else None
    if module is not None:
        module.eval().to(t.device)

    def forward(x: Inputs) -> Tensor:
        batch = len(x["input_ids"] if isinstance(x, dict) else x)
        return _members(torch.as_tensor(predict(x)), batch, t.num_classes)

    runner.seed_everything(seed)
    t0 = time.perf_counter()
    logits, labels = runner.evaluate(forward, t)
    wall = {"eval_s": time.perf_counter() - t0}
    costs: dict[str, Any] = {"members": int(logits["test"].shape[0])}
    if module is not None:
        t0 = time.perf_counter()
        costs.update(runner.measure_cost(s, t, forward, sum(p.numel() for p in module.parameters())))
        wall["cost_s"] = time.perf_counter() - t0
    kind = "module" if module is not None else "callable"
    return runner.make_record(
        t, logits, labels, Path(results_root) if path else None, path, suite=s.name, method=name, seed=seed,
        params={"method": "external", "class": type(predict).__name__}, config_hash=config_hash([t.config, kind, name, seed]),
        cost=costs, wall=wall, external=_provenance(kind, None, **{"class": type(predict).__qualname__}),
    )


def read_predictions(path: Path, t: SupervisedTask) -> tuple[dict[str, np.ndarray], str]:
    """Member logits ``(M, N, C)`` of every set of ``t`` from a predictions file, and its SHA-256;
    ``ValueError`` with one line on any mismatch."""
    try:
        raw = Path(path).read_bytes()
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    sets = t.eval_sets()
    missing, unknown = sorted(set(sets) - set(arrays)), sorted(set(arrays) - set(sets))
    if missing or unknown:
        raise ValueError(f"{path}: keys must be the sets of task {t.name} ({', '.join(sets)}); "
                         f"missing: {', '.join(missing) or 'none'}; unknown: {', '.join(unknown) or 'none'}")
    out = {}
    for key, split in sets.items():
        a = arrays[key]
        a = a[None] if a.ndim == 2 else a
        if a.ndim != 3 or not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"{path}: {key!r} has shape {arrays[key].shape} and dtype {a.dtype}; expected floating (M, N, C) or (N, C)")
        if a.shape[1] != len(split):
            raise ValueError(f"{path}: {key!r} has {a.shape[1]} samples; the set has {len(split)} (N)")
        if a.shape[2] != t.num_classes:
            raise ValueError(f"{path}: {key!r} has {a.shape[2]} classes; task {t.name} has {t.num_classes} (C)")
        if a.shape[0] != next(iter(out.values()), a).shape[0]:
            raise ValueError(f"{path}: {key!r} has {a.shape[0]} members, other sets {next(iter(out.values())).shape[0]} (M)")
        metrics.check_finite(a, f"{path}: {key!r}")
        out[key] = a.astype(np.float32)
    return out, hashlib.sha256(raw).hexdigest()


def score_predictions(
    predictions: str | Path,
    task: str,
    suite: str = "standard",
    name: str | None = None,
    seed: int = 0,
    results_root: str | Path = "results",
    force: bool = False,
    command: str | None = None,
) -> dict[str, Any]:
    """Score a predictions file (module docstring) and write it as the external entry ``name``
    (default: the file's stem); ``command`` is recorded (default: this process's). Nothing is
    written unless every check passes."""
    predictions = Path(predictions)
    if not predictions.is_file():
        raise ValueError(f"predictions file not found: {predictions}")
    name = name or predictions.stem
    s, t = load_task(task, suite)
    path = _entry_path(Path(results_root), s, t.name, name, seed, force)
    logits, sha = read_predictions(predictions, t)
    labels = {k: v.y.numpy() for k, v in t.eval_sets().items()}
    return runner.make_record(
        t, logits, labels, Path(results_root), path, suite=s.name, method=name, seed=seed,
        params={"method": "external"}, config_hash=config_hash([t.config, "predictions", name, seed, sha]),
        cost={"members": int(logits["test"].shape[0])}, wall={},
        external=_provenance("predictions", command, file=predictions.name, sha256=sha),
    )


def _inputs(t: SupervisedTask, x: Tensor | dict[str, Tensor]) -> dict[str, np.ndarray]:
    """A set's raw inputs: images ``(N, H, W, C)`` uint8, or token ids and masks with the texts
    they decode to."""
    if not isinstance(x, dict):
        return {"images": x.numpy()}
    from .tasks.text import MINILM, load_encoder

    _, tokenizer = load_encoder(t.config.get("encoder", MINILM))
    texts = tokenizer.batch_decode(x["input_ids"], skip_special_tokens=True)
    return {"input_ids": x["input_ids"].numpy(), "attention_mask": x["attention_mask"].numpy(),
            "text": np.array(texts, dtype=np.str_)}


def export(task: str, out: str | Path, suite: str = "standard") -> Path:
    """Write every evaluated set of ``task`` to the new folder ``out``: ``<set>.npz`` (``ids``,
    ``labels``, raw inputs) and ``manifest.json`` (the sets in order, the task's facts). The
    folder appears whole or not at all; an existing one is never touched."""
    out = Path(out)
    if out.exists():
        raise ValueError(f"{out} exists; export writes a new folder")
    s, t = load_task(task, suite)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    sets = []
    try:
        for key, split in t.eval_sets().items():
            file = tmp / f"{key}.npz"
            file.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(file, ids=np.arange(len(split)), labels=split.y.numpy(), **_inputs(t, split.x))
            sets.append({"key": key, "file": f"{key}.npz", "n": len(split)})
        pre = t.preprocess
        manifest = {
            "task": t.name, "suite": s.name, "num_classes": t.num_classes, "near_ood": list(t.near_ood),
            "task_config": t.config, "sets": sets,
            "preprocess": None if pre is None else {"mean": pre.mean, "std": pre.std, "resize": pre.resize},
            "predictions": "npz with one float array per set key: (M, N, C) member logits or (N, C), rows in ids order",
            "score": f"python -m uqbench score --suite {s.name} --task {t.name} --predictions preds.npz --name NAME",
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str) + "\n")
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
