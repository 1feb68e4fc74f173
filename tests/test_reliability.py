"""Reliability: killed runs resume with nothing lost, a seed gives the same numbers, bad input
fails with one clear line and exit status 2, and nothing loads code from a model file.

The crash tests run ``python -m uqbench run`` in a child process through a small wrapper that
patches the child so that it SIGKILLs itself at a chosen point, then rerun it unpatched.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors import SafetensorError
from safetensors.torch import load_file

from uqbench import methods
from uqbench.bench import cli, report, results, runner, scoring, suite
from uqbench.bench.report import figures, inputs, pages
from uqbench.bench.report.tables import find
from uqbench.bench.data.root import dataset_checksum
from uqbench.bench.results import ResultError

METHODS = ("single", "deep_ensembles", "mc_dropout")
TASK = 'name = "digits"\nparams = { dim = 24, depth = 2, heads = 6, epochs = 0.5, batch_size = 128 }'
HEAD = "[suite]\nseeds = [0]\nthreads = 1\nbatch_sizes = [1, 8]\ncost_repeats = 1\n"
TINY_METHODS = "[methods.single]\n[methods.deep_ensembles]\n[methods.mc_dropout]\nsamples = 3\n"


def write_suite(folder: Path, methods_block: str = TINY_METHODS, tasks: str = f"[[tasks]]\n{TASK}\n",
                head: str = HEAD, name: str = "tiny") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(f"{head}\n{tasks}\n{methods_block}")
    return path


def snapshot(root: Path) -> dict[str, tuple] | None:
    """Every file and folder under ``root`` with its bytes and mtime (None if absent)."""
    if not root.exists():
        return None
    return {str(p.relative_to(root)): (p.is_dir(), p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else b"")
            for p in sorted(root.rglob("*"))}


def error_lines(err: str) -> list[str]:
    return [line for line in re.split(r"[\r\n]+", err) if line.startswith("error:")]


def assert_bad_input(capsys, argv: list[str], watched: Path, *needles: str) -> str:
    """``argv`` ends with exit status 2, one ``error: ...`` line naming ``needles``, and
    nothing under ``watched`` created or changed."""
    before = snapshot(watched)
    capsys.readouterr()
    rc = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert rc == 2, err
    assert len(lines) == 1 and len(lines[0]) > len("error: "), err
    assert err.rstrip().endswith(lines[0]), err  # the error is the last thing said
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert snapshot(watched) == before
    return lines[0]


# --- child processes ----------------------------------------------------------------------

WRAPPER = '''
import os, signal, sys

import uqbench.bench.results, uqbench.bench.runner, uqbench.bench.train
from uqbench.bench.cli import main

MODE, LOG = os.environ["RELIABILITY_MODE"], os.environ.get("RELIABILITY_LOG", "")
calls = {"n": 0}


def die():
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


if MODE == "evaluate":  # killed in the middle of the 2nd job, after its fit
    real_evaluate = uqbench.bench.runner.evaluate

    def evaluate(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            die()
        return real_evaluate(*args, **kwargs)

    uqbench.bench.runner.evaluate = evaluate
elif MODE == "write":  # killed half-way through writing the 2nd result file
    real_write = uqbench.bench.results.write_atomic

    def write_atomic(path, data):
        if path.name.startswith("seed") and path.name.endswith(".json"):
            calls["n"] += 1
            if calls["n"] == 2:
                data = data.encode() if isinstance(data, str) else data
                tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
                with open(tmp, "wb") as f:
                    f.write(data[: len(data) // 2])
                    f.flush()
                    os.fsync(f.fileno())
                die()
        return real_write(path, data)

    uqbench.bench.results.write_atomic = write_atomic
elif MODE in ("fit-kill", "fit-count"):  # log every training; fit-kill: die in the 2nd one
    real_fit = uqbench.bench.train.fit

    def fit(model, batches, *args, **kwargs):
        calls["n"] += 1
        with open(LOG, "a") as f:
            f.write(kwargs.get("desc", "?") + "\\n")
        if MODE == "fit-kill" and calls["n"] == 2:
            def dying(epoch):
                for i, batch in enumerate(batches(epoch)):
                    if i == 1:  # after one optimiser step
                        die()
                    yield batch

            return real_fit(model, dying, *args, **kwargs)
        return real_fit(model, batches, *args, **kwargs)

    uqbench.bench.train.fit = fit
elif MODE == "concurrent":  # start together with the other runner, log every (slowed) training
    import glob, time

    open(f"{LOG}.ready.{os.getpid()}", "w").close()
    deadline = time.time() + 120
    while len(glob.glob(f"{LOG}.ready.*")) < 2 and time.time() < deadline:
        time.sleep(0.05)
    real_fit = uqbench.bench.train.fit

    def fit(model, batches, *args, **kwargs):
        with open(LOG, "a") as f:
            f.write(kwargs.get("desc", "?") + "\\n")
        time.sleep(1.0)
        return real_fit(model, batches, *args, **kwargs)

    uqbench.bench.train.fit = fit
raise SystemExit(main(sys.argv[1:]))
'''


@pytest.fixture(scope="module")
def wrapper(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("wrapper") / "run_bench.py"
    path.write_text(WRAPPER)
    return path


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One training cache for the crash tests and the finished run (trained once)."""
    return tmp_path_factory.mktemp("shared-cache")


