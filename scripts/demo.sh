#!/usr/bin/env bash
# The main job end to end on this machine (see README "What make demo does"):
#   1. train 3 ensemble members on all Fashion-MNIST training labels (different seeds)
#   2. start them as 3 `teacher_worker serve` processes on loopback TCP
#   3. distill a compact student over ZeroMQ from a small labeled slice + the rest as unlabeled data
#   4. train the same student on the labeled slice alone (hard labels, same steps/seed/optimizer)
#   5. stop the workers, print a table, write results/demo.json
# Usage: scripts/demo.sh [BUILD_DIR]. Environment knobs (defaults in brackets):
#   DEMO_LABELED_FRACTION [0.05]  DEMO_MEMBER_EPOCHS [8]  DEMO_STUDENT_EPOCHS [8]
#   DEMO_MEMBER_ARCH [784,1200,1200,10]  DEMO_STUDENT_ARCH [784,400,400,10]
#   DEMO_DIR [results]  DEMO_RETRAIN [0: reuse member models already in $DEMO_DIR/models]
#   DEMO_MEMBERS [mlp]: `cnn` runs the same scenario with CNN members (the reference CNN member of
#     README "Layer stacks", 4 epochs each unless DEMO_MEMBER_EPOCHS says otherwise; dropout is a
#     layer of the arch); the student stays DEMO_STUDENT_ARCH.
set -euo pipefail

BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TW="$BUILD/teacher_worker/teacher_worker"
ST="$BUILD/student_trainer/student_trainer"
DATA=${EDISTILL_DATA:-/usr/share/datasets/fashion-mnist}
OUT=${DEMO_DIR:-results}
FRACTION=${DEMO_LABELED_FRACTION:-0.05}
STUDENT_EPOCHS=${DEMO_STUDENT_EPOCHS:-8}
CNN_ARCH=1x28x28:conv32k3p1,bn,relu,maxpool2,conv64k3p1,bn,relu,maxpool2,flatten,dense128,relu,dropout0.3,dense10
case "${DEMO_MEMBERS:-mlp}" in
  mlp) MEMBER_EPOCHS=${DEMO_MEMBER_EPOCHS:-8}; MEMBER_ARCH=${DEMO_MEMBER_ARCH:-784,1200,1200,10}
       MEMBER_DROPOUT=(--dropout-in 0.1 --dropout-hidden 0.3); MEMBER_TAG=member ;;
  cnn) MEMBER_EPOCHS=${DEMO_MEMBER_EPOCHS:-4}; MEMBER_ARCH=${DEMO_MEMBER_ARCH:-$CNN_ARCH}
       MEMBER_DROPOUT=(); MEMBER_TAG=member-cnn ;;
  *) echo "demo: DEMO_MEMBERS must be mlp or cnn, not '$DEMO_MEMBERS'" >&2; exit 2 ;;
esac
STUDENT_ARCH=${DEMO_STUDENT_ARCH:-784,400,400,10}
BATCH=128
TRAIN_N=60000
SEEDS=(1 2 3)

for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz \
         t10k-labels-idx1-ubyte.gz; do
  [[ -f "$DATA/$f" ]] || { echo "demo: $DATA/$f is missing (apt-get install dataset-fashion-mnist)" >&2; exit 1; }
done
[[ -x "$TW" && -x "$ST" ]] || { echo "demo: build first (make build)" >&2; exit 1; }

LABELED=$(awk -v f="$FRACTION" -v n=$TRAIN_N 'BEGIN { printf "%d", f * n + 0.5 }')
mkdir -p "$OUT/models" "$OUT/logs"
TRAIN=(--train-images "$DATA/train-images-idx3-ubyte.gz" --train-labels "$DATA/train-labels-idx1-ubyte.gz")
TEST=(--test-images "$DATA/t10k-images-idx3-ubyte.gz" --test-labels "$DATA/t10k-labels-idx1-ubyte.gz")
start=$(date +%s)
step() { printf '\n=== [%4ds] %s\n' $(( $(date +%s) - start )) "$*"; }

