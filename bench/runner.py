"""The runner: one job per (task, method, seed); finished jobs are skipped, nothing is lost.

A job fits the method, evaluates member logits on every set of the task, measures cost, and
writes the logits and then the result file, each atomically. A job is finished exactly when
its result file exists and matches the job's configuration hash, so a run killed at any point
resumes where it stopped. A runner holds a lock on each job it runs (``bench.locks``; a killed
runner's lock is released by the kernel), so runners sharing a results folder skip each other's
jobs. Trained models are cached by the task (``Task.train``), so a resumed deep ensemble does not
retrain finished members, and every result lists the checkpoints it started from.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import methods
from . import calibration, cost, dist, intervals, locks, results, scoring
from .data.root import MissingData, data_root
from .results import JobId, ResultError
from .suite import MethodEntry, Suite, build_task
from .tasks.base import Inputs, SupervisedTask, cache_root, config_hash, measuring_lock

LOGITS_COMMIT_LIMIT = 2 * 2**20  # larger logit files go to the cache, not the repository


def seed_everything(seed: int) -> None:
    """The one place seeds are set."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return dist.local_device(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA device is available")
    return dist.local_device(torch.device(name))


@dataclass
class RunReport:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)  # being run by another runner
    failed: list[str] = field(default_factory=list)