def child(wrapper: Path, suite_path: Path, res: Path, cache: Path, mode: str = "none",
          log: Path | None = None, *extra: str, popen: bool = False):
    env = {**os.environ, "UQBENCH_CACHE": str(cache), "UQBENCH_OFFLINE": "1", "RELIABILITY_MODE": mode,
           "RELIABILITY_LOG": str(log or ""), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, str(wrapper), "run", "--suite", str(suite_path), "--results", str(res), *extra]
    if popen:
        return subprocess.Popen(argv, env=env, cwd=res.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    return subprocess.run(argv, env=env, cwd=res.parent, capture_output=True, text=True, timeout=600,
                          check=False)


def job_dir(res: Path, method: str) -> Path:
    return res / "runs" / "tiny" / "digits" / method


def finished_files(res: Path, method: str) -> dict[str, tuple]:
    d = job_dir(res, method)
    return {n: (d / n).stat().st_mtime_ns for n in ("seed0.json", "seed0.logits.npz")} | {
        "bytes": (d / "seed0.json").read_bytes() + (d / "seed0.logits.npz").read_bytes()}


def check_complete(res: Path, unchanged: dict[str, dict]) -> None:
    """Every job has exactly one valid result (and its logits), nothing else is left under
    ``res``, the metrics are those of the saved logits, and ``unchanged`` jobs were not redone."""
    files = sorted(str(p.relative_to(res)) for p in res.rglob("*") if p.is_file())
    expected = sorted(["plans/tiny.json", *(f"runs/tiny/digits/{m}/{n}" for m in METHODS
                                            for n in ("seed0.json", "seed0.logits.npz"))])
    assert files == expected  # no partial or temporary files, no duplicates
    for m in METHODS:
        obj = results.read(job_dir(res, m) / "seed0.json")
        assert (obj["status"], obj["method"], obj["seed"]) == ("ok", m, 0)
        logits, labels = results.load_logits(results.logits_location(res, obj["logits"]))
        assert scoring.score(logits, labels, tuple(obj["near_ood"])) == obj["metrics"]
    for m, before in unchanged.items():
        assert finished_files(res, m) == before, f"finished job {m} was redone"


def summary(stdout: str) -> str:
    found = re.findall(r"suite tiny: .*failed", stdout)
    assert found, stdout
    return found[-1]


def test_resume_after_kill_in_the_middle_of_a_job(tmp_path, wrapper, shared_cache):
    suite_path, res = write_suite(tmp_path), tmp_path / "results"
    p = child(wrapper, suite_path, res, shared_cache, "evaluate")
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    assert (job_dir(res, "single") / "seed0.json").exists()
    assert not (job_dir(res, "deep_ensembles") / "seed0.json").exists()
    done = {"single": finished_files(res, "single")}

    p = child(wrapper, suite_path, res, shared_cache)
    assert p.returncode == 0, p.stderr[-3000:]
    assert summary(p.stdout) == "suite tiny: 2 run, 1 already done, 0 skipped, 0 failed"
    check_complete(res, done)

    done = {m: finished_files(res, m) for m in METHODS}  # a third run redoes nothing
    p = child(wrapper, suite_path, res, shared_cache)
    assert p.returncode == 0 and summary(p.stdout) == "suite tiny: 0 run, 3 already done, 0 skipped, 0 failed"
    check_complete(res, done)


def test_resume_after_kill_while_writing_a_result_file(tmp_path, wrapper, shared_cache):
    suite_path, res = write_suite(tmp_path), tmp_path / "results"
    p = child(wrapper, suite_path, res, shared_cache, "write")
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    partial = list(job_dir(res, "deep_ensembles").glob(".seed0.json.tmp*"))
    assert len(partial) == 1 and not (job_dir(res, "deep_ensembles") / "seed0.json").exists()
    done = {"single": finished_files(res, "single")}

    p = child(wrapper, suite_path, res, shared_cache)
    assert p.returncode == 0, p.stderr[-3000:]
    assert summary(p.stdout) == "suite tiny: 2 run, 1 already done, 0 skipped, 0 failed"
    assert not partial[0].exists()
    check_complete(res, done)


def test_resumed_deep_ensemble_trains_only_unfinished_members(tmp_path, wrapper):
    suite_path, res, cache = write_suite(tmp_path), tmp_path / "results", tmp_path / "cache"
    log1, log2 = tmp_path / "fit1.log", tmp_path / "fit2.log"
    p = child(wrapper, suite_path, res, cache, "fit-kill", log1)
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    tags = lambda log: [line.split(" ", 1)[1] for line in log.read_text().splitlines()]
    base = "base-model member 0 seed {}".format
    _, s1, s2 = methods.create("deep_ensembles").member_seeds(0)
    # single = member 0 of the ensemble (seed 0), which trains it last; killed in member 2's training
    assert tags(log1) == [base(0), base(s2)]
    assert not (job_dir(res, "deep_ensembles") / "seed0.json").exists()
    done = {"single": finished_files(res, "single")}

    p = child(wrapper, suite_path, res, cache, "fit-count", log2)
    assert p.returncode == 0, p.stderr[-3000:]
    assert summary(p.stdout) == "suite tiny: 2 run, 1 already done, 0 skipped, 0 failed"
    trained = tags(log2)
    assert trained == [base(s2), base(s1), "mc_dropout member 0 seed 0"], trained  # member 0 not retrained
    check_complete(res, done)


def test_two_runners_on_one_results_folder_do_every_job_once(tmp_path, wrapper):
    suite_path, res, log = write_suite(tmp_path), tmp_path / "results", tmp_path / "trainings.log"
    procs = [child(wrapper, suite_path, res, tmp_path / "cache", "concurrent", log, popen=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-3000:] for _, err in outs]
    lines = [summary(out) for out, _ in outs]
    assert sum(int(re.search(r"(\d+) run,", line).group(1)) for line in lines) == len(METHODS), lines
    assert any("running elsewhere" in line for line in lines), lines  # they did meet
    trainings = log.read_text().splitlines()
    # the single model (also deep-ensemble member 0), two more members, MC dropout: each once
    assert len(trainings) == len(set(trainings)) == 4, trainings
    check_complete(res, {})


def test_jobs_option_shares_the_jobs_among_side_by_side_runners(tmp_path, capfd):
    suite_path, res = write_suite(tmp_path), tmp_path / "results"
    assert cli.main(["run", "--suite", str(suite_path), "--results", str(res), "--jobs", "2"]) == 0
    lines = re.findall(r"suite tiny: .*failed", capfd.readouterr().out)
    assert len(lines) == 2, lines  # this runner and one helper
    assert sum(int(re.search(r"(\d+) run,", line).group(1)) for line in lines) == len(METHODS), lines
    check_complete(res, {})
    for m in METHODS:
        assert results.read(job_dir(res, m) / "seed0.json")["provenance"]["threads"] == 1


def test_a_killed_runners_lock_is_taken_over(tmp_path):
    """A lock file left by a SIGKILLed holder is no lock: the kernel released it."""
    from uqbench.bench.locks import file_lock

    lock = tmp_path / "seed0.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from uqbench.bench.locks import file_lock\n"
        f"with file_lock(Path({str(lock)!r}), wait=False) as mine:\n"
        "    print(mine, flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "True"
    with file_lock(lock, wait=False) as mine:
        assert not mine  # held by a live process
    holder.kill()
    holder.wait()
    assert lock.exists()  # left behind by the killed holder
    with file_lock(lock, wait=False) as mine:
        assert mine
    assert not lock.exists()


def test_a_runner_measuring_cost_pauses_the_others(tmp_path):
    """While one process measures cost, another waits before its next batch; a process never
    waits for its own measurement."""
    from uqbench.bench.locks import measuring, wait_for_measurement

    lock, done = tmp_path / "measuring.lock", tmp_path / "done"
    wait_for_measurement(lock)  # no runner has measured yet: no wait
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from pathlib import Path; from uqbench.bench.locks import measuring\n"
        f"with measuring(Path({str(lock)!r})):\n"
        f"    print('held', flush=True); time.sleep(1); Path({str(done)!r}).write_text('x')")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    wait_for_measurement(lock)
    assert done.exists()  # returned only once the holder had finished measuring
    holder.wait(timeout=60)
    with measuring(lock):
        wait_for_measurement(lock)


