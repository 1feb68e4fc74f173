"""``python -m uqbench run --launcher ray``: a suite's jobs on a Ray cluster, one Ray task per job.

The driver does what the local runner does before a job (build each task once, write the skip
file of a task whose data is missing or of a training method on a zero-shot task, reuse
finished jobs by their configuration hash) and sends every other (task, method, seed) job to
Ray with the suite's CPU/GPU request (``ray_cpus``, ``ray_gpus`` in ``[suite]``). A job runs
``runner.run_job`` in a Ray worker, which writes the result file and its logits exactly as the
local runner does, atomically, so a killed worker leaves no partial result and a rerun resumes.
A failed job (an exception, or a worker that died) is reported with its error while the
others go on; Ray does not retry it (rerun the suite to resume).

Without ``--address`` a local Ray instance is started with every CPU of this machine. On a
cluster, the results folder and ``UQBENCH_CACHE`` must be on storage that every node sees; the
task's data travel from the driver through Ray's object store, and the driver's ``UQBENCH_*``
variables are forwarded to every job. ``ray`` is an optional extra: ``pip install .[ray]``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import methods
from . import runner
from .results import ResultError
from .suite import Suite

FORWARDED_ENV = ("UQBENCH_CACHE", "UQBENCH_DATA", "UQBENCH_OFFLINE")
_FATAL = (ResultError, methods.ConfigError)  # stop the suite, as in the local runner


class RayUnavailable(ValueError):
    """Ray is not installed (the CLI prints it as a one-line error)."""


def import_ray():
    try:
        import ray
    except ImportError as e:
        raise RayUnavailable(f"--launcher ray needs Ray ({e}): install the extra with pip install 'uqbench[ray]' "
                             "(or pip install 'ray>=2.9')") from None
    return ray


def _job(suite: Suite, task, entry, seed: int, root: str, device: str, env: dict[str, str], force: bool) -> str:
    """One job in a Ray worker: the local runner's ``run_job``, with the driver's settings."""
    for key in FORWARDED_ENV:
        if key in env:
            os.environ[key] = env[key]
        else:
            os.environ.pop(key, None)
    dev = runner.resolve_device(device)
    if dev.type == "cpu":
        torch.set_num_threads(suite.threads)
    task.device = dev
    return runner.run_claimed(suite, task, entry, seed, Path(root), force)


def resources(suite: Suite, device: str, cluster: dict[str, float]) -> tuple[float, float, str]:
    """CPUs and GPUs per job, and the device name the jobs resolve (``auto`` decided here)."""
    gpus = suite.ray_gpus
    if gpus is None:
        gpus = 1 if device == "cuda" or (device == "auto" and cluster.get("GPU", 0) > 0) else 0
    if device == "cuda" and gpus == 0:
        raise ValueError("device cuda with ray_gpus = 0: a job would use a GPU that Ray did not give it")
    if device == "auto":
        device = "cuda" if gpus > 0 else "cpu"
    cpus = suite.ray_cpus if suite.ray_cpus is not None else suite.threads
    return float(cpus), float(gpus), device


def _connect(ray, address: str | None, cpus: float) -> bool:
    """Connect to Ray; returns whether this call started it (and so must shut it down)."""
    if ray.is_initialized():  # started by the caller (a notebook, a test): use it as it is
        return False
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=max(os.cpu_count() or 1, int(-(-cpus // 1))), include_dashboard=False,
                     log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError, OSError) as e:
        where = f"at {address}" if address else "locally"
        raise ValueError(f"could not start or reach Ray {where}: {type(e).__name__}: {e}") from None
    return True


def run_suite(
    suite: Suite,
    root: Path,
    force: bool = False,
    device: str | None = None,
    only_tasks: list[str] | None = None,
    only_methods: list[str] | None = None,
    address: str | None = None,
    log=print,
) -> runner.RunReport:
    """Run every unfinished job of ``suite`` on Ray and write results under ``root``."""
    ray = import_ray()
    root = Path(root).resolve()
    droot = runner.checked_data_root()
    device = device or suite.device
    for path in runner.clean_stale_temporaries(root / "runs" / suite.name):
        log(f"removed {path}, left by an interrupted run")
    started = _connect(ray, address, float(suite.ray_cpus if suite.ray_cpus is not None else suite.threads))
    try:
        report = _run(ray, suite, root, droot, force, device, only_tasks, only_methods, started, log)
        runner.record_plan(suite, root)
        return report
    finally:
        if started:
            ray.shutdown()


def _run(ray, suite, root, droot, force, device, only_tasks, only_methods, local, log) -> runner.RunReport:
    cluster = ray.cluster_resources()
    cpus, gpus, device = resources(suite, device, cluster)
    short = [f"{n} {k}" for k, n in (("CPU", cpus), ("GPU", gpus)) if n > cluster.get(k, 0)]
    if short:
        msg = (f"a job asks for {' and '.join(short)} but the Ray cluster has "
               f"{cluster.get('CPU', 0):g} CPU, {cluster.get('GPU', 0):g} GPU")
        if local:  # a local instance does not grow: the jobs would wait forever
            raise ValueError(msg + " (set ray_cpus / ray_gpus in [suite])")
        log(f"warning: {msg}; jobs wait until the cluster grows")
    remote = ray.remote(_job).options(num_cpus=cpus, num_gpus=gpus, max_retries=0)
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}

    report = runner.RunReport()
    tasks, entries = runner.select(suite, only_tasks, only_methods)
    pending: dict = {}  # object ref -> job label
    task_refs: dict = {}  # each task's data go to the object store once
    with tqdm(total=runner.job_count(suite, tasks, entries), desc=f"suite {suite.name} (ray)", unit="job",
              dynamic_ncols=True) as bar:
        try:
            for task, entry, seed, label in runner.plan_jobs(suite, root, droot, report, bar, force,
                                                             only_tasks, only_methods, log):
                if task.name not in task_refs:
                    task_refs[task.name] = ray.put(task)
                ref = remote.remote(suite, task_refs[task.name], entry, seed, str(root), device, env, force)
                pending[ref] = label
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    label = pending.pop(ref)
                    bar.set_postfix_str(label)
                    outcome, error = _outcome(ray, ref)
                    if error is None:
                        getattr(report, outcome).append(label)
                    else:
                        log(f"job {label} failed: {error}")
                        report.failed.append(label)
                    bar.update(1)
        finally:
            for ref in pending:  # an error or Ctrl-C stops the jobs still queued or running
                ray.cancel(ref, force=True)
    return report


def _outcome(ray, ref) -> tuple[str, str | None]:
    """A finished job's outcome ('done', 'elsewhere', 'reused') and None, or 'failed' and its
    error in one line; fatal errors are raised."""
    try:
        return ray.get(ref), None
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, _FATAL):
            raise cause from None
        if cause is None:
            return "failed", f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
        return "failed", f"{type(cause).__name__}: {cause}"
    except ray.exceptions.RayError as e:  # the worker died (killed, out of memory), the node was lost
        text = str(e).strip().splitlines()
        return "failed", f"{type(e).__name__}: {text[0] if text else ''}"
