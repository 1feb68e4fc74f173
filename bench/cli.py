"""Command line: ``python -m uqbench {run,tune,cost,leaderboard,rescore,score,export,list,verify-data}`` (also ``uqbench``).

Bad input (unknown names, malformed suites, missing data roots, corrupt result files) ends with
a one-line ``error: ...`` and exit status 2; nothing already written is touched.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

RESULTS = Path("results")


def results_folder(path: Path, must_hold_results: bool = False) -> Path:
    """``--results``: a folder (created by ``run`` when absent); for reading, one that holds
    result files."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"--results {path} is a file, not a results folder")
    if must_hold_results and not any((path / "runs").rglob("*.json")):
        raise ValueError(f"no result files under {path / 'runs'}: nothing to report (run a suite first, "
                         f"or pass --results)")
    return path


def _count(value: str | None, flag: str) -> int | None:
    """A positive integer option (``--threads``, ``--jobs``)."""
    if value is not None and (not value.strip().isdigit() or int(value) < 1):
        raise ValueError(f"{flag} must be an integer >= 1, got {value!r}")
    return None if value is None else int(value)


def _split(value: str | None) -> list[str] | None:
    return value.split(",") if value else None


def _check_names(s, tasks: str | None, entries: str | None, kind: str, valid_entries: list[str]) -> None:
    """Unknown ``--tasks`` or ``--methods`` names of suite ``s`` are bad input."""
    from ..methods.base import unknown_name

    for what, chosen, valid in (("task", _split(tasks), [t.name for t in s.tasks]),
                                (kind, _split(entries), valid_entries)):
        for name in chosen or ():
            if name not in valid:
                raise unknown_name(f"{what} of suite {s.name}", name, valid)


def _report(label: str, rep) -> int:
    elsewhere = f"{len(rep.elsewhere)} running elsewhere, " if rep.elsewhere else ""
    print(f"{label}: {len(rep.done)} run, {len(rep.reused)} already done, {elsewhere}"
          f"{len(rep.skipped)} skipped, {len(rep.failed)} failed")
    for f in rep.failed:
        print(f"  failed: {f}")
    return 1 if rep.failed else 0