def test_threads_option_trains_with_its_count_and_measures_with_the_suites(tmp_path):
    path = write_suite(tmp_path, "[methods.single]\n", head=HEAD.replace("threads = 1", "threads = 2"))
    assert cli.main(["run", "--suite", str(path), "--results", str(tmp_path / "res"), "--threads", "1"]) == 0
    obj = results.read(job_dir(tmp_path / "res", "single") / "seed0.json")
    assert obj["provenance"]["threads"] == 1 and obj["cost"]["threads"] == 2


def test_a_task_runs_on_its_own_seeds_and_seeds_on_the_command_line_replace_them(tmp_path):
    path = write_suite(tmp_path, "[methods.single]\n", tasks=f"[[tasks]]\n{TASK}\nseeds = [1, 2]\n")
    s = suite.load(str(path))
    assert s.seeds == [0] and s.seeds_for("digits") == [1, 2] and s.seeds_for("other") == [0]
    assert cli.main(["run", "--suite", str(path), "--results", str(tmp_path / "res"), "--seeds", "2"]) == 0
    assert sorted(p.name for p in job_dir(tmp_path / "res", "single").glob("seed*.json")) == ["seed2.json"]
    # the results record the suite as declared (not the command line's seeds), for the leaderboard
    plan = results.read_plans(tmp_path / "res")["tiny"]
    assert plan["tasks"] == [{"name": "digits", "seeds": [1, 2]}] and plan["entries"] == ["single"]
    assert cli.main(["run", "--suite", str(path), "--results", str(tmp_path / "res")]) == 0
    assert sorted(p.name for p in job_dir(tmp_path / "res", "single").glob("seed*.json")) == ["seed1.json",
                                                                                            "seed2.json"]
    s.set_seeds([5])
    assert s.seeds_for("digits") == [5]


def test_missing_runs_count_a_tasks_own_seeds(tmp_path):
    plan = suite.load(str(write_suite(tmp_path, "[methods.single]\n", tasks=f"[[tasks]]\n{TASK}\nseeds = [1, 2]\n"))).plan
    done = [{"task": "digits", "method": "single", "seed": 1}]
    assert pages.missing_runs(plan, done, []) == ["`digits` / `single` seed 2"]
    assert pages.missing_runs(plan, [], []) == ["`digits`: every entry, seeds 1, 2"]


