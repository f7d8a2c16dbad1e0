#!/usr/bin/env bash
# Privileged information (issue 14), with real processes, in a few seconds: teachers trained on
# 28x28 Fashion-MNIST, a 7x7 student that never sees the 28x28 images:
#  (a) --student-view avgpool:4 (computed from the teachers' batch), aligned student files (.npy
#      written by tests/e2e/student_view.py with numpy, holding exactly the avgpool:4 view) and
#      student files read through the view train the same student bit for bit; the student model
#      file records its own input (arch 49,...) and scaling; with 2 teacher_worker processes over
#      tcp the run is the same as with in-process teachers;
#  (b) `eval` of the student on the 7x7 test file and, with --student-view, on the original test
#      file gives the accuracy distill reported; the student beats chance clearly;
#  (c) a student file with a different count is refused naming both files and both counts; a view
#      that does not fit the samples, and student files without --unlabeled-student-images, too;
#  (d) a privileged-information run SIGKILLed after its first checkpoint and resumed ends with the
#      same student, soft targets and metrics as an uninterrupted run;
#  (e) targets from a store (`label` once, `distill --targets`): the view and the files train the
#      same student there too.
source "$(dirname "$0")/lib.sh"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"

for s in 1 2; do
  "$TW" train --train-end 2000 --arch 784,64,10 --epochs 1 --seed $s --member "m$s" \
      --blas-threads 1 --out "$WORK/m$s.safetensors" --quiet
done
T="$WORK/m1.safetensors,$WORK/m2.safetensors"
"$PY" "$SRC/tests/e2e/student_view.py" "$TRAIN_X" 4 "$WORK/train7.npy" "$WORK/short7.npy"
"$PY" "$SRC/tests/e2e/student_view.py" "$TEST_X" 4 "$WORK/test7.npy"

# 2 epochs of 47 steps; 500 labeled + 2500 unlabeled; dropout so the trainer's RNG matters.
COMMON=(--labeled-end 500 --unlabeled "$TRAIN_X" --unlabeled-start 500 --unlabeled-end 3000
        --arch 49,128,10 --epochs 2 --batch-size 64 --seed 5 --blas-threads 1 --inflight 3
        --dropout-hidden 0.1 --temperature 4 --alpha 0.7 --quiet)
FILES=(--labeled-student-images "$WORK/train7.npy" --unlabeled-student-images "$WORK/train7.npy")
fp() { sed -n 's/.*\(fnv1a64:[0-9a-f]*\)$/\1/p' "$WORK/$1.out" | tail -n1; }
acc() { sed -n 's/.*test accuracy \([0-9.]*\),.*/\1/p' "$WORK/$1.out" | tail -n1; }
run() { # run NAME ARGS...: a distill run writing $WORK/NAME.{out,err,safetensors,jsonl,q}
  local name=$1; shift
  "$ST" distill "$@" --out "$WORK/$name.safetensors" --metrics "$WORK/$name.jsonl" \
      --dump-targets "$WORK/$name.q" > "$WORK/$name.out" 2> "$WORK/$name.err" ||
    { cat "$WORK/$name.err" >&2; fail "run $name"; }
}

# (a) the built-in view and the aligned files: the same student.
run view --teachers "$T" "${COMMON[@]}" --student-view avgpool:4 \
    --test-images "$TEST_X" --test-labels "$TEST_Y"
run files --teachers "$T" "${COMMON[@]}" "${FILES[@]}" \
    --test-images "$WORK/test7.npy" --test-labels "$TEST_Y"
[[ -n "$(fp view)" && "$(fp view)" == "$(fp files)" ]] ||
  fail "avgpool:4 view student $(fp view) differs from the aligned-files student $(fp files)"
