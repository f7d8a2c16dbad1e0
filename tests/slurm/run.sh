#!/usr/bin/env bash
# deploy/slurm/edistill.sbatch on a real Slurm cluster of one node on this machine (`make test-slurm`):
#  1. installs Debian's slurm-wlm and munge when missing (as root);
#  2. starts munged, slurmctld and slurmd (as root, in the foreground style -D, backgrounded) with a
#     private config, state, spool, sockets and ports under a temp directory; the node's address is
#     127.0.0.1, so all traffic (Slurm's and the teachers') stays on loopback;
#  3. trains 2 small members, submits the sbatch script with --ntasks=2 and a 50-step distillation,
#     waits for the job (scontrol show job), and checks: COMPLETED with exit code 0:0, the student
#     file exists and `student_trainer eval` accepts it, both ranks served their own member and
#     answered requests, and both teachers were stopped by the script; the job runs with CURVE
#     (keys from teacher_worker keygen passed as the EDISTILL_CURVE_* variables of the sbatch script)
#     and teachers and job report it;
#  4. runs deploy/slurm/label.sbatch as a 3-task array (sharded labeling into one target store) and
#     checks the store (tests/check_target_store.py) and a distillation from it;
#  5. stops the daemons and removes everything (trap).
# Usage: tests/slurm/run.sh [BUILD_DIR] (default: build). Needs root.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
TW="$BUILD/teacher_worker/teacher_worker"
ST="$BUILD/student_trainer/student_trainer"
FMNIST=${EDISTILL_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
start=$(date +%s)

[[ $(id -u) == 0 ]] || fail "needs root (starts slurmctld/slurmd/munged and installs packages)"
[[ -x "$TW" && -x "$ST" ]] || fail "build first: $TW missing"
[[ -f "$FMNIST/train-images-idx3-ubyte.gz" ]] || fail "Fashion-MNIST not installed at $FMNIST"
missing=()
for p in slurm-wlm munge; do
  [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" == "install ok installed" ]] || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/edistill-slurm.XXXXXX")
chmod 755 "$T"
PIDS=()
cleanup() {
  local p
  if [[ -n "${JOB:-}" ]]; then scancel "$JOB" 2>/dev/null || true; fi
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
show_logs() { for f in "$T"/log/*.log; do echo "--- $f"; tail -n 30 "$f"; done >&2; }

# Ports: Slurm's two and the teachers', picked from a range by PID to keep parallel runs apart.
base=$(( 20000 + ($$ % 400) * 20 ))
CTLD_PORT=$base; SLURMD_PORT=$((base + 1)); TEACHER_PORT=$((base + 10))
mkdir -p "$T/log" "$T/state" "$T/spool" "$T/munge" "$T/models" "$T/job"

# munge: a private key and socket.
dd if=/dev/urandom of="$T/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$T/munge/munge.key"
munged --foreground --force --key-file="$T/munge/munge.key" --socket="$T/munge/munge.sock" \
  --pid-file="$T/munge/munged.pid" --seed-file="$T/munge/seed" --log-file="$T/log/munged.log" \
  > "$T/log/munged.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do [[ -S "$T/munge/munge.sock" ]] && break; sleep 0.1; done
[[ -S "$T/munge/munge.sock" ]] || { cat "$T/log/munged.out" "$T/log/munged.log" >&2; fail "munged did not start"; }

cat > "$T/slurm.conf" <<EOF
ClusterName=edistilltest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge/munge.sock
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=600
KillWait=10
NodeName=ednode NodeAddr=127.0.0.1 NodeHostname=$(hostname) CPUs=2 RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=ednode Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$T/slurm.conf"

slurmctld -D -i -f "$SLURM_CONF" > "$T/log/slurmctld.out" 2>&1 &
PIDS+=($!)
slurmd -D -f "$SLURM_CONF" -N ednode > "$T/log/slurmd.out" 2>&1 &
PIDS+=($!)
state=""
for _ in $(seq 1 120); do
  state=$(sinfo -h -n ednode -o %T 2>/dev/null || true)
  [[ "$state" == idle ]] && break
  sleep 0.5
done
[[ "$state" == idle ]] || { show_logs; cat "$T"/log/*.out >&2; fail "node not idle after 60s (state '$state')"; }
pass "slurmctld + slurmd $(sinfo -V | awk '{print $2}') up: node ednode idle ($(( $(date +%s) - start ))s)"

K=2
for ((r = 0; r < K; r++)); do
  "$TW" train --train-end 2000 --arch 784,64,10 --epochs 1 --seed $((r + 1)) --member "member-$r" \
      --blas-threads 1 --out "$T/models/member-$r.safetensors" --quiet > /dev/null
done
pass "trained $K members (784,64,10 on 2,000 samples)"

# Transport security on (docs/SECURITY.md): keys on the "shared" filesystem, passed as the
# environment variables the sbatch script documents.
mkdir -p "$T/keys/clients" && chmod 700 "$T/keys"
"$TW" keygen --out "$T/keys/teacher" > /dev/null && "$TW" keygen --out "$T/keys/trainer" > /dev/null || fail "keygen"
cp "$T/keys/trainer.pub" "$T/keys/clients/"
JOB=$(cd "$T/job" && EDISTILL_MODELS="$T/models" PATH="$BUILD/teacher_worker:$BUILD/student_trainer:$PATH" \
  EDISTILL_CURVE_SECRET="$T/keys/teacher.key" EDISTILL_CURVE_CLIENTS="$T/keys/clients" \
  EDISTILL_CURVE_CLIENT_SECRET="$T/keys/trainer.key" EDISTILL_CURVE_SERVER_KEYS="$T/keys/teacher.pub" \
  EDISTILL_RUN_DIR="$T/job/run" EDISTILL_DATA="$FMNIST" EDISTILL_PORT_BASE="$TEACHER_PORT" \
  EDISTILL_STUDENT_ARCH=784,32,10 EDISTILL_STUDENT_STEPS=50 EDISTILL_LABELED_END=500 \
  EDISTILL_UNLABELED_END=3000 EDISTILL_READY_TIMEOUT=60 OPENBLAS_NUM_THREADS=1 \
  EDISTILL_DISTILL_ARGS="--batch-size 64 --blas-threads 1 --quiet" \
  sbatch --parsable --ntasks=$K --output="$T/job/job.out" "$SRC/deploy/slurm/edistill.sbatch")
JOB=${JOB%%;*}
pass "submitted job $JOB"

jstate=""
for _ in $(seq 1 240); do
  jstate=$(scontrol show job "$JOB" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
  case "$jstate" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE) break ;; esac
  sleep 0.5
done
exitcode=$(scontrol show job "$JOB" | sed -n 's/.*[^a-zA-Z]ExitCode=\([0-9:]*\).*/\1/p')
if [[ "$jstate" != COMPLETED || "$exitcode" != 0:0 ]]; then
  echo "--- job output"; cat "$T/job/job.out" 2>/dev/null
  for f in "$T"/job/run/teacher-*.log; do echo "--- $f"; cat "$f"; done
  show_logs
  fail "job $JOB: state ${jstate:-unknown}, exit code ${exitcode:-?}"
fi
pass "job $JOB COMPLETED, exit code $exitcode"
cat "$T/job/job.out"

[[ -s "$T/models/student.safetensors" ]] || fail "no student model written"
grep -q '"members":2' "$T/job/run/distill.jsonl" || fail "the trainer did not use 2 members"
"$ST" eval --models "$T/models/student.safetensors" --images "$FMNIST/t10k-images-idx3-ubyte.gz" \
  --labels "$FMNIST/t10k-labels-idx1-ubyte.gz" --no-confusion > "$T/eval.out" || fail "eval of the student"
pass "student: $(awk '/student.safetensors/ { print $3 }' "$T/eval.out") test accuracy (eval)"
for ((r = 0; r < K; r++)); do
  log="$T/job/run/teacher-$r.log"
  grep -q "serving member 'member-$r'" "$log" || { cat "$log"; fail "rank $r did not serve member-$r"; }
  grep -q "CURVE on: server public key" "$log" || { cat "$log"; fail "rank $r did not run with CURVE"; }
  replies=$(sed -n 's/.*stopped: \([0-9]*\) replies sent.*/\1/p' "$log")
  [[ -n "$replies" ]] && (( replies >= 50 )) || { cat "$log"; fail "rank $r: ${replies:-no} replies logged at exit"; }
  echo "  rank $r: member-$r, $replies replies, stopped by SIGTERM"
done
[[ -z "$(ls "$T/job/run"/ready-* 2>/dev/null)" ]] || fail "ready files left: teachers not stopped cleanly"
grep -q "transport security: CURVE" "$T/job/job.out" || fail "the job did not report CURVE"
pass "each rank served its member over CURVE and stopped at the end of the job"
# Sharded labeling: deploy/slurm/label.sbatch as a 3-task array (one shard each, members loaded
# in-process from the shared models directory), then a check of the whole store and a short
# distillation from it without teachers.
AJOB=$(cd "$T/job" && EDISTILL_MODELS="$T/models" EDISTILL_STORE="$T/store" \
  EDISTILL_INPUTS="$FMNIST/train-images-idx3-ubyte.gz" EDISTILL_BIN="$BUILD/student_trainer" \
  EDISTILL_LABEL_ARGS="--unlabeled-end 3000 --batch-size 100" OPENBLAS_NUM_THREADS=1 \
  sbatch --parsable --array=0-2 --output="$T/job/label-%a.out" "$SRC/deploy/slurm/label.sbatch")
AJOB=${AJOB%%;*}
JOB=$AJOB
pass "submitted label array job $AJOB (3 shards)"
for _ in $(seq 1 240); do
  states=$(scontrol show job "$AJOB" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | sort | uniq -c | tr -s ' ')
  grep -qE 'PENDING|RUNNING|CONFIGURING|COMPLETING' <<<"$states" || break
  sleep 0.5
done
n_done=$(scontrol show job "$AJOB" | grep -c 'JobState=COMPLETED' || true)
if [[ "$n_done" != 3 ]]; then
  for f in "$T"/job/label-*.out; do echo "--- $f"; cat "$f"; done
  show_logs
  fail "label array $AJOB: $n_done of 3 tasks COMPLETED ($states)"
fi
/usr/bin/python3 "$SRC/tests/check_target_store.py" "$T/store" || fail "the labeled store does not check out"
ls "$T/store"/shard-0000[0-2]-of-00003.json > /dev/null || fail "store lacks one of the 3 shard indexes"
"$ST" distill --targets "$T/store" --labeled-end 0 --unlabeled "$FMNIST/train-images-idx3-ubyte.gz" \
  --unlabeled-end 3000 --arch 784,32,10 --steps 20 --batch-size 64 --alpha 1 --blas-threads 1 --quiet \
  --out "$T/store-student.safetensors" > "$T/store-distill.out" 2>&1 ||
  { cat "$T/store-distill.out"; fail "distill --targets from the labeled store"; }
pass "label array: 3 tasks COMPLETED, store of 3 shards checks out with numpy, distill --targets trains from it"
echo "slurm test passed in $(( $(date +%s) - start ))s"
