"""Scaling out: a suite's jobs on a local Ray cluster give the local runner's results metric for
metric, a Ray worker killed in the middle of a job leaves no partial result and a rerun
completes the suite, and one job trained by two processes under ``torchrun`` (gloo, DDP) ends
with the weights and metrics of the single-process run.

The Ray tests share one local Ray instance (two CPUs, no dashboard) for the module and are
skipped, with the reason, only where Ray cannot be imported or started. A test-only worker
setup hook (``HOOK``, passed through Ray's ``runtime_env``) makes a chosen job SIGKILL its own
worker; it is armed by a file, so it fires once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from uqbench.bench import cli, dist, launch_ray, results, runner, scoring, suite

HEAD = "[suite]\nseeds = [0]\nthreads = 1\nray_cpus = 1\nbatch_sizes = [1, 8]\ncost_repeats = 1\n"
TASK = ("[[tasks]]\nname = \"digits\"\n"
        "params = {{ dim = 24, depth = 2, heads = 6, epochs = {epochs}, batch_size = {bs} }}\n")
# The smoke suite's task and a 3-method subset of it, on one thread per job.
RAY_METHODS = "[methods.single]\n[methods.deep_ensembles]\nnum_members = 2\n[methods.hydra]\n"
KILL_METHODS = "[methods.single]\n[methods.deep_ensembles]\nnum_members = 2\n[methods.mc_dropout]\nsamples = 3\n"
IGNORED = {"wall", "cost", "provenance"}

HOOK = '''
import os, signal


def setup():
    """Wrap run_job: the job named in the arm file SIGKILLs its worker after one training step."""
    import uqbench.bench.runner
    import uqbench.bench.train

    real_run_job = uqbench.bench.runner.run_job

    def run_job(suite, task, entry, seed, root, fields=None):
        arm = os.environ["UQBENCH_TEST_ARM"]
        try:
            with open(arm) as f:
                target = f.read().strip()
        except FileNotFoundError:
            target = None
        if target == entry.name:
            os.replace(arm, arm + ".fired")  # fires once
            real_fit = uqbench.bench.train.fit

            def fit(model, batches, *args, **kwargs):
                def dying(epoch):
                    for i, batch in enumerate(batches(epoch)):
                        if i == 1:
                            os.kill(os.getpid(), signal.SIGKILL)
                        yield batch

                return real_fit(model, dying, *args, **kwargs)

            uqbench.bench.train.fit = fit
        return real_run_job(suite, task, entry, seed, root, fields)

    uqbench.bench.runner.run_job = run_job
'''


def write_suite(folder: Path, methods_block: str, epochs: float = 1, bs: int = 128, name: str = "tiny") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(f"{HEAD}\n{TASK.format(epochs=epochs, bs=bs)}\n{methods_block}")
    return path


def result_files(res: Path) -> list[str]:
    return sorted(str(p.relative_to(res)) for p in res.rglob("*") if p.is_file())


@pytest.fixture
def keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A local Ray instance with two worker CPUs; yields the kill hook's arm file."""
    try:
        import ray
    except ImportError as e:
        pytest.skip(f"Ray cannot be imported ({e}); install it with pip install '.[ray]'")
    hooks = tmp_path_factory.mktemp("ray-hooks")
    (hooks / "uqbench_test_hooks.py").write_text(HOOK)
    arm = hooks / "arm"
    mp = pytest.MonkeyPatch()
    mp.setenv("RAY_USAGE_STATS_ENABLED", "0")  # no usage report
    mp.setenv("RAY_memory_monitor_refresh_ms", "0")  # no OOM killer on a busy CI machine
    pythonpath = os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")]))
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2**20,
                 runtime_env={"env_vars": {"PYTHONPATH": pythonpath, "UQBENCH_TEST_ARM": str(arm),
                                           "OMP_NUM_THREADS": "1"},
                              "worker_process_setup_hook": "uqbench_test_hooks.setup"})
    except Exception as e:  # noqa: BLE001 - whatever stops Ray from starting here
        mp.undo()
        pytest.skip(f"a local Ray instance could not start: {type(e).__name__}: {e}")
    yield arm
    ray.shutdown()
    mp.undo()


# --- without Ray ---------------------------------------------------------------------------