def test_a_result_run_with_parameters_its_suite_no_longer_gives_is_stale_and_counted_missing(tmp_path):
    s = suite.load(str(write_suite(tmp_path, "[methods.single]\n", tasks=f"[[tasks]]\n{TASK}\nseeds = [1]\n")))
    now = s.plan["params"]["single"]
    assert now == s.methods[0].resolved()
    current = {"task": "digits", "method": "single", "seed": 1, "params": dict(now)}
    before = {**current, "params": {**now, "lr_scale": "an earlier default"}}
    legacy = {**current, "params": {"method": "single"}}  # predates every other key: their defaults
    assert not results.stale(s.plan, current) and results.stale(s.plan, before) and not results.stale(s.plan, legacy)
    assert not results.stale({}, before)  # a plan without parameters does not say
    assert pages.missing_runs(s.plan, [current], []) == []
    assert pages.missing_runs(s.plan, [before], []) == ["`digits`: every entry, seed 1"]


def test_same_seed_gives_the_same_numbers(tmp_path, wrapper, monkeypatch):
    suite_path = write_suite(tmp_path)
    outs = []
    for k in (1, 2):
        (tmp_path / f"run{k}").mkdir()
        outs.append(tmp_path / f"run{k}" / "results")
    procs = [child(wrapper, suite_path, res, res.parent / "cache", "none", None, "--methods", "mc_dropout",
                   popen=True) for res in outs]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    # and once more in this process, whose RNGs were used before, with the trained model cached
    outs.append(tmp_path / "run3" / "results")
    monkeypatch.setenv("UQBENCH_CACHE", str(outs[0].parent / "cache"))
    rep = runner.run_suite(suite.load(str(suite_path)), outs[2], only_methods=["mc_dropout"], log=lambda *a: None)
    assert rep.done == ["digits/mc_dropout/seed0"]
    objs, arrays = [], []
    for res in outs:
        obj = results.read(job_dir(res, "mc_dropout") / "seed0.json")
        objs.append({k: v for k, v in obj.items() if k not in ("wall", "cost", "provenance")})
        arrays.append(results.load_logits(results.logits_location(res, obj["logits"])))
    for k in (1, 2):
        assert objs[k] == objs[0], f"run {k + 1} differs"
        for name in arrays[0][0]:
            assert np.array_equal(arrays[k][0][name], arrays[0][0][name]), name
            assert np.array_equal(arrays[k][1][name], arrays[0][1][name]), name


def test_stale_temporaries_of_live_writers_are_kept(tmp_path):
    folder = tmp_path / "runs" / "tiny" / "digits" / "single"
    folder.mkdir(parents=True)
    dead, mine = folder / ".seed0.json.tmp999999999", folder / f".seed0.logits.npz.tmp{os.getpid()}"
    live = folder / f".seed1.json.tmp{os.getppid()}"
    for f in (dead, mine, live):
        f.write_text("{")
    assert sorted(runner.clean_stale_temporaries(tmp_path / "runs")) == sorted([dead, mine])
    assert live.exists() and not dead.exists() and not mine.exists()


# --- a finished run, for rescore and the leaderboard ----------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory, shared_cache) -> Path:
    """The tiny suite, run in-process (trained models come from the shared cache)."""
    folder = tmp_path_factory.mktemp("finished")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UQBENCH_CACHE", str(shared_cache))
        mp.setenv("UQBENCH_DATA", str(folder))
        mp.setenv("UQBENCH_OFFLINE", "1")
        rep = runner.run_suite(suite.load(str(write_suite(folder))), folder / "results", log=lambda *a: None)
    assert len(rep.done) == 3 and not rep.failed, rep
    return folder / "results"


@pytest.fixture
def res(finished, tmp_path) -> Path:
    """A private copy of the finished run."""
    return Path(shutil.copytree(finished, tmp_path / "results"))


def test_rescore_reproduces_the_stored_metrics_and_adds_sweeps(res, capsys):
    stored = {m: results.read(job_dir(res, m) / "seed0.json") for m in METHODS}
    assert cli.main(["rescore", "--results", str(res)]) == 0
    assert "rescored 3 result files" in capsys.readouterr().out
    new = {m: results.read(job_dir(res, m) / "seed0.json") for m in METHODS}
    from uqbench.bench.catalogue import SWEPT

    for m in METHODS:
        assert new[m]["metrics"] == stored[m]["metrics"], m  # exactly, not approximately
        assert {k: v for k, v in new[m].items() if k != "sweep"} == stored[m]
        k = stored[m]["cost"]["members"]
        assert sorted(new[m]["sweep"], key=int) == [str(i) for i in range(1, k + 1)]
        assert new[m]["sweep"][str(k)] == {h: stored[m]["metrics"][h] for h in SWEPT if h in stored[m]["metrics"]}
        assert set(new[m]["sweep"]["1"]) == {h for h in SWEPT if h in stored[m]["metrics"]} >= {
            "test/acc", "test/nll", "test/ece", "ood_near/auroc_msp", "ood_mean/auroc_msp", "ood_mean/fpr95_msp"}
    # member 0 of the deep ensemble is the single model
    assert new["deep_ensembles"]["sweep"]["1"] == new["single"]["sweep"]["1"]

    assert cli.main(["rescore", "--results", str(res), "--suite", "tiny", "--max-members", "2"]) == 0
    assert sorted(results.read(job_dir(res, "deep_ensembles") / "seed0.json")["sweep"]) == ["1", "2"]


