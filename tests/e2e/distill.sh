#!/usr/bin/env bash
# Acceptance (distillation issue), with real teacher_worker processes on real sockets:
#  - distilling over ZeroMQ (tcp and ipc) and in-process with the same seed gives byte-identical
#    soft targets for the same inputs and the same student weights (same BLAS settings: 1 thread);
#  - in-process members on the teacher thread (--inprocess-overlap on, 1 OpenBLAS thread each; and
#    auto at --blas-threads 2) give byte-identical soft targets and the same student as without it
#    (off, 1 OpenBLAS thread): the comparison is exact, no tolerance;
#  - two replicas of one member plus another member: the average weights members, not replicas;
#  - an unlabeled file much larger than the shuffle buffer streams through with bounded memory.
source "$(dirname "$0")/lib.sh"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"

# Two small, different members.
for s in 1 2; do
  "$TW" train --train-end 3000 --arch 784,64,10 --epochs 1 --seed $s --member "m$s" \
      --blas-threads 1 --out "$WORK/m$s.safetensors" --quiet
done

start_worker "$WORK/m1.safetensors" "$WORK/a.ready" --blas-threads 1 --max-batch 64; EP_A=$WORKER_EP
start_worker "$WORK/m1.safetensors" "$WORK/a2.ready" --bind "ipc://$WORK/a2.sock" --blas-threads 1 --max-batch 64; EP_A2=$WORKER_EP
start_worker "$WORK/m2.safetensors" "$WORK/b.ready" --blas-threads 1 --max-batch 64; EP_B=$WORKER_EP
start_worker "$WORK/m2.safetensors" "$WORK/b2.ready" --bind "ipc://$WORK/b2.sock" --blas-threads 1 --max-batch 64; EP_B_IPC=$WORKER_EP
echo "workers: A=$EP_A A'=$EP_A2 B=$EP_B B(ipc)=$EP_B_IPC"

distill() { # name teachers [extra args]
  local name=$1 teachers=$2; shift 2
  "$ST" distill --teachers "$teachers" --labeled-end 500 --unlabeled "$TRAIN_X" \
      --unlabeled-start 500 --unlabeled-end 3000 --arch 784,32,10 --steps 30 --batch-size 64 \
      --seed 5 --blas-threads 1 --inflight 3 --dump-targets "$WORK/$name.q" \
      --out "$WORK/$name.safetensors" --metrics "$WORK/$name.jsonl" --quiet "$@" \
      > "$WORK/$name.out" 2> "$WORK/$name.err" || { cat "$WORK/$name.err" >&2; fail "distill $name"; }
  sed -n 's/.*\(fnv1a64:[0-9a-f]*\).*/\1/p' "$WORK/$name.out"
}

FP_LOCAL=$(distill local "$WORK/m1.safetensors,$WORK/m2.safetensors" --inprocess-overlap off)
FP_TCP=$(distill tcp "$EP_A,$EP_B")
FP_IPC=$(distill ipc "$EP_A2,$EP_B_IPC")
[[ -s "$WORK/local.q" ]] || fail "no soft targets dumped"
cmp "$WORK/local.q" "$WORK/tcp.q" || fail "soft targets over tcp differ from in-process"
cmp "$WORK/local.q" "$WORK/ipc.q" || fail "soft targets over ipc differ from in-process"
pass "soft targets identical: in-process, tcp, ipc ($(stat -c %s "$WORK/local.q") bytes)"
[[ "$FP_LOCAL" == "$FP_TCP" && "$FP_LOCAL" == "$FP_IPC" ]] ||
  fail "student weights differ: local $FP_LOCAL tcp $FP_TCP ipc $FP_IPC"
pass "student weights identical after 30 steps: $FP_LOCAL"