def test_missing_ray_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(launch_ray.RayUnavailable, match=r"uqbench\[ray\]"):
        launch_ray.import_ray()
    rc = cli.main(["run", "--suite", "smoke", "--results", str(tmp_path / "res"), "--launcher", "ray"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert rc == 2 and len(lines) == 1 and "uqbench[ray]" in lines[0], err
    assert not (tmp_path / "res").exists()


def test_suite_ray_resources(tmp_path):
    s = suite.load(str(write_suite(tmp_path, "[methods.single]\n")))
    assert (s.ray_cpus, s.ray_gpus) == (1, None)
    assert launch_ray.resources(s, "cpu", {"CPU": 2}) == (1.0, 0.0, "cpu")
    assert launch_ray.resources(s, "auto", {"CPU": 2}) == (1.0, 0.0, "cpu")
    assert launch_ray.resources(s, "auto", {"CPU": 2, "GPU": 1}) == (1.0, 1.0, "cuda")
    assert launch_ray.resources(s, "cuda", {"CPU": 2}) == (1.0, 1.0, "cuda")
    s.ray_gpus = 0.5
    assert launch_ray.resources(s, "cuda", {"CPU": 2, "GPU": 1}) == (1.0, 0.5, "cuda")
    s.ray_gpus = 0
    with pytest.raises(ValueError, match="ray_gpus"):
        launch_ray.resources(s, "cuda", {"CPU": 2, "GPU": 1})
    default = suite.load("smoke")
    assert launch_ray.resources(default, "cpu", {})[0] == default.threads
    bad = tmp_path / "bad.toml"
    bad.write_text(write_suite(tmp_path, "[methods.single]\n").read_text().replace("ray_cpus = 1", "ray_cpus = -1"))
    with pytest.raises(ValueError, match="ray_cpus"):
        suite.load(str(bad))


# --- Ray -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_ray_launcher_matches_local_runner(tmp_path, ray_cluster, monkeypatch, keep_threads):
    s = suite.load(str(write_suite(tmp_path, RAY_METHODS)))
    local_res, ray_res = tmp_path / "local", tmp_path / "ray"
    caches = {name: tmp_path / f"cache-{name}" for name in ("local", "ray")}

    monkeypatch.setenv("UQBENCH_CACHE", str(caches["local"]))
    rep = runner.run_suite(s, local_res, log=lambda *_: None)
    assert not rep.failed and len(rep.done) == 3, rep

    monkeypatch.setenv("UQBENCH_CACHE", str(caches["ray"]))  # forwarded to the workers: they train again
    logs: list[str] = []
    rep = launch_ray.run_suite(s, ray_res, log=logs.append)
    assert not rep.failed and sorted(rep.done) == sorted(f"digits/{m.name}/seed0" for m in s.methods), (rep, logs)

    trained = {name: sorted(p.name for p in (c / "checkpoints" / "digits").glob("*.safetensors"))
               for name, c in caches.items()}
    assert trained["ray"] and trained["ray"] == trained["local"]
    assert result_files(ray_res) == result_files(local_res)
    for rel in (r for r in result_files(local_res) if r.startswith("runs/")):  # plans/ holds what the suite asked
        if rel.endswith(".json"):
            a, b = results.read(local_res / rel), results.read(ray_res / rel)
            assert a["metrics"] == b["metrics"], rel  # metric for metric
            assert {k: v for k, v in a.items() if k not in IGNORED} == {k: v for k, v in b.items() if k not in IGNORED}
        else:
            (la, ya), (lb, yb) = results.load_logits(local_res / rel), results.load_logits(ray_res / rel)
            assert la.keys() == lb.keys() and all(np.array_equal(la[k], lb[k]) for k in la), rel
            assert ya.keys() == yb.keys() and all(np.array_equal(ya[k], yb[k]) for k in ya), rel

    again = launch_ray.run_suite(s, ray_res, log=logs.append)  # finished jobs are skipped, as locally
    assert not again.done and not again.failed and len(again.reused) == 3


@pytest.mark.slow
def test_killed_ray_worker_leaves_no_partial_result(tmp_path, ray_cluster, monkeypatch):
    s = suite.load(str(write_suite(tmp_path, KILL_METHODS, epochs=0.5)))
    res = tmp_path / "results"
    monkeypatch.setenv("UQBENCH_CACHE", str(tmp_path / "cache"))
    ray_cluster.write_text("deep_ensembles")
    logs: list[str] = []
    rep = launch_ray.run_suite(s, res, log=logs.append)
    assert not ray_cluster.exists(), "the kill hook did not fire"
    assert rep.failed == ["digits/deep_ensembles/seed0"], (rep, logs)
    assert sorted(rep.done) == ["digits/mc_dropout/seed0", "digits/single/seed0"], (rep, logs)
    assert any("deep_ensembles" in line and "failed" in line and "Error" in line for line in logs), logs
    killed = res / "runs" / "tiny" / "digits" / "deep_ensembles"
    assert not killed.exists() or not any(killed.iterdir()), list(killed.iterdir())
    before = {m: (res / "runs/tiny/digits" / m / "seed0.json").stat().st_mtime_ns for m in ("single", "mc_dropout")}

    rep = launch_ray.run_suite(s, res, log=logs.append)
    assert rep.done == ["digits/deep_ensembles/seed0"] and not rep.failed, (rep, logs)
    assert sorted(rep.reused) == ["digits/mc_dropout/seed0", "digits/single/seed0"]
    expected = sorted([f"runs/tiny/digits/{m.name}/seed0.{ext}" for m in s.methods for ext in ("json", "logits.npz")]
                      + ["plans/tiny.json"])
    assert result_files(res) == expected  # the plan and finished jobs only: no partial or temporary files
    for m in s.methods:
        obj = results.read(res / "runs/tiny/digits" / m.name / "seed0.json")
        logits, labels = results.load_logits(results.logits_location(res, obj["logits"]))
        assert scoring.score(logits, labels, tuple(obj["near_ood"])) == obj["metrics"]
    assert {m: (res / "runs/tiny/digits" / m / "seed0.json").stat().st_mtime_ns for m in before} == before


# --- torchrun ------------------------------------------------------------------------------


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path, monkeypatch, keep_threads):
    # 730 training samples in batches of 243: the global batches are 243, 243, 243 and 1, so the
    # two ranks hold 121/122 samples of a full batch and 0/1 of the last one.
    task = suite.build_task(suite.TaskEntry("digits", "digits", {}), Path("."))
    bs, n = 243, len(task.splits["train"])
    assert n % bs == 1 and bs % 2 == 1, (n, bs)
    methods_block = "[methods.single]\n[methods.deep_ensembles]\nnum_members = 2\n"  # member 0: single's checkpoint
    suite_path = write_suite(tmp_path, methods_block, epochs=2, bs=bs)
    one, two = tmp_path / "one", tmp_path / "two"
    caches = {name: tmp_path / f"cache-{name}" for name in ("one", "two")}

    monkeypatch.setenv("UQBENCH_CACHE", str(caches["one"]))
    rep = runner.run_suite(suite.load(str(suite_path)), one, log=lambda *_: None)
    assert not rep.failed and len(rep.done) == 2

    env = {**os.environ, "UQBENCH_CACHE": str(caches["two"]), "UQBENCH_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "uqbench", "run", "--suite", str(suite_path), "--results", str(two)]
    p = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-3000:])
    assert "suite tiny: 2 run" in p.stdout, p.stdout[-2000:]

    assert result_files(two) == result_files(one)  # written once, by rank 0, nothing left over
    ckpt = {name: {f.name: load_file(str(f)) for f in sorted((c / "checkpoints" / "digits").glob("*"))}
            for name, c in caches.items()}
    assert len(ckpt["one"]) == 2 and ckpt["two"].keys() == ckpt["one"].keys()  # 2 trainings, same keys
    for name, weights in ckpt["one"].items():
        for k, w in weights.items():
            torch.testing.assert_close(ckpt["two"][name][k], w, rtol=0, atol=2e-4,
                                       msg=lambda m, where=f"{name} {k}": f"{where}: {m}")
    for rel in result_files(one):
        if rel.startswith("runs/") and rel.endswith(".json"):
            a, b = json.loads((one / rel).read_text()), json.loads((two / rel).read_text())
            assert a["config_hash"] == b["config_hash"]
            for k, v in a["metrics"].items():
                assert b["metrics"][k] == pytest.approx(v, abs=2e-3), (rel, k)


def test_single_process_is_not_distributed(monkeypatch):
    """Without ``WORLD_SIZE > 1`` nothing creates a process group, and rank 0 writes."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert not dist.is_distributed() and dist.is_main()
    assert dist.agree(False) is False and dist.agree(True) is True
    dist.broadcast_state(torch.nn.Linear(2, 2))
    assert not torch.distributed.is_initialized()
    monkeypatch.setenv("RANK", "1")
    assert not dist.is_main()