# 1. Members: all training labels, different seeds. Regularized enough to generalize, not so much
#    that they become weak teachers.
step "1/5 training ${#SEEDS[@]} members ($MEMBER_ARCH, $MEMBER_EPOCHS epochs each)"
MEMBERS=()
for s in "${SEEDS[@]}"; do
  m="$OUT/models/$MEMBER_TAG-$s.safetensors"
  MEMBERS+=("$m")
  if [[ -f "$m" && "${DEMO_RETRAIN:-0}" == 0 ]]; then
    echo "member $s: reusing $m (DEMO_RETRAIN=1 retrains)"
    continue
  fi
  "$TW" train "${TRAIN[@]}" "${TEST[@]}" --arch "$MEMBER_ARCH" --epochs "$MEMBER_EPOCHS" \
      --batch-size $BATCH --optimizer adam --lr 1e-3 --schedule cosine "${MEMBER_DROPOUT[@]}" \
      --seed "$s" --member "$MEMBER_TAG-$s" --out "$m" \
      --metrics "$OUT/logs/$MEMBER_TAG-$s.jsonl"
done

# 2. Workers on loopback TCP, ports chosen by the kernel (the ready file holds the endpoint).
step "2/5 starting ${#MEMBERS[@]} teacher_worker serve processes on 127.0.0.1"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
ENDPOINTS=()
for i in "${!MEMBERS[@]}"; do
  ready="$OUT/logs/worker-$i.ready"
  rm -f "$ready"
  "$TW" serve --model "${MEMBERS[$i]}" --bind "tcp://127.0.0.1:*" --ready-file "$ready" \
      --threads 1 --blas-threads 1 --max-batch $BATCH 2> "$OUT/logs/worker-$i.log" &
  PIDS+=($!)