def test_rescore_leaves_results_without_logits_untouched(res, capsys):
    (job_dir(res, "mc_dropout") / "seed0.logits.npz").unlink()
    before = (job_dir(res, "mc_dropout") / "seed0.json").stat().st_mtime_ns, \
        (job_dir(res, "mc_dropout") / "seed0.json").read_bytes()
    assert cli.main(["rescore", "--results", str(res)]) == 0
    out = capsys.readouterr().out
    assert "mc_dropout/seed0.json" in out and "absent" in out and "rescored 2 result files" in out
    assert ((job_dir(res, "mc_dropout") / "seed0.json").stat().st_mtime_ns,
            (job_dir(res, "mc_dropout") / "seed0.json").read_bytes()) == before


def test_rescore_refuses_nan_logits_naming_the_set(res, capsys):
    path = job_dir(res, "mc_dropout") / "seed0.logits.npz"
    logits, labels = results.load_logits(path)
    logits["ood/digits6-9"][1, 3, 0] = np.nan
    results.save_logits(path, logits, labels)
    line = assert_bad_input(capsys, ["rescore", "--results", res], res, "ood/digits6-9", "NaN", str(path))
    assert "single" not in line
    assert_bad_input(capsys, ["rescore", "--results", res, "--suite", "nope"], res, "no results", "nope")
    assert_bad_input(capsys, ["rescore", "--results", res, "--max-members", "0"], res, "max_members")


@pytest.mark.parametrize("damage", ["truncated", "schema"])
def test_leaderboard_names_a_corrupt_result_file(res, tmp_path, capsys, damage):
    path = job_dir(res, "deep_ensembles") / "seed0.json"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:
        obj = json.loads(path.read_text())
        del obj["metrics"]
        path.write_text(json.dumps(obj))
    out = tmp_path / "board" / "leaderboard.md"
    out.parent.mkdir()
    assert_bad_input(capsys, ["leaderboard", "--results", res, "--out", out], tmp_path, str(path))
    assert not out.exists() and not (res / "summary.csv").exists()


def _cost_file(path: Path, medians: dict[tuple[str, int], float], flops: dict[str, float] | None = None) -> None:
    """A pytest-benchmark JSON as ``make cost-benchmark`` writes it: {(network, batch): seconds},
    with analytic FLOPs per network where given (files written before they were recorded lack them)."""
    benches = [{"params": {"scale": "toy", "name": n, "batch": b}, "stats": {"median": t},
                "extra_info": {"members": 1 if n == "single" else 3, "device": "GPU X", "dtype": "bfloat16",
                               **({"flops": flops[n]} if flops else {})}}
               for (n, b), t in medians.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"datetime": "2026-01-02T03:04:05", "benchmarks": benches}))


def _texts(table) -> list[list[str]]:
    return [[c.text + (f" {c.verdict}" if c.verdict else "") for c in r.cells.values()] for r in table.rows]


def test_leaderboard_checks_the_cost_claim_from_micro_benchmark_timings(res):
    _cost_file(res / "cost" / "gpu.json", {("single", 1): 0.010, ("hydra", 1): 0.0105, ("deep_ensemble", 1): 0.03,
                                            ("single", 256): 0.1, ("hydra", 256): 0.2},
               flops={"single": 1e6, "hydra": 2e6, "deep_ensemble": 3e6})
    made = report.all_pages(inputs.load(res))
    bench = find(made, "cost-bench")
    assert bench.cell("deep_ensemble", "time").text == "3.00" and bench.cell("deep_ensemble", "flops").text == "3.00"
    assert [c.text for c in bench.rows[1].cells.values()] == ["cost/gpu.json", "GPU X, bfloat16", "toy", "1",
                                                              "deep_ensemble", "30.00", "3.00", "3.00"]
    rows = [r for r in _texts(find(made, "other")) if "micro-benchmark" in r[1]]
    assert rows[0][1:3] == ["toy, batch 1 (micro-benchmark)", "Hydra 1.05x single (GPU X, cost/gpu.json; no interval)"]
    assert rows[0][3].strip() == "holds"
    assert rows[1][2].startswith("Hydra 2.00x single") and rows[1][3].strip() == "does not hold"


def test_leaderboard_names_a_malformed_cost_file(res, tmp_path, capsys):
    (res / "cost").mkdir()
    (res / "cost" / "bad.json").write_text('{"benchmarks": [{"params": {}}]}')
    out = tmp_path / "board" / "leaderboard.md"
    out.parent.mkdir()
    assert_bad_input(capsys, ["leaderboard", "--results", res, "--out", out], tmp_path, "cost/bad.json")
    assert not out.exists()


def test_figures_leave_out_logits_kept_only_in_the_cache(res, tmp_path, monkeypatch):
    """Figures come from the results folder alone: the same bytes with or without the cache."""
    monkeypatch.setenv("UQBENCH_CACHE", str(tmp_path / "cache"))
    path = job_dir(res, "mc_dropout") / "seed0.json"
    obj = results.read(path)
    ref = "tiny/mc_dropout/seed0.logits.npz"
    cached = results.logits_location(res, "cache:" + ref)
    cached.parent.mkdir(parents=True)
    shutil.move(res / obj["logits"], cached)
    obj["logits"] = "cache:" + ref
    results.write(path, obj)

    def build() -> dict[str, bytes]:
        report.build(res, res / "leaderboard.md")
        return {p.name: p.read_bytes() for p in [res / "leaderboard.md", *sorted((res / "figures").glob("*.png"))]}

    with_cache = build()
    assert any(n.endswith("reliability.png") for n in with_cache)
    cached.unlink()
    assert build() == with_cache