# The teacher thread: forced on at 1 OpenBLAS thread, and auto at 2 (then 1 thread each).
FP_OVL=$(distill overlap "$WORK/m1.safetensors,$WORK/m2.safetensors" --inprocess-overlap on)
FP_AUTO=$(distill overlap_auto "$WORK/m1.safetensors,$WORK/m2.safetensors" --blas-threads 2)
for n in overlap overlap_auto; do
  grep -q "in-process members compute on a teacher thread" "$WORK/$n.err" ||
    { cat "$WORK/$n.err" >&2; fail "$n: no teacher thread"; }
  cmp "$WORK/local.q" "$WORK/$n.q" || fail "$n: soft targets differ from the run without the teacher thread"
done
[[ "$FP_OVL" == "$FP_LOCAL" && "$FP_AUTO" == "$FP_LOCAL" ]] ||
  fail "student differs with the teacher thread: on $FP_OVL, auto $FP_AUTO, off $FP_LOCAL"
pass "in-process members on the teacher thread (on; auto at 2 OpenBLAS threads): targets and student identical"

# Replicas: A over tcp and A' over ipc are one member; B is the other. Same targets as {A, B}.
FP_REP=$(distill replicas "$EP_A,$EP_A2,$EP_B")
grep -q "member 0: m1 (fnv1a64:[0-9a-f]*) at $EP_A, $EP_A2" "$WORK/replicas.err" ||
  { cat "$WORK/replicas.err" >&2; fail "A and A' not grouped as replicas of m1"; }
grep -q '"members":2' "$WORK/replicas.jsonl" || fail "metrics do not count 2 members"
cmp "$WORK/local.q" "$WORK/replicas.q" || fail "replicas changed the average"
[[ "$FP_REP" == "$FP_LOCAL" ]] || fail "student differs with replicas: $FP_REP vs $FP_LOCAL"
pass "2 replicas of m1 + m2: averaged as 2 members, targets and student unchanged"
# In-process replicas (the same file twice) are grouped the same way.
FP_REP_LOCAL=$(distill replicas_local "$WORK/m1.safetensors,$WORK/m1.safetensors,$WORK/m2.safetensors" \
    --inprocess-overlap on)
cmp "$WORK/local.q" "$WORK/replicas_local.q" || fail "in-process replicas changed the average"
pass "in-process replicas grouped too"

# Bounded memory: 2,500 vs 57,000 unlabeled samples through a 256-sample shuffle buffer. In the
# ASan build, freed blocks sit in ASan's quarantine (hundreds of MiB) and would count as resident:
# turn it off for these two runs so the comparison measures our memory, not the sanitizer's.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0"
rss() { sed -n 's/.*"max_rss_mib":\([0-9.]*\).*/\1/p' "$WORK/$1.jsonl" | tail -n1; }
"$ST" distill --teachers "$EP_A,$EP_B" --labeled-end 500 --unlabeled "$TRAIN_X" --unlabeled-start 500 \
    --unlabeled-end 3000 --arch 784,32,10 --epochs 1 --batch-size 64 --shuffle-buffer 256 \
    --blas-threads 1 --out "$WORK/small.safetensors" --metrics "$WORK/small.jsonl" --quiet >/dev/null
"$ST" distill --teachers "$EP_A,$EP_B" --labeled-end 500 --unlabeled "$TRAIN_X" --unlabeled-start 3000 \
    --arch 784,32,10 --epochs 1 --batch-size 64 --shuffle-buffer 256 \
    --blas-threads 1 --out "$WORK/large.safetensors" --metrics "$WORK/large.jsonl" --quiet >/dev/null
small=$(rss small); large=$(rss large)
samples=$(sed -n 's/.*"samples":\([0-9]*\).*/\1/p' "$WORK/large.jsonl")
[[ "$samples" == 57500 ]] || fail "large run saw $samples samples, expected 57500"
awk -v s="$small" -v l="$large" 'BEGIN { exit !(l <= s * 1.10 + 2) }' ||
  fail "peak RSS grew with the data: $small MiB for 3,000 samples, $large MiB for 57,500"
pass "bounded memory: peak RSS $small MiB (3,000 samples) vs $large MiB (57,500 samples, 45 MB of pixels)"
echo "distillation acceptance checks passed"
