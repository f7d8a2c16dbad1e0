#!/usr/bin/env bash
# Acceptance (reliability issue, trainer faults), with real processes:
#  (a) a distill run SIGKILLed at random moments (after its first checkpoint) and resumed with
#      --resume until it completes ends with the same student (fingerprint on the last stdout line
#      and in the model file), the same soft targets batch for batch, and the same metrics
#      (every deterministic field of every epoch) as an uninterrupted run: with in-process teachers
#      (model files; the interrupted runs compute them on the teacher thread, --inprocess-overlap on,
#      the reference without it) and with 2 remote teacher_worker processes;
#  (b) SIGTERM: the trainer writes a checkpoint, exits promptly with status 143, and a resume ends
#      with the same student; with --augment (teachers label the shifted/flipped batch) in-process
#      and remote teachers give the same student, and a SIGKILLed run resumes to it;
#  (c) --resume with a changed setting is refused naming the field; an existing checkpoint is not
#      overwritten without --resume; --resume without a checkpoint is refused;
#  (d) a truncated, a corrupted and a non-checkpoint file are refused with a clear message.
source "$(dirname "$0")/lib.sh"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"

for s in 1 2; do
  "$TW" train --train-end 2000 --arch 784,64,10 --epochs 1 --seed $s --member "m$s" \
      --blas-threads 1 --out "$WORK/m$s.safetensors" --quiet
done
LOCAL="$WORK/m1.safetensors,$WORK/m2.safetensors"
start_worker "$WORK/m1.safetensors" "$WORK/a.ready" --blas-threads 1 --max-batch 64; EP_A=$WORKER_EP
start_worker "$WORK/m2.safetensors" "$WORK/b.ready" --blas-threads 1 --max-batch 64; EP_B=$WORKER_EP
REMOTE="$EP_A,$EP_B"

# 3 epochs of 47 steps; dropout so the trainer's RNG matters; a checkpoint every 10 steps.
COMMON=(--labeled-end 500 --unlabeled "$TRAIN_X" --unlabeled-start 500 --unlabeled-end 3000
        --test-images "$TEST_X" --test-labels "$TEST_Y" --arch 784,256,256,10 --epochs 3
        --batch-size 64 --seed 5 --blas-threads 1 --inflight 3 --dropout-hidden 0.2
        --checkpoint-every 10 --quiet)

# args NAME TEACHERS: the full argument list of run NAME (all its files under $WORK/NAME.*).
# EXTRA: more arguments for the runs that follow.
EXTRA=()
args() {
  ARGS=(distill --teachers "$2" "${COMMON[@]}" --out "$WORK/$1.safetensors"
        --metrics "$WORK/$1.jsonl" --dump-targets "$WORK/$1.q" --checkpoint "$WORK/$1.ck" "${EXTRA[@]}")
}
fp_line() { sed -n 's/.*\(fnv1a64:[0-9a-f]*\)$/\1/p' "$WORK/$1.out" | tail -n1; }
fp_file() { # the fingerprint recorded in the model file's metadata
  "$PY" -c 'import json,struct,sys; f=open(sys.argv[1],"rb"); n=struct.unpack("<Q",f.read(8))[0]; print(json.loads(f.read(n))["__metadata__"]["fingerprint"])' "$WORK/$1.safetensors"
}
# The deterministic fields of every epoch's metrics line, one line per epoch.
metrics_det() {
  "$PY" -c '
import json, sys
keys = ["epoch", "step", "samples", "labeled", "loss", "soft_loss", "hard_loss",
        "train_accuracy_labeled", "degraded_batches", "test_loss", "test_accuracy"]
for line in open(sys.argv[1]):
    m = json.loads(line)
    print(json.dumps({k: m[k] for k in keys}))' "$WORK/$1.jsonl"
}

# reference NAME TEACHERS: an uninterrupted run.
reference() {
  args "$1" "$2"
  "$ST" "${ARGS[@]}" > "$WORK/$1.out" 2> "$WORK/$1.err" || { cat "$WORK/$1.err" >&2; fail "run $1"; }
}

# wait_checkpoint PID FILE: waits until FILE exists (the run's first checkpoint) while PID lives.
wait_checkpoint() {
  for _ in $(seq 1 1200); do
    [[ -f "$2" ]] && return 0
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.01
  done
  return 1
}
# wait_resumed PID FILE: waits until the resumed run logged where it resumed (so a signal lands in
# training, not start-up); returns early if the process ends.
wait_resumed() {
  for _ in $(seq 1 1200); do
    grep -q "resuming from" "$2" 2>/dev/null && return 0
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.01
  done
}

