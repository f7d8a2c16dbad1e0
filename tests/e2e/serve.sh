#!/usr/bin/env bash
# e2e serve: `teacher_worker serve` on real sockets (ipc:// and tcp://127.0.0.1:PORT), driven by
# tests/e2e/serve_client.py (Python + pyzmq + protobuf + numpy as the independent reference).
# Checks: startup errors (bad model file, endpoint in use) exit non-zero with a clear message;
# member info; pipelined u8/f32 logit requests from two clients match numpy; malformed frames,
# wrong input dim, batch > --max-batch, wrong version, wrong frame count get ErrorReplies and the
# worker keeps serving; SIGTERM (idle, and with requests in flight) exits 0 within a few seconds and
# removes the ready file.
# Usage (ctest): serve.sh BUILD_DIR SOURCE_DIR
set -uo pipefail

BUILD=${1:?usage: serve.sh BUILD_DIR SOURCE_DIR}
SRC=${2:?usage: serve.sh BUILD_DIR SOURCE_DIR}
TW="$BUILD/teacher_worker/teacher_worker"
PY=/usr/bin/python3
CLIENT="$SRC/tests/e2e/serve_client.py"

fail() { echo "serve.sh: FAILED: $*" >&2; exit 1; }

[[ -x "$TW" ]] || fail "no teacher_worker binary at $TW"
command -v protoc >/dev/null || fail "protoc not found (scripts/deps.sh installs protobuf-compiler)"
$PY -c 'import zmq, google.protobuf, numpy' 2>/dev/null ||
    fail "$PY lacks zmq/protobuf/numpy (scripts/deps.sh installs python3-zmq python3-protobuf python3-numpy)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/edistill-serve.XXXXXX")