# --- bad input ----------------------------------------------------------------------------------


@pytest.fixture
def watched(tmp_path) -> Path:
    """A results folder with something in it, which bad input must leave alone."""
    res = tmp_path / "results"
    (res / "runs" / "other").mkdir(parents=True)
    (res / "runs" / "other" / "keep.txt").write_text("keep")
    return res


BAD_SUITES = {
    "unknown task": ({"tasks": '[[tasks]]\nname = "digitz"\n'}, ("unknown task 'digitz'", "did you mean digits")),
    "unknown method": ({"methods_block": "[methods.singel]\n"}, ("unknown method 'singel'", "did you mean single")),
    "malformed toml": ({"methods_block": "[methods.single\n"}, ("malformed TOML", "tiny.toml")),
    "num_members=0": ({"methods_block": "[methods.deep_ensembles]\nnum_members = 0\n"},
                      ("[methods.deep_ensembles]", "num_members", "got 0")),
    "p=1.5": ({"methods_block": "[methods.mc_dropout]\np = 1.5\n"}, ("[methods.mc_dropout]", "p must be", "1.5")),
    "unknown hyper-parameter": ({"methods_block": "[methods.single]\nsamples = 3\n"}, ("single", "samples")),
    "bad dtype": ({"head": HEAD + 'dtype = "float17"\n'}, ("dtype",)),
    "unknown task parameter": ({"tasks": '[[tasks]]\nname = "digits"\nparams = { dims = 24 }\n'},
                               ("task 'digits' has no parameter dims",)),
    "negative epochs": ({"tasks": '[[tasks]]\nname = "digits"\nparams = { epochs = -3 }\n'},
                        ("task 'digits'", "epochs must be > 0", "-3")),
    "epochs not a number": ({"tasks": '[[tasks]]\nname = "digits"\nparams = { epochs = "abc" }\n'},
                            ("task 'digits'", "epochs must be float", "'abc'")),
    "dim not divisible by heads": ({"tasks": '[[tasks]]\nname = "digits"\nparams = { dim = 25, heads = 6 }\n'},
                                   ("dim=25 is not divisible by heads=6",)),
    "per-class cap of zero": ({"tasks": '[[tasks]]\nname = "cifar10-vit"\nparams = { train_per_class = 0 }\n'},
                              ("task 'cifar10-vit'", "train_per_class must be > 0")),
    "unknown corruption": ({"tasks": '[[tasks]]\nname = "cifar10-vit"\nparams = { corruptions = ["fog"] }\n'},
                           ("unknown corruption 'fog'",)),
    "task seeds not a list": ({"tasks": f'[[tasks]]\n{TASK}\nseeds = 3\n'},
                              ("task 'digits': seeds must be a non-empty list",)),
    "repeated task seed": ({"tasks": f'[[tasks]]\n{TASK}\nseeds = [0, 1, 1]\n'},
                           ("task 'digits': seeds must be", "distinct")),
    "duplicate task names": ({"tasks": f'[[tasks]]\n{TASK}\n[[tasks]]\nname = "digits"\n'},
                             ("task name 'digits' appears twice",)),
    "custom path typo": ({"tasks": '[[tasks]]\nname = "mine"\nkind = "imagefolder"\n'
                                   'params = { train = "mine/trian", test = "mine/test" }\n'},
                         ("task 'mine'", "train not found", "mine/trian")),
}


@pytest.mark.parametrize("case", list(BAD_SUITES))
def test_bad_suite_fails_clearly(tmp_path, watched, capsys, case):
    kwargs, needles = BAD_SUITES[case]
    path = write_suite(tmp_path, **kwargs)
    assert_bad_input(capsys, ["run", "--suite", path, "--results", watched], watched, *needles)


def test_bad_names_on_the_command_line_fail_clearly(tmp_path, watched, capsys):
    path = write_suite(tmp_path)
    run = ["run", "--results", watched, "--suite"]
    assert_bad_input(capsys, run + ["smok"], watched, "unknown suite 'smok'", "did you mean smoke")
    assert_bad_input(capsys, run + [tmp_path / "nope.toml"], watched, "suite file not found", "nope.toml")
    assert_bad_input(capsys, run + [path, "--methods", "singel"], watched, "'singel'", "did you mean single")
    assert_bad_input(capsys, run + [path, "--tasks", "digit"], watched, "'digit'", "did you mean digits")
    assert_bad_input(capsys, run + [path, "--seeds", "0,x"], watched, "--seeds")
    assert_bad_input(capsys, run + [path, "--threads", "0"], watched, "--threads must be an integer >= 1", "'0'")
    assert_bad_input(capsys, run + [path, "--jobs", "2", "--force"], watched, "--jobs", "--force")


def test_results_that_is_a_file_fails_clearly(tmp_path, watched, capsys):
    path, file = write_suite(tmp_path), watched / "runs" / "other" / "keep.txt"
    for argv in (["run", "--suite", path], ["leaderboard"], ["rescore"]):
        assert_bad_input(capsys, [*argv, "--results", file], watched, "is a file")