cmp "$WORK/view.q" "$WORK/files.q" || fail "the two runs' soft targets differ"
[[ "$(acc view)" == "$(acc files)" ]] || fail "test accuracy $(acc view) vs $(acc files)"
"$PY" - "$WORK/view.safetensors" <<'PYEOF' || fail "the student's model file"
import json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]
meta = json.loads(f.read(n))["__metadata__"]
assert meta["arch"].startswith("49,"), meta["arch"]
assert abs(float(meta["input_scale"]) - 1 / 255) < 1e-9, meta["input_scale"]
prov = json.loads(meta["provenance"])
assert prov["student-view"] == "avgpool:4", prov
print("  model file: arch %s, input_scale %s, student-view %s" % (meta["arch"], meta["input_scale"], prov["student-view"]))
PYEOF
# student files read through a view: the teachers' own files as the student's, pooled on reading
run fileview --teachers "$T" "${COMMON[@]}" --labeled-student-images "$TRAIN_X" \
    --unlabeled-student-images "$TRAIN_X" --student-view avgpool:4
[[ "$(fp fileview)" == "$(fp view)" ]] || fail "student files through avgpool:4: $(fp fileview), the built-in view $(fp view)"
pass "--student-view avgpool:4, aligned .npy student files and student files read through the view: the same student $(fp view), test accuracy $(acc view)"

# ... and over the wire: 2 teacher_worker processes get the 28x28 batches, the student the view.
start_worker "$WORK/m1.safetensors" "$WORK/a.ready" --blas-threads 1 --max-batch 64; EP_A=$WORKER_EP
start_worker "$WORK/m2.safetensors" "$WORK/b.ready" --blas-threads 1 --max-batch 64; EP_B=$WORKER_EP
run remote --teachers "$EP_A,$EP_B" "${COMMON[@]}" --student-view avgpool:4 --metrics-listen 127.0.0.1:0
[[ "$(fp remote)" == "$(fp view)" ]] || fail "over tcp: student $(fp remote), in-process $(fp view)"
cmp "$WORK/view.q" "$WORK/remote.q" || fail "over tcp: the soft targets differ"
pass "2 remote teacher_workers (tcp) and a 7x7 student: the same student and targets as in-process"

# (b) eval on the student's view: the 7x7 file, and the original file through --student-view.
"$ST" eval --models "$WORK/view.safetensors" --images "$WORK/test7.npy" --labels "$TEST_Y" \
    --json "$WORK/e7.json" --no-confusion > /dev/null
"$ST" eval --models "$WORK/view.safetensors" --images "$TEST_X" --labels "$TEST_Y" \
    --student-view avgpool:4 --json "$WORK/e28.json" --no-confusion > /dev/null
"$PY" - "$WORK/e7.json" "$WORK/e28.json" "$(acc view)" <<'PYEOF' || fail "eval of the 7x7 student"
import json, sys
a = [list(json.load(open(p)).values())[0]["accuracy"] for p in sys.argv[1:3]]
want = float(sys.argv[3])
assert a[0] == a[1], a
assert abs(a[0] - want) < 1e-4, (a, want)
assert a[0] > 0.3, a  # chance is 0.1
PYEOF
expect_fail "eval of the 7x7 student on 28x28 images without the view" "784 values, the model input is 49" \
  "$ST" eval --models "$WORK/view.safetensors" --images "$TEST_X" --labels "$TEST_Y"
pass "eval: the 7x7 test file and the original through --student-view avgpool:4 both give $(acc view)"

# (c) errors.
expect_fail "student file with one sample too few" "short7.npy has 59999 samples but the teachers' .*train-images-idx3-ubyte.gz has 60000" \
  "$ST" distill --teachers "$T" "${COMMON[@]}" --labeled-student-images "$WORK/short7.npy" \
      --unlabeled-student-images "$WORK/train7.npy" --out "$WORK/x.safetensors"
expect_fail "--unlabeled without --unlabeled-student-images" "give --unlabeled-student-images too" \
  "$ST" distill --teachers "$T" "${COMMON[@]}" --labeled-student-images "$WORK/train7.npy" --out "$WORK/x.safetensors"
expect_fail "a view that does not fit" "avgpool:5 needs square single-channel samples whose side is a multiple of 5" \
  "$ST" distill --teachers "$T" "${COMMON[@]}" --student-view avgpool:5 --out "$WORK/x.safetensors"
expect_fail "an unknown view" "student-view: view 'maxpool:2': unknown" \
  "$ST" distill --teachers "$T" "${COMMON[@]}" --student-view maxpool:2 --out "$WORK/x.safetensors"
expect_fail "eval with an unknown view" "student-view: view 'avgpool:0'" \
  "$ST" eval --models "$WORK/view.safetensors" --student-view avgpool:0
