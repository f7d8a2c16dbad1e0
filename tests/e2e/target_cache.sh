#!/usr/bin/env bash
# Acceptance (issue 15, `distill --cache-targets STORE`), with real processes: 2 teacher_worker
# processes serve deterministic teachers (exact_teachers.py: batch-independent logits) and count
# the samples they compute (/metrics edistill_worker_samples_total).
#  (a) 3 epochs: epoch 1's batches go to the teachers and their replies fill the store; epochs 2
#      and 3 send none (each worker computed exactly the run's samples once); the student is
#      bit-identical to one distilled from the same teachers live; the store passes
#      tests/check_target_store.py and holds exactly the teachers' logits (numpy forward);
#  (b) a rerun reuses the complete store from epoch 1: no teacher computes anything;
#  (c) SIGKILL in the middle of epoch 1 (teachers paused so it lands there) + --resume: the same
#      student, and the same store byte for byte; SIGTERM likewise (exit 143);
#  (d) a run killed in epoch 2/3 and resumed reads the store (no teacher requests);
#  (e) a store (complete, or being filled) of other data or members is refused naming the
#      difference;
#  (f) rows of degraded batches (--quorum 1, a member paused) are not stored; a later run with
#      every member completes the store, which then equals numpy's logits.
source "$(dirname "$0")/lib.sh"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"
"$PY" "$SRC/tests/e2e/exact_teachers.py" "$WORK"
X="$WORK/x1.safetensors,$WORK/x2.safetensors"
start_worker "$WORK/x1.safetensors" "$WORK/a.ready" --blas-threads 1 --max-batch 64 --metrics-listen 127.0.0.1:0
EP_A=$WORKER_EP; PID_A=$WORKER_PID; M_A=$(sed -n 's/^metrics=//p' "$WORK/a.ready")
start_worker "$WORK/x2.safetensors" "$WORK/b.ready" --blas-threads 1 --max-batch 64 --metrics-listen 127.0.0.1:0
EP_B=$WORKER_EP; PID_B=$WORKER_PID; M_B=$(sed -n 's/^metrics=//p' "$WORK/b.ready")
EPS="$EP_A,$EP_B"
N=2000 # samples per epoch: 500 labeled + 1500 unlabeled
COMMON=(--labeled-end 500 --unlabeled "$TRAIN_X" --unlabeled-start 500 --unlabeled-end 2000
        --arch 784,128,10 --epochs 3 --batch-size 64 --seed 5 --blas-threads 1 --dropout-hidden 0.2
        --inflight 2 --quiet)
fp() { sed -n 's/.*\(fnv1a64:[0-9a-f]*\)$/\1/p' "$1" | tail -n1; }
# computed SAMPLES: the samples both workers computed so far.
computed() {
  "$PY" - "$M_A" "$M_B" <<'PY'
import re, sys, urllib.request
n = 0
for addr in sys.argv[1:]:
    text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=10).read().decode()
    n += int(float(re.search(r"^edistill_worker_samples_total(?:\{[^}]*\})? (\S+)$", text, re.M).group(1)))
print(n)
PY
}
index() { echo "$1/shard-00000-of-00001.json"; }

# Reference: the same teachers in process, live every epoch.
"$ST" distill --teachers "$X" "${COMMON[@]}" --out "$WORK/live.safetensors" > "$WORK/live.out"
REF=$(fp "$WORK/live.out")
[[ -n "$REF" ]] || fail "no fingerprint from the live run"

# (a) fill in epoch 1, read in epochs 2 and 3.
c0=$(computed)
"$ST" distill --teachers "$EPS" --cache-targets "$WORK/c1" "${COMMON[@]}" --out "$WORK/c1.safetensors" \
    --metrics "$WORK/c1.jsonl" > "$WORK/c1.out" 2> "$WORK/c1.err" || { cat "$WORK/c1.err"; fail "cache run"; }
c1=$(computed)
[[ $((c1 - c0)) -eq $((2 * N)) ]] ||
  fail "the workers computed $((c1 - c0)) samples for 3 epochs, expected $((2 * N)) (epoch 1 only, 2 members)"