def test_leaderboard_refuses_an_empty_results_folder(tmp_path, capsys, monkeypatch):
    """Run from a folder holding a leaderboard, an empty --results writes nothing anywhere."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "leaderboard.md").write_text("committed")
    (tmp_path / "empty").mkdir()
    assert_bad_input(capsys, ["leaderboard", "--results", tmp_path / "empty"], tmp_path, "no result files")


def test_leaderboard_writes_beside_the_results_it_read(res, tmp_path, monkeypatch):
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    (tmp_path / "repo" / "leaderboard.md").write_text("committed")
    assert cli.main(["leaderboard", "--results", str(res)]) == 0
    assert (tmp_path / "repo" / "leaderboard.md").read_text() == "committed"
    assert "| `single` |" in (res.resolve().parent / "leaderboard.md").read_text()
    assert (res / "reports" / "tiny.md").is_file() and (res.resolve().parent / "leaderboard.html").is_file()


def test_missing_data_root_fails_clearly(tmp_path, watched, capsys, monkeypatch):
    monkeypatch.setenv("UQBENCH_DATA", str(tmp_path / "no-such-data"))
    path = write_suite(tmp_path)
    assert_bad_input(capsys, ["run", "--suite", path, "--results", watched], watched,
                     "UQBENCH_DATA", str(tmp_path / "no-such-data"))


def test_unset_data_root_defaults_to_data_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("UQBENCH_DATA")
    monkeypatch.chdir(tmp_path)
    assert runner.checked_data_root() == Path("data")  # absent: data tasks skip, no error


def test_damaged_image_reaching_a_task_fails_clearly(tmp_path, watched, capsys, monkeypatch):
    from uqbench.bench.tasks import TASKS

    if "imagefolder" not in TASKS:
        pytest.skip("task kind 'imagefolder' is not registered yet")
    from PIL import Image

    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("a", "b"):
            (data / "mine" / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                    data / "mine" / split / cls / f"{i}.jpg", quality=95)
    bad = data / "mine" / "train" / "b" / "1.jpg"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    monkeypatch.setenv("UQBENCH_DATA", str(data))
    tasks = ('[[tasks]]\nname = "mine"\nkind = "imagefolder"\nparams = { train = "mine/train", test = "mine/test", '
             'image_size = 8, dim = 24, depth = 2, heads = 6, patch = 4, epochs = 0.5 }\n')
    path = write_suite(tmp_path, tasks=tasks, methods_block="[methods.single]\n")
    assert_bad_input(capsys, ["run", "--suite", path, "--results", watched], watched, str(bad))


@pytest.mark.parametrize("params, needle", [("heads_per_member = 7", "heads_per_member"),
                                            ("fork_layer = 2", "fork_layer")])
def test_hydra_config_errors_stop_the_run(tmp_path, watched, capsys, monkeypatch, shared_cache, params, needle):
    if "hydra" not in methods.REGISTRY:
        pytest.skip("method 'hydra' is not registered")
    monkeypatch.setenv("UQBENCH_CACHE", str(shared_cache))  # its single model is shared
    path = write_suite(tmp_path, methods_block=f"[methods.hydra]\n{params}\n")
    assert_bad_input(capsys, ["run", "--suite", path, "--results", watched], watched, needle)


# --- safe loading ---------------------------------------------------------------------------


class _Payload:
    """Unpickling this creates ``marker``: stands for any code a pickle can carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def payload(marker: Path) -> bytes:
    return pickle.dumps({"weight": _Payload(marker)})


def test_payload_is_live(tmp_path):
    pickle.loads(payload(tmp_path / "proof"))  # what an unsafe loader would do
    assert (tmp_path / "proof").exists()


def test_load_refuses_a_pickled_model_file(tmp_path, digits_task):
    from torch import nn

    m = methods.create("single")
    m.models_, m.extra_ = nn.ModuleList([digits_task.backbone(0)]), {}
    m.save(tmp_path / "model")
    methods.load(tmp_path / "model")  # the untampered copy loads
    (tmp_path / "model" / "model.safetensors").write_bytes(payload(tmp_path / "marker"))
    with pytest.raises(SafetensorError):
        methods.load(tmp_path / "model")
    assert not (tmp_path / "marker").exists()


def test_training_cache_refuses_a_pickled_checkpoint(tmp_path, digits_task, monkeypatch):
    import uqbench.bench.train

    monkeypatch.setattr(uqbench.bench.train, "fit", lambda model, *a, **k: model.eval())  # no need to train
    digits_task.single_model(0)
    ckpts = list((Path(os.environ["UQBENCH_CACHE"]) / "checkpoints").rglob("*.safetensors"))
    assert len(ckpts) == 1
    ckpts[0].write_bytes(payload(tmp_path / "marker"))
    with pytest.warns(UserWarning, match="ignoring damaged checkpoint"):
        digits_task.single_model(0)  # refused, treated as a cache miss: trained (here: faked) again
    assert not (tmp_path / "marker").exists()
    load_file(str(ckpts[0]))  # the retrained checkpoint replaced the damaged one


# --- data integrity -------------------------------------------------------------------------