expect_fail "an --arch for 28x28 with a 7x7 view" "student's data have 49 values per sample but --arch 784,32,10" \
  "$ST" distill --teachers "$T" "${COMMON[@]}" --student-view avgpool:4 --arch 784,32,10 --out "$WORK/x.safetensors"

# (d) SIGKILL after the first checkpoint, then --resume: the same student.
# A longer run (2 x 313 steps) so the kill lands in training.
LONG=("${COMMON[@]}" "${FILES[@]}" --unlabeled-end 20000)
CK=(--teachers "$T" "${LONG[@]}" --checkpoint "$WORK/kill.ck" --checkpoint-every 10)
"$ST" distill "${CK[@]}" --out "$WORK/kill.safetensors" --metrics "$WORK/kill.jsonl" \
    --dump-targets "$WORK/kill.q" > "$WORK/kill.out" 2> "$WORK/kill.err" &
pid=$!
for _ in $(seq 1 1200); do [[ -f "$WORK/kill.ck" ]] && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.01; done
[[ -f "$WORK/kill.ck" ]] || { cat "$WORK/kill.err" >&2; fail "no checkpoint appeared"; }
sleep "0.0$((RANDOM % 10))"
kill -KILL "$pid" 2>/dev/null || true
rc=0; wait "$pid" 2>/dev/null || rc=$?
[[ $rc -eq 137 ]] || { cat "$WORK/kill.err" >&2; fail "the run was not SIGKILLed mid-run (status $rc)"; }
"$ST" distill "${CK[@]}" --resume --out "$WORK/kill.safetensors" --metrics "$WORK/kill.jsonl" \
    --dump-targets "$WORK/kill.q" > "$WORK/kill.out" 2> "$WORK/kill.err" ||
  { cat "$WORK/kill.err" >&2; fail "resume"; }
run ref --teachers "$T" "${LONG[@]}"
[[ "$(fp kill)" == "$(fp ref)" ]] || fail "resumed student $(fp kill) differs from the uninterrupted $(fp ref)"
cmp "$WORK/kill.q" "$WORK/ref.q" || fail "resumed run's soft targets differ"
det() { "$PY" -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    print(json.dumps({k: m[k] for k in ["epoch", "step", "samples", "loss", "soft_loss", "hard_loss"]}))' "$WORK/$1.jsonl"; }
diff <(det kill) <(det ref) || fail "resumed run's metrics differ"
expect_fail "resume with the built-in view instead of the files" "config field .*student" \
  "$ST" distill --teachers "$T" "${COMMON[@]}" --unlabeled-end 20000 --student-view avgpool:4 \
      --checkpoint "$WORK/kill.ck" --resume --out "$WORK/kill.safetensors"
at=$(sed -n 's/.*resuming from [^:]*: \(epoch [0-9]*, step [0-9]* of [0-9]*\).*/\1/p' "$WORK/kill.err")
pass "privileged run SIGKILLed, resumed at $at: student $(fp kill), targets and metrics equal"

# (e) a target store labeled once with the teachers' 28x28 data; the student trains on its view
#     (built-in and files: the same student, as in (a)).
"$ST" label --teachers "$T" --labeled-images "$TRAIN_X" --labeled-end 500 --unlabeled "$TRAIN_X" \
    --unlabeled-start 500 --unlabeled-end 3000 --dtype float32 --blas-threads 1 --store "$WORK/store" \
    --quiet > /dev/null || fail "label"
run store_view --targets "$WORK/store" "${COMMON[@]}" --student-view avgpool:4 \
    --test-images "$TEST_X" --test-labels "$TEST_Y"
run store_files --targets "$WORK/store" "${COMMON[@]}" "${FILES[@]}"
[[ -n "$(fp store_view)" && "$(fp store_view)" == "$(fp store_files)" ]] ||
  fail "from the store: view student $(fp store_view) differs from the files student $(fp store_files)"
awk -v a="$(acc store_view)" 'BEGIN { exit !(a > 0.3) }' || fail "store student accuracy $(acc store_view)"
pass "--targets with --student-view and with student files: the same student $(fp store_view), test accuracy $(acc store_view)"
