#!/usr/bin/env bash
# Acceptance (reliability issue), teacher faults with real processes on loopback TCP:
#  1. 3 members, one killed with SIGKILL mid-run (--quorum 2): the run completes, degraded batches
#     are counted in the metrics, and the student's test accuracy is within 1 point of a clean run;
#  2. the killed teacher restarted on the same endpoint is used again within a few seconds
#     (a later epoch has no degraded batch; the log says when it came back);
#  3. two replicas of a member, one killed, next to an in-process member on the teacher thread
#     (--inprocess-overlap on): no degraded batch and the soft targets are byte-for-byte those of a
#     clean run (both members in-process, no teacher thread);
#  4. a teacher that comes back with other weights is refused, loudly, and the run goes on;
#  5. all teachers killed: the trainer stops within --max-wait (+ slack) with a clear message.
source "$(dirname "$0")/lib.sh"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"

for s in 1 2 3; do
  "$TW" train --train-end 10000 --arch 784,128,10 --epochs 1 --seed $s --member "m$s" \
      --blas-threads 1 --out "$WORK/m$s.safetensors" --quiet >/dev/null
done

# Under ThreadSanitizer (make test-tsan) every step is ~10x slower: a smaller unlabeled stream keeps
# the same scenarios (and the same number of epochs and batches in flight) within minutes.
UNLABELED_END=30000
[[ "${EDISTILL_SANITIZER:-}" == thread ]] && UNLABELED_END=9000
DISTILL=(--labeled-end 1000 --unlabeled "$TRAIN_X" --unlabeled-start 1000 --unlabeled-end $UNLABELED_END
         --test-images "$TEST_X" --test-labels "$TEST_Y" --arch 784,64,10 --batch-size 64
         --blas-threads 1 --seed 11 --timeout 2 --health-interval 0.5 --inflight 3)
metric() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" "$1"; }
wait_lines() { # file count timeout_s: waits until the metrics file has `count` lines
  for _ in $(seq 1 $(( $3 * 20 ))); do
    [[ -f "$1" && $(wc -l < "$1") -ge $2 ]] && return 0; sleep 0.05
  done
  fail "$1 did not reach $2 lines in $3 s"
}

start_worker "$WORK/m1.safetensors" "$WORK/w1.ready" --blas-threads 1; EP1=$WORKER_EP
start_worker "$WORK/m2.safetensors" "$WORK/w2.ready" --blas-threads 1; EP2=$WORKER_EP
start_worker "$WORK/m3.safetensors" "$WORK/w3.ready" --blas-threads 1; EP3=$WORKER_EP; PID3=$WORKER_PID

# --- 1 & 2: kill member 3 mid-run, restart it on the same endpoint --------------------------------
"$ST" distill --teachers "$EP1,$EP2,$EP3" "${DISTILL[@]}" --epochs 8 --quorum 2 \
    --out "$WORK/clean.safetensors" --metrics "$WORK/clean.jsonl" --quiet >/dev/null 2>"$WORK/clean.err" ||
  { cat "$WORK/clean.err" >&2; fail "clean run"; }
clean_acc=$(metric "$WORK/clean.jsonl" test_accuracy | tail -n1)

"$ST" distill --teachers "$EP1,$EP2,$EP3" "${DISTILL[@]}" --epochs 8 --quorum 2 \
    --out "$WORK/fault.safetensors" --metrics "$WORK/fault.jsonl" >/dev/null 2>"$WORK/fault.err" &
TRAINER=$!
E2E_PIDS+=("$TRAINER")
wait_lines "$WORK/fault.jsonl" 1 60
quiet_kill "$PID3"
killed_at=$(date +%s.%N)
wait_lines "$WORK/fault.jsonl" 3 60
start_worker "$WORK/m3.safetensors" "$WORK/w3b.ready" --blas-threads 1 --bind "$EP3"
restarted_at=$(date +%s.%N)
wait "$TRAINER" || { cat "$WORK/fault.err" >&2; fail "the run with a killed teacher did not complete"; }
cat "$WORK/fault.jsonl" | cut -c1-200
degraded=$(metric "$WORK/fault.jsonl" degraded_batches | awk '{ s += $1 } END { print s + 0 }')
[[ "$degraded" -gt 0 ]] || fail "no degraded batch counted after killing m3"
grep -q '"missing":{"m3":' "$WORK/fault.jsonl" || fail "metrics do not name the missing member m3"
grep -q "teacher $EP3 (m3) is down" "$WORK/fault.err" || fail "the log does not say m3 went down"
fault_acc=$(metric "$WORK/fault.jsonl" test_accuracy | tail -n1)
awk -v a="$fault_acc" -v b="$clean_acc" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.01) }' ||
  fail "accuracy $fault_acc with a killed teacher vs $clean_acc clean: more than 1 point apart"