@torch.no_grad()
def evaluate(forward: Callable[[Inputs], torch.Tensor], task: SupervisedTask) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Member logits ``(M, N, C)`` of ``forward`` and labels of every evaluated set, and of the
    held-out 'val' and 'ood_val' splits (scored apart, as ``val_metrics``, to choose configurations)."""
    logits, labels = {}, {}
    held_out = {k: task.splits[k] for k in scoring.VAL_SETS if task.has_split(k)}
    for name, split in {**task.eval_sets(), **held_out}.items():
        logits[name] = task.predict(forward, split).numpy()
        labels[name] = split.y.numpy()
    return logits, labels


def make_record(task: SupervisedTask, logits: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                root: Path | None = None, path: Path | None = None, **fields) -> dict:
    """The result object of member logits of every evaluated set: metrics of the float16-rounded
    logits (those saved, so that ``rescore`` reproduces every number), the same after temperature
    scaling fitted on the 'val' split (``calibrated``, see ``bench.calibration``) and the task's facts, plus
    ``fields`` (suite, method, seed, params, config_hash, cost, wall, ...). With ``root``, the
    logits are saved beside ``path`` (or in the cache when large) and the result is written."""
    logits = {k: v.astype(np.float16).astype(np.float32) for k, v in logits.items()}
    if "provenance" not in fields:
        fields["provenance"] = results.provenance(str(task.device))
    obj = {
        "schema": results.SCHEMA_VERSION, "status": "ok", "task": task.name, "task_config": task.config,
        "metrics": scoring.score(logits, labels, task.near_ood), "val_metrics": scoring.score_val(logits, labels),
        "calibrated": calibration.calibrate(logits, labels, task.near_ood),
        "extra": {}, "logits": "", "near_ood": list(task.near_ood), "notes": task.notes, **fields,
    }
    if root is None:
        return results.validate(obj, f"result of {task.name}")
    rel = path.relative_to(root).with_suffix(".logits.npz")
    logits_path = root / rel
    results.save_logits(logits_path, logits, labels)
    obj["logits"] = str(rel)
    if logits_path.stat().st_size > LOGITS_COMMIT_LIMIT:
        dest = cache_root() / "logits" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        logits_path.replace(dest)
        obj["logits"] = f"cache:{rel}"
        # so that intervals need no cache
        intervals.write_scores(path, logits, labels, task.near_ood, calibration.temperature(obj))
    results.write(path, obj)
    return obj


def measure_cost(suite: Suite, task: SupervisedTask, forward: Callable[[Inputs], torch.Tensor],
                 num_parameters: int, networks: list[tuple[dict, int]] | None = None) -> dict:
    """Inference cost of ``forward`` on the task's inputs, as the suite asks it measured
    (``networks``: the method's, for the analytic count), with the suite's thread count while
    every other runner sharing this cache pauses at its next batch."""
    work_threads = torch.get_num_threads()
    try:
        with locks.measuring(measuring_lock()):
            return cost.measure(forward, task.example_inputs, num_parameters, task.device, suite.batch_sizes,
                                suite.cost_repeats, threads=suite.threads, dtype=getattr(torch, suite.dtype),
                                networks=networks)
    finally:
        torch.set_num_threads(work_threads)


def job_hash(task: SupervisedTask, entry: MethodEntry, seed: int) -> str:
    return config_hash([task.config, entry.method, entry.params, seed])


def run_job(suite: Suite, task: SupervisedTask, entry: MethodEntry, seed: int, root: Path,
            fields: dict | None = None) -> dict:
    """Fit, evaluate, measure and write one job (with ``fields`` added to its result, e.g. the
    ``tuning`` link of a tuned entry); returns the result object."""
    job = JobId(suite.name, task.name, entry.name, seed)
    method = methods.create(entry.method, **entry.params)
    task.start_job(seed, entry.method, method.training_params())
    seed_everything(seed)
    t0 = time.perf_counter()
    method.fit(task)
    fit_s = time.perf_counter() - t0
    if not dist.is_main():  # under torchrun, rank 0 alone evaluates, measures and writes
        return {}
    seed_everything(seed)
    method.eval()
    t0 = time.perf_counter()
    logits, labels = evaluate(method.forward_members, task)
    eval_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    networks = method.inference_networks(task.backbone_config)
    costs = {**measure_cost(suite, task, method.forward_members, method.num_parameters(), networks),
             "members": method.num_members}
    cost_s = time.perf_counter() - t0
    return make_record(
        task, logits, labels, root, job.path(root), suite=suite.name, method=entry.name, seed=seed,
        params=entry.resolved(), config_hash=job_hash(task, entry, seed),
        cost=costs, wall={"fit_s": fit_s, "eval_s": eval_s, "cost_s": cost_s}, extra=method.extra_ or {},
        provenance={**results.provenance(str(task.device)), "checkpoints": task.checkpoints}, **(fields or {}),
    )


@contextlib.contextmanager
def claimed(job: JobId, root: Path):
    """Hold the job's lock for the block; yields False when another runner holds it (under
    torchrun rank 0 takes the lock and every rank follows its answer)."""
    if not dist.is_main():
        yield dist.agree(False)
        return
    # One flat file in the results root: taking a lock creates no folder a failed job would leave.
    lock = Path(root) / f".{'+'.join((job.suite, job.task, job.method, f'seed{job.seed}'))}.lock"
    with locks.file_lock(lock, wait=False) as mine:
        yield dist.agree(mine)


def run_claimed(suite: Suite, task: SupervisedTask, entry: MethodEntry, seed: int, root: Path,
                force: bool = False, fields: dict | None = None) -> str:
    """Run a job unless another runner holds it or finished it meanwhile: 'done', 'elsewhere'
    or 'reused'."""
    job = JobId(suite.name, task.name, entry.name, seed)
    with claimed(job, root) as mine:
        if not mine:
            return "elsewhere"
        if not force and dist.agree(_finished(job.path(root), job_hash(task, entry, seed), entry.resolved())):
            return "reused"
        run_job(suite, task, entry, seed, root, fields)
        return "done"


def attempt(suite: Suite, task: SupervisedTask, entry: MethodEntry, seed: int, root: Path, report: RunReport,
            force: bool = False, log=print, fields: dict | None = None) -> dict | None:
    """Run (or reuse) one job and record its outcome in ``report``; returns its result, or None
    when it failed (logged, so that one broken job does not stop the others; bad configurations
    and result files still raise) or another runner holds it."""
    label = f"{task.name}/{entry.name}/seed{seed}"
    try:
        outcome = run_claimed(suite, task, entry, seed, root, force, fields)
    except (KeyboardInterrupt, ResultError, methods.ConfigError):
        raise
    except Exception as e:
        log(f"job {label} failed: {type(e).__name__}: {e}")
        report.failed.append(label)
        return None
    getattr(report, outcome).append(label)
    path = JobId(suite.name, task.name, entry.name, seed).path(root)
    return results.read(path) if outcome != "elsewhere" and dist.is_main() else None


def prepare(suite: Suite, root: Path, device: str | None, log=print) -> tuple[torch.device, Path]:
    """Before any job of ``suite`` under ``root``: the device and data root, stale temporaries
    removed, the CPU thread count set."""
    dev = resolve_device(device or suite.device)
    results.code_version()  # pinned now: the code this runner loaded, whatever the checkout does later
    droot = checked_data_root()
    for path in clean_stale_temporaries(Path(root) / "runs" / suite.name):
        log(f"removed {path}, left by an interrupted run")
    if dev.type == "cpu":
        torch.set_num_threads(suite.work_threads or suite.threads)
    return dev, droot


def checked_data_root() -> Path:
    """The data root; an explicitly set ``UQBENCH_DATA`` must exist (an unset one defaults to
    ``./data``, whose absence only makes data tasks skip)."""
    root = data_root()
    if os.environ.get("UQBENCH_DATA") and not root.is_dir():
        raise ValueError(f"data root {root} (UQBENCH_DATA) does not exist or is not a folder")
    return root


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files (``.<name>.tmp<pid>``, see ``results.write_atomic``) that a
    killed writer left under ``folder``; those of another live process are kept."""
    removed = []
    if not folder.is_dir():
        return removed
    for path in sorted(folder.rglob(".*.tmp*")):
        pid = path.name.rpartition(".tmp")[2]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _finished(path: Path, expected_hash: str, params: dict) -> bool:
    """A result to reuse: same configuration, run with the hyper-parameters ``params`` (a changed
    code default makes the results that relied on it stale; a key the result predates counts as
    its default), and it records the checkpoints it started from (one written before that field is
    redone, so that resuming completes the provenance)."""
    if not path.exists():
        return False
    try:
        obj = results.read(path)
    except ResultError as e:
        raise ResultError(f"{e}; delete it or rerun with --force") from None
    return (obj["config_hash"] == expected_hash and results.ran_with(obj, params)
            and "checkpoints" in obj.get("provenance", {}))


