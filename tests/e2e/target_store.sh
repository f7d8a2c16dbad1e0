#!/usr/bin/env bash
# Acceptance (target store, issue 15), with real processes:
#  (a) `label` in 2 shards (float32) + `distill --targets` trains a student bit-identical to one
#      distilled from the live (in-process, deterministic) teachers with the same data and settings,
#      and with the same metrics; the store reads back with numpy alone (tests/check_target_store.py);
#  (b) float16 store: the student's test accuracy differs from the live one by < 0.3 points (the
#      difference is printed); a top-k store trains too;
#      mixing a store of the unlabeled set with live teachers for the labeled rows: the same student;
#      --cache-targets fills the store in epoch 1 and trains from it (same student), reuses it
#      (more in target_cache.sh);
#  (c) label SIGKILLed after a progress record and resumed writes the same bytes;
#      a run from the store SIGKILLed after its first checkpoint and resumed ends bit-identical;
#  (e) sharded inputs: --unlabeled as a directory / glob / list of .npy shards trains the same
#      student as one file (stable order, shuffle buffer across shards), live and from a store;
#  (d) refusals naming the problem: other data range, other file, a missing shard, a truncated shard,
#      a shard of another labeling (other members), label without --resume over a finished shard,
#      distill with neither/both of --teachers and --targets.
source "$(dirname "$0")/lib.sh"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"

for s in 1 2 3; do
  "$TW" train --train-end 2000 --arch 784,64,10 --epochs 1 --seed $s --member "m$s" \
      --blas-threads 1 --out "$WORK/m$s.safetensors" --quiet
done
# Deterministic teachers for the bit-identity check (batch-independent logits: see the script).
"$PY" "$SRC/tests/e2e/exact_teachers.py" "$WORK"
T="$WORK/m1.safetensors,$WORK/m2.safetensors"
X="$WORK/x1.safetensors,$WORK/x2.safetensors"
DATA=(--labeled-end 500 --unlabeled "$TRAIN_X" --unlabeled-start 500 --unlabeled-end 3000)
COMMON=("${DATA[@]}" --test-images "$TEST_X" --test-labels "$TEST_Y" --arch 784,128,10
        --epochs 2 --batch-size 64 --seed 5 --blas-threads 1 --dropout-hidden 0.2 --quiet)