[[ "$(fp "$WORK/c1.out")" == "$REF" ]] || fail "cached run $(fp "$WORK/c1.out") != live $REF"
grep -q "epoch 1 targets: 0 rows from the store, $N from the teachers" "$WORK/c1.err" || fail "epoch 1 log: $(cat "$WORK/c1.err")"
grep -q "target cache .* complete: $N samples.*no longer asked" "$WORK/c1.err" || fail "no 'complete' line"
grep -q "epoch 3 targets: $N rows from the store, 0 from the teachers" "$WORK/c1.err" || fail "epoch 3 log: $(cat "$WORK/c1.err")"
[[ -f "$(index "$WORK/c1")" && ! -e "$WORK/c1/shard-00000-of-00001.fill.json" ]] || fail "store not finalized: $(ls "$WORK/c1")"
# The teachers' logits computed independently (exact arithmetic: numpy gives the same float32s).
"$PY" - "$WORK" "$TRAIN_X" <<'PY'
import gzip, json, struct, sys
import numpy as np
w = sys.argv[1]
with gzip.open(sys.argv[2]) as f:
    x = np.frombuffer(f.read()[16:], dtype=np.uint8).reshape(-1, 784)[:2000].astype(np.float64) / 256 - 0.5
out = []
for m in ("x1", "x2"):
    b = open(f"{w}/{m}.safetensors", "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    t = {k: np.frombuffer(b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], "<f4").reshape(v["shape"]).astype(np.float64)
         for k, v in h.items() if k != "__metadata__"}
    hid = np.maximum(x @ t["layers.0.weight"].T + t["layers.0.bias"], 0)
    out.append(hid @ t["layers.1.weight"].T + t["layers.1.bias"])
np.stack(out, axis=1).astype("<f4").tofile(f"{w}/ref.f32")
PY
"$PY" "$SRC/tests/check_target_store.py" "$WORK/c1" "$WORK/ref.f32" || fail "check_target_store.py refused the filled store"
pass "epoch 1 filled the store ($((c1 - c0)) samples computed in 3 epochs), epochs 2-3 asked nothing; student == live ($REF); store == numpy's logits"

# (b) a complete store is reused from epoch 1.
"$ST" distill --teachers "$EPS" --cache-targets "$WORK/c1" "${COMMON[@]}" --out "$WORK/c2.safetensors" \
    > "$WORK/c2.out" 2> "$WORK/c2.err" || { cat "$WORK/c2.err"; fail "rerun"; }
c2=$(computed)
[[ $c2 -eq $c1 && "$(fp "$WORK/c2.out")" == "$REF" ]] || fail "rerun: $((c2 - c1)) samples computed, $(fp "$WORK/c2.out")"
grep -q "is complete.*not asked" "$WORK/c2.err" || fail "rerun log: $(cat "$WORK/c2.err")"
pass "complete store reused from epoch 1: 0 samples computed, same student"