done
for i in "${!MEMBERS[@]}"; do
  ready="$OUT/logs/worker-$i.ready"
  for _ in $(seq 1 300); do [[ -s "$ready" ]] && break; kill -0 "${PIDS[$i]}" 2>/dev/null || break; sleep 0.1; done
  [[ -s "$ready" ]] || { echo "demo: worker $i did not start:" >&2; cat "$OUT/logs/worker-$i.log" >&2; exit 1; }
  ENDPOINTS+=("$(sed -n "s/^endpoint=//p" "$ready")")
  echo "worker $i: ${MEMBERS[$i]} at ${ENDPOINTS[$i]} (pid ${PIDS[$i]})"
done
TEACHERS=$(IFS=,; echo "${ENDPOINTS[*]}")

# 3. Distill over ZeroMQ: labeled slice [0, LABELED) + unlabeled images [LABELED, 60000).
step "3/5 distilling $STUDENT_ARCH from $LABELED labeled + $((TRAIN_N - LABELED)) unlabeled images over ZeroMQ"
"$ST" distill --teachers "$TEACHERS" \
    --labeled-images "$DATA/train-images-idx3-ubyte.gz" --labeled-labels "$DATA/train-labels-idx1-ubyte.gz" \
    --labeled-end "$LABELED" --unlabeled "$DATA/train-images-idx3-ubyte.gz" --unlabeled-start "$LABELED" \
    "${TEST[@]}" --arch "$STUDENT_ARCH" --epochs "$STUDENT_EPOCHS" --batch-size $BATCH \
    --temperature 4 --alpha 0.9 --combine prob --optimizer adam --lr 1e-3 --schedule cosine \
    --seed 7 --inflight 4 --blas-threads 1 --out "$OUT/models/student-distilled.safetensors" \
    --metrics "$OUT/logs/distill.jsonl"
STEPS=$(tail -n1 "$OUT/logs/distill.jsonl" | sed -n 's/.*"step":\([0-9]*\).*/\1/p')

# 4. The same student on the labeled slice alone, hard labels, the same number of steps.
step "4/5 training the same student on the $LABELED labeled images alone ($STEPS steps, hard labels)"
"$TW" train "${TRAIN[@]}" --train-end "$LABELED" "${TEST[@]}" --arch "$STUDENT_ARCH" \
    --steps "$STEPS" --batch-size $BATCH --optimizer adam --lr 1e-3 --schedule cosine --seed 7 \
    --member student-hard --out "$OUT/models/student-hard.safetensors" --quiet \
    --metrics "$OUT/logs/student-hard.jsonl"

step "5/5 stopping the workers, evaluating"
for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${PIDS[@]}"; do wait "$p" || echo "demo: worker $p exited with $?" >&2; done
PIDS=()

# Learning curves of both students on one chart (gnuplot-nox; skipped when it is missing).
if command -v gnuplot >/dev/null; then
  "$ST" plot --metrics "$OUT/logs/distill.jsonl,$OUT/logs/student-hard.jsonl" \
      --labels "distilled,hard labels only" --title "student $STUDENT_ARCH, $LABELED labeled images" \
      --out "$OUT/curves.png" >/dev/null 2>&1 || echo "demo: plotting the learning curves failed" >&2
fi

EVAL_MEMBERS=$(IFS=,; echo "${MEMBERS[*]}")
"$ST" eval --models "$EVAL_MEMBERS" "${TEST[@]/--test-/--}" --json "$OUT/members.json" --no-confusion > /dev/null
"$ST" eval --models "$OUT/models/student-hard.safetensors" "${TEST[@]/--test-/--}" --json "$OUT/hard.json" --no-confusion > /dev/null
"$ST" eval --models "$OUT/models/student-distilled.safetensors" "${TEST[@]/--test-/--}" --json "$OUT/distilled.json" > "$OUT/logs/distilled-eval.txt"

# acc FILE KEY: the accuracy of KEY in an `eval --json` file (read with a JSON parser, not a pattern:
# the layout of the file is cJSON's); a missing key stops the demo instead of printing 0%.
acc() {
  /usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]["accuracy"])' \
      "$1" "$2" || { echo "demo: no accuracy for $2 in $1" >&2; exit 1; }
}
MEMBER_ACCS=()
for m in "${MEMBERS[@]}"; do MEMBER_ACCS+=("$(acc "$OUT/members.json" "$m")"); done
ENS=$(acc "$OUT/members.json" ensemble)
HARD=$(acc "$OUT/hard.json" "$OUT/models/student-hard.safetensors")
DIST=$(acc "$OUT/distilled.json" "$OUT/models/student-distilled.safetensors")
/usr/bin/python3 - "$OUT/demo.json" "$FRACTION" "$LABELED" $((TRAIN_N - LABELED)) "$MEMBER_ARCH" \
    "$STUDENT_ARCH" $(( $(date +%s) - start )) "$ENS" "$HARD" "$DIST" "${MEMBER_ACCS[@]}" <<'PY'
import json, sys
out, frac, lab, unlab, march, sarch, secs, ens, hard, dist, *members = sys.argv[1:]
doc = {"members": [float(m) for m in members], "ensemble": float(ens), "student_hard": float(hard),
       "student_distilled": float(dist), "labeled_fraction": float(frac), "labeled": int(lab),
       "unlabeled": int(unlab), "member_arch": march, "student_arch": sarch, "seconds": int(secs)}
with open(out, "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
PY

printf '\n%-34s %s\n' "model (Fashion-MNIST test set)" "accuracy"
for i in "${!MEMBERS[@]}"; do printf '%-34s %6.2f%%\n' "$MEMBER_TAG-${SEEDS[$i]} ($MEMBER_ARCH)" "$(awk -v a="${MEMBER_ACCS[$i]}" 'BEGIN{print 100*a}')"; done
printf '%-34s %6.2f%%\n' "ensemble of ${#MEMBERS[@]} (mean probability)" "$(awk -v a="$ENS" 'BEGIN{print 100*a}')"
printf '%-34s %6.2f%%\n' "student, $LABELED labels only" "$(awk -v a="$HARD" 'BEGIN{print 100*a}')"
printf '%-34s %6.2f%%\n' "student, distilled" "$(awk -v a="$DIST" 'BEGIN{print 100*a}')"
printf '\nresults: %s/demo.json (%ds in all)\n' "$OUT" $(( $(date +%s) - start ))
