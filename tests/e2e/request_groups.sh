#!/usr/bin/env bash
# Acceptance (issue 18: grouped teacher requests, `distill --batches-per-request N`), with real
# teacher_worker processes on loopback TCP:
#  1. deterministic teachers (exact_teachers.py: a sample's logits do not depend on its batch):
#     --batches-per-request 3 gives the soft targets and the student of --batches-per-request 1
#     byte for byte, over epochs whose batch count is no multiple of 3 and whose last batch is short
#     (every batch gets its own rows back, in order); the workers served a third of the requests,
#     at three batches' rows each; `label` stores the same logits either way;
#  2. ordinary teachers: the targets agree with ungrouped ones to 1e-5 (float rounding: OpenBLAS
#     sums a sample's products in an order that depends on the GEMM's row count);
#  3. a worker whose --max-batch is below a group's rows gets the group split into requests it
#     accepts: same targets;
#  4. one of two replicas killed mid-run with groups outstanding: the group goes to the other replica
#     whole, no batch is degraded, same targets;
#  5. --batches-per-request 0, 17, or above --inflight: a clear error naming the option.
source "$(dirname "$0")/lib.sh"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"
"$PY" "$SRC/tests/e2e/exact_teachers.py" "$WORK"
"$TW" train --train-end 4000 --arch 784,64,10 --epochs 1 --seed 3 --member m3 --blas-threads 1 \
    --out "$WORK/m3.safetensors" --quiet >/dev/null
free_port() { $PY "$SRC/tests/e2e/serve_client.py" free-port; }
MC=("$PY" "$SRC/tests/e2e/metrics_client.py")
metric() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" "$1"; }

# 2 epochs of 2,300 samples in batches of 100: 23 batches an epoch (7 groups of 3 and one of 2).
RUN=(--labeled-end 500 --unlabeled "$TRAIN_X" --unlabeled-start 1000 --unlabeled-end 2800
     --arch 784,32,10 --batch-size 100 --epochs 2 --blas-threads 1 --seed 5 --inflight 6 --quiet)
distill() { # teachers name args...: targets -> $WORK/name.q, student -> $WORK/name.safetensors
  local teachers=$1 name=$2; shift 2
  "$ST" distill --teachers "$teachers" "${RUN[@]}" --dump-targets "$WORK/$name.q" \
      --out "$WORK/$name.safetensors" --metrics "$WORK/$name.jsonl" "$@" >/dev/null 2>"$WORK/$name.err" ||
    { cat "$WORK/$name.err" >&2; fail "distill $name"; }
}
same_student() { # a b: the same weights (the fingerprint in the model files' metadata)
  local fa fb
  fa=$(grep -ao 'fnv1a64:[0-9a-f]*' "$WORK/$1.safetensors" | head -n1)
  fb=$(grep -ao 'fnv1a64:[0-9a-f]*' "$WORK/$2.safetensors" | head -n1)
  [[ -n "$fa" && "$fa" == "$fb" ]] || fail "students differ: $1 $fa, $2 $fb"
}

# --- 1: deterministic teachers, groups of 3 = ungrouped, byte for byte ----------------------------
PA=$(free_port); PB=$(free_port)
start_worker "$WORK/x1.safetensors" "$WORK/a.ready" --blas-threads 1 --metrics-listen "127.0.0.1:$PA"
XA=$WORKER_EP
start_worker "$WORK/x2.safetensors" "$WORK/b.ready" --blas-threads 1 --metrics-listen "127.0.0.1:$PB"
XB=$WORKER_EP
distill "$XA,$XB" single --batches-per-request 1
req0=$("${MC[@]}" value "http://127.0.0.1:$PA/metrics" 'edistill_worker_requests_total{kind="logit"}')
distill "$XA,$XB" grouped --batches-per-request 3
req1=$("${MC[@]}" value "http://127.0.0.1:$PA/metrics" 'edistill_worker_requests_total{kind="logit"}')
cmp "$WORK/single.q" "$WORK/grouped.q" || fail "grouped requests changed the soft targets"
same_student single grouped
[[ $(stat -c %s "$WORK/single.q") -eq $((2 * 2300 * 10 * 4)) ]] || fail "targets of $(stat -c %s "$WORK/single.q") bytes"
# 46 batches: ungrouped 46 requests, grouped 2 x (7 groups of 3 + 1 of 2) = 16.
[[ ${req0%.*} -eq 46 && $((${req1%.*} - ${req0%.*})) -eq 16 ]] ||
  fail "worker A served $req0 requests ungrouped and $((${req1%.*} - ${req0%.*})) grouped (want 46, 16)"
