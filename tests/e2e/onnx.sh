#!/usr/bin/env bash
# e2e onnx: ONNX in and out, checked against tools that are not ours (issue 13).
#  - PyTorch (python3-torch) trains small models on real Fashion-MNIST (seeded, a few hundred
#    steps), torch.onnx.export writes them at opsets 13 and 17; `teacher_worker serve --model
#    x.onnx` serves them and its logits on 1,000 test images equal PyTorch's to 1e-4, argmax equal.
#    A MatMul + Add model built with onnx.helper (float_data and raw_data initializers) likewise.
#  - `teacher_worker import` writes an equivalent edistill model file (same logits, provenance
#    names the ONNX file and producer).
#  - A distillation with two ONNX teachers and one native member, over ZeroMQ, trains a student;
#    `student_trainer export` writes it as ONNX: onnx.checker passes, OpenCV dnn runs it with
#    logits equal to edistill's (the worker serving the student file) to 1e-4; export -> import
#    round trip gives the same weights (fingerprint) and logits to 1e-5.
#  - Bad ONNX files (truncated, unsupported op, wrong initializer size, 4-D output, branching,
#    opset 9) are refused with one clear line.
#  - A CNN (Conv, BatchNorm, MaxPool, AveragePool) imported onto the layer stack and exported
#    again: OpenCV dnn runs the export with edistill's logits; the round trip keeps the logits.
source "$(dirname "$0")/lib.sh"
[[ -f "$TEST_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"
command -v protoc >/dev/null || fail "protoc not found (scripts/deps.sh installs protobuf-compiler)"
$PY -c 'import torch, onnx, cv2, zmq' 2>/dev/null ||
  fail "$PY lacks torch/onnx/cv2/zmq (scripts/deps.sh installs python3-torch python3-onnx python3-opencv python3-zmq)"
REF="$SRC/tests/e2e/onnx_ref.py"
protoc --python_out="$WORK" -I"$SRC/proto" "$SRC/proto/edistill.proto" || fail "protoc edistill.proto"

$PY "$REF" make-all "$WORK/m" --steps 300 >/dev/null || fail "making the PyTorch/ONNX models"
pass "PyTorch models trained and exported (opsets 13, 17)"

# serve_and_query MODEL OUT.npy [serve args]: logits of 1,000 test images from a worker.
serve_and_query() {
  local model=$1 out=$2; shift 2
  start_worker "$model" "$WORK/q.ready" --blas-threads 1 --max-batch 256 "$@"
  $PY "$REF" query --proto-dir "$WORK" --ready-file "$WORK/q.ready" --out "$out" || fail "querying $model"
  kill -TERM "$WORKER_PID"; wait "$WORKER_PID" 2>/dev/null || true
}

for name in mlp_13 mlp_bn_17 matmul_11 cnn_13 cnn_17; do
  model="$WORK/m/$name.onnx"
  serve_and_query "$model" "$WORK/$name.worker.npy"
  $PY "$REF" compare "$WORK/m/$name.npy" "$WORK/$name.worker.npy" --tol 1e-4 || fail "$name: worker vs PyTorch"
  pass "$name: serve --model $name.onnx == PyTorch"
done
grep -q "trailing Softmax '/1/Softmax' dropped: the worker serves logits" "$WORK/workers.log" ||
  fail "the dropped Softmax is not logged"

# import: an edistill model file with the same logits and the ONNX file named in the provenance.
"$TW" import "$WORK/m/mlp_bn_17.onnx" --out "$WORK/mlp_bn.safetensors" --member teacher-bn >/dev/null ||
  fail "teacher_worker import"
$PY - "$WORK/mlp_bn.safetensors" <<'PYEOF' || fail "import provenance"
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
meta = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])["__metadata__"]
imp = json.loads(meta["provenance"])["imported_from"]
assert imp["file"] == "mlp_bn_17.onnx" and imp["producer"].startswith("pytorch"), imp
assert meta["member"] == "teacher-bn", meta
PYEOF
serve_and_query "$WORK/mlp_bn.safetensors" "$WORK/mlp_bn.native.npy"
$PY "$REF" compare "$WORK/m/mlp_bn_17.npy" "$WORK/mlp_bn.native.npy" --tol 1e-4 || fail "imported file vs PyTorch"
pass "teacher_worker import: same logits, provenance names mlp_bn_17.onnx and pytorch"
# In-process (ed_member_open of a .onnx path, as eval and in-process teachers do): same numbers.
"$ST" eval --models "$WORK/m/mlp_bn_17.onnx,$WORK/mlp_bn.safetensors" --no-confusion \
    --json "$WORK/eval.json" >/dev/null 2>&1 || fail "eval of an ONNX file"
$PY - "$WORK/eval.json" <<'PYEOF' || fail "eval: ONNX file and imported file differ"
import json, sys
r = json.load(open(sys.argv[1]))
a, b = (v for k, v in r.items() if k != "ensemble")
assert a == b and a["accuracy"] > 0.7, r
PYEOF
pass "student_trainer eval of the .onnx file == of the imported file"

