#!/usr/bin/env bash
# e2e cnn (layer stacks): a small CNN member trained on a data slice (`teacher_worker train`), read
# by the independent numpy reader (tests/check_safetensors.py: names, shapes, fingerprint), served
# over ZeroMQ (MemberInfo input shape, a wrong per-sample size refused, logits equal to numpy's),
# distilled into a CNN student in-process and over tcp with byte-identical soft targets and student
# weights (served logits == in-process forward), evaluated by `student_trainer eval`, and distilled
# together with an MLP member (a mixed ensemble) into an MLP student. scripts/cnn_results.sh (the
# README's CNN results pipeline) runs at a tiny scale and writes its summary.
source "$(dirname "$0")/lib.sh"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"
command -v protoc >/dev/null || fail "protoc not found (scripts/deps.sh installs protobuf-compiler)"
ARCH="1x28x28:conv6k5s2p2,bn,relu,maxpool2,flatten,dropout0.1,dense10"

out=$("$TW" train --train-images "$TRAIN_X" --train-labels "$TRAIN_Y" --train-end 4000 \
      --test-images "$TEST_X" --test-labels "$TEST_Y" --arch "$ARCH" --epochs 1 --batch-size 32 \
      --lr 3e-3 --seed 1 --member cnn --blas-threads 1 --out "$WORK/cnn.safetensors" --quiet)
echo "$out"
acc=$(grep -o 'test accuracy [0-9.]*' <<<"$out" | awk '{print $3}')
awk -v a="$acc" 'BEGIN { exit !(a >= 0.65) }' || fail "CNN test accuracy $acc < 0.65"
pass "CNN $ARCH, one epoch on 4000 samples: test accuracy $acc"

"$PY" "$SRC/tests/check_safetensors.py" "$WORK/cnn.safetensors" || fail "numpy reader refused the CNN file"
"$PY" - "$WORK/cnn.safetensors" <<'PYEOF' || fail "CNN file metadata"
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
h = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
m = h["__metadata__"]
assert m["format_version"] == "2", m["format_version"]
assert [l["type"] for l in json.loads(m["layers"])][:3] == ["conv", "bn", "relu"], m["layers"]
assert h["layers.0.weight"]["shape"] == [6, 1, 5, 5], h["layers.0.weight"]
assert h["layers.1.running_var"]["shape"] == [6], h["layers.1.running_var"]
PYEOF
pass "model file: format_version 2, layers metadata, PyTorch names and shapes"

eval_out=$("$ST" eval --models "$WORK/cnn.safetensors" --images "$TEST_X" --labels "$TEST_Y")
pct=$(awk -v a="$acc" 'BEGIN { printf "%.2f%%", 100 * a }')
grep -q -- "$pct" <<<"$eval_out" || { echo "$eval_out"; fail "eval does not report the training run's accuracy $pct"; }
pass "student_trainer eval agrees: $pct"

protoc --python_out="$WORK" -I"$SRC/proto" "$SRC/proto/edistill.proto" || fail "protoc edistill.proto"
start_worker "$WORK/cnn.safetensors" "$WORK/w.ready" --blas-threads 1 --max-batch 64
"$PY" "$SRC/tests/e2e/cnn_client.py" --proto-dir "$WORK" --model "$WORK/cnn.safetensors" \
    --ready-file "$WORK/w.ready" --images "$TEST_X" --count 64 --out "$WORK/served.f32" ||
  fail "serving the CNN"
"$PY" "$SRC/tests/check_safetensors.py" "$WORK/cnn.safetensors" --images "$TEST_X" --count 64 \
    --logits "$WORK/served.f32" || fail "served logits vs numpy"
pass "served CNN logits match the numpy forward pass"

distill() { # name teachers
  "$ST" distill --teachers "$2" --labeled-images "$TRAIN_X" --labeled-labels "$TRAIN_Y" \
      --labeled-end 500 --unlabeled "$TRAIN_X" --unlabeled-start 500 --unlabeled-end 1500 \
      --arch "1x28x28:conv4k3s2p1,bn,relu,flatten,dense10" --steps 20 --batch-size 32 --seed 5 \
      --blas-threads 1 --dump-targets "$WORK/$1.q" --out "$WORK/$1.safetensors" --quiet \
      > "$WORK/$1.out" 2> "$WORK/$1.err" || { cat "$WORK/$1.err" >&2; fail "distill $1"; }
  sed -n 's/.*\(fnv1a64:[0-9a-f]*\).*/\1/p' "$WORK/$1.out"
}
FP_LOCAL=$(distill local "$WORK/cnn.safetensors")
FP_TCP=$(distill tcp "$WORKER_EP")
cmp "$WORK/local.q" "$WORK/tcp.q" || fail "soft targets of the CNN teacher over tcp differ from in-process"
[[ -n "$FP_LOCAL" && "$FP_LOCAL" == "$FP_TCP" ]] || fail "CNN students differ: local $FP_LOCAL tcp $FP_TCP"
"$PY" "$SRC/tests/check_safetensors.py" "$WORK/local.safetensors" >/dev/null || fail "numpy reader refused the student"
pass "CNN teacher in-process and over tcp: identical soft targets and CNN student ($FP_LOCAL)"
# A mixed ensemble (the CNN and an MLP member) distilled into an MLP student.
"$TW" train --train-images "$TRAIN_X" --train-labels "$TRAIN_Y" --train-end 2000 --arch 784,32,10 \
    --epochs 1 --seed 2 --member mlp --blas-threads 1 --out "$WORK/mlp.safetensors" --quiet >/dev/null