# interrupted NAME TEACHERS SIGNAL KILLS: starts the run, sends SIGNAL at a random moment after its
# first checkpoint, then resumes it, sending SIGNAL at random moments to the next KILLS-1 resumed
# runs too, and finally resumes it to completion. Sets RESUMES (processes that were interrupted).
interrupted() {
  local name=$1 teachers=$2 sig=$3 kills=$4 rc pid i
  args "$name" "$teachers"
  RESUMES=0
  for ((i = 0; i < kills; i++)); do
    local extra=(); ((i > 0)) && extra=(--resume)
    "$ST" "${ARGS[@]}" "${extra[@]}" > "$WORK/$name.out" 2> "$WORK/$name.err" &
    pid=$!
    if ((i == 0)); then
      wait_checkpoint "$pid" "$WORK/$name.ck" || { cat "$WORK/$name.err" >&2; fail "$name: no checkpoint appeared"; }
    else
      wait_resumed "$pid" "$WORK/$name.err"
    fi
    sleep "0.$((RANDOM % 40))"
    kill "-$sig" "$pid" 2>/dev/null || true
    rc=0; wait "$pid" 2>/dev/null || rc=$?
    grep -h "resuming from" "$WORK/$name.err" | sed 's/^.*info: /  /' || true
    [[ $rc -eq 0 ]] && break  # it finished before the signal
    [[ $rc -eq 137 || $rc -eq 143 ]] || { cat "$WORK/$name.err" >&2; fail "$name: exit status $rc"; }
    echo "  $name: stopped by SIG$sig"
    RESUMES=$((RESUMES + 1))
  done
  [[ -f "$WORK/$name.ck" ]] || fail "$name: no checkpoint left after the interruptions"
  if [[ $rc -ne 0 ]]; then
    "$ST" "${ARGS[@]}" --resume > "$WORK/$name.out" 2> "$WORK/$name.err" ||
      { cat "$WORK/$name.err" >&2; fail "$name: the final resume failed"; }
    grep -h "resuming from" "$WORK/$name.err" | sed 's/^.*info: /  /' || true
  fi
}

# same REF NAME: the resumed run NAME ended exactly like the uninterrupted run REF.
same() {
  local ref=$1 name=$2
  local a b
  a=$(fp_line "$ref"); b=$(fp_line "$name")
  [[ -n "$a" && "$a" == "$b" ]] || fail "$name: final student $b differs from the uninterrupted $a"
  [[ "$(fp_file "$name")" == "$a" ]] || fail "$name: the model file holds $(fp_file "$name"), expected $a"
  cmp "$WORK/$ref.q" "$WORK/$name.q" || fail "$name: soft targets differ from the uninterrupted run"
  diff <(metrics_det "$ref") <(metrics_det "$name") || fail "$name: metrics differ from the uninterrupted run"
  [[ $(wc -l < "$WORK/$name.jsonl") -eq 3 ]] || fail "$name: $(wc -l < "$WORK/$name.jsonl") metrics lines, expected 3"
}

# (a) SIGKILL at random moments, in-process teachers and remote teachers.
reference ref_local "$LOCAL"
reference ref_remote "$REMOTE"
[[ "$(fp_line ref_local)" == "$(fp_line ref_remote)" ]] || fail "in-process and remote references differ"
echo "uninterrupted: $(fp_line ref_local) ($(tail -n1 "$WORK/ref_local.jsonl" | cut -c1-80)...)"
EXTRA=(--inprocess-overlap on)
interrupted kill_local "$LOCAL" KILL 3
EXTRA=()
grep -q "teacher thread" "$WORK/kill_local.err" || fail "kill_local: the teacher thread did not run"
same ref_local kill_local
pass "in-process teachers on the teacher thread: SIGKILLed $RESUMES times, resumed: student $(fp_line kill_local), targets and metrics equal to the run without it"
interrupted kill_remote "$REMOTE" KILL 3
same ref_remote kill_remote
pass "2 teacher_worker processes: SIGKILLed $RESUMES times, resumed: student $(fp_line kill_remote), targets and metrics equal"

# (b) SIGTERM: a checkpoint and a prompt exit with status 143.
args term "$REMOTE"
"$ST" "${ARGS[@]}" > "$WORK/term.out" 2> "$WORK/term.err" &
pid=$!
wait_checkpoint "$pid" "$WORK/term.ck" || { cat "$WORK/term.err" >&2; fail "term: no checkpoint appeared"; }
rm -f "$WORK/term.ck"  # so the checkpoint checked below is the one the signal wrote
sleep "0.0$((RANDOM % 10))"  # the whole run takes about a second: signal it soon
t0=$(date +%s.%N)
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
[[ $rc -eq 143 ]] || { cat "$WORK/term.err" >&2; fail "SIGTERM: exit status $rc, expected 143"; }
grep -q "stopped by SIGTERM after step [0-9]* of 141; checkpoint written to $WORK/term.ck" "$WORK/term.err" ||
  { cat "$WORK/term.err" >&2; fail "SIGTERM: no checkpoint message"; }
