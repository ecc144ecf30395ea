#!/bin/sh
# MGAug vs its baseline on Omniglot: 4 arms x 3 seeds, one run after the other.
# Usage (from the repository root): sh configs/results/run_mgaug_comparison.sh [ROOT [ARMS...]]
# ROOT defaults to /tmp/runs/compare; ARMS to "baseline catfish random_param random_width";
# SEEDS (environment) to "0 1 2".
set -e
root=${1:-/tmp/runs/compare}
mkdir -p "$root"
[ $# -gt 0 ] && shift
arms=${*:-baseline catfish random_param random_width}
for seed in ${SEEDS:-0 1 2}; do
  for arm in $arms; do
    config=configs/results/omniglot_protonet_compare.cfg
    [ "$arm" = baseline ] || config=configs/results/omniglot_protonet_compare_$arm.cfg
    dir=$root/${arm}_seed$seed
    [ -f "$dir/eval_test.json" ] && continue  # finished earlier
    python trainers/run.py --flagfile=$config --seed=$seed --model_dir=$dir > "$dir.log" 2>&1
  done
done
