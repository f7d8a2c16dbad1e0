#!/usr/bin/env bash
# Reliability issue 10, defects 2 and 3: what the trainer writes is valid and true.
#  2. A member named `a"b<newline>c` (names come from teachers over the wire) is missing from
#     batches (--quorum 1, its worker killed): every metrics line is still one valid JSON object,
#     and its "missing" map names the member exactly. `eval --json` on a model file whose path
#     holds a `"` writes valid JSON keyed by that path.
#  3. SIGTERM while the trainer waits for a stalled teacher before its first step: it exits 143 and
#     says that no checkpoint was written (there is none), not "checkpoint written to".
source "$(dirname "$0")/lib.sh"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"
ODD=$'a"b\nc'
"$TW" train --train-end 3000 --arch 784,32,10 --epochs 1 --seed 1 --member "$ODD" --blas-threads 1 \
    --out "$WORK/odd.safetensors" --quiet >/dev/null
"$TW" train --train-end 3000 --arch 784,32,10 --epochs 1 --seed 2 --member m2 --blas-threads 1 \
    --out "$WORK/m2.safetensors" --quiet >/dev/null

# --- 2: metrics lines with a hostile member name -------------------------------------------------
start_worker "$WORK/odd.safetensors" "$WORK/odd.ready" --blas-threads 1; EP_ODD=$WORKER_EP; PID_ODD=$WORKER_PID
start_worker "$WORK/m2.safetensors" "$WORK/m2.ready" --blas-threads 1; EP2=$WORKER_EP
"$ST" distill --teachers "$EP_ODD,$EP2" --labeled-end 500 --unlabeled "$TRAIN_X" --unlabeled-start 500 \
    --unlabeled-end 2500 --arch 784,16,10 --batch-size 50 --epochs 4 --quorum 1 --timeout 2 \
    --blas-threads 1 --out "$WORK/s.safetensors" --metrics "$WORK/s.jsonl" --quiet \
    >/dev/null 2>"$WORK/s.err" &
TRAINER=$!
E2E_PIDS+=("$TRAINER")
for _ in $(seq 1 600); do [[ -f "$WORK/s.jsonl" && $(wc -l < "$WORK/s.jsonl") -ge 1 ]] && break; sleep 0.05; done
quiet_kill "$PID_ODD"
wait "$TRAINER" || { cat "$WORK/s.err" >&2; fail "distill with a member missing under --quorum 1"; }
$PY - "$WORK/s.jsonl" "$ODD" <<'EOF' || fail "metrics file is not one JSON object per line naming the member"
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
assert len(lines) == 4, f"{len(lines)} lines, expected 4 epochs"
recs = [json.loads(l) for l in lines]
missing = [r["missing"] for r in recs if r["missing"]]
assert missing, "no epoch has a missing member"
assert all(list(m) == [sys.argv[2]] for m in missing), f"missing maps: {missing}"
print(f"ok: 4 valid JSON lines; missing = {missing[-1]}")
EOF
pass "member named a\"b<newline>c: metrics stay valid JSON and name it exactly"

QPATH="$WORK/q\"uote.safetensors"
cp "$WORK/m2.safetensors" "$QPATH"
"$ST" eval --models "$QPATH" --images "$TEST_X" --labels "$TEST_Y" --no-confusion --json "$WORK/eval.json" \
    >/dev/null || fail "eval --json"
$PY -c 'import json, sys; d = json.load(open(sys.argv[1])); assert list(d) == [sys.argv[2]], list(d); assert 0 < d[sys.argv[2]]["accuracy"] <= 1' \
    "$WORK/eval.json" "$QPATH" || fail "eval --json with a quote in the path: $(cat "$WORK/eval.json")"
pass "eval --json keyed by a path with a quote is valid JSON"

# --- 3: SIGTERM before the first step --------------------------------------------------------------
# A wide teacher (about 1 s per batch of 1000 on one core), stopped (SIGSTOP) as soon as the trainer
# has its member info: the first batch never comes back; --timeout 1 marks it down, the batch waits.
"$TW" train --train-end 64 --batch-size 64 --arch 784,2048,2048,10 --epochs 1 --seed 3 --member wide \
    --blas-threads 1 --out "$WORK/wide.safetensors" --quiet >/dev/null
start_worker "$WORK/wide.safetensors" "$WORK/wide.ready" --blas-threads 1; EPW=$WORKER_EP; PIDW=$WORKER_PID
"$ST" distill --teachers "$EPW" --labeled-end 3000 --arch 784,16,10 --batch-size 1000 --epochs 1 \
    --inflight 1 --timeout 1 --max-wait 60 --blas-threads 1 --checkpoint "$WORK/s0.ck" \
    --out "$WORK/s0.safetensors" >/dev/null 2>"$WORK/s0.err" &
TRAINER=$!
E2E_PIDS+=("$TRAINER")
for _ in $(seq 1 1000); do grep -q "member 0: wide" "$WORK/s0.err" && break; sleep 0.01; done
kill -STOP "$PIDW"
grep -q "member 0: wide" "$WORK/s0.err" || { cat "$WORK/s0.err" >&2; fail "the trainer did not connect"; }
for _ in $(seq 1 200); do grep -q "no live replica" "$WORK/s0.err" && break; sleep 0.05; done
kill -TERM "$TRAINER"
rc=0; wait "$TRAINER" || rc=$?
kill -CONT "$PIDW"
[[ $rc == 143 ]] || { cat "$WORK/s0.err" >&2; fail "SIGTERM before the first step: exit $rc, expected 143"; }
grep -q "before the first step; no checkpoint written" "$WORK/s0.err" ||
  { cat "$WORK/s0.err" >&2; fail "SIGTERM at step 0: the message does not say that no checkpoint was written"; }
grep -q "checkpoint written to" "$WORK/s0.err" && fail "claims a checkpoint was written"
[[ ! -e "$WORK/s0.ck" ]] || fail "a checkpoint exists although no step was done"
pass "SIGTERM before the first step: exit 143, $(grep -m1 'before the first step' "$WORK/s0.err" | cut -d' ' -f4- | cut -c1-120)"
echo "output checks passed"