pass "deterministic teachers: --batches-per-request 3 = 1 byte for byte (targets, student); 46 -> 16 requests"
for g in 1 3; do  # label streams through the same pool: the same store either way
  "$ST" label --teachers "$XA,$XB" --unlabeled "$TRAIN_X" --unlabeled-end 2350 --batch-size 100 \
      --inflight 6 --batches-per-request $g --dtype float32 --store "$WORK/store$g" --quiet \
      >/dev/null 2>"$WORK/label$g.err" || { cat "$WORK/label$g.err" >&2; fail "label --batches-per-request $g"; }
done
cmp "$WORK/store1/shard-00000-of-00001.logits.npy" "$WORK/store3/shard-00000-of-00001.logits.npy" ||
  fail "label: grouped requests changed the stored logits"
pass "label --batches-per-request 3: the same stored logits"

# --- 2: ordinary teachers: within 1e-5 -------------------------------------------------------------
start_worker "$WORK/m3.safetensors" "$WORK/c.ready" --blas-threads 1; XC=$WORKER_EP
distill "$XC" plain1 --batches-per-request 1
distill "$XC" plain3 --batches-per-request 3
"$PY" - "$WORK/plain1.q" "$WORK/plain3.q" <<'EOF' || fail "ordinary teachers: targets differ by more than 1e-5"
import sys
import numpy as np
a, b = (np.fromfile(f, dtype="<f4") for f in sys.argv[1:3])
assert a.size == b.size == 2 * 2300 * 10, (a.size, b.size)
d = float(np.abs(a - b).max())
print(f"ok: ordinary teachers: grouped targets within {d:.3g} of ungrouped (tolerance 1e-5)")
sys.exit(0 if d <= 1e-5 else 1)
EOF

# --- 3: a worker accepting 150 rows: groups of 300 rows are split ----------------------------------
start_worker "$WORK/x1.safetensors" "$WORK/s.ready" --blas-threads 1 --max-batch 150; XS=$WORKER_EP
distill "$XS,$XB" split --batches-per-request 3
cmp "$WORK/single.q" "$WORK/split.q" || fail "groups split for a --max-batch 150 worker changed the targets"
pass "worker with --max-batch 150: groups split into requests it accepts, same targets"

# --- 4: one of two replicas killed with groups outstanding ------------------------------------------
# 3 epochs of 29,500 samples (295 batches each): long enough to kill a replica mid-run.
LONG=(--unlabeled-end 30000 --epochs 3 --timeout 2 --health-interval 0.5)
start_worker "$WORK/x1.safetensors" "$WORK/r1.ready" --blas-threads 1; R1=$WORKER_EP; RPID1=$WORKER_PID
start_worker "$WORK/x1.safetensors" "$WORK/r2.ready" --blas-threads 1; R2=$WORKER_EP
distill "$XA,$XB" ref_long --batches-per-request 1 "${LONG[@]}"
"$ST" distill --teachers "$R1,$R2,$XB" "${RUN[@]}" "${LONG[@]}" --batches-per-request 3 \
    --dump-targets "$WORK/kill.q" --out "$WORK/kill.safetensors" --metrics "$WORK/kill.jsonl" \
    >/dev/null 2>"$WORK/kill.err" &
TRAINER=$!
E2E_PIDS+=("$TRAINER")
for _ in $(seq 1 1200); do [[ -s "$WORK/kill.jsonl" ]] && break; sleep 0.05; done
[[ -s "$WORK/kill.jsonl" ]] || fail "the run with two replicas did not finish its first epoch"
kill -0 "$TRAINER" 2>/dev/null || fail "the run ended before the replica could be killed"
quiet_kill "$RPID1"
wait "$TRAINER" || { cat "$WORK/kill.err" >&2; fail "run with a killed replica"; }
[[ $(wc -l <"$WORK/kill.jsonl") -eq 3 ]] || fail "the run did not train its 3 epochs"
grep -q "teacher $R1 (x1) is down" "$WORK/kill.err" || fail "the log does not say replica $R1 went down"
[[ $(metric "$WORK/kill.jsonl" degraded_batches | awk '{ s += $1 } END { print s + 0 }') == 0 ]] ||
  fail "degraded batches with a live replica"
cmp "$WORK/ref_long.q" "$WORK/kill.q" || fail "soft targets changed when a replica died with groups outstanding"
same_student ref_long kill
pass "replica killed with groups outstanding: 0 degraded batches, same targets and student"

# --- 5: bad values ------------------------------------------------------------------------------------
for v in 0 17; do
  expect_fail "--batches-per-request $v" "batches-per-request must be in 1\.\.16" \
      "$ST" distill --teachers "$XA" --out "$WORK/bad.safetensors" --batches-per-request "$v"
done
expect_fail "--batches-per-request 5 --inflight 4" "at most --inflight \(4\); got 5" \
    "$ST" distill --teachers "$XA" --out "$WORK/bad.safetensors" --batches-per-request 5 --inflight 4
echo "request group checks passed"