LABEL=(--labeled-images "$TRAIN_X" "${DATA[@]}" --blas-threads 1 --quiet)
fp() { sed -n 's/.*\(fnv1a64:[0-9a-f]*\)$/\1/p' "$1" | tail -n1; }
acc() { sed -n 's/.*test accuracy \([0-9.]*\),.*/\1/p' "$1" | tail -n1; }
det() { "$PY" -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    print(json.dumps({k: m[k] for k in ["epoch", "step", "samples", "loss", "soft_loss", "hard_loss", "test_accuracy"]}))' "$1"; }

# (a) live reference, then a float32 store in 2 shards (different batch sizes) and a run from it.
"$ST" distill --teachers "$X" "${COMMON[@]}" --out "$WORK/live.safetensors" \
    --metrics "$WORK/live.jsonl" > "$WORK/live.out"
"$ST" label --teachers "$X" "${LABEL[@]}" --dtype float32 --store "$WORK/s32" --shard 0/2 \
    --batch-size 100 > "$WORK/l0.out"
"$ST" label --teachers "$X" "${LABEL[@]}" --dtype float32 --store "$WORK/s32" --shard 1/2 \
    --batch-size 37 --inflight 2 > "$WORK/l1.out"
grep -q "shard 1 of 2 complete: samples \[1500, 3000)" "$WORK/l1.out" || fail "label output: $(cat "$WORK/l1.out")"
"$PY" "$SRC/tests/check_target_store.py" "$WORK/s32" || fail "numpy reader refused the store"
"$ST" distill --targets "$WORK/s32" "${COMMON[@]}" --out "$WORK/st.safetensors" \
    --metrics "$WORK/st.jsonl" > "$WORK/st.out"
[[ -n "$(fp "$WORK/live.out")" && "$(fp "$WORK/live.out")" == "$(fp "$WORK/st.out")" ]] ||
  fail "student from the float32 store $(fp "$WORK/st.out") != live $(fp "$WORK/live.out")"
cmp -s <(det "$WORK/live.jsonl") <(det "$WORK/st.jsonl") || fail "metrics differ from the live run"
pass "float32 store (2 shards): student bit-identical to live teachers ($(fp "$WORK/st.out"))"

# Mixing: a store of the unlabeled set only, live teachers for the labeled rows: the same student.
"$ST" label --teachers "$X" --unlabeled "$TRAIN_X" --unlabeled-start 500 --unlabeled-end 3000 \
    --dtype float32 --store "$WORK/sunl" --blas-threads 1 --quiet > /dev/null
"$ST" distill --targets "$WORK/sunl" --teachers "$X" "${COMMON[@]}" --out "$WORK/mix.safetensors" \
    > "$WORK/mix.out" 2> "$WORK/mix.err"
[[ "$(fp "$WORK/mix.out")" == "$(fp "$WORK/live.out")" ]] ||
  fail "stored unlabeled + live labeled targets: $(fp "$WORK/mix.out") != live $(fp "$WORK/live.out")"
grep -q "labeled data.*live teachers" "$WORK/mix.err" || fail "the mixed run did not say where the labeled targets come from"
expect_fail "store lacking the labeled set, no teachers" "the labeled data: .*this run uses \[0, 500\)" \
  "$ST" distill --targets "$WORK/sunl" "${COMMON[@]}" --out "$WORK/x.safetensors"
expect_fail "mixing with other teachers" "member 1 is fnv1a64:.* in the store but" \
  "$ST" distill --targets "$WORK/sunl" --teachers "$WORK/x1.safetensors,$WORK/m3.safetensors" "${COMMON[@]}" \
    --out "$WORK/x.safetensors"
pass "stored targets for the unlabeled set + live teachers for the labeled set: bit-identical"

# --cache-targets: epoch 1 fills the store, epoch 2 reads it; a rerun reuses it.
for run in 1 2; do
  "$ST" distill --teachers "$X" --cache-targets "$WORK/cache" "${COMMON[@]}" \
      --out "$WORK/cache.safetensors" > "$WORK/cache$run.out" 2> "$WORK/cache$run.err"
  [[ "$(fp "$WORK/cache$run.out")" == "$(fp "$WORK/live.out")" ]] ||
    fail "--cache-targets run $run: $(fp "$WORK/cache$run.out") != live $(fp "$WORK/live.out")"
done
grep -q "teachers are no longer asked" "$WORK/cache1.err" || fail "the first --cache-targets run did not fill the store"
grep -q "is complete.*not asked" "$WORK/cache2.err" || fail "the second --cache-targets run did not reuse the store"
pass "--cache-targets: filled once, reused; student bit-identical to live"
expect_fail "cache of other members" "other data or members.*member 1" \
  "$ST" distill --teachers "$WORK/x1.safetensors,$WORK/m3.safetensors" --cache-targets "$WORK/cache" \
    "${COMMON[@]}" --out "$WORK/x.safetensors"

# (b) float16 and top-k stores of trained teachers, against those teachers live.
"$ST" distill --teachers "$T" "${COMMON[@]}" --out "$WORK/livet.safetensors" > "$WORK/livet.out"
"$ST" label --teachers "$T" "${LABEL[@]}" --store "$WORK/s16" > /dev/null
"$ST" distill --targets "$WORK/s16" "${COMMON[@]}" --out "$WORK/s16.safetensors" > "$WORK/s16.out"
diff=$("$PY" -c 'import sys; print(f"{abs(float(sys.argv[1]) - float(sys.argv[2])) * 100:.2f}")' \
       "$(acc "$WORK/livet.out")" "$(acc "$WORK/s16.out")")
"$PY" -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 0.3 else 1)' "$diff" ||
  fail "float16 store: accuracy $(acc "$WORK/s16.out") vs live $(acc "$WORK/livet.out")"
pass "float16 store: test accuracy $(acc "$WORK/s16.out") vs live $(acc "$WORK/livet.out") (difference $diff points)"
"$ST" label --teachers "$T" "${LABEL[@]}" --top-k 3 --store "$WORK/stop" > /dev/null
"$ST" distill --targets "$WORK/stop" "${COMMON[@]}" --out "$WORK/stop.safetensors" > "$WORK/stop.out"
pass "float16 top-3 store: test accuracy $(acc "$WORK/stop.out")"
du_b() { du -sb --exclude='*.json' "$1" | cut -f1; }
echo "store bytes per sample: float32 $(( $(du_b "$WORK/s32") / 3000 )), float16 $(( $(du_b "$WORK/s16") / 3000 )), float16 top-3 $(( $(du_b "$WORK/stop") / 3000 ))"

