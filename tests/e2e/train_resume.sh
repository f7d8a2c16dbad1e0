#!/usr/bin/env bash
# Acceptance (issue 12, training-time augmentation; exact resume of `teacher_worker train`), with
# real processes on a 6,000-sample slice and a tiny CNN (3 epochs of 375 steps, about a second):
#  (a) a `teacher_worker train --augment shift:2,flip` run SIGKILLed at random moments after its
#      first checkpoint and resumed with --resume until it completes ends with the same weights
#      (fingerprint, and every tensor byte for byte) and the same metrics (every deterministic field
#      of every epoch) as an uninterrupted run; the two model files differ only in the creation time
#      and training seconds of their provenance, which records "augment": "shift:2,flip";
#  (b) augmentation changes the trained weights (the same run without it ends elsewhere);
#  (c) refusals: --resume with another --augment (naming the field), an existing checkpoint without
#      --resume, --resume without a checkpoint, --augment on a flat MLP input (with the spelling to
#      use instead), a bad --augment token; `student_trainer distill --augment` with stored targets,
#      with a student view, or on samples that are not images.
source "$(dirname "$0")/lib.sh"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"

COMMON=(--train-images "$TRAIN_X" --train-labels "$TRAIN_Y" --train-end 6000
        --arch 1x28x28:conv4k3p1,relu,maxpool2,flatten,dense10 --epochs 3 --batch-size 16
        --seed 4 --blas-threads 1 --quiet --checkpoint-every 50)
AUG=(--augment shift:2,flip)
# args NAME [extra args...]: the arguments of a `train` process of run NAME (files $WORK/NAME.*).
args() {
  local name=$1; shift
  ARGS=(train "${COMMON[@]}" --out "$WORK/$name.safetensors" --metrics "$WORK/$name.jsonl"
        --checkpoint "$WORK/$name.ck" "$@")
}
run() { args "$@"; "$TW" "${ARGS[@]}"; }

run full "${AUG[@]}" > "$WORK/full.out" || fail "uninterrupted run"
run plain > "$WORK/plain.out" || fail "run without augmentation"

# (a) kill at a random moment after the first checkpoint, twice, then resume to the end.
kills=0
args part "${AUG[@]}"
"$TW" "${ARGS[@]}" > "$WORK/part.out" 2> "$WORK/part.err" &
pid=$!
for round in 1 2 3; do
  for _ in $(seq 1 1000); do
    [[ -f "$WORK/part.ck" ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  if (( round < 3 )); then
    sleep "0.0$(( RANDOM % 10 ))"
    if kill -0 "$pid" 2>/dev/null; then quiet_kill "$pid"; kills=$((kills + 1)); fi
    args part "${AUG[@]}" --resume
    "$TW" "${ARGS[@]}" >> "$WORK/part.out" 2>> "$WORK/part.err" &
    pid=$!
  else
    wait "$pid" || { cat "$WORK/part.err" >&2; fail "the resumed run failed"; }
  fi
done
(( kills >= 1 )) || fail "no run was interrupted (each ended before its kill)"
grep -q "resuming from" "$WORK/part.err" || fail "no resume was logged"
fp() { sed -n 's/.*\(fnv1a64:[0-9a-f]*\)$/\1/p' "$WORK/$1.out" | tail -n1; }
[[ -n "$(fp full)" && "$(fp full)" == "$(fp part)" ]] ||
    fail "resumed run ends with $(fp part), the uninterrupted one with $(fp full)"
pass "augmented run killed $kills time(s) and resumed: same fingerprint $(fp full)"

"$PY" - "$WORK/full.safetensors" "$WORK/part.safetensors" "$WORK/full.jsonl" "$WORK/part.jsonl" <<'EOF' ||
import json, struct, sys
def load(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    head = json.loads(b[8:8 + n])
    meta = head.pop("__metadata__")
    return head, b[8 + n:], meta
h1, d1, m1 = load(sys.argv[1])
h2, d2, m2 = load(sys.argv[2])
assert h1 == h2, "tensor tables differ"
assert d1 == d2, "tensor bytes differ"
p1, p2 = json.loads(m1.pop("provenance")), json.loads(m2.pop("provenance"))
assert m1 == m2, f"metadata differs: {m1} vs {m2}"
for k in ("created", "train_seconds"):
    p1.pop(k), p2.pop(k)
assert p1 == p2, f"provenance differs: {p1} vs {p2}"
assert p1["augment"] == "shift:2,flip", p1
keys = ["epoch", "step", "lr", "train_loss", "train_accuracy"]
det = lambda path: [{k: json.loads(l)[k] for k in keys} for l in open(path)]
a, b = det(sys.argv[3]), det(sys.argv[4])
assert len(a) == 3 and a == b, f"metrics differ:\n{a}\n{b}"
print(f"ok: {len(d1)} tensor bytes identical; provenance equal but for time; 3 epochs of metrics equal")
EOF
    fail "the resumed model or metrics differ from the uninterrupted run's"

# (b) augmentation is not a no-op.
[[ "$(fp plain)" != "$(fp full)" ]] || fail "the run without --augment ends with the same weights"
pass "without --augment the weights differ ($(fp plain))"

# (c) refusals.
expect_fail "resume with another --augment" 'config field "augment" differs' \
    run part --augment shift:1 --resume
expect_fail "existing checkpoint without --resume" 'already exists: pass --resume' \
    run part "${AUG[@]}"
expect_fail "--resume without a checkpoint" 'no checkpoint at' run none "${AUG[@]}" --resume
expect_fail "--augment on a flat MLP input" 'needs an image input.*1x28x28:flatten' \
    "$TW" train --arch 784,32,10 --augment flip --train-end 100 --out "$WORK/x.safetensors"
expect_fail "a bad --augment token" '--augment: "shift:2,flop": token 2 "flop" is not known' \
    "$TW" train --arch 1x28x28:flatten,dense10 --augment shift:2,flop --train-end 100 \
    --out "$WORK/x.safetensors"
# distill --augment needs live teachers that see the augmented images (tests/e2e/resume.sh runs it)
expect_fail "distill --augment with a target store" "--augment needs live teachers" \
    "$ST" distill --teachers "$WORK/full.safetensors" --arch 1x28x28:flatten,dense10 \
    --augment flip --cache-targets "$WORK/c.store" --labeled-end 100 --out "$WORK/s.safetensors"
expect_fail "distill --augment with a student view" "--augment needs live teachers" \
    "$ST" distill --teachers "$WORK/full.safetensors" --arch 49,10 --student-view avgpool:4 \
    --augment flip --labeled-end 100 --out "$WORK/s.safetensors"
"$PY" -c 'import numpy as np, sys; np.save(sys.argv[1], np.zeros((20, 10), np.float32)); np.save(sys.argv[2], np.zeros(20, np.int64))' \
    "$WORK/odd.npy" "$WORK/odd_y.npy"
expect_fail "distill --augment on samples that are no image" "--augment flip needs image samples: the samples have 10 values" \
    "$ST" distill --teachers "$WORK/full.safetensors" --arch 10,10 \
    --augment flip --labeled-images "$WORK/odd.npy" --labeled-labels "$WORK/odd_y.npy" \
    --out "$WORK/s.safetensors"
