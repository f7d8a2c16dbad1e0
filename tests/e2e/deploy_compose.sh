#!/usr/bin/env bash
# deploy/docker-compose.yml, checked offline (no Docker engine here):
#  - it is deploy/compose-gen.sh's output for 3 members; yamllint passes;
#  - Debian's docker-compose (1.29) parses and validates it with `config`, with the defaults, with
#    deploy/.env overridden from the environment, and a generated 5-member file likewise;
#  - structure (tests/e2e/deploy_check.py compose): train one-shot, one teacher per member with a
#    healthcheck on its ready file, distill waiting for every teacher healthy and listing them all;
#  - every service's exact command, as `config` resolved it, runs with the real programs: container
#    paths are rewritten to temp dirs (/models, /data, /tmp/ready) and the teachers bind loopback
#    ports chosen by the kernel instead of 0.0.0.0:5555 (the trainer's teacher-i:5555 are rewritten
#    to those). train trains tiny members and a second run skips them; the healthcheck command is
#    false before a worker is up and true after; distill produces a student `eval` accepts;
#  - transport security: by default the EDISTILL_CURVE_* variables are empty (plaintext); with keys
#    made by `teacher_worker keygen` and the variables set as deploy/.env describes, `config` gives
#    the teachers and the trainer those paths under the read-only /keys volume, and the teachers and
#    the trainer run with exactly that environment (/keys rewritten to the temp keys directory):
#    both report CURVE on, and the distillation goes through.
source "$(dirname "$0")/lib.sh"
PYCHECK="$PY $SRC/tests/e2e/deploy_check.py"
DEPLOY="$SRC/deploy"
command -v docker-compose >/dev/null || fail "docker-compose missing (scripts/deps.sh installs it)"
command -v yamllint >/dev/null || fail "yamllint missing (scripts/deps.sh installs it)"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"

"$DEPLOY/compose-gen.sh" 3 | diff -u "$DEPLOY/docker-compose.yml" - ||
  fail "deploy/docker-compose.yml differs from deploy/compose-gen.sh 3: regenerate it"
pass "docker-compose.yml = compose-gen.sh 3"
yamllint -s -c "$DEPLOY/.yamllint" "$DEPLOY/docker-compose.yml" || fail "yamllint docker-compose.yml"
pass "yamllint"

compose_config() { # FILE OUT: docker-compose config, in a clean env except for what the caller sets
  docker-compose --project-directory "$DEPLOY" -f "$1" config > "$2" 2> "$2.err" ||
    { cat "$2.err" >&2; fail "docker-compose config $1"; }
}
compose_config "$DEPLOY/docker-compose.yml" "$WORK/default.yml"
grep -q "/usr/share/datasets/fashion-mnist:/data:ro" "$WORK/default.yml" || fail "default data directory not mounted"
pass "docker-compose $(docker-compose version --short) config: valid with the defaults"
grep -q "EDISTILL_CURVE_SECRET: ''" "$WORK/default.yml" && grep -q "EDISTILL_CURVE_SERVER_KEYS: ''" "$WORK/default.yml" ||
  fail "CURVE variables not empty by default"
grep -q "keys:/keys:ro" "$WORK/default.yml" || fail "keys volume not mounted read-only at /keys"
pass "default: CURVE variables empty (plaintext), keys volume mounted read-only"

"$DEPLOY/compose-gen.sh" 5 > "$WORK/compose5.yml"
compose_config "$WORK/compose5.yml" "$WORK/five.yml"
mkdir -p "$WORK/five"
$PYCHECK compose "$WORK/five.yml" 5 "$WORK/five" > /dev/null || fail "5-member file structure"
pass "compose-gen.sh 5: valid, 5 teachers, distill lists all 5"
( "$DEPLOY/compose-gen.sh" 0 >/dev/null 2>&1 ) && fail "compose-gen.sh 0 accepted"