WORKER_PID=""
cleanup() {
    if [[ -n "$WORKER_PID" ]] && kill -0 "$WORKER_PID" 2>/dev/null; then
        kill -KILL "$WORKER_PID" 2>/dev/null
        wait "$WORKER_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM

protoc --python_out="$TMP" -I"$SRC/proto" "$SRC/proto/edistill.proto" || fail "protoc edistill.proto"
MODEL="$TMP/member.safetensors"
$PY "$CLIENT" make-model "$MODEL" --arch 784,48,32,10 --seed 3 >/dev/null || fail "writing the model file"
# A heavier model for the tcp run, so SIGTERM lands while requests are still being computed.
BIG="$TMP/big.safetensors"
$PY "$CLIENT" make-model "$BIG" --arch 784,512,512,10 --seed 4 >/dev/null || fail "writing the big model file"

# start_worker LOG MODEL ARGS...: starts the worker in the background, waits for its ready file.
start_worker() {
    local log=$1 model=$2; shift 2
    rm -f "$TMP/ready"
    "$TW" serve --model "$model" --ready-file "$TMP/ready" "$@" >"$log" 2>&1 &
    WORKER_PID=$!
    for _ in $(seq 1 100); do
        [[ -s "$TMP/ready" ]] && return 0
        kill -0 "$WORKER_PID" 2>/dev/null || { cat "$log" >&2; fail "worker exited during startup ($*)"; }
        sleep 0.1
    done
    cat "$log" >&2
    fail "worker did not write its ready file within 10 s ($*)"
}

# stop_worker LOG: SIGTERM (unless already sent), expect exit 0 within 5 s and no ready file left.
stop_worker() {
    local log=$1 send=${2:-yes}
    [[ "$send" == yes ]] && kill -TERM "$WORKER_PID" 2>/dev/null
    for _ in $(seq 1 50); do
        kill -0 "$WORKER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$WORKER_PID" 2>/dev/null; then
        cat "$log" >&2
        fail "worker still running 5 s after SIGTERM"
    fi
    wait "$WORKER_PID"
    local rc=$?
    WORKER_PID=""
    [[ $rc -eq 0 ]] || { cat "$log" >&2; fail "worker exited with $rc after SIGTERM, expected 0"; }
    [[ ! -e "$TMP/ready" ]] || fail "ready file left behind after a clean stop"
    grep -q "stopped:" "$log" || { cat "$log" >&2; fail "no 'stopped:' line in the worker log"; }
}

# --- startup errors ----------------------------------------------------------------------------
echo "== startup errors"
head -c 100 "$MODEL" > "$TMP/bad.safetensors"
if "$TW" serve --model "$TMP/bad.safetensors" --bind "ipc://$TMP/bad.ipc" >"$TMP/bad.log" 2>&1; then
    fail "serve accepted a truncated model file"
fi
grep -q "bad.safetensors" "$TMP/bad.log" || { cat "$TMP/bad.log" >&2; fail "bad model error does not name the file"; }
echo "  ok: truncated model: $(head -1 "$TMP/bad.log")"

if "$TW" serve --model "$MODEL" --bind "udp://127.0.0.1:1" >"$TMP/bad.log" 2>&1; then
    fail "serve accepted a udp:// endpoint"
fi
grep -q "expected tcp://" "$TMP/bad.log" || { cat "$TMP/bad.log" >&2; fail "bad endpoint error unclear"; }

if "$TW" serve --model "$MODEL" --bind "tcp://127.0.0.1:99999" >"$TMP/bad.log" 2>&1; then
    fail "serve accepted port 99999"
fi
grep -q "not in 1..65535" "$TMP/bad.log" || { cat "$TMP/bad.log" >&2; fail "bad port error unclear"; }

if "$TW" serve >"$TMP/bad.log" 2>&1; then fail "serve ran without --model"; fi
grep -q -- "--model" "$TMP/bad.log" || { cat "$TMP/bad.log" >&2; fail "missing --model error unclear"; }

# --- ipc://, small queue (exercises backpressure), two compute threads ---------------------------
echo "== ipc:// (--queue 2 --threads 2 --max-batch 16)"
start_worker "$TMP/ipc.log" "$MODEL" --bind "ipc://$TMP/worker.ipc" --queue 2 --threads 2 --max-batch 16
grep -q "serving member" "$TMP/ipc.log" || { cat "$TMP/ipc.log" >&2; fail "no startup line in the log"; }
$PY "$CLIENT" check --proto-dir "$TMP" --model "$MODEL" --ready-file "$TMP/ready" --max-batch 16 ||
    { cat "$TMP/ipc.log" >&2; fail "ipc:// checks"; }
stop_worker "$TMP/ipc.log"
echo "  ok: SIGTERM -> exit 0"
grep -q "client disconnected" "$TMP/ipc.log" || { cat "$TMP/ipc.log" >&2; fail "no 'client disconnected' line in the log"; }

# --- tcp://127.0.0.1:* : the ready file names the port ZeroMQ picked -----------------------------
echo "== tcp://127.0.0.1:* (ephemeral port)"
start_worker "$TMP/any.log" "$MODEL" --bind "tcp://127.0.0.1:*"
grep -Eq "^endpoint=tcp://127\.0\.0\.1:[0-9]+$" "$TMP/ready" || fail "ready file endpoint: $(cat "$TMP/ready")"
echo "  ok: $(grep endpoint= "$TMP/ready")"
stop_worker "$TMP/any.log"

# --- tcp:// on a free port; bind failure on the same port; SIGTERM with requests in flight -------
PORT=$($PY "$CLIENT" free-port) || fail "finding a free port"
echo "== tcp://127.0.0.1:$PORT (EDISTILL_BIND, --max-batch 256, model 784,512,512,10)"
EDISTILL_BIND="tcp://127.0.0.1:$PORT" start_worker "$TMP/tcp.log" "$BIG" --max-batch 256 --blas-threads 1
grep -q "endpoint=tcp://127.0.0.1:$PORT" "$TMP/ready" || fail "ready file endpoint: $(cat "$TMP/ready")"

if "$TW" serve --model "$MODEL" --bind "tcp://127.0.0.1:$PORT" >"$TMP/bind.log" 2>&1; then
    fail "a second worker bound the same port"
fi
grep -q "cannot bind tcp://127.0.0.1:$PORT: Address already in use" "$TMP/bind.log" ||
    { cat "$TMP/bind.log" >&2; fail "bind failure message lacks the endpoint and reason"; }
echo "  ok: port in use: $(head -1 "$TMP/bind.log")"

$PY "$CLIENT" check --proto-dir "$TMP" --model "$BIG" --ready-file "$TMP/ready" --max-batch 256 \
    --kill-pid "$WORKER_PID" || { cat "$TMP/tcp.log" >&2; fail "tcp:// checks"; }
stop_worker "$TMP/tcp.log" no
echo "  ok: SIGTERM with requests in flight -> exit 0"
grep -q "client connected" "$TMP/tcp.log" || { cat "$TMP/tcp.log" >&2; fail "no 'client connected' line in the log"; }
n_lines=$(wc -l < "$TMP/tcp.log")
[[ $n_lines -lt 30 ]] || { cat "$TMP/tcp.log" >&2; fail "worker log has $n_lines lines: logging per request?"; }

echo "serve.sh: all checks passed"
