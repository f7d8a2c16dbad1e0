#!/usr/bin/env bash
# Issue 12's CNN results, end to end with edistill's programs: trains the CNN members (one
# `teacher_worker train` per MEMBERS entry), evaluates every member and the mean-probability
# ensemble, labels the 60,000 training images once with all members (`student_trainer label`),
# then distills the ensemble into the demo's MLP student and into a small CNN (`distill
# --targets`), and trains the same MLP on hard labels alone for the same number of steps.
# Every number goes to OUT_DIR/summary.txt; the README's "CNN members: results" table comes
# from it.
#
# Usage: scripts/cnn_results.sh [OUT_DIR=runs/cnn-results]
#   MEMBERS="NAME:SEED:AUGMENT:EPOCHS[:VARIANT] ..."  (AUGMENT is --augment's value, e.g. flip,
#                 shift:1,flip or flip,erase:0.25; VARIANT names the member's arch, ref by default:
#                   ref   MEMBER_ARCH, the README's reference CNN
#                   k5    the same with a 5x5 first conv (conv32k5p2)
#                   s2    the same with the first max-pool replaced by a stride-2 second conv
#                   wide  the same with dense256 and dropout 0.5
#                   deep  a third block (conv96k3, 7x7 -> 5x5, and a 2x2 max-pool) before the head)
#   MEMBER_ARCH=...  MLP_ARCH=784,400,400,10  SMALL_ARCH=... (75,162 parameters)
#   STUDENT_EPOCHS=20  T=4  ALPHA=0.9  BUILD=build  BLAS_THREADS=0
#   FMNIST=/usr/share/datasets/fashion-mnist
#   TRAIN_END=-1 (all 60,000; e.g. TRAIN_END=512 with tiny MEMBERS for a smoke run)
#   STUDENT_AUGMENT=shift:2,flip: the students are distilled from the live members with
#                 `distill --augment` (the members label every shifted/flipped batch: consistent
#                 teaching) instead of from the store; the MLP is also trained on hard labels
#                 with the same augmentation (mlp-hard-aug). Outputs get the suffix -aug.
#   MLP_SEEDS="17 18 19 20": then the MLP point with a mixup transfer set, one distilled and two
#                 hard-label MLPs per seed (below; MIXUP=120000 MLP_STEPS=28140 MIXUP_ALPHA=0.5
#                 MLP_WD=0.05 MLP_THREADS=BLAS_THREADS MLP_INPUT="SCALE OFFSET").
# Members checkpoint every 200 steps and run with --resume-if-present: running the script again
# after a stop continues where it stopped; finished models are kept and skipped.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-runs/cnn-results}
declare -A VARIANT=(
  [ref]=${MEMBER_ARCH:-1x28x28:conv32k3p1,bn,relu,maxpool2,conv64k3p1,bn,relu,maxpool2,flatten,dense128,relu,dropout0.3,dense10}
  [k5]=1x28x28:conv32k5p2,bn,relu,maxpool2,conv64k3p1,bn,relu,maxpool2,flatten,dense128,relu,dropout0.3,dense10
  [s2]=1x28x28:conv32k3p1,bn,relu,conv64k3s2p1,bn,relu,maxpool2,flatten,dense128,relu,dropout0.3,dense10
  [wide]=1x28x28:conv32k3p1,bn,relu,maxpool2,conv64k3p1,bn,relu,maxpool2,flatten,dense256,relu,dropout0.5,dense10
  [deep]=1x28x28:conv32k3p1,bn,relu,maxpool2,conv64k3p1,bn,relu,maxpool2,conv96k3,bn,relu,maxpool2,flatten,dense128,relu,dropout0.3,dense10
)
MEMBERS=${MEMBERS:-"c1:1:flip:25 c5:3:shift:1,flip:30 n1:31:flip:25:wide n2:32:flip,erase:0.25:25 n3:33:flip,erase:0.25:25:wide"}
SMALL_ARCH=${SMALL_ARCH:-1x28x28:conv32k3p1,bn,relu,maxpool2,conv64k3p1,bn,relu,maxpool2,conv48k3p1,bn,relu,maxpool2,flatten,dense64,relu,dense10}
MLP_ARCH=${MLP_ARCH:-784,400,400,10}
STUDENT_EPOCHS=${STUDENT_EPOCHS:-20}
BUILD=${BUILD:-$ROOT/build}
D=${FMNIST:-/usr/share/datasets/fashion-mnist}
TW="$BUILD/teacher_worker/teacher_worker"
ST="$BUILD/student_trainer/student_trainer"
X=$D/train-images-idx3-ubyte.gz
Y=$D/train-labels-idx1-ubyte.gz
TEST=(--test-images "$D/t10k-images-idx3-ubyte.gz" --test-labels "$D/t10k-labels-idx1-ubyte.gz")
COMMON=(--blas-threads "${BLAS_THREADS:-0}" --batch-size 128 --seed 7)
TRAIN=(--train-images "$X" --train-labels "$Y" --train-end "${TRAIN_END:--1}")          # teacher_worker train
LABELED=(--labeled-images "$X" --labeled-labels "$Y" --labeled-end "${TRAIN_END:--1}")  # student_trainer distill
[[ -x "$TW" && -x "$ST" ]] || { echo "build first: make build" >&2; exit 1; }
mkdir -p "$OUT"
summary() { echo "$*" | tee -a "$OUT/summary.txt"; }
accuracy() { sed -n 's/.*test accuracy \([0-9.]*\),.*/\1/p' "$1" | tail -n 1; }
pct() { awk -v a="$1" 'BEGIN { printf "%.2f%%", 100 * a }'; }  # 0.9134 -> 91.34%
# once NAME CMD...: runs CMD --out OUT/NAME.safetensors (its output also in OUT/NAME.log), unless
# that model exists
once() {
  local name=$1
  shift
  [[ -f "$OUT/$name.safetensors" ]] || "$@" --out "$OUT/$name.safetensors" 2>&1 | tee "$OUT/$name.log"
}
# label_store DIR [ARGS...]: the members label the training images (+ ARGS) into DIR, once
label_store() {
  local dir=$1
  shift
  [[ -f "$dir/done" ]] && return
  "$ST" label --teachers "$list" --store "$dir" --labeled-images "$X" \
      --labeled-end "${TRAIN_END:--1}" --blas-threads "${BLAS_THREADS:-0}" --quiet "$@"
  touch "$dir/done"
}