# (c) checkpoint/resume from the store: SIGKILL after the first checkpoint, resume, same student.
RES=(distill --targets "$WORK/s32" "${COMMON[@]}" --out "$WORK/res.safetensors"
     --checkpoint "$WORK/res.ck" --checkpoint-every 5)
"$ST" "${RES[@]}" > "$WORK/res.out" 2>&1 &
pid=$!
for _ in $(seq 1 1000); do [[ -f "$WORK/res.ck" ]] && break; kill -0 $pid 2>/dev/null || break; sleep 0.005; done
sleep 0.0$((RANDOM % 10))
quiet_kill $pid
"$ST" "${RES[@]}" --resume > "$WORK/res.out" 2>"$WORK/res.err" || { cat "$WORK/res.err"; fail "resume"; }
[[ "$(fp "$WORK/res.out")" == "$(fp "$WORK/live.out")" ]] ||
  fail "resumed run from the store $(fp "$WORK/res.out") != $(fp "$WORK/live.out")"
pass "run from the store killed and resumed: bit-identical"

# label killed (SIGKILL) after its first progress record, then --resume: the same store bytes.
LR=(label --teachers "$X" --unlabeled "$TRAIN_X" --unlabeled-end 12000 --dtype float32 --batch-size 50
    --inflight 1 --blas-threads 1 --quiet)
"$ST" "${LR[@]}" --store "$WORK/lfull" > /dev/null
"$ST" "${LR[@]}" --store "$WORK/lkill" > /dev/null 2>&1 &
pid=$!
for _ in $(seq 1 2000); do [[ -f "$WORK/lkill/shard-00000-of-00001.progress.json" ]] && break; kill -0 $pid 2>/dev/null || break; sleep 0.005; done
quiet_kill $pid
if [[ ! -f "$WORK/lkill/shard-00000-of-00001.json" ]]; then
  expect_fail "unfinished store" "unfinished.*--resume" "$ST" distill --targets "$WORK/lkill" --labeled-end 0 \
    --unlabeled "$TRAIN_X" --unlabeled-end 12000 --arch 784,128,10 --out "$WORK/x.safetensors"
  "$ST" "${LR[@]}" --store "$WORK/lkill" --resume > "$WORK/lkill.out" 2>&1 || { cat "$WORK/lkill.out"; fail "label --resume"; }
  grep -q "resuming after" "$WORK/lkill.out" || echo "note: the kill came before the first progress record was usable"
fi
cmp "$WORK/lfull/shard-00000-of-00001.logits.npy" "$WORK/lkill/shard-00000-of-00001.logits.npy" ||
  fail "label killed and resumed wrote other bytes"
cmp "$WORK/lfull/shard-00000-of-00001.json" "$WORK/lkill/shard-00000-of-00001.json" || fail "index differs after resume"
pass "label SIGKILLed and resumed: the same store, byte for byte"

# (e) sharded inputs: the unlabeled samples as 3 .npy shards in a directory (and as a glob, and a
# list) train the same student as one file holding them; label + --targets work on shards too.
"$PY" - "$TRAIN_X" "$WORK" <<'PY'
import gzip, os, sys
import numpy as np
with gzip.open(sys.argv[1]) as f:
    x = np.frombuffer(f.read()[16:], dtype=np.uint8).reshape(-1, 784)[500:3000]
os.makedirs(f"{sys.argv[2]}/shards")
for i, (a, b) in enumerate([(0, 1000), (1000, 1700), (1700, 2500)]):
    np.save(f"{sys.argv[2]}/shards/part-{i}.npy", x[a:b])
np.save(f"{sys.argv[2]}/whole.npy", x)
PY
SH=(--labeled-end 500 --test-images "$TEST_X" --test-labels "$TEST_Y" --arch 784,128,10
    --epochs 2 --batch-size 64 --seed 5 --blas-threads 1 --dropout-hidden 0.2 --shuffle-buffer 700 --quiet)