pass "m3 killed mid-run: completed, $degraded degraded batches, accuracy $fault_acc vs clean $clean_acc"

back=$(grep -m1 "teacher $EP3 (m3) is back" "$WORK/fault.err") || fail "m3 was never used again"
back_clock=$(cut -d' ' -f1 <<<"$back")
back_at=$(date -u -d "$(date -u +%F) $back_clock" +%s.%N)
delay=$(awk -v a="$back_at" -v b="$restarted_at" 'BEGIN { printf "%.2f", a - b }')
awk -v d="$delay" 'BEGIN { exit !(d < 5) }' || fail "m3 came back $delay s after its restart (>= 5 s)"
grep -q '"up_events":[1-9]' "$WORK/fault.jsonl" || fail "no epoch's metrics record m3 coming back"
last_degraded=$(metric "$WORK/fault.jsonl" degraded_batches | tail -n1)
[[ "$last_degraded" == 0 ]] || fail "the last epoch still has $last_degraded degraded batches"
pass "m3 restarted on $EP3: used again $delay s after the restart; last epoch not degraded ($(awk -v a="$restarted_at" -v b="$killed_at" 'BEGIN{printf "%.1f", a-b}') s down)"

# --- 3: two replicas of m1, one killed, m2 in-process on the teacher thread: no degraded batches,
# identical targets ----------------------------------------------------------------------------------
start_worker "$WORK/m1.safetensors" "$WORK/r1.ready" --blas-threads 1; R1=$WORKER_EP; RPID1=$WORKER_PID
start_worker "$WORK/m1.safetensors" "$WORK/r2.ready" --blas-threads 1; R2=$WORKER_EP
"$ST" distill --teachers "$WORK/m1.safetensors,$WORK/m2.safetensors" "${DISTILL[@]}" --epochs 3 \
    --inprocess-overlap off --dump-targets "$WORK/ref.q" --out "$WORK/ref.safetensors" --quiet \
    >/dev/null 2>&1 || fail "reference run"
"$ST" distill --teachers "$R1,$R2,$WORK/m2.safetensors" "${DISTILL[@]}" --epochs 3 --inprocess-overlap on \
    --dump-targets "$WORK/rep.q" --out "$WORK/rep.safetensors" --metrics "$WORK/rep.jsonl" \
    >/dev/null 2>"$WORK/rep.err" &
TRAINER=$!
E2E_PIDS+=("$TRAINER")
wait_lines "$WORK/rep.jsonl" 1 60
quiet_kill "$RPID1"
wait "$TRAINER" || { cat "$WORK/rep.err" >&2; fail "run with a killed replica"; }
grep -q "teacher $R1 (m1) is down" "$WORK/rep.err" || fail "the log does not say replica $R1 went down"
[[ $(metric "$WORK/rep.jsonl" degraded_batches | awk '{ s += $1 } END { print s + 0 }') == 0 ]] || fail "degraded batches with a live replica"
cmp "$WORK/ref.q" "$WORK/rep.q" || fail "soft targets changed when a replica died"
grep -q "teacher thread" "$WORK/rep.err" || fail "m2 did not run on the teacher thread"
pass "replica of m1 killed (m2 in-process, teacher thread): 0 degraded batches, soft targets identical to the clean run"

# --- 4: a teacher restarted with other weights on a replica's endpoint is refused --------------------
start_worker "$WORK/m1.safetensors" "$WORK/r1b.ready" --blas-threads 1 --bind "$R1"; RPID1=$WORKER_PID
"$ST" distill --teachers "$R1,$R2,$EP2" "${DISTILL[@]}" --epochs 4 \
    --out "$WORK/ref2.safetensors" --metrics "$WORK/ref2.jsonl" >/dev/null 2>"$WORK/refuse.err" &
TRAINER=$!
E2E_PIDS+=("$TRAINER")
wait_lines "$WORK/ref2.jsonl" 1 60
quiet_kill "$RPID1"
start_worker "$WORK/m3.safetensors" "$WORK/imposter.ready" --blas-threads 1 --bind "$R1"
wait "$TRAINER" || { cat "$WORK/refuse.err" >&2; fail "run with an imposter"; }
grep -q "REFUSED teacher $R1 came back with weights" "$WORK/refuse.err" ||
  { cat "$WORK/refuse.err" >&2; fail "the imposter on $R1 was not refused"; }