# The configuration whose commands run below: tiny models, data from this machine's Debian package.
export EDISTILL_DATA="$FMNIST" EDISTILL_MODELS="$WORK/models" EDISTILL_MEMBER_ARCH=784,32,10
export EDISTILL_TRAIN_END=2000 EDISTILL_MEMBER_EPOCHS=1 EDISTILL_STUDENT_ARCH=784,16,10
export EDISTILL_STUDENT_EPOCHS=2 EDISTILL_LABELED_END=500 EDISTILL_UNLABELED_END=2000
# Keys as deploy/README.md makes them, and the variables deploy/.env documents.
mkdir -p "$WORK/keys/clients"
"$TW" keygen --out "$WORK/keys/teacher" > /dev/null && "$TW" keygen --out "$WORK/keys/trainer" > /dev/null ||
  fail "keygen"
cp "$WORK/keys/trainer.pub" "$WORK/keys/clients/"
export EDISTILL_KEYS="$WORK/keys" EDISTILL_CURVE_SECRET=/keys/teacher.key EDISTILL_CURVE_CLIENTS=/keys/clients
export EDISTILL_CURVE_CLIENT_SECRET=/keys/trainer.key EDISTILL_CURVE_SERVER_KEYS=/keys/teacher.pub
compose_config "$DEPLOY/docker-compose.yml" "$WORK/cfg.yml"
grep -q "$WORK/keys:/keys:ro" "$WORK/cfg.yml" || fail "EDISTILL_KEYS not mounted read-only at /keys"
# service_env NAME: the service's environment as resolved by config, /keys rewritten, as VAR=VALUE lines
service_env() {
  $PY -c 'import sys, yaml; env = yaml.safe_load(open(sys.argv[1]))["services"][sys.argv[2]].get("environment") or {}
for k, v in sorted(env.items()): print(k + "=" + str(v).replace("/keys/", sys.argv[3]))' \
    "$WORK/cfg.yml" "$1" "$WORK/keys/"
}
mapfile -t TEACHER_ENV < <(service_env teacher-0)
mapfile -t DISTILL_ENV < <(service_env distill)
printf '%s\n' "${TEACHER_ENV[@]}" | grep -qx "EDISTILL_CURVE_SECRET=$WORK/keys/teacher.key" ||
  fail "teacher environment: ${TEACHER_ENV[*]}"
printf '%s\n' "${DISTILL_ENV[@]}" | grep -qx "EDISTILL_CURVE_SERVER_KEYS=$WORK/keys/teacher.pub" ||
  fail "distill environment: ${DISTILL_ENV[*]}"
pass "CURVE on through deploy/.env variables: teachers and trainer get the /keys paths"
grep -q -- "- 784,16,10" "$WORK/cfg.yml" || fail "EDISTILL_STUDENT_ARCH from the environment not used"
grep -q "$FMNIST:/data:ro" "$WORK/cfg.yml" || fail "EDISTILL_DATA from the environment not used"
pass "environment overrides deploy/.env"
mkdir -p "$WORK/argv" "$WORK/models"
$PYCHECK compose "$WORK/cfg.yml" 3 "$WORK/argv" || fail "compose structure"

# run_service NAME [FROM=TO...]: the service's command with container paths rewritten, in the foreground.
paths=("/models/=$WORK/models/" "/data/=$FMNIST/")
load_argv() { # NAME [FROM=TO...] -> ARGV
  local name=$1; shift
  cp "$WORK/argv/$name.argv" "$WORK/argv/$name.run"
  $PYCHECK rewrite "$WORK/argv/$name.run" "${paths[@]}" "$@"
  mapfile -d '' ARGV < "$WORK/argv/$name.run"
}
export PATH="$BUILD/teacher_worker:$BUILD/student_trainer:$PATH"