# (c) interrupted in the middle of epoch 1: the teachers are paused once the first checkpoint is
# written (one after every step), so the run cannot leave epoch 1; then SIGKILL (or SIGTERM) and
# resume. On a machine so loaded that epoch 1 ended before the pause, the attempt is repeated.
# in_epoch1 SIG DIR: 0 when the run was stopped in epoch 1 (RUN holds its arguments).
in_epoch1() {
  local sig=$1 s=$2 pid rc=0
  rm -rf "$s" "$s.ck"
  RUN=(distill --teachers "$EPS" --cache-targets "$s" "${COMMON[@]}" --out "$s.safetensors"
       --checkpoint "$s.ck" --checkpoint-every 1 --timeout 30 --max-wait 60)
  "$ST" "${RUN[@]}" > "$s.out" 2> "$s.err" &
  pid=$!
  for _ in $(seq 1 2000); do [[ -f "$s.ck" ]] && break; kill -0 $pid 2>/dev/null || break; sleep 0.005; done
  kill -STOP "$PID_A" "$PID_B"
  sleep 0.3
  if [[ -e "$(index "$s")" || ! -f "$s.ck" ]]; then
    kill -CONT "$PID_A" "$PID_B"; quiet_kill $pid; return 1
  fi
  [[ -f "$s/shard-00000-of-00001.fill.json" ]] || { kill -CONT "$PID_A" "$PID_B"; fail "$sig: no fill record: $(ls "$s")"; }
  if [[ $sig == KILL ]]; then
    quiet_kill $pid
  else
    kill -TERM $pid; wait $pid || rc=$?
    [[ $rc -eq 143 ]] || { kill -CONT "$PID_A" "$PID_B"; cat "$s.err"; fail "SIGTERM: exit $rc"; }
  fi
  kill -CONT "$PID_A" "$PID_B"
}
for sig in KILL TERM; do
  s="$WORK/k$sig"
  for attempt in 1 2 3 4; do
    in_epoch1 $sig "$s" && break
    echo "note: epoch 1 ended before the teachers were paused (attempt $attempt); again"
    [[ $attempt -lt 4 ]] || fail "$sig: could not stop the run in epoch 1 in 4 attempts"
  done
  expect_fail "--targets on a store being filled" "being filled by .distill --cache-targets" \
    "$ST" distill --targets "$s" "${COMMON[@]}" --out "$WORK/x.safetensors"
  if [[ $sig == TERM ]]; then # (e) the store being filled belongs to this data and these members
    expect_fail "store being filled, other range" "other data or members.*input 1 .*\[500, 2000\) vs \[500, 1900\)" \
      "$ST" distill --teachers "$EPS" --cache-targets "$s" "${COMMON[@]}" --unlabeled-end 1900 --out "$WORK/x.safetensors"
  fi
  "$ST" "${RUN[@]}" --resume > "$s.out" 2> "$s.err" || { cat "$s.err"; fail "$sig: resume"; }
  grep -q "resuming from .*: epoch 1," "$s.err" || fail "$sig: did not resume in epoch 1: $(cat "$s.err")"
  grep -Eq "target cache .*: [0-9]+ of $N samples stored" "$s.err" || fail "$sig: resume log: $(cat "$s.err")"
  [[ "$(fp "$s.out")" == "$REF" ]] || fail "$sig in epoch 1 + resume: $(fp "$s.out") != $REF"
  cmp "$WORK/c1/shard-00000-of-00001.logits.npy" "$s/shard-00000-of-00001.logits.npy" ||
    fail "$sig + resume: the store differs from the uninterrupted run's"
  cmp "$(index "$WORK/c1")" "$(index "$s")" || fail "$sig + resume: the index differs"
  pass "SIG$sig in epoch 1 ($(sed -n 's/.*: \([0-9]*\) of .*stored.*/\1/p' "$s.err" | head -n1) of $N stored at the resume) + --resume: same student, same store bytes"
done

# (d) stopped once epoch 1 is done (its metrics line written) and before the run ends (SIGSTOP,
# then SIGKILL; repeated if the run had ended), resumed: reads the store, no teacher computes.
s="$WORK/late"
for attempt in 1 2 3 4; do
  rm -rf "$s" "$s.ck" "$s.jsonl"
  RUN=(distill --teachers "$EPS" --cache-targets "$s" "${COMMON[@]}" --out "$s.safetensors"
       --checkpoint "$s.ck" --checkpoint-every 1 --metrics "$s.jsonl")
  "$ST" "${RUN[@]}" > "$s.out" 2> "$s.err" &
  pid=$!
  for _ in $(seq 1 3000); do [[ -s "$s.jsonl" ]] && break; kill -0 $pid 2>/dev/null || break; sleep 0.005; done
  sleep 0.1 # past epoch 1's end-of-epoch checkpoint (written right after its metrics line)
  kill -STOP $pid 2>/dev/null || true
  alive=0; kill -0 $pid 2>/dev/null && ! grep -q "^{.*\"epoch\":3" "$s.jsonl" && alive=1
  quiet_kill $pid
  [[ $alive -eq 1 ]] && break
  echo "note: the run ended before it was stopped (attempt $attempt); again"
  [[ $attempt -lt 4 ]] || fail "could not stop the run in epoch 2/3 in 4 attempts"
