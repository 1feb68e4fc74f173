#!/usr/bin/env bash
# Everything the GPU results come from, in one run on one GPU machine (about 10 minutes):
#   0. the side-by-side cost of every entry of every suite's tasks in bfloat16 (`python -m
#      uqbench cost`: random weights, no training), one file per suite and task under
#      results/cost/<suite>/<task>/cuda-bfloat16.json, packed into cost-files.tgz;
#   1. the inference-cost micro-benchmark (tests/test_cost_benchmark.py) in bfloat16, CIFAR ViT
#      and ViT-B/16 scale: single model, deep ensemble (M = 3) and fused Hydra at batch 1 and 256,
#      each with its analytic FLOPs (the leaderboard shows time ratio, FLOP ratio, efficiency),
#      then a profile of Hydra against the single model at ViT-B/16 scale (profile.txt);
#   2. the `gpu` suite, stopped after SUITE_SECONDS. It writes into the copy of results/ that
#      travelled with the tree, so the committed GPU results are skipped and the next seeds run;
#      results written before checkpoint hashes were recorded are redone first (resume does so).
# Outputs under $OUT: device.txt, cost-files.tgz, cost.log, cost-benchmark.json/.log, profile.txt,
# suite.log, gpu-results.tgz (runs/gpu). Unpack both archives with `tar xzf ... -C results`.
# The data root may be a compact copy made by scripts/compact_data.py.
#   OUT=/tmp/gpu UQBENCH_DATA=.gpudata bash scripts/gpu-lease.sh
set -u
OUT=${OUT:-/tmp/gpu-out}
RESULTS=${RESULTS:-results}
SUITE_SECONDS=${SUITE_SECONDS:-330}
mkdir -p "$OUT" "$RESULTS"
export PYTHONUNBUFFERED=1 UQBENCH_OFFLINE=1 UQBENCH_DATA=${UQBENCH_DATA:-.gpudata}
export UQBENCH_CACHE=${UQBENCH_CACHE:-/tmp/uqbench-cache}
PY=${PY:-python3}

{ date -u; nvidia-smi -L; echo "commit: ${UQBENCH_GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null)}"
  $PY -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, torch.cuda.get_device_name())"
} > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

for S in ${COST_SUITES:-standard hydra-study quick fork gpu}; do  # about 20 s a task
  timeout 120 $PY -m uqbench cost --suite "$S" --device cuda --dtype bfloat16 --results "$RESULTS" >> "$OUT/cost.log" 2>&1
  echo "cost $S: exit $?"
done
tar czf "$OUT/cost-files.tgz" -C "$RESULTS" $(cd "$RESULTS" && ls -d cost/*/ 2>/dev/null)
grep -E "^  |wrote|error" "$OUT/cost.log" | tail -40

timeout 150 $PY -m pytest -q -p no:cacheprovider tests/test_cost_benchmark.py --benchmark-enable \
  --benchmark-max-time=0.5 --benchmark-json="$OUT/cost-benchmark.json" \
  --benchmark-columns=median,ops --benchmark-sort=name > "$OUT/cost-benchmark.log" 2>&1
echo "cost benchmark: exit $?"; grep -E "passed|failed|error" "$OUT/cost-benchmark.log" | tail -3

for B in 1 256; do  # where Hydra's time goes against the single model, by operator kind
  timeout 60 $PY scripts/profile_hydra.py --scale vit-b16 --batch $B --networks single,hydra,hydra_fork3 \
    >> "$OUT/profile.txt" 2>&1
done
echo "profile: exit $?"; cat "$OUT/profile.txt" | grep -vE "USDT|Warning" | tail -24

timeout -s INT "$SUITE_SECONDS" $PY -m uqbench run --suite gpu --results "$RESULTS" > "$OUT/suite.log" 2>&1
echo "suite: exit $? (124/130: stopped at ${SUITE_SECONDS}s as planned)"
tar czf "$OUT/gpu-results.tgz" -C "$RESULTS" runs/gpu
tr '\r' '\n' < "$OUT/suite.log" | grep -vE "it/s|step/s|job/s|s/it|s/job|^\s*$" | tail -40
ls -la "$OUT"
