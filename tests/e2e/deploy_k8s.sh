#!/usr/bin/env bash
# deploy/k8s/, checked offline (no cluster here):
#  - yamllint; `kubectl kustomize` renders the whole set when kubectl is on PATH (it needs no
#    cluster; Debian 12 has no kubeconform/kubeval, and `kubectl apply --dry-run` needs a server);
#  - every field of every object is known to and typed as in the python3-kubernetes models, and the
#    cross-references hold (tests/e2e/deploy_check.py k8s): headless Service = StatefulSet
#    serviceName, selectors match the teacher pods only, ports agree, readiness/liveness probes GET
#    /readyz and /healthz on the --metrics-listen port, which the prometheus.io/port annotation names
#    too (teachers and Job), PVC/Secret/volume references resolve, resources set, non-root;
#  - the checker fails on broken copies (unknown field, mismatched serviceName, wrong port);
#  - every container's exact command runs with the real programs: the teachers' init container
#    (train-member) and serve wrapper with POD_NAME=edistill-teachers-<ordinal>, their HTTP
#    probes, and the Job's distill with its $(VAR)s expanded from its env (sizes overridden tiny).
#    Paths /models, /data, /tmp/ready are rewritten to temp dirs, 0.0.0.0:5555 to kernel-chosen
#    loopback ports, and the Service's DNS name to those endpoints (resolving one name to many
#    teachers is the pool's job, tested with it).
#  - transport security: deploy/k8s/make-secret.sh writes a valid Secret with new keys (yamllint,
#    checker, kustomize); each pod's Secret volume is laid out as the kubelet would (its `items`,
#    files mode 0400) from that Secret, and the teachers and the Job run over CURVE with it; the
#    committed Secret is empty, and a teacher given it stops with a clear error.
source "$(dirname "$0")/lib.sh"
PYCHECK="$PY $SRC/tests/e2e/deploy_check.py"
K8S="$SRC/deploy/k8s"
command -v yamllint >/dev/null || fail "yamllint missing (scripts/deps.sh installs it)"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"

yamllint -s -c "$SRC/deploy/.yamllint" "$K8S" || fail "yamllint deploy/k8s"
pass "yamllint"
if command -v kubectl >/dev/null; then
  kubectl kustomize "$K8S" > "$WORK/rendered.yaml" 2> "$WORK/kustomize.err" ||
    { cat "$WORK/kustomize.err" >&2; fail "kubectl kustomize"; }
  n=$(grep -c '^kind:' "$WORK/rendered.yaml")
  [[ $n == 6 ]] || fail "kustomize rendered $n objects, expected 6"
  pass "kubectl kustomize renders $n objects"
else
  echo "note: kubectl not on PATH: kustomize rendering not checked"
fi

mkdir -p "$WORK/argv"
$PYCHECK k8s "$K8S" "$WORK/argv" STUDENT_ARCH=784,16,10 STUDENT_EPOCHS=2 LABELED_END=500 UNLABELED_END=2000 ||
  fail "manifest checks"

# The checker must catch broken manifests.
broken() { # what sed-expression file
  rm -rf "$WORK/bad"; cp -r "$K8S" "$WORK/bad"
  sed -i "$2" "$WORK/bad/$3"
  mkdir -p "$WORK/bad-argv"
  if $PYCHECK k8s "$WORK/bad" "$WORK/bad-argv" > "$WORK/bad.out" 2>&1; then fail "checker accepted: $1"; fi
  pass "checker refuses $1: $(grep FAIL -A1 "$WORK/bad.out" | tail -n1 | sed 's/^ *//')"
}
broken "an unknown field" 's/^  serviceName:/  serviceNme:/' teachers.yaml
broken "a StatefulSet serviceName that is not the Service" 's/^  serviceName: .*/  serviceName: other/' teachers.yaml
broken "a Service port that is not the worker's" 's/      port: 5555/      port: 5556/' teachers.yaml
broken "a readiness probe on another path" 's|path: /readyz|path: /ready|' teachers.yaml
broken "a liveness probe on the ZeroMQ port" '0,/port: metrics/! s|port: metrics|port: zmq|' teachers.yaml
broken "a prometheus.io/port that is not the listener's" 's|prometheus.io/port: "9100"|prometheus.io/port: "9090"|' distill-job.yaml
broken "a metrics listener on loopback only" 's|--metrics-listen 0.0.0.0:9100|--metrics-listen 9100|' teachers.yaml
broken "a Job pointing elsewhere" 's|edistill-teachers.edistill.svc|teachers.edistill.svc|' distill-job.yaml