def _write_skip(root: Path, suite: Suite, task: str, reason: str, method: str | None = None) -> None:
    if not dist.is_main():
        return
    obj = {"schema": results.SCHEMA_VERSION, "status": "skipped", "suite": suite.name, "task": task,
           "reason": reason, "provenance": {}}
    if method:
        obj["method"] = method
    results.write(results.skip_path(root, suite.name, task, method), obj)


def not_applicable(cls: type[methods.UQMethod], task: SupervisedTask) -> str | None:
    """Why a method cannot run on a task (its declared modalities, training on a zero-shot
    task), or None when it can."""
    if task.modality not in cls.modalities:
        return f"applies to {' and '.join(cls.modalities)} tasks; this task is {task.modality}"
    if not task.trainable and cls.needs_training:
        return "needs training; this task is zero-shot"
    return None


def select(suite: Suite, only_tasks: list[str] | None, only_methods: list[str] | None):
    """The suite's task and method entries, restricted to the named ones."""
    tasks = [t for t in suite.tasks if not only_tasks or t.name in only_tasks]
    entries = [m for m in suite.methods if not only_methods or m.name in only_methods]
    return tasks, entries


def plan_jobs(
    suite: Suite,
    root: Path,
    droot: Path,
    report: RunReport,
    bar: tqdm,
    force: bool = False,
    only_tasks: list[str] | None = None,
    only_methods: list[str] | None = None,
    log=print,
) -> Iterator[tuple[SupervisedTask, MethodEntry, int, str]]:
    """Yield ``(task, entry, seed, label)`` for every job that must run. Tasks whose data are
    missing, jobs that do not apply and finished jobs are recorded in ``report`` (and counted on
    ``bar``) instead; the caller runs the yielded jobs and advances ``bar`` for them."""
    tasks, entries = select(suite, only_tasks, only_methods)
    for t_entry in tasks:
        try:
            task = build_task(t_entry, droot)
        except MissingData as e:
            log(f"skipped task {t_entry.name}: {e}")
            _write_skip(root, suite, t_entry.name, str(e))
            report.skipped.append(t_entry.name)
            bar.update(len(entries) * len(suite.seeds_for(t_entry.name)))
            continue
        results.skip_path(root, suite.name, t_entry.name).unlink(missing_ok=True)
        for seed in suite.seeds_for(t_entry.name):
            for entry in entries:
                job = JobId(suite.name, task.name, entry.name, seed)
                label = f"{task.name}/{entry.name}/seed{seed}"
                reason = not_applicable(methods.REGISTRY[entry.method], task)
                if reason:
                    _write_skip(root, suite, task.name, reason, entry.name)
                    report.skipped.append(label)
                    bar.update(1)
                elif not force and dist.agree(_finished(job.path(root), job_hash(task, entry, seed),
                                                        entry.resolved())):
                    report.reused.append(label)
                    bar.update(1)
                else:
                    yield task, entry, seed, label


def job_count(suite: Suite, tasks: list, entries: list) -> int:
    """How many (task, entry, seed) jobs ``tasks`` x ``entries`` make, each task on its seeds."""
    return sum(len(suite.seeds_for(t.name)) for t in tasks) * len(entries)


def run_suite(
    suite: Suite,
    root: Path,
    force: bool = False,
    device: str | None = None,
    only_tasks: list[str] | None = None,
    only_methods: list[str] | None = None,
    log=print,
) -> RunReport:
    """Run every unfinished job of ``suite`` and write results under ``root``."""
    dev, droot = prepare(suite, root, device, log)
    report = RunReport()
    tasks, entries = select(suite, only_tasks, only_methods)
    # closed also when an error stops the run, so that the error line is not glued to the bar
    with tqdm(total=job_count(suite, tasks, entries), desc=f"suite {suite.name}", unit="job",
              dynamic_ncols=True) as bar:
        for task, entry, seed, label in plan_jobs(suite, root, droot, report, bar, force, only_tasks,
                                                  only_methods, log):
            bar.set_postfix_str(label)
            task.device = dev
            attempt(suite, task, entry, seed, root, report, force, log)
            bar.update(1)
    record_plan(suite, root)
    return report


def record_plan(suite: Suite, root: Path) -> None:
    """After a run of ``suite``: what it asks for, beside its results (the leaderboard lists the
    runs still to do from it, without loading suite files)."""
    if suite.plan and dist.is_main():
        results.write_plan(Path(root), suite.plan)
