#!/usr/bin/env bash
# deploy/k8s/label/ (the Indexed Job of sharded labeling), checked offline like deploy/k8s:
#  - yamllint; `kubectl kustomize deploy/k8s/label` renders it when kubectl is on PATH;
#  - tests/e2e/deploy_check.py k8s-label: schema (python3-kubernetes models), Indexed with
#    completions = parallelism = SHARDS, SHARD from the completion-index annotation, --shard
#    $(SHARD)/$(SHARDS) --resume, the teachers' headless Service, PVC and Secret of deploy/k8s,
#    probes and prometheus.io/port on the --metrics-listen port;
#  - the checker refuses a broken copy (completions that disagree with SHARDS);
#  - every pod's exact command (index 0..SHARDS-1, $(VAR)s expanded, sizes overridden small) runs
#    against 2 real CURVE teachers (the Service name and paths rewritten to loopback and temp
#    dirs): the store they write together checks out with numpy alone, a retried pod (same
#    command again) accepts its complete shard, and `distill --targets` trains from the store.
source "$(dirname "$0")/lib.sh"
PYCHECK="$PY $SRC/tests/e2e/deploy_check.py"
K8S="$SRC/deploy/k8s"
command -v yamllint >/dev/null || fail "yamllint missing (scripts/deps.sh installs it)"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"

yamllint -s -c "$SRC/deploy/.yamllint" "$K8S/label" || fail "yamllint deploy/k8s/label"
if command -v kubectl >/dev/null; then
  kubectl kustomize "$K8S/label" > "$WORK/rendered.yaml" 2> "$WORK/kustomize.err" ||
    { cat "$WORK/kustomize.err" >&2; fail "kubectl kustomize deploy/k8s/label"; }
  grep -q '^kind: Job' "$WORK/rendered.yaml" || fail "kustomize rendered no Job"
  pass "yamllint, kubectl kustomize"
fi
mkdir -p "$WORK/argv" "$WORK/bad-argv"
$PYCHECK k8s-label "$K8S" "$K8S/label" "$WORK/argv" LABELED_END=500 UNLABELED_END=3000 ||
  fail "label Job checks"
cp -r "$K8S/label" "$WORK/bad"
sed -i 's/^  completions: 4/  completions: 3/' "$WORK/bad/label-job.yaml"
if $PYCHECK k8s-label "$K8S" "$WORK/bad" "$WORK/bad-argv" > "$WORK/bad.out" 2>&1; then
  fail "checker accepted completions != SHARDS"
fi
pass "checker refuses completions != SHARDS: $(grep FAIL "$WORK/bad.out")"

# Two CURVE teachers; the Job's key files laid out as its Secret volume would be.
for s in 1 2; do
  "$TW" train --train-end 2000 --arch 784,32,10 --epochs 1 --seed $s --member "m$s" \
      --blas-threads 1 --out "$WORK/m$s.safetensors" --quiet > /dev/null
done
mkdir -p "$WORK/keys/clients" "$WORK/keys-trainer" "$WORK/models"
"$TW" keygen --out "$WORK/keys/teacher" > /dev/null && "$TW" keygen --out "$WORK/keys/trainer" > /dev/null
cp "$WORK/keys/trainer.pub" "$WORK/keys/clients/"
cp "$WORK/keys/trainer.key" "$WORK/keys/teacher.pub" "$WORK/keys-trainer/"
chmod 400 "$WORK/keys-trainer/"*
EPS=()
for s in 1 2; do
  start_worker "$WORK/m$s.safetensors" "$WORK/r$s" --blas-threads 1 --curve-secret "$WORK/keys/teacher.key" \
      --curve-clients "$WORK/keys/clients"
  EPS+=("$WORKER_EP")
done
TEACHERS=$(IFS=,; echo "${EPS[*]}")
export PATH="$BUILD/student_trainer:$PATH"
run_pod() {
  cp "$WORK/argv/label-$1.argv" "$WORK/argv/label-$1.run"
  $PYCHECK rewrite "$WORK/argv/label-$1.run" "/models/=$WORK/models/" "/data/=$FMNIST/" \
    "tcp://edistill-teachers.edistill.svc.cluster.local:5555=$TEACHERS" "/etc/edistill/keys/=$WORK/keys-trainer/" \
    "0.0.0.0:9100=127.0.0.1:0"
  mapfile -d '' ARGV < "$WORK/argv/label-$1.run"
  "${ARGV[@]}" > "$WORK/pod-$1.out" 2>&1 || { cat "$WORK/pod-$1.out" >&2; fail "pod $1"; }
}
for i in 0 1 2 3; do run_pod $i; done
"$PY" "$SRC/tests/check_target_store.py" "$WORK/models/store" || fail "the pods' store"
run_pod 2
grep -q "shard 2 of 4 complete: samples" "$WORK/pod-2.out" || fail "retried pod 2: $(cat "$WORK/pod-2.out")"
pass "4 pods wrote one store over CURVE; a retried pod accepts its complete shard"
"$ST" distill --targets "$WORK/models/store" --labeled-end 500 --unlabeled "$TRAIN_X" --unlabeled-start 500 \
  --unlabeled-end 3000 --arch 784,32,10 --steps 20 --batch-size 64 --blas-threads 1 --quiet \
  --out "$WORK/student.safetensors" > "$WORK/distill.out" 2>&1 || { cat "$WORK/distill.out"; fail "distill --targets"; }
pass "distill --targets trains from the labeled store"