# Bad files: one clear line each, from import and from serve.
B="$WORK/m/bad"
expect_fail "truncated" "truncated.onnx: not an ONNX model" "$TW" import "$B/truncated.onnx" --out "$WORK/x.safetensors"
expect_fail "unsupported op" "node 'act_tanh' \(Tanh\): unsupported op" "$TW" import "$B/unsupported_op.onnx" --out "$WORK/x.safetensors"
expect_fail "initializer size" "tensor 'w' holds 31356 bytes, its dims need 31360" "$TW" import "$B/bad_initializer.onnx" --out "$WORK/x.safetensors"
expect_fail "4-D output" "output 'y' is 4-D, not 2-D" "$TW" import "$B/output_4d.onnx" --out "$WORK/x.safetensors"
expect_fail "branching" "branching graph" "$TW" import "$B/branching.onnx" --out "$WORK/x.safetensors"
expect_fail "opset 9" "opset 9 is not supported" "$TW" import "$B/opset9.onnx" --out "$WORK/x.safetensors"
expect_fail "serve refuses too" "node 'act_tanh' \(Tanh\): unsupported op" "$TW" serve --model "$B/unsupported_op.onnx" --bind "tcp://127.0.0.1:*"
for f in "$B"/*.onnx; do
  n=$( { "$TW" import "$f" --out "$WORK/x.safetensors" 2>&1 || true; } | wc -l)
  [[ $n -eq 1 ]] || fail "$(basename "$f"): $n lines of error output, expected 1"
done
[[ ! -e "$WORK/x.safetensors" ]] || fail "a refused import wrote its output"

# Distillation: two PyTorch-made ONNX teachers and one native member, over ZeroMQ.
"$TW" train --train-end 3000 --arch 784,64,10 --epochs 1 --seed 1 --member native \
    --blas-threads 1 --out "$WORK/native.safetensors" --quiet
start_worker "$WORK/m/mlp_13.onnx" "$WORK/t1.ready" --blas-threads 1 --max-batch 64; EP1=$WORKER_EP
start_worker "$WORK/m/mlp_bn_17.onnx" "$WORK/t2.ready" --blas-threads 1 --max-batch 64; EP2=$WORKER_EP
start_worker "$WORK/native.safetensors" "$WORK/t3.ready" --blas-threads 1 --max-batch 64; EP3=$WORKER_EP
"$ST" distill --teachers "$EP1,$EP2,$EP3" --labeled-end 500 --unlabeled "$TRAIN_X" --unlabeled-start 500 \
    --unlabeled-end 3000 --arch 784,32,10 --steps 60 --batch-size 64 --seed 5 --blas-threads 1 \
    --out "$WORK/student.safetensors" --quiet >"$WORK/distill.out" 2>"$WORK/distill.err" ||
  { cat "$WORK/distill.err" >&2; fail "distill with ONNX teachers"; }
grep -q "member 0: mlp_13" "$WORK/distill.err" || { cat "$WORK/distill.err" >&2; fail "ONNX teacher not named"; }
pass "distilled a student from 2 ONNX teachers + 1 native member over ZeroMQ"

# Export, then the tools that are not ours, then the round trip.
"$ST" export --model "$WORK/student.safetensors" --onnx "$WORK/student.onnx" >/dev/null || fail "student_trainer export"
serve_and_query "$WORK/student.safetensors" "$WORK/student.native.npy"
$PY "$REF" check-export "$WORK/student.onnx" --ref "$WORK/student.native.npy" --tol 1e-4 || fail "exported student"
pass "exported student: onnx.checker ok, OpenCV dnn == edistill"
serve_and_query "$WORK/student.onnx" "$WORK/student.rt.npy"
$PY "$REF" compare "$WORK/student.native.npy" "$WORK/student.rt.npy" --tol 1e-5 || fail "round trip logits"
"$TW" import "$WORK/student.onnx" --out "$WORK/student.rt.safetensors" >"$WORK/rt.out" || fail "import of the export"
fp() { sed -n 's/.*\(fnv1a64:[0-9a-f]*\).*/\1/p' "$1"; }
"$ST" export --model "$WORK/student.safetensors" --onnx "$WORK/student2.onnx" >"$WORK/export.out"
[[ "$(fp "$WORK/rt.out")" == "$(fp "$WORK/export.out")" ]] ||
  fail "round trip changed the weights: $(fp "$WORK/rt.out") vs $(fp "$WORK/export.out")"
pass "export -> import round trip: logits to 1e-5, same fingerprint $(fp "$WORK/rt.out")"
# The CNN: ONNX -> edistill model file (layer stack) -> ONNX, checked by onnx.checker and OpenCV.
"$TW" import "$WORK/m/cnn_17.onnx" --out "$WORK/cnn.safetensors" >/dev/null || fail "import of the CNN"
"$ST" export --model "$WORK/cnn.safetensors" --onnx "$WORK/cnn_export.onnx" >/dev/null || fail "export of the CNN"
serve_and_query "$WORK/cnn.safetensors" "$WORK/cnn.native.npy"
$PY "$REF" compare "$WORK/m/cnn_17.npy" "$WORK/cnn.native.npy" --tol 1e-4 || fail "imported CNN file vs PyTorch"
$PY "$REF" check-export "$WORK/cnn_export.onnx" --ref "$WORK/cnn.native.npy" --tol 1e-4 || fail "exported CNN"
serve_and_query "$WORK/cnn_export.onnx" "$WORK/cnn.rt.npy"
$PY "$REF" compare "$WORK/cnn.native.npy" "$WORK/cnn.rt.npy" --tol 1e-5 || fail "CNN round trip logits"
pass "CNN: import -> model file -> export: OpenCV dnn == edistill, round trip to 1e-5"
echo "onnx acceptance checks passed"