def test_verify_data_names_damaged_and_incomplete_sets(tmp_path, capsys):
    root = tmp_path / "data"
    for name, n in (("alpha", 2), ("beta", 3), ("gamma", 1)):
        for i in range(n):
            (root / name / "sub").mkdir(parents=True, exist_ok=True)
            (root / name / "sub" / f"f{i}.bin").write_bytes(bytes([i]) * 100)
    manifest = tmp_path / "MANIFEST"
    manifest.write_text("# name files sha256\n" + "".join(
        f"{name} {' '.join(map(str, dataset_checksum(root, name)))}\n" for name in ("alpha", "beta", "gamma")))
    argv = ["verify-data", "--root", str(root), "--manifest", str(manifest)]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.count(" ok") == 3

    (root / "alpha" / "sub" / "f1.bin").write_bytes(b"\x01" * 99 + b"\x02")
    (root / "beta" / "sub" / "f2.bin").unlink()
    assert cli.main(argv) == 1
    rows = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert rows["alpha"].startswith("damaged") and rows["beta"].startswith("incomplete (2 of 3")
    assert rows["gamma"] == "ok"

    manifest.write_text("alpha two\n")
    assert_bad_input(capsys, argv, root, "MANIFEST:1")


# --- result schema ----------------------------------------------------------------------------


def _ok_result() -> dict:
    return {"schema": results.SCHEMA_VERSION, "status": "ok", "suite": "s", "task": "t", "method": "m", "seed": 0,
            "params": {}, "task_config": {}, "config_hash": "abc", "metrics": {"test/acc": 0.5},
            "cost": {"params": 10.0, "dtype": "float32"}, "wall": {}, "provenance": {}, "extra": {},
            "logits": "x.npz"}


def test_write_validates_against_the_schema(tmp_path):
    path = tmp_path / "r" / "seed0.json"
    results.write(path, _ok_result())
    assert results.read(path) == _ok_result()
    path.unlink()
    bad = [{k: v for k, v in _ok_result().items() if k != "config_hash"}, {**_ok_result(), "schema": 2},
           {**_ok_result(), "seed": "0"}, {**_ok_result(), "metrics": {"test/acc": float("nan")}}]
    for obj, what in zip(bad, ["config_hash", "schema version 2", "seed", "NaN"]):
        with pytest.raises(ResultError, match=re.escape(what)):
            results.write(path, obj)
        assert not path.exists() and not list(path.parent.iterdir())


def test_a_result_without_checkpoint_hashes_is_redone_on_resume(tmp_path):
    path = tmp_path / "seed0.json"
    params = _ok_result()["params"]
    results.write(path, _ok_result())  # written before provenance named its checkpoints
    assert not runner._finished(path, "abc", params)
    results.write(path, {**_ok_result(), "provenance": {"checkpoints": []}})
    assert runner._finished(path, "abc", params) and not runner._finished(path, "other configuration", params)


def test_a_changed_code_default_makes_the_results_that_relied_on_it_stale(tmp_path):
    path = tmp_path / "seed0.json"
    params = {"method": "hydra", "finetune_frac": 0.25}
    results.write(path, {**_ok_result(), "params": params, "provenance": {"checkpoints": []}})
    assert runner._finished(path, "abc", params)
    assert not runner._finished(path, "abc", {**params, "finetune_frac": 0.5})  # recorded: another value
    assert runner._finished(path, "abc", {**params, "new_knob": 1})  # a parameter the result predates
    entry = suite.MethodEntry("hydra-x", "hydra", {"merge_mlp": False})
    assert entry.resolved() == {"method": "hydra", **methods.create("hydra", merge_mlp=False).get_params()}


def test_read_names_a_truncated_file(tmp_path):
    path = tmp_path / "seed0.json"
    results.write(path, _ok_result())
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ResultError, match=re.escape(str(path))):
        results.read(path)


def test_write_atomic_leaves_nothing_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "seed0.json"
    path.write_text("old")

    def boom(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        results.write_atomic(path, "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed0.json"] and path.read_text() == "old"



def test_leaderboard_lists_exactly_the_runs_a_suite_still_lacks():
    s = suite.load("smoke")
    names = [m.name for m in s.methods]
    seeds = ", ".join(map(str, s.seeds))
    word = "seeds" if len(s.seeds) > 1 else "seed"
    assert pages.missing_runs(s.plan, [], []) == [f"`digits`: every entry, {word} {seeds}"]
    done = [{"task": "digits", "method": names[0], "seed": seed} for seed in s.seeds]
    skipped = [{"task": "digits", "method": names[1]}]
    assert pages.missing_runs(s.plan, done, skipped) == [f"`digits` / `{m}` {word} {seeds}" for m in names[2:]]
    assert pages.missing_runs(s.plan, [], [{"task": "digits"}]) == []
    assert pages.missing_runs({}, [], []) == []  # no recorded plan: nothing known to be missing


def test_leaderboard_counts_results_without_checkpoint_hashes():
    hashed = {"provenance": {"checkpoints": []}}
    assert pages.unhashed("standard", [hashed, hashed]) == []
    line = pages.unhashed("standard", [hashed, {"provenance": {}}])[0].text
    assert line.startswith("1 of 2 results predate checkpoint hashes") and "run --suite standard`" in line


def test_provenance_names_the_code_the_process_loaded(monkeypatch):
    """A runner whose checkout moves on while it works records the commit it started from."""
    before = results.provenance("cpu")
    monkeypatch.setattr(results, "_git", lambda *args: "moved-on")
    after = results.provenance("cpu")
    assert (after["git_commit"], after["git_dirty"]) == (before["git_commit"], before["git_dirty"]) != ("moved-on", True)
