#!/bin/sh
# float32 vs mixed_bfloat16 in training (issue 16): Omniglot ProtoNet (the short comparison
# config, 600 meta-steps) and the built-in-data MAML demo (configs/demo.cfg, 300 meta-steps),
# each dtype over 3 seeds, one run after the other, then mean +- std of the test accuracies.
# Usage (from the repository root):
#   sh configs/results/run_precision_comparison.sh [ROOT]      # ROOT defaults to /tmp/runs/precision
# SEEDS (environment) defaults to "0 1 2"; pin with taskset -c N on a shared machine.
# The Omniglot runs read ../shared/data/omniglot (as configs/results/omniglot_protonet_compare.cfg).
set -e
root=${1:-/tmp/runs/precision}
mkdir -p "$root"
for seed in ${SEEDS:-0 1 2}; do
  for dtype in float32 mixed_bfloat16; do
    for experiment in omniglot_protonet demo_maml; do
      config=configs/results/omniglot_protonet_compare.cfg
      [ "$experiment" = demo_maml ] && config=configs/demo.cfg
      dir=$root/${experiment}_${dtype}_seed$seed
      [ -f "$dir/eval_test.json" ] && continue  # finished earlier
      python trainers/run.py --flagfile=$config --dtype=$dtype --seed=$seed --model_dir=$dir \
        > "$dir.log" 2>&1
    done
  done
done
python - "$root" <<'PY'
import glob, json, os, statistics, sys
root = sys.argv[1]
for experiment in ("omniglot_protonet", "demo_maml"):
    for dtype in ("float32", "mixed_bfloat16"):
        accuracies = [100 * json.load(open(path))["mean_accuracy"] for path in sorted(glob.glob(
            os.path.join(root, f"{experiment}_{dtype}_seed*", "eval_test.json")))]
        if accuracies:
            spread = statistics.stdev(accuracies) if len(accuracies) > 1 else float("nan")
            print(f"{experiment} {dtype}: {statistics.mean(accuracies):.2f} +- {spread:.2f} % "
                  f"over {len(accuracies)} seeds {[round(a, 2) for a in accuracies]}")
PY