"$ST" distill --teachers "$X" --unlabeled "$WORK/whole.npy" "${SH[@]}" --out "$WORK/w.safetensors" > "$WORK/whole.out"
for u in "$WORK/shards" "$WORK/shards/part-*.npy" "$WORK/shards/part-0.npy,$WORK/shards/part-1.npy,$WORK/shards/part-2.npy"; do
  "$ST" distill --teachers "$X" --unlabeled "$u" "${SH[@]}" --out "$WORK/sh.safetensors" > "$WORK/sh.out"
  [[ "$(fp "$WORK/sh.out")" == "$(fp "$WORK/whole.out")" ]] || fail "--unlabeled $u: $(fp "$WORK/sh.out") != one file $(fp "$WORK/whole.out")"
done
"$ST" label --teachers "$X" --labeled-images "$TRAIN_X" --labeled-end 500 --unlabeled "$WORK/shards" \
    --dtype float32 --store "$WORK/sshard" --blas-threads 1 --quiet > /dev/null
"$ST" distill --targets "$WORK/sshard" --unlabeled "$WORK/shards" "${SH[@]}" --out "$WORK/sh.safetensors" > "$WORK/sh.out"
[[ "$(fp "$WORK/sh.out")" == "$(fp "$WORK/whole.out")" ]] || fail "--targets over sharded inputs differs"
pass "sharded inputs (directory, glob, list; shuffle across shards): same student as one file, live and from a store"
expect_fail "part of a sharded input from a store" "whole files" \
  "$ST" distill --targets "$WORK/sshard" --unlabeled "$WORK/shards" --unlabeled-end 2000 "${SH[@]}" --out "$WORK/x.safetensors"

# (d) refusals.
expect_fail "other range" "unlabeled data.*\[500, 3000\).*\[500, 2900\)" \
  "$ST" distill --targets "$WORK/s32" --labeled-end 500 --unlabeled "$TRAIN_X" --unlabeled-start 500 \
    --unlabeled-end 2900 --arch 784,128,10 --out "$WORK/x.safetensors"
expect_fail "other file" "labeled data.*no input of the store" \
  "$ST" distill --targets "$WORK/s32" --labeled-images "$TEST_X" --labeled-labels "$TEST_Y" \
    --labeled-end 500 --arch 784,128,10 --out "$WORK/x.safetensors"
expect_fail "empty labeled range" "\[0, 0\) holds no sample.*leave the file out" \
  "$ST" label --teachers "$X" --labeled-images "$TRAIN_X" --labeled-end 0 --unlabeled "$TRAIN_X" \
    --unlabeled-end 100 --store "$WORK/empty"
[[ ! -e "$WORK/empty" ]] || fail "a refused label left $WORK/empty behind"
expect_fail "neither teachers nor targets" "--targets STORE .*, or both" "$ST" distill --out "$WORK/x.safetensors"
expect_fail "finished shard without --resume" "already exists" \
  "$ST" label --teachers "$X" "${LABEL[@]}" --dtype float32 --store "$WORK/s32" --shard 0/2
cp -r "$WORK/s32" "$WORK/bad"
mv "$WORK/bad/shard-00001-of-00002.json" "$WORK/s1.json"
expect_fail "missing shard" "shard 1 of 2.*missing" \
  "$ST" distill --targets "$WORK/bad" "${COMMON[@]}" --out "$WORK/x.safetensors"
mv "$WORK/s1.json" "$WORK/bad/shard-00001-of-00002.json"
truncate -s -100 "$WORK/bad/shard-00000-of-00002.logits.npy"
expect_fail "truncated shard" "shard-00000-of-00002.logits.npy: truncated" \
  "$ST" distill --targets "$WORK/bad" "${COMMON[@]}" --out "$WORK/x.safetensors"
rm -rf "$WORK/bad"
"$ST" label --teachers "$WORK/x1.safetensors,$WORK/m3.safetensors" "${LABEL[@]}" --dtype float32 \
    --store "$WORK/other" --shard 1/2 > /dev/null
cp -r "$WORK/s32" "$WORK/bad"
cp "$WORK/other/shard-00001-of-00002."* "$WORK/bad/"
expect_fail "shard of other members" "shard-00001-of-00002.json: a shard of another store.*member 1" \
  "$ST" distill --targets "$WORK/bad" "${COMMON[@]}" --out "$WORK/x.safetensors"
echo "target_store: all checks passed"