done
c3=$(computed)
"$ST" "${RUN[@]}" --resume > "$s.out" 2> "$s.err" || { cat "$s.err"; fail "late resume"; }
c4=$(computed)
grep -Eq "resuming from .*: epoch [23]," "$s.err" || fail "the stop did not land in epoch 2/3: $(cat "$s.err")"
[[ $c4 -eq $c3 && "$(fp "$s.out")" == "$REF" ]] || fail "resumed after epoch 1: $((c4 - c3)) samples computed, $(fp "$s.out")"
pass "killed in epoch $(sed -n 's/.*resuming from .*: epoch \([0-9]\),.*/\1/p' "$s.err") and resumed: 0 samples computed, same student"

# (f) degraded batches: member 2 paused early in epoch 1 (--quorum 1): its batches are trained on
# with member 1 alone and their rows are not stored; a second run completes the fill with both
# members, and the store then holds exactly numpy's logits (no row of a degraded batch).
s="$WORK/deg"
for attempt in 1 2 3; do
  rm -rf "$s" "$s.ck" "$s.jsonl"
  "$ST" distill --teachers "$EPS" --cache-targets "$s" "${COMMON[@]}" --out "$s.safetensors" \
      --quorum 1 --timeout 1 --health-interval 0.3 --checkpoint "$s.ck" --checkpoint-every 1 \
      --metrics "$s.jsonl" > "$s.out" 2> "$s.err" &
  pid=$!
  for _ in $(seq 1 2000); do [[ -f "$s.ck" ]] && break; kill -0 $pid 2>/dev/null || break; sleep 0.005; done
  kill -STOP "$PID_B"; sleep 1.5; kill -CONT "$PID_B"
  wait $pid || { cat "$s.err"; fail "degraded run"; }
  grep -q "not stored: degraded batches" "$s.err" && break
  echo "note: no degraded batch (epoch 1 ended before member 2 was paused; attempt $attempt); again"
  [[ $attempt -lt 3 ]] || fail "no degraded batch in 3 attempts"
done
deg=$("$PY" -c 'import json,sys; print(sum(json.loads(l)["degraded_batches"] for l in open(sys.argv[1])))' "$s.jsonl")
[[ $deg -gt 0 ]] || fail "the log says degraded, the metrics count $deg degraded batches"
"$ST" distill --teachers "$EPS" --cache-targets "$s" "${COMMON[@]}" --epochs 1 --out "$s.safetensors" \
    > "$s.out" 2> "$s.err2" || { cat "$s.err2"; fail "run completing the degraded store"; }
[[ -f "$(index "$s")" ]] || fail "the store is not complete after a run with every member: $(cat "$s.err2")"
"$PY" "$SRC/tests/check_target_store.py" "$s" "$WORK/ref.f32" || fail "the store holds targets of a degraded batch"
pass "degraded batches ($deg): trained on, not stored; completed later with both members: store == numpy's logits"

# (e) refusals naming the difference.
expect_fail "complete store, other range" "other data or members.*input 1 .*\[500, 2000\) vs \[500, 1900\)" \
  "$ST" distill --teachers "$EPS" --cache-targets "$WORK/c1" "${COMMON[@]}" --unlabeled-end 1900 --out "$WORK/x.safetensors"
expect_fail "complete store, other members" "other data or members.*2 members vs 1" \
  "$ST" distill --teachers "$EP_A" --cache-targets "$WORK/c1" "${COMMON[@]}" --out "$WORK/x.safetensors"
mkdir -p "$WORK/lp" && : > "$WORK/lp/shard-00000-of-00002.logits.npy.partial"
expect_fail "a directory with an unfinished label shard" "unfinished .student_trainer label. shard" \
  "$ST" distill --teachers "$EPS" --cache-targets "$WORK/lp" "${COMMON[@]}" --out "$WORK/x.safetensors"
expect_fail "--cache-targets without teachers" "give --teachers" \
  "$ST" distill --cache-targets "$WORK/c1" "${COMMON[@]}" --out "$WORK/x.safetensors"
echo "target_cache: all checks passed"
