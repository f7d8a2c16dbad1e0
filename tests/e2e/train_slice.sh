#!/usr/bin/env bash
# Acceptance (core issue): one epoch of a small MLP on a 6,000-sample slice of Fashion-MNIST reaches
# >= 80% test accuracy; the model file it writes evaluates to the same accuracy with
# `student_trainer eval`.
source "$(dirname "$0")/lib.sh"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST (scripts/deps.sh installs it)"

out=$("$TW" train --train-images "$TRAIN_X" --train-labels "$TRAIN_Y" --train-end 6000 \
      --test-images "$TEST_X" --test-labels "$TEST_Y" --arch 784,256,256,10 --epochs 1 \
      --batch-size 16 --lr 1e-3 --input-scale 0.01111 --input-offset -0.810 --seed 1 \
      --blas-threads 1 --out "$WORK/small.safetensors" --metrics "$WORK/m.jsonl" --quiet)
echo "$out"
acc=$(grep -o 'test accuracy [0-9.]*' <<<"$out" | awk '{print $3}')
awk -v a="$acc" 'BEGIN { exit !(a >= 0.80) }' || fail "test accuracy $acc < 0.80"
pass "one epoch on 6000 samples: test accuracy $acc >= 0.80"

grep -q '"test_accuracy":' "$WORK/m.jsonl" || fail "metrics file has no test_accuracy"
eval_out=$("$ST" eval --models "$WORK/small.safetensors" --images "$TEST_X" --labels "$TEST_Y")
echo "$eval_out"
pct=$(awk -v a="$acc" 'BEGIN { printf "%.2f%%", 100 * a }')
grep -q -- "$pct" <<<"$eval_out" || fail "eval does not report the training run's accuracy $pct"
pass "student_trainer eval agrees: $pct"