[[ $(metric "$WORK/ref2.jsonl" degraded_batches | awk '{ s += $1 } END { print s + 0 }') == 0 ]] || fail "degraded batches while m1 had a replica"
pass "teacher with other weights on $R1 refused: $(grep -m1 REFUSED "$WORK/refuse.err" | cut -d' ' -f4- | cut -c1-140)..."

# --- 5: all teachers killed: stop within --max-wait, keep the checkpoint, resume when they are back -
start_worker "$WORK/m1.safetensors" "$WORK/d1.ready" --blas-threads 1; D1=$WORKER_EP; DP1=$WORKER_PID
start_worker "$WORK/m2.safetensors" "$WORK/d2.ready" --blas-threads 1; D2=$WORKER_EP; DP2=$WORKER_PID
DEAD=("$ST" distill --teachers "$D1,$D2" "${DISTILL[@]}" --epochs 6 --max-wait 3
      --checkpoint "$WORK/dead.ckpt" --checkpoint-every 50 --out "$WORK/dead.safetensors"
      --metrics "$WORK/dead.jsonl")
"${DEAD[@]}" >/dev/null 2>"$WORK/dead.err" &
TRAINER=$!
E2E_PIDS+=("$TRAINER")
wait_lines "$WORK/dead.jsonl" 1 60
quiet_kill "$DP1"; quiet_kill "$DP2"
t0=$(date +%s.%N)
rc=0; wait "$TRAINER" || rc=$?
took=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
[[ $rc -ne 0 ]] || fail "the trainer exited 0 with every teacher dead"
grep -q "no live replica of m1" "$WORK/dead.err" || { cat "$WORK/dead.err" >&2; fail "unclear message"; }
awk -v t="$took" 'BEGIN { exit !(t <= 3 + 2 + 3) }' || fail "stopped after $took s, bound is --max-wait 3 + deadline 2 + 3 s slack"
[[ -s "$WORK/dead.ckpt" ]] || fail "no checkpoint kept"
pass "all teachers killed: stopped after $took s (--max-wait 3): $(grep -m1 'giving up' "$WORK/dead.err" | sed 's/.*distill: //' | cut -c1-160)"

start_worker "$WORK/m1.safetensors" "$WORK/d1b.ready" --blas-threads 1 --bind "$D1"; DP1=$WORKER_PID
start_worker "$WORK/m2.safetensors" "$WORK/d2b.ready" --blas-threads 1 --bind "$D2"; DP2=$WORKER_PID
"${DEAD[@]}" --resume >/dev/null 2>"$WORK/resume.err" || { cat "$WORK/resume.err" >&2; fail "resume after the teachers came back"; }
[[ $(wc -l < "$WORK/dead.jsonl") == 6 ]] || fail "resumed run did not finish its 6 epochs: $(wc -l < "$WORK/dead.jsonl") lines"
pass "teachers back: --resume completed the run from the kept checkpoint (6 epochs)"

# SIGTERM while the pool waits for dead teachers: prompt stop, checkpoint, exit 143.
"$ST" distill --teachers "$D1,$D2" "${DISTILL[@]}" --epochs 6 --max-wait 60 \
    --checkpoint "$WORK/term.ckpt" --out "$WORK/term.safetensors" --metrics "$WORK/term.jsonl" \
    >/dev/null 2>"$WORK/term.err" &
TRAINER=$!
E2E_PIDS+=("$TRAINER")
wait_lines "$WORK/term.jsonl" 1 60
quiet_kill "$DP1"; quiet_kill "$DP2"
for _ in $(seq 1 100); do grep -q "no live replica" "$WORK/term.err" && break; sleep 0.05; done
kill -TERM "$TRAINER"
t0=$(date +%s.%N)
rc=0; wait "$TRAINER" || rc=$?
took=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.2f", a - b }')
[[ $rc == 143 ]] || { cat "$WORK/term.err" >&2; fail "SIGTERM while waiting: exit $rc, expected 143"; }
awk -v t="$took" 'BEGIN { exit !(t < 2) }' || fail "SIGTERM while waiting took $took s"
pass "SIGTERM while waiting for dead teachers: exit 143 after $took s, checkpoint kept"
echo "teacher fault checks passed"