export PATH="$BUILD/teacher_worker:$BUILD/student_trainer:$PATH"
mkdir -p "$WORK/models"
paths=("/models/=$WORK/models/" "/data/=$FMNIST/")

# Keys: a Secret from make-secret.sh, checked like the committed one, then mounted per pod.
rm -rf "$WORK/k8s-keys"; cp -r "$K8S" "$WORK/k8s-keys"
"$K8S/make-secret.sh" > "$WORK/k8s-keys/secret.yaml" || fail "make-secret.sh"
yamllint -s -c "$SRC/deploy/.yamllint" "$WORK/k8s-keys/secret.yaml" || fail "yamllint of make-secret.sh's output"
mkdir -p "$WORK/argv-keys"
$PYCHECK k8s "$WORK/k8s-keys" "$WORK/argv-keys" > /dev/null || fail "manifest checks with a generated Secret"
if command -v kubectl >/dev/null; then
  kubectl kustomize "$WORK/k8s-keys" > /dev/null || fail "kubectl kustomize with a generated Secret"
fi
# mount_secret SECRET.yaml MANIFEST.yaml DIR: the `keys` volume of the manifest's pod, as the kubelet
# lays it out: each item's key written to its path, mode defaultMode.
mount_secret() {
  $PY - "$@" <<'PYEOF'
import os, sys, yaml
secret = yaml.safe_load(open(sys.argv[1]))
data = secret.get("stringData") or {}
for doc in yaml.safe_load_all(open(sys.argv[2])):
    if doc["kind"] not in ("StatefulSet", "Job"):
        continue
    vol = next(v for v in doc["spec"]["template"]["spec"]["volumes"] if v["name"] == "keys")["secret"]
    assert vol["secretName"] == secret["metadata"]["name"], "volume refers to another Secret"
    assert vol.get("defaultMode") == 0o400, f"defaultMode {vol.get('defaultMode')!r}, expected 0400"
    assert not vol.get("optional"), "the keys Secret must not be optional"
    for item in vol["items"]:
        assert item["key"] in data, f"item {item['key']} is not in the Secret"
        path = os.path.join(sys.argv[3], item["path"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(data[item["key"]])
        os.chmod(path, vol["defaultMode"])
        print(item["path"])
PYEOF
}
mount_secret "$WORK/k8s-keys/secret.yaml" "$K8S/teachers.yaml" "$WORK/keys-teacher" > "$WORK/keys-teacher.list" ||
  fail "teachers' Secret volume"
mount_secret "$WORK/k8s-keys/secret.yaml" "$K8S/distill-job.yaml" "$WORK/keys-trainer" > "$WORK/keys-trainer.list" ||
  fail "Job's Secret volume"
[[ "$(sort "$WORK/keys-teacher.list" | tr '\n' ' ')" == "clients/trainer.pub teacher.key " ]] ||
  fail "teacher pods mount $(cat "$WORK/keys-teacher.list")"
[[ "$(sort "$WORK/keys-trainer.list" | tr '\n' ' ')" == "teacher.pub trainer.key " ]] ||
  fail "the Job mounts $(cat "$WORK/keys-trainer.list")"
pass "make-secret.sh: a valid Secret; teachers mount only teacher.key + clients/trainer.pub, the Job trainer.key + teacher.pub (0400)"
mount_secret "$K8S/secret.yaml" "$K8S/teachers.yaml" "$WORK/keys-empty" > /dev/null || fail "committed Secret's items"
load_argv() { # NAME [FROM=TO...] -> ARGV
  local name=$1; shift
  cp "$WORK/argv/$name.argv" "$WORK/argv/$name.run"
  $PYCHECK rewrite "$WORK/argv/$name.run" "${paths[@]}" "$@"
  mapfile -d '' ARGV < "$WORK/argv/$name.run"
}

# Init containers: the manifest's env, sizes made tiny.
mapfile -t INIT_ENV < "$WORK/argv/train-member.env"
load_argv train-member
for i in 0 1 2; do
  env "${INIT_ENV[@]}" POD_NAME="edistill-teachers-$i" MEMBER_ARCH=784,32,10 MEMBER_EPOCHS=1 TRAIN_END=2000 \
    "${ARGV[@]}" > "$WORK/init-$i.out" 2>&1 || { cat "$WORK/init-$i.out" >&2; fail "train-member init container, ordinal $i"; }
  [[ -s "$WORK/models/member-$i.safetensors" ]] || fail "init container $i wrote no member-$i"
done
env "${INIT_ENV[@]}" POD_NAME=edistill-teachers-1 "${ARGV[@]}" > "$WORK/init-again.out" 2>&1 || fail "init container rerun"
grep -q "member-1: using existing" "$WORK/init-again.out" || fail "init container retrained an existing member"
pass "init containers: ordinal i trains member-i (seed i+1); an existing member is kept"

# The kubelet's probes: HTTP GETs on the metrics port (moved to a free loopback port per teacher).
read -r MPORT READY_PATH LIVE_PATH < "$WORK/argv/teacher.probe"
MC="$PY $SRC/tests/e2e/metrics_client.py"
EPS=()
for i in 0 1 2; do
  ready="$WORK/ready-$i"
  hp=$($PY "$SRC/tests/e2e/serve_client.py" free-port)
  $MC get "http://127.0.0.1:$hp$READY_PATH" >/dev/null 2>&1 && fail "teacher $i ready before it started"
  load_argv teacher "/tmp/ready=$ready" "tcp://0.0.0.0:5555=tcp://127.0.0.1:*" \
      "/etc/edistill/keys/=$WORK/keys-teacher/" "0.0.0.0:$MPORT=127.0.0.1:$hp"
  POD_NAME="edistill-teachers-$i" "${ARGV[@]}" > /dev/null 2>> "$WORK/workers.log" &
  E2E_PIDS+=($!)
  for _ in $(seq 1 100); do $MC get "http://127.0.0.1:$hp$READY_PATH" >/dev/null 2>&1 && break; sleep 0.1; done
  $MC get "http://127.0.0.1:$hp$READY_PATH" >/dev/null || { cat "$WORK/workers.log" >&2; fail "teacher $i never ready"; }
  $MC get "http://127.0.0.1:$hp$LIVE_PATH" >/dev/null || fail "teacher $i: liveness $LIVE_PATH"
  [[ -s "$ready" ]] || fail "teacher $i: ready over HTTP but no ready file"
  EPS+=("$(sed -n 's/^endpoint=//p' "$ready")")
done
pass "teachers: readiness GET $READY_PATH fails before start, 200 once serving; liveness $LIVE_PATH 200 (${EPS[*]})"

TEACHERS=$(IFS=,; echo "${EPS[*]}")
grep -c "CURVE on: server public key" "$WORK/workers.log" | grep -qx 3 || { cat "$WORK/workers.log" >&2; fail "teachers not on CURVE"; }
load_argv teacher "/tmp/ready=$WORK/ready-x" "tcp://0.0.0.0:5555=tcp://127.0.0.1:*" "/etc/edistill/keys/=$WORK/keys-empty/"
expect_fail "teacher with the committed (empty) Secret" "no secret-key line" env POD_NAME=edistill-teachers-0 "${ARGV[@]}"
load_argv distill "tcp://edistill-teachers.edistill.svc.cluster.local:5555=$TEACHERS" "/etc/edistill/keys/=$WORK/keys-trainer/" \
    "0.0.0.0:$MPORT=127.0.0.1:0"
for j in "${!ARGV[@]}"; do [[ "${ARGV[$j]}" == --metrics-linger ]] && ARGV[j+1]=0; done # no final wait here
"${ARGV[@]}" > "$WORK/distill.out" 2> "$WORK/distill.err" || { cat "$WORK/distill.err" >&2; fail "Job command"; }
for i in 0 1 2; do
  grep -q "member [0-9]: member-$i (fnv1a64:[0-9a-f]*) at ${EPS[$i]}$" "$WORK/distill.err" || { cat "$WORK/distill.err" >&2; fail "trainer did not see member-$i"; }
done
grep -q '"members":3' "$WORK/models/distill.jsonl" || fail "distill did not use 3 members"
"$ST" eval --models "$WORK/models/student.safetensors" --images "$TEST_X" --labels "$TEST_Y" --no-confusion \
  > "$WORK/eval.out" || fail "eval of the student"
grep -q "CURVE on: this trainer's public key" "$WORK/distill.err" || fail "the Job's trainer not on CURVE"
pass "Job: distilled over CURVE from member-0..2 served by ordinals 0..2; eval accepts the student"

for p in "${E2E_PIDS[@]}"; do kill -TERM "$p"; done
for p in "${E2E_PIDS[@]}"; do wait "$p" || fail "teacher exited with $? on SIGTERM"; done
E2E_PIDS=()
pass "teachers stop on SIGTERM (pod termination) with status 0"
echo "kubernetes manifest checks passed"