def _cmd_run(args: argparse.Namespace) -> int:
    from . import runner, suite

    results_folder(args.results)
    s = suite.load(args.suite)
    s.work_threads = _count(args.threads, "--threads")
    if args.seeds:
        seeds = args.seeds.split(",")
        if not all(x.strip().isdigit() for x in seeds):
            raise ValueError(f"--seeds must be comma-separated non-negative integers, got {args.seeds!r}")
        s.set_seeds([int(x) for x in seeds])
    _check_names(s, args.tasks, args.methods, "method entry", [m.name for m in s.methods])
    jobs = _count(args.jobs, "--jobs") or 1
    helpers = []
    if jobs > 1:
        if args.launcher == "ray" or args.force:
            raise ValueError("--jobs runs local runners side by side: not with --launcher ray or --force")
        s.work_threads = s.work_threads or max(1, s.threads // jobs)
        runner.checked_data_root()  # a bad data root: one error line, from this runner alone
        helpers = _start_helpers(args, jobs - 1, s.work_threads)
    if args.launcher == "ray":
        from . import launch_ray

        rep = launch_ray.run_suite(s, args.results, force=args.force, device=args.device,
                                   only_tasks=_split(args.tasks), only_methods=_split(args.methods),
                                   address=args.address)
    else:
        rep = runner.run_suite(s, args.results, force=args.force, device=args.device,
                               only_tasks=_split(args.tasks), only_methods=_split(args.methods))
    rc = _report(f"suite {s.name}", rep)
    return max([rc, *(h.wait() for h in helpers)])


def _start_helpers(args: argparse.Namespace, n: int, threads: int) -> list:
    """``n`` more runners of the same command: the job locks share the jobs out among them,
    and the one measuring cost pauses the others. Their progress bars are off."""
    import os
    import subprocess

    argv = [sys.executable, "-m", "uqbench", "run", "--suite", args.suite, "--results", str(args.results),
            "--threads", str(threads)]
    for flag in ("device", "tasks", "methods", "seeds"):
        if getattr(args, flag):
            argv += [f"--{flag}", str(getattr(args, flag))]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    return [subprocess.Popen(argv, env=env) for _ in range(n)]


def _cmd_tune(args: argparse.Namespace) -> int:
    from . import suite, tuning

    results_folder(args.results)
    s = suite.load(args.suite)
    if s.tuning is None:
        raise ValueError(f"suite {s.name} has no [tuning] section")
    s.work_threads = _count(args.threads, "--threads")
    _check_names(s, args.tasks, args.methods, "tuned entry", [sp.entry for sp in s.tuning.spaces])
    if args.select_only + args.rows_only + args.across_tasks > 1:
        raise ValueError("--select-only, --rows-only and --across-tasks exclude each other")
    rep = tuning.tune_suite(s, args.results, only_tasks=_split(args.tasks), only_entries=_split(args.methods),
                            final=not args.select_only, device=args.device, rows_only=args.rows_only,
                            across=args.across_tasks)
    return _report(f"tune {s.name}", rep)


def _cmd_cost(args: argparse.Namespace) -> int:
    import torch

    from . import runner, suite, timing

    results_folder(args.results)
    s = suite.load(args.suite)
    _check_names(s, args.tasks, None, "entry", [])
    if args.threads:
        s.threads = _count(args.threads, "--threads")
    if args.batch_sizes:
        sizes = [_count(b, "--batch-sizes") for b in args.batch_sizes.split(",")]
        if len(sizes) != 2:
            raise ValueError(f"--batch-sizes takes two sizes, small and large, got {args.batch_sizes!r}")
        s.batch_sizes = tuple(sizes)
    rounds = (_count(args.rounds_small, "--rounds-small") or timing.ROUNDS[0],
              _count(args.rounds_large, "--rounds-large") or timing.ROUNDS[1])
    processes = _count(args.processes, "--processes") or timing.PROCESSES
    if processes < timing.MIN_ROUNDS:
        raise ValueError(f"--processes must be at least {timing.MIN_ROUNDS} (fewer give no 95 % interval of a median)")
    device = runner.resolve_device(args.device or "cpu")
    written = timing.run(s, args.results, runner.checked_data_root(), device, getattr(torch, args.dtype),
                         _split(args.tasks), rounds, processes)
    print(f"wrote {len(written)} cost files" + "".join(f"\n  {p}" for p in written))
    return 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from . import report

    root = results_folder(args.results, must_hold_results=True)
    # By default beside the results read, so that another --results never overwrites this one's.
    out = Path(args.out) if args.out else root.resolve().parent / "leaderboard.md"
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder, not a file")
    out = report.build(root, out)
    print(f"wrote {out}")
    return 0


def _cmd_rescore(args: argparse.Namespace) -> int:
    from . import rescore

    n = rescore.rescore(results_folder(args.results), suite=args.suite, max_members=args.max_members)
    print(f"rescored {n} result files")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from . import external

    obj = external.score_predictions(args.predictions, args.task, suite=args.suite, name=args.name, seed=args.seed,
                                     results_root=args.results, force=args.force, command=args.command)
    m = obj["metrics"]
    print(f"{obj['method']} on {obj['task']} ({obj['suite']}): acc {m['test/acc']:.4f}, nll {m['test/nll']:.4f}, "
          f"ece {m['test/ece']:.4f}; wrote the external entry beside {obj['logits']}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from . import external

    out = external.export(args.task, args.out, suite=args.suite)
    print(f"wrote the evaluation sets of {args.task} ({args.suite}) to {out}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from .. import methods
    from . import suite
    from .tasks import TASKS, task_params

    print("tasks:")
    for name in sorted(TASKS):
        print(f"  {name:24s} params: {', '.join(task_params(name))}")
    print("methods:")
    for name, cls in sorted(methods.REGISTRY.items()):
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"  {name:24s} {doc}")
    print("suites:")
    for name in suite.available():
        print(f"  {name:24s} {suite.load(name).description}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from .data.root import data_root, verify_manifest

    root = Path(args.root) if args.root else data_root()
    manifest = Path(args.manifest) if args.manifest else root / "MANIFEST"
    status = verify_manifest(root, manifest)
    for name, state in sorted(status.items()):
        print(f"{name:20s} {state}")
    return 0 if all(v == "ok" for v in status.values()) else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m uqbench", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a suite (skips finished jobs)")
    r.add_argument("--suite", required=True, help="suite name (bench/suites) or path to a .toml")
    r.add_argument("--results", type=Path, default=RESULTS)
    r.add_argument("--force", action="store_true", help="redo finished jobs")
    r.add_argument("--device", choices=["cpu", "cuda", "auto"], default=None)
    r.add_argument("--tasks", help="comma-separated task names to run (default: all)")
    r.add_argument("--methods", help="comma-separated method entries to run (default: all)")
    r.add_argument("--seeds", help="comma-separated seeds overriding the suite's")
    r.add_argument("--jobs", help="local runners side by side (default 1), each with the suite's threads / jobs")
    r.add_argument("--launcher", choices=["local", "ray"], default="local")
    r.add_argument("--address", help="Ray cluster address (with --launcher ray)")
    r.set_defaults(fn=_cmd_run)
    t = sub.add_parser("tune", help="choose the [tuning] entries' configurations on validation data, then run them")
    t.add_argument("--suite", required=True, help="suite name (bench/suites) or path to a .toml with [tuning]")
    t.add_argument("--results", type=Path, default=RESULTS)
    t.add_argument("--device", choices=["cpu", "cuda", "auto"], default=None)
    t.add_argument("--tasks", help="comma-separated task names (default: all)")
    t.add_argument("--methods", help="comma-separated tuned entries (default: all)")
    t.add_argument("--select-only", action="store_true", help="run the candidates and write the record only")
    t.add_argument("--rows-only", action="store_true",
                   help="search nothing: run the chosen rows of complete records of the same search and training "
                        "configuration (after a change of evaluation-only settings)")
    t.add_argument("--across-tasks", action="store_true",
                   help="run each task's winner on every task and rank them (to choose one configuration for all)")
    t.set_defaults(fn=_cmd_tune)
    for cmd in (r, t):
        cmd.add_argument("--threads", help="CPU threads to train and evaluate with (default: the "
                         "suite's); cost is measured with the suite's while other runners on this cache pause")
    c = sub.add_parser("cost", help="time every entry of a suite's tasks side by side, from the architecture "
                       "(random weights, no training), into results/cost/<suite>/<task>/<device>-<dtype>.json")
    c.add_argument("--suite", required=True, help="suite name (bench/suites) or path to a .toml")
    c.add_argument("--results", type=Path, default=RESULTS, help="where the tuning records are read and cost/ written")
    c.add_argument("--tasks", help="comma-separated task names (default: all with data)")
    c.add_argument("--device", choices=["cpu", "cuda", "auto"], default=None, help="default: cpu")
    c.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    c.add_argument("--threads", help="CPU threads (default: the suite's)")
    c.add_argument("--batch-sizes", help="small,large batch (default: the suite's batch_sizes)")
    c.add_argument("--processes", help="fresh processes the rounds are split over (default 9, at least 6)")
    c.add_argument("--rounds-small", help="rounds per process at the small batch (default 6)")
    c.add_argument("--rounds-large", help="rounds per process at the large batch (default 2)")
    c.set_defaults(fn=_cmd_cost)
    lb = sub.add_parser("leaderboard", help="rebuild leaderboard.md and .html, summary.csv, runs.json and figures")
    lb.add_argument("--results", type=Path, default=RESULTS)
    lb.add_argument("--out", help="the leaderboard file (default: leaderboard.md beside the results folder)")
    lb.set_defaults(fn=_cmd_leaderboard)
    rs = sub.add_parser("rescore", help="recompute metrics (and ensemble-size sweeps) from saved logits")
    rs.add_argument("--results", type=Path, default=RESULTS)
    rs.add_argument("--suite")
    rs.add_argument("--max-members", type=int, default=None)
    rs.set_defaults(fn=_cmd_rescore)
    sc = sub.add_parser("score", help="score saved predictions (.npz) as an external leaderboard entry")
    sc.add_argument("--task", required=True, help="a task of the suite")
    sc.add_argument("--predictions", type=Path, required=True, help="npz: one (M, N, C) or (N, C) array per set")
    sc.add_argument("--name", help="entry name (default: the file's stem)")
    sc.add_argument("--suite", default="standard", help="the suite whose task definition to score against")
    sc.add_argument("--seed", type=int, default=0, help="the entry's seed label")
    sc.add_argument("--results", type=Path, default=RESULTS)
    sc.add_argument("--force", action="store_true", help="replace an existing entry of that name and seed")
    sc.set_defaults(fn=_cmd_score)
    ex = sub.add_parser("export", help="write a task's evaluation sets (ids, labels, inputs) in scoring order")
    ex.add_argument("--task", required=True)
    ex.add_argument("--suite", default="standard")
    ex.add_argument("--out", type=Path, required=True, help="a new folder")
    ex.set_defaults(fn=_cmd_export)
    sub.add_parser("list", help="list tasks, methods and suites").set_defaults(fn=_cmd_list)
    v = sub.add_parser("verify-data", help="check a data root against its MANIFEST of checksums")
    v.add_argument("--root")
    v.add_argument("--manifest")
    v.set_defaults(fn=_cmd_verify)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    args.command = "python -m uqbench " + shlex.join(argv)
    from .data.root import DataError, MissingData
    from .results import ResultError

    try:
        return args.fn(args)
    except (ValueError, MissingData, DataError, ResultError, FileNotFoundError, NotImplementedError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