[[ -f "$WORK/term.ck" ]] || fail "SIGTERM: no checkpoint written"
awk -v s="$secs" 'BEGIN { exit !(s < 5) }' || fail "SIGTERM: took ${secs}s to exit"
"$ST" "${ARGS[@]}" --resume > "$WORK/term.out" 2> "$WORK/term.err" || { cat "$WORK/term.err" >&2; fail "term: resume"; }
same ref_remote term
pass "SIGTERM: exited 143 in ${secs}s with a checkpoint ($(grep -o 'step [0-9]* of 141' "$WORK/term.err" || sed -n 's/.*resuming from [^:]*: //p' "$WORK/term.err")); resumed to the same student"

# (b2) --augment (teachers label each shifted/flipped batch): in-process and remote teachers give
# the same student (both saw the augmented images), another student than without augmentation,
# and a SIGKILLed run resumes to it (the draws are a function of the step).
EXTRA=(--augment shift:2,flip)
reference aug_local "$LOCAL"
reference aug_remote "$REMOTE"
[[ "$(fp_line aug_local)" == "$(fp_line aug_remote)" ]] ||
  fail "--augment: in-process ($(fp_line aug_local)) and remote ($(fp_line aug_remote)) students differ"
[[ "$(fp_line aug_local)" != "$(fp_line ref_local)" ]] || fail "--augment did not change the student"
cmp -s "$WORK/aug_local.q" "$WORK/ref_local.q" && fail "--augment: the teachers' targets did not change"
interrupted kill_aug "$REMOTE" KILL 2
same aug_remote kill_aug
EXTRA=()
pass "--augment shift:2,flip: in-process and remote teachers give the same student $(fp_line aug_local) (not the unaugmented one); SIGKILLed $RESUMES times, resumed to it"

# (c) configuration checks (EDISTILL_LOG=warn: stderr holds just the error).
STQ=(env EDISTILL_LOG=warn "$ST")
args term "$REMOTE"
cp "$WORK/kill_local.ck" "$WORK/term.ck"
expect_fail "resume with another --temperature" 'config field "temperature" differs: the checkpoint has 4, this run has 2' \
  "${STQ[@]}" "${ARGS[@]}" --resume --temperature 2
expect_fail "resume with another --seed" 'config field "seed" differs' "${STQ[@]}" "${ARGS[@]}" --resume --seed 6
expect_fail "resume with --augment" 'config field "augment" differs' "${STQ[@]}" "${ARGS[@]}" --resume --augment flip
expect_fail "resume with other teachers" 'config field "teachers" differs' \
  "${STQ[@]}" "${ARGS[@]}" --resume --teachers "$WORK/m1.safetensors"
expect_fail "existing checkpoint without --resume" 'already exists: pass --resume' "${STQ[@]}" "${ARGS[@]}"
args nothing "$LOCAL"
expect_fail "--resume without a checkpoint" 'no checkpoint at .*nothing.ck' "${STQ[@]}" "${ARGS[@]}" --resume
expect_fail "--resume without --checkpoint" 'needs --checkpoint' "${STQ[@]}" distill --teachers "$LOCAL" \
  --out "$WORK/x.safetensors" --resume

# (d) damaged checkpoints.
args bad "$LOCAL"
head -c 50000 "$WORK/kill_local.ck" > "$WORK/bad.ck"
expect_fail "truncated checkpoint" 'bad.ck.*(truncated|shorter|ends)' "${STQ[@]}" "${ARGS[@]}" --resume
cp "$WORK/kill_local.ck" "$WORK/bad.ck"
size=$(stat -c %s "$WORK/bad.ck")
printf '\x55' | dd of="$WORK/bad.ck" bs=1 seek=$((size - 1000)) conv=notrunc status=none
expect_fail "corrupted checkpoint" 'bad.ck: checksum mismatch .*corrupted' "${STQ[@]}" "${ARGS[@]}" --resume
cp "$WORK/m1.safetensors" "$WORK/bad.ck"
expect_fail "model file as checkpoint" 'not an edistill checkpoint' "${STQ[@]}" "${ARGS[@]}" --resume
echo "resume acceptance checks passed"