"$ST" distill --teachers "$WORK/cnn.safetensors,$WORK/mlp.safetensors" --labeled-images "$TRAIN_X" \
    --labeled-labels "$TRAIN_Y" --labeled-end 500 --unlabeled "$TRAIN_X" --unlabeled-start 500 \
    --unlabeled-end 1500 --arch 784,32,10 --steps 20 --batch-size 32 --seed 5 --blas-threads 1 \
    --out "$WORK/mixed.safetensors" --quiet > "$WORK/mixed.out" 2> "$WORK/mixed.err" ||
  { cat "$WORK/mixed.err" >&2; fail "distilling a CNN + MLP ensemble"; }
grep -q "member 1: mlp" "$WORK/mixed.err" || { cat "$WORK/mixed.err" >&2; fail "the MLP member is not listed"; }
pass "CNN + MLP ensemble distilled into an MLP student"
# The README's CNN results pipeline at a tiny scale: 2 members (one ":wide", with random erasing),
# label, 2 distilled students and the hard-label MLP of the same steps, then the mixup transfer set
# (MLP_SEEDS: its store, the distilled and hard-label MLP of one seed) and the summary.
MEMBER_ARCH=1x28x28:conv4k3p1,relu,maxpool2,flatten,dense10 MEMBERS="a:1:flip:1 b:2:shift:1,flip,erase:0.25:1:wide" \
  SMALL_ARCH=1x28x28:conv2k3p1,relu,maxpool2,flatten,dense10 MLP_ARCH=784,16,10 TRAIN_END=512 \
  STUDENT_EPOCHS=1 BLAS_THREADS=1 MLP_SEEDS=3 MIXUP=256 MLP_STEPS=8 BUILD="$BUILD" \
  bash "$SRC/scripts/cnn_results.sh" "$WORK/results" \
  > "$WORK/results.log" 2>&1 || { tail -n 20 "$WORK/results.log" >&2; fail "scripts/cnn_results.sh"; }
for line in "member a (ref, seed 1, --augment flip, 1 epochs): 0." \
            "member b (wide, seed 2, --augment shift:1,flip,erase:0.25, 1 epochs): 0." \
            "ensemble of 2: " "mlp-hard: " "mlp-distilled: " "small: " \
            "MLP point input: --input-scale " \
            "seed 3, 8 steps: MLP distilled from the mixup store " "mean gain over seeds 3: "; do
  grep -qF "$line" "$WORK/results/summary.txt" || fail "cnn_results.sh summary lacks \"$line\""
done
# The MLP point's distilled MLP and its first hard-label reference share the standardized input
# scaling (in their model files); the second reference keeps the default raw / 255.
scales=$(/usr/bin/python3 - "$WORK/results" <<'EOF'
import json, struct, sys
for name in ("mlp-mixup-std-s3", "mlp-hard-std-s3", "mlp-hard-s3"):
    with open(f"{sys.argv[1]}/{name}.safetensors", "rb") as f:
        meta = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))["__metadata__"]
    print(meta["input_scale"], meta["input_offset"], end=" ")
EOF
)
read -r s1 o1 s2 o2 s3 o3 <<< "$scales"
[[ "$s1 $o1" == "$s2 $o2" && "$s1" != "$s3" && "$o1" != 0 && "$s3 $o3" == "0.00392156886 0" ]] ||
  fail "MLP point input scaling: distilled / hard (same) / hard (default) = $scales"
# A member variant the script does not know is refused before anything runs, naming it.
MEMBERS="a:1:flip:1 z:3:flip:1:huge" BUILD="$BUILD" bash "$SRC/scripts/cnn_results.sh" "$WORK/bad-variant" \
  > "$WORK/bad-variant.log" 2>&1 && fail "cnn_results.sh accepted the member variant 'huge'"
grep -q "z:3:flip:1:huge: no member variant 'huge'" "$WORK/bad-variant.log" ||
  { cat "$WORK/bad-variant.log" >&2; fail "cnn_results.sh: no clear error for an unknown member variant"; }
[[ ! -e "$WORK/bad-variant/a.safetensors" ]] || fail "cnn_results.sh trained a member before refusing the list"
# Again with STUDENT_AUGMENT: the same members (kept), students distilled from the live members
# with --augment, and the MLP on hard labels with the same augmentation.
MEMBER_ARCH=1x28x28:conv4k3p1,relu,maxpool2,flatten,dense10 MEMBERS="a:1:flip:1 b:2:shift:1,flip,erase:0.25:1:wide" \
  SMALL_ARCH=1x28x28:conv2k3p1,relu,maxpool2,flatten,dense10 MLP_ARCH=784,16,10 TRAIN_END=512 \
  STUDENT_EPOCHS=1 BLAS_THREADS=1 STUDENT_AUGMENT=shift:1,flip BUILD="$BUILD" \
  bash "$SRC/scripts/cnn_results.sh" "$WORK/results" > "$WORK/results-aug.log" 2>&1 ||
  { tail -n 20 "$WORK/results-aug.log" >&2; fail "scripts/cnn_results.sh with STUDENT_AUGMENT"; }
grep -q "augmentation shift:1,flip on 1x28x28 images" "$WORK/results/mlp-distilled-aug.log" ||
  fail "the augmented MLP student was not distilled with --augment"
for line in "mlp-hard-aug: " "mlp-distilled-aug: " "small-aug: "; do
  grep -qF "$line" "$WORK/results/summary.txt" || fail "cnn_results.sh summary lacks \"$line\""
done
pass "scripts/cnn_results.sh at a tiny scale: $(wc -l < "$WORK/results/summary.txt") summary lines (with and without STUDENT_AUGMENT)"
echo "cnn acceptance checks passed"