# member_spec SPEC: sets name seed variant arch epochs augment; exits 2 on an unknown variant
member_spec() {
  local rest
  IFS=: read -r name seed rest <<< "$1"
  variant=ref
  [[ "${rest##*:}" =~ ^[0-9]+$ ]] || { variant=${rest##*:}; rest=${rest%:*}; }
  arch=${VARIANT[$variant]:-}
  [[ -n "$arch" ]] || { echo "MEMBERS: $1: no member variant '$variant' (${!VARIANT[*]})" >&2; exit 2; }
  epochs=${rest##*:}  # AUGMENT may hold a colon (shift:1,flip): EPOCHS is the last field
  augment=${rest%:*}
}
for spec in $MEMBERS; do member_spec "$spec"; done  # the whole list is checked before any training
models=()
for spec in $MEMBERS; do
  member_spec "$spec"
  m="$OUT/$name.safetensors"
  models+=("$m")
  [[ -f "$m" ]] && { echo "member $name: $m exists, skipped"; continue; }
  "$TW" train --arch "$arch" --epochs "$epochs" --batch-size 128 --optimizer adam --lr 1e-3 \
      --schedule cosine --augment "$augment" --seed "$seed" --member "$name" \
      --blas-threads "${BLAS_THREADS:-0}" "${TRAIN[@]}" "${TEST[@]}" --checkpoint "$OUT/$name.ckpt" \
      --checkpoint-every 200 --resume-if-present --metrics "$OUT/$name.jsonl" --out "$m" \
      2>&1 | tee "$OUT/$name.log"
  summary "member $name ($variant, seed $seed, --augment $augment, $epochs epochs): $(accuracy "$OUT/$name.log")"
done
list=$(IFS=,; echo "${models[*]}")
"$ST" eval --models "$list" --images "${TEST[1]}" --labels "${TEST[3]}" --no-confusion \
    | tee "$OUT/eval-members.txt"
summary "ensemble of ${#models[@]}: $(sed -n 's/^ensemble (mean probability) *- *\([0-9.]*%\).*/\1/p' "$OUT/eval-members.txt")"

SA=${STUDENT_AUGMENT:-}
sfx=${SA:+-aug}
store="$OUT/store"
[[ -n "$SA" ]] || label_store "$store"
source=(--targets "$store")
[[ -z "$SA" ]] || source=(--teachers "$list" --augment "$SA")
distill() {  # NAME ARCH: the ensemble's soft targets (T, ALPHA) plus the labels
  once "$1" "$ST" distill "${source[@]}" "${LABELED[@]}" --arch "$2" --epochs "$STUDENT_EPOCHS" \
      --temperature "${T:-4}" --alpha "${ALPHA:-0.9}" --combine prob "${COMMON[@]}" --quiet \
      "${TEST[@]}" --metrics "$OUT/$1.jsonl"
}
distill "mlp-distilled$sfx" "$MLP_ARCH"
distill "small-distilled$sfx" "$SMALL_ARCH"
# the same MLP on hard labels alone, the same steps as the distilled one
steps=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readlines()[-1])["step"])' \
    "$OUT/mlp-distilled$sfx.jsonl" 2>/dev/null || true)
once mlp-hard "$TW" train --arch "$MLP_ARCH" --steps "$steps" "${COMMON[@]}" "${TRAIN[@]}" --quiet \
    "${TEST[@]}" --metrics "$OUT/mlp-hard.jsonl"
runs=(mlp-hard)
if [[ -n "$SA" ]]; then  # the same MLP (as a layer stack: augmentation needs its image input)
  mlp_img="1x28x28:flatten,$(echo "${MLP_ARCH#*,}" | sed 's/\([0-9][0-9]*\)/dense\1,relu/g; s/,relu$//')"
  once mlp-hard-aug "$TW" train --arch "$mlp_img" --steps "$steps" --augment "$SA" "${COMMON[@]}" \
      "${TRAIN[@]}" --quiet "${TEST[@]}" --metrics "$OUT/mlp-hard-aug.jsonl"
  runs+=(mlp-hard-aug)
fi
runs+=("mlp-distilled$sfx" "small-distilled$sfx")
# the test accuracy each program printed at its end (no second evaluation pass)
for f in "${runs[@]}"; do
  summary "${f/small-distilled/small}: $(pct "$(accuracy "$OUT/$f.log")") ($steps steps)"
done

# MLP_SEEDS="17 18 19 20": the MLP point with a mixup transfer set (README "The MLP point"): MIXUP
# (120,000) blends of the training images (scripts/mixup.py, seed 2026) are labeled with the
# training images into OUT/store-mixup. The MLPs of this point see standardized inputs: the training
# images' mean and standard deviation (of raw / 255) give --input-scale 1 / (255 std) and
# --input-offset -mean / std. Per seed, all for MLP_STEPS (28,140) steps with MLP_THREADS OpenBLAS
# threads (BLAS_THREADS by default; the README's rows: 1):
#   mlp-mixup-std-sN  distilled from the store at T and MIXUP_ALPHA (0.5), standardized input,
#                     --weight-decay MLP_WD (0.05);
#   mlp-hard-std-sN   the same MLP and settings on hard labels alone (only the targets differ);
#   mlp-hard-sN       the MLP on hard labels with the default input scaling (raw / 255) and no
#                     decay: the stronger hard-label setting, the second reference.
# The summary gets each seed's gains over both references and their means.
[[ -n "${MLP_SEEDS:-}" ]] || exit 0
MLP_STEPS=${MLP_STEPS:-28140}
mstore="$OUT/store-mixup"
[[ -f "$mstore/done" ]] ||
  /usr/bin/python3 "$ROOT/scripts/mixup.py" "$X" "$OUT/mixup.gz" "${MIXUP:-120000}" 2026 "${TRAIN_END:--1}"
label_store "$mstore" --unlabeled "$OUT/mixup.gz"
# the standardization above, or MLP_INPUT="SCALE OFFSET" (the README's rows: "0.011109 -0.8103")
if [[ -n "${MLP_INPUT:-}" ]]; then
  read -r scale offset <<< "$MLP_INPUT"
else
  read -r scale offset < <(/usr/bin/python3 - "$X" "${TRAIN_END:--1}" <<'EOF'
import gzip, sys
import numpy as np
raw = (gzip.open if sys.argv[1].endswith(".gz") else open)(sys.argv[1], "rb").read()
n, end = int.from_bytes(raw[4:8], "big"), int(sys.argv[2])
x = np.frombuffer(raw, np.uint8, offset=16).reshape(n, -1)[: end if end >= 0 else n] / 255.0
print(f"{1 / (255 * x.std()):.9g} {-x.mean() / x.std():.9g}")
EOF
  )
fi
[[ -n "${offset:-}" ]] || { echo "cnn_results.sh: no MLP input scaling (MLP_INPUT='${MLP_INPUT:-}', $X)" >&2; exit 1; }
summary "MLP point input: --input-scale $scale --input-offset $offset"
std=(--input-scale "$scale" --input-offset "$offset" --weight-decay "${MLP_WD:-0.05}")
gains=() gains_raw=()
gain() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.2f", 100 * (a - b) }'; }
mean() { printf '%s\n' "$@" | awk '{ s += $1 } END { printf "%+.2f", s / NR }'; }
for seed in $MLP_SEEDS; do
  d="mlp-mixup-std-s$seed" hs="mlp-hard-std-s$seed" h="mlp-hard-s$seed"
  run=(--arch "$MLP_ARCH" --steps "$MLP_STEPS" --blas-threads "${MLP_THREADS:-${BLAS_THREADS:-0}}"
       --batch-size 128 --seed "$seed" --quiet "${TEST[@]}")
  once "$d" "$ST" distill --targets "$mstore" "${LABELED[@]}" --unlabeled "$OUT/mixup.gz" \
      --temperature "${T:-4}" --alpha "${MIXUP_ALPHA:-0.5}" --combine prob "${run[@]}" "${std[@]}"
  once "$hs" "$TW" train "${TRAIN[@]}" "${run[@]}" "${std[@]}"
  once "$h" "$TW" train "${TRAIN[@]}" "${run[@]}"
  a=$(accuracy "$OUT/$d.log") b=$(accuracy "$OUT/$hs.log") c=$(accuracy "$OUT/$h.log")
  gains+=("$(gain "$a" "$b")") gains_raw+=("$(gain "$a" "$c")")
  summary "seed $seed, $MLP_STEPS steps: MLP distilled from the mixup store $(pct "$a"); on hard labels, the same settings $(pct "$b") (gain ${gains[-1]}), the default input scaling $(pct "$c") (gain ${gains_raw[-1]})"
done
summary "mean gain over seeds $MLP_SEEDS: $(mean "${gains[@]}") against the same settings, $(mean "${gains_raw[@]}") against the default input scaling (goal >= +1 for both)"
