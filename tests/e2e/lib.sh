# Shared helpers for the process-level tests (sourced, not run). Each test script gets the build
# directory as $1 and the source directory as $2.
set -euo pipefail
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
TW="$BUILD/teacher_worker/teacher_worker"
ST="$BUILD/student_trainer/student_trainer"
FMNIST=${EDISTILL_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
TRAIN_X="$FMNIST/train-images-idx3-ubyte.gz"
TRAIN_Y="$FMNIST/train-labels-idx1-ubyte.gz"
TEST_X="$FMNIST/t10k-images-idx3-ubyte.gz"
TEST_Y="$FMNIST/t10k-labels-idx1-ubyte.gz"
PY=/usr/bin/python3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/edistill-e2e.XXXXXX")
E2E_PIDS=()
e2e_cleanup() {
  local p
  for p in "${E2E_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${E2E_PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap e2e_cleanup EXIT
[[ -n "${E2E_KEEP:-}" ]] && trap - EXIT
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

# quiet_kill PID: SIGKILL a child of this shell without bash's "Killed" job report.
quiet_kill() { { kill -9 "$1" && wait "$1"; } 2>/dev/null || true; }

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# expect_fail "what" "pattern" cmd...: the command must exit non-zero with stderr matching pattern.
expect_fail() {
  local what=$1 pattern=$2; shift 2
  local out rc=0
  out=$("$@" 2>&1 >/dev/null) || rc=$?
  [[ $rc -ne 0 ]] || fail "$what: exited 0"
  [[ $rc -lt 128 ]] || fail "$what: killed by signal $((rc - 128)): $out"
  grep -qE -- "$pattern" <<<"$out" || fail "$what: stderr does not match /$pattern/: $out"
  pass "$what -> $(head -n1 <<<"$out")"
}

# start_worker MODEL READY_FILE [args...]: starts `teacher_worker serve` on a kernel-chosen loopback
# port unless --bind is given and waits for the ready file. Sets WORKER_EP (the bound endpoint) and
# WORKER_PID. Not to be called in $(...): the worker would hold the substitution's pipe open.
start_worker() {
  local model=$1 ready=$2; shift 2
  local bind=(--bind "tcp://127.0.0.1:*")
  for a in "$@"; do [[ "$a" == --bind* ]] && bind=(); done
  rm -f "$ready"
  "$TW" serve --model "$model" "${bind[@]}" --ready-file "$ready" "$@" >/dev/null 2>>"$WORK/workers.log" &
  local pid=$!
  E2E_PIDS+=("$pid")
  for _ in $(seq 1 200); do
    [[ -s "$ready" ]] && break
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/workers.log" >&2; fail "worker for $model died"; }
    sleep 0.05
  done
  [[ -s "$ready" ]] || fail "worker for $model not ready after 10s"
  WORKER_PID=$pid
  WORKER_EP=$(sed -n "s/^endpoint=//p" "$ready")
}