t0=$(date +%s)
load_argv train
"${ARGV[@]}" > "$WORK/train.out" 2>&1 || { cat "$WORK/train.out" >&2; fail "train service command"; }
for i in 0 1 2; do [[ -s "$WORK/models/member-$i.safetensors" ]] || fail "train did not write member-$i"; done
sums=$(md5sum "$WORK/models/"member-*.safetensors)
"${ARGV[@]}" > "$WORK/train2.out" 2>&1 || fail "train service command, second run"
[[ $(grep -c "using existing" "$WORK/train2.out") == 3 ]] || { cat "$WORK/train2.out"; fail "second train run did not skip"; }
[[ "$(md5sum "$WORK/models/"member-*.safetensors)" == "$sums" ]] || fail "second train run changed the members"
pass "train: 3 members in $(( $(date +%s) - t0 ))s; a second run reuses them"

EPS=()
for i in 0 1 2; do
  ready="$WORK/ready-$i"
  load_argv "teacher-$i.health" "/tmp/ready=$ready"; HEALTH=("${ARGV[@]}")
  "${HEALTH[@]}" && fail "teacher-$i healthy before it started"
  load_argv "teacher-$i" "/tmp/ready=$ready" "tcp://0.0.0.0:5555=tcp://127.0.0.1:*"
  env "${TEACHER_ENV[@]}" EDISTILL_METRICS_LISTEN=127.0.0.1:0 "${ARGV[@]}" > /dev/null 2>> "$WORK/workers.log" &
  E2E_PIDS+=($!)
  for _ in $(seq 1 100); do "${HEALTH[@]}" && break; sleep 0.1; done
  "${HEALTH[@]}" || { cat "$WORK/workers.log" >&2; fail "teacher-$i never healthy"; }
  EPS+=("$(sed -n 's/^endpoint=//p' "$ready")")
  grep -q '^metrics=127.0.0.1:[0-9]*$' "$ready" || fail "teacher-$i: EDISTILL_METRICS_LISTEN not used"
done
pass "teachers: healthcheck false before start, true once serving (${EPS[*]})"

load_argv distill "tcp://teacher-0:5555=${EPS[0]}" "tcp://teacher-1:5555=${EPS[1]}" "tcp://teacher-2:5555=${EPS[2]}"
env "${DISTILL_ENV[@]}" EDISTILL_METRICS_LISTEN=127.0.0.1:0 "${ARGV[@]}" > "$WORK/distill.out" 2> "$WORK/distill.err" || { cat "$WORK/distill.err" >&2; fail "distill service command"; }
[[ $(grep -c "CURVE on: server public key" "$WORK/workers.log") == 3 ]] || { cat "$WORK/workers.log" >&2; fail "teachers did not run with CURVE"; }
grep -q "CURVE on: this trainer's public key" "$WORK/distill.err" || fail "trainer did not run with CURVE"
[[ -s "$WORK/models/student.safetensors" && -s "$WORK/models/distill.jsonl" ]] || fail "no student / metrics"
grep -q '"members":3' "$WORK/models/distill.jsonl" || fail "distill did not use 3 members"
"$ST" eval --models "$WORK/models/student.safetensors" --images "$TEST_X" --labels "$TEST_Y" --no-confusion \
  > "$WORK/eval.out" || fail "eval of the student"
acc=$(awk '/student.safetensors/ { sub("%", "", $3); print $3 }' "$WORK/eval.out")
awk -v a="$acc" 'BEGIN { exit !(a > 20) }' || { cat "$WORK/eval.out"; fail "student accuracy ${acc}% (chance: 10%)"; }
pass "distill over CURVE: student from 3 teachers, eval accepts it: ${acc}% test accuracy"

for p in "${E2E_PIDS[@]}"; do kill -TERM "$p"; done
for p in "${E2E_PIDS[@]}"; do wait "$p" || fail "teacher exited with $? on SIGTERM"; done
E2E_PIDS=()
for i in 0 1 2; do [[ ! -e "$WORK/ready-$i" ]] || fail "ready file of teacher-$i left after exit"; done
pass "teachers stop on SIGTERM (docker compose down) with status 0"
echo "compose checks passed"
