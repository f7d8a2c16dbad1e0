#!/usr/bin/env bash
# bench/run.sh BUILD_DIR: the measurements of `make bench` (issue 7). Writes bench/results.json and
# prints a table (bench/report.py). Every comparison runs side by side in this one run, alternating
# the two sides repeat by repeat, and reports medians and ratios: the machine may be shared.
#
#   forward_vs_sgemm, student_step_vs_sgemm   ed_bench forward / step (in-process)
#   request_overhead                          ed_bench request against one `teacher_worker serve`
#   onnx_serve_vs_native                      ed_bench pair: a worker serving member 1's ONNX export
#                                             vs one serving its model file (same weights)
#   distill_remote_vs_inprocess               student_trainer distill, K = 1, 3, 5 members over
#                                             ZeroMQ (tcp loopback) vs the same members in-process
#   distill_vs_limit                          K = 5 runs of 240 steps (in-process with and without
#                                             the teacher thread, workers at the defaults and with
#                                             --inflight 8 --batches-per-request 2) / ed_bench limit (the
#                                             step's sgemm calls alone at the same shapes, K distinct
#                                             member weight sets, and the same thread layout:
#                                             2 threads, or 2 x 1 thread for workers and for
#                                             in-process members on the teacher thread)
#   memory_vs_data_size                       distill streaming 1x vs 10x the unlabeled data
#   wire_bytes_per_sample                     bytes on the wire per sample per member, u8 vs f32
#   conv_forward_vs_sgemm                     ed_bench conv (the reference CNN's second conv, batch 128)
#   cached_epoch_vs_live, label_vs_forward,   the target store (bench/store.sh)
#   store_bytes_per_sample, multi_shard_memory
#   metrics_overhead                          distill K=3 over ZeroMQ with --metrics-listen on the
#                                             workers and the trainer, scraped every second, vs off
#                                             (bench/metrics.sh)
#   pytorch_*                                 bench/torch_ref.py, if python3-torch is installed
#                                             (pytorch_cnn_member_epoch: the reference CNN member,
#                                             BENCH_CNN_SAMPLES images, teacher_worker train vs torch)
#   rejoin_seconds                            tests/e2e/rejoin.sh: a killed worker restarted 20
#                                             times; ready file -> trainer's "is back" (p95 <= 1 s)
#
# Threads on this 2-core machine: a process that runs alone (ed_bench, in-process distill, the
# PyTorch reference) uses 2 OpenBLAS threads. When K workers and the trainer share the 2 cores, every
# one of those processes runs ONE OpenBLAS thread (workers also 1 compute thread;
# OPENBLAS_NUM_THREADS=1: no idle BLAS threads at all), and the kernel spreads the K + 1 processes
# over the cores: the teachers compute the next batches on one core while the student trains on the
# other. Measured here on a quiet machine, a 2-thread trainer instead oversubscribes the cores
# (3 runnable BLAS threads for K = 1) and loses 20-30% (K=1 remote/in-process 0.81 vs 1.19). Knobs: BENCH_REPEATS, BENCH_STEPS, BENCH_WORKER_BLAS,
# BENCH_TRAINER_BLAS, BENCH_SKIP_TORCH=1, BENCH_REJOIN_RESTARTS, BENCH_KEEP=1 (keep the work directory),
# BENCH_METRICS_PAIRS, BENCH_ONLY=metrics_overhead (that row alone, bench/metrics.sh),
# BENCH_ONLY=cnn (only conv_forward_vs_sgemm and pytorch_cnn_member_epoch, written to
# bench/results-cnn.json; BENCH_CNN_REPEATS [3] alternating edistill/PyTorch runs),
# BENCH_ONLY=limit (only distill_vs_limit, in-process with and without the teacher thread and
# workers ungrouped and grouped, BENCH_REPEATS [5] alternating runs of BENCH_STEPS [240] steps, written to
# bench/results-limit.json), BENCH_ONLY=profile (perf record of the K = 5 distillation, in-process
# and with 5 workers, folded into categories by bench/profile_report.py: bench/results-profile.json).
# In-process runs use 2 OpenBLAS threads, and --inprocess-overlap's default (auto) then runs the
# members on the teacher thread: 2 threads x 1 OpenBLAS thread (the metrics line says which).
set -euo pipefail

BUILD=$(cd "${1:-build}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
TW="$BUILD/teacher_worker/teacher_worker"
ST="$BUILD/student_trainer/student_trainer"
EB="$BUILD/bench/ed_bench"
PY=/usr/bin/python3
FMNIST=${EDISTILL_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
REPEATS=${BENCH_REPEATS:-3}
STEPS=${BENCH_STEPS:-120}
WORKER_BLAS=${BENCH_WORKER_BLAS:-1}
TRAINER_BLAS=${BENCH_TRAINER_BLAS:-1}
MEMBER_ARCH=784,1200,1200,10
CNN_ARCH=1x28x28:conv32k3p1,bn,relu,maxpool2,conv64k3p1,bn,relu,maxpool2,flatten,dense128,relu,dropout0.3,dense10
STUDENT_ARCH=784,800,800,10
OUT="$SRC/bench/results.json"

for f in "$TW" "$ST" "$EB"; do
  [[ -x "$f" ]] || { echo "bench: $f is missing: build first (make bench builds)" >&2; exit 1; }
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/edistill-bench.XXXXXX")
RAW="$WORK/raw"
mkdir -p "$RAW" "$WORK/models"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [[ -n "${BENCH_KEEP:-}" ]] && echo "bench: work directory kept: $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
t_begin=$(date +%s)
log() { printf '[bench %4ds] %s\n' $(($(date +%s) - t_begin)) "$*" >&2; }

# ---- data: raw IDX copies (the 10x file is built from them), an f32 .npy copy -------------------
log "preparing data in $WORK"
X1="$WORK/train-images-idx3-ubyte"
Y1="$WORK/train-labels-idx1-ubyte"
zcat "$FMNIST/train-images-idx3-ubyte.gz" >"$X1"
zcat "$FMNIST/train-labels-idx1-ubyte.gz" >"$Y1"
[[ -n "${BENCH_ONLY:-}" ]] || "$PY" - "$X1" "$WORK" <<'EOF'
import struct, sys, numpy as np
src, work = sys.argv[1], sys.argv[2]
with open(src, "rb") as f:
    head = f.read(16)
    data = f.read()
magic, n, r, c = struct.unpack(">IIII", head)
# 10x: one raw IDX file holding the 60,000 images ten times
with open(work + "/x10-images-idx3-ubyte", "wb") as f:
    f.write(struct.pack(">IIII", magic, n * 10, r, c))
    for _ in range(10):
        f.write(data)
# f32: the same pixels as float32 .npy (values 0..255, so the same input scale applies)
x = np.frombuffer(data, dtype=np.uint8).reshape(n, r * c)
np.save(work + "/train-images-f32.npy", x[:12800].astype(np.float32))
with open(src.replace("images-idx3", "labels-idx1"), "rb") as f:
    y = np.frombuffer(f.read()[8:], dtype=np.uint8)
np.save(work + "/train-labels-12800.npy", y[:12800].astype(np.int32))
EOF
X10="$WORK/x10-images-idx3-ubyte"
XF32="$WORK/train-images-f32.npy"   # the first 12,800 images as float32
YF32="$WORK/train-labels-12800.npy"

# ---- members: trained briefly (accuracy does not matter here) ----------------------------------
log "training 5 members $MEMBER_ARCH (20 steps each)"
MODELS=()
for k in 1 2 3 4 5; do
  m="$WORK/models/m$k.safetensors"
  "$TW" train --arch "$MEMBER_ARCH" --steps 20 --seed "$k" --member "m$k" --out "$m" \
      --train-images "$X1" --train-labels "$Y1" --shuffle-buffer 4096 --quiet >/dev/null
  MODELS+=("$m")
done

# start_workers K [ARGS...]: starts K workers (members 1..K) on kernel-chosen loopback ports, with
# ARGS added to each command line; sets ENDPOINTS (comma-separated) and WPIDS.
start_workers() {
  local K=$1 k ready pid
  shift
  ENDPOINTS=""
  WPIDS=()
  for ((k = 1; k <= K; k++)); do
    ready="$WORK/w$k.ready"
    rm -f "$ready"
    OPENBLAS_NUM_THREADS=$WORKER_BLAS "$TW" serve --model "${MODELS[k - 1]}" \
        --bind "tcp://127.0.0.1:*" --ready-file "$ready" --threads 1 \
        --blas-threads "$WORKER_BLAS" --max-batch 1024 "$@" >/dev/null 2>>"$WORK/workers.log" &
    pid=$!
    PIDS+=("$pid")
    WPIDS+=("$pid")
  done
  for ((k = 1; k <= K; k++)); do
    ready="$WORK/w$k.ready"
    for _ in $(seq 1 200); do [[ -s "$ready" ]] && break; sleep 0.05; done
    [[ -s "$ready" ]] || { cat "$WORK/workers.log" >&2; echo "bench: worker $k not ready" >&2; exit 1; }
    ENDPOINTS+="${ENDPOINTS:+,}$(sed -n 's/^endpoint=//p' "$ready")"
  done
}
stop_workers() {
  local p
  for p in "${WPIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${WPIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  WPIDS=()
}

# The student runs of the distillation rows.
DISTILL_COMMON=(--labeled-images "$X1" --labeled-labels "$Y1" --labeled-end 3000
                --unlabeled "$X1" --unlabeled-start 3000 --arch "$STUDENT_ARCH"
                --temperature 4 --alpha 0.9 --combine prob --optimizer adam --lr 1e-3
                --batch-size 128 --quiet)
# distill NAME TEACHERS BLAS [args...]: one run, its metrics line appended to $RAW/NAME.jsonl
distill() {
  local name=$1 teachers=$2 blas=$3; shift 3
  "$ST" distill --teachers "$teachers" "${DISTILL_COMMON[@]}" --blas-threads "$blas" \
      --out "$WORK/student.safetensors" --metrics "$WORK/m.jsonl" "$@" >/dev/null 2>>"$WORK/distill.log"
  head -n1 "$WORK/m.jsonl" >>"$RAW/$name.jsonl"
}

# cnn_torch_rows CORE: pytorch_cnn_member_epoch, `teacher_worker train` of the reference CNN member
# and the same net in PyTorch, alternating run by run (CORE: OpenBLAS kernels for PyTorch's BLAS).
cnn_torch_rows() {
  local CORE=$1 r
  CS=${BENCH_CNN_SAMPLES:-12800}
  log "PyTorch and edistill training the reference CNN member ($CS samples, batch 128)"
  for ((r = 0; r < ${BENCH_CNN_REPEATS:-${BENCH_TORCH_REPEATS:-2}}; r++)); do
    "$TW" train --arch "$CNN_ARCH" --steps $((CS / 128)) --seed 1 --member c \
        --out "$WORK/c.safetensors" --train-images "$X1" --train-labels "$Y1" --batch-size 128 \
        --optimizer adam --lr 1e-3 --schedule constant --blas-threads 2 --quiet \
        --metrics "$WORK/c.jsonl" >/dev/null 2>>"$WORK/train.log"
    head -n1 "$WORK/c.jsonl" >>"$RAW/ed_cnn_epoch.jsonl"
    OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$CORE} OPENBLAS_THREAD_TIMEOUT=${OPENBLAS_THREAD_TIMEOUT:-4} \
        OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=2 \
        "$PY" "$SRC/bench/torch_ref.py" --images "$X1" --labels "$Y1" --cnn-arch "$CNN_ARCH" \
        --cnn-samples "$CS" --threads 2 >>"$RAW/torch_cnn.jsonl" 2>>"$WORK/torch.log"
  done
}

# limit_runs: the BLAS limit of the K = 5 step (distill_vs_limit): its sgemm calls alone, at
# 2 OpenBLAS threads in one process (in-process members without the teacher thread) and as two
# 1-thread processes side by side, rates added (workers; in-process members on the teacher thread,
# which run 2 threads x 1 OpenBLAS thread in one process). One line per call is appended to each
# file: limit_distill measures the limit once per repeat, next to that repeat's runs.
limit_runs() {
  "$EB" limit --members 5 --batch 128 --blas-threads 2 >>"$RAW/limit_2t.jsonl"
  "$EB" limit --members 5 --batch 128 --blas-threads 1 >>"$RAW/limit_1t_a.jsonl" &
  local pid=$!
  "$EB" limit --members 5 --batch 128 --blas-threads 1 >>"$RAW/limit_1t_b.jsonl"
  wait "$pid"
}

# limit_distill: distill_vs_limit: K = 5 in-process with the teacher thread (--inprocess-overlap
# on, the default at 2 threads) and without (off, 2 OpenBLAS threads), K = 5 workers, then the
# limits (limit_runs), repeat after repeat (LIMIT_REPEATS: BENCH_REPEATS, else 5 with
# BENCH_ONLY=limit and 3 in `make bench`); report.py divides each run by its own repeat's limit,
# so that a drift of the machine's speed over the minutes of the row does not enter the ratio.
# LIMIT_STEPS (BENCH_STEPS, else 240) steps a run: an epoch's first step also fills the shuffle
# buffer (57,000 samples, 45 MB; 0.03 s on huge pages, 0.17 s when every 4 KiB page faults), a
# one-off that ed_bench limit's warm-up pass leaves out.
limit_distill() {
  local all r
  all=$(IFS=,; echo "${MODELS[*]}")
  start_workers 5
  log "distill_vs_limit K=5: in-process with and without the teacher thread, 5 workers ($LIMIT_STEPS steps each), then the step's sgemm calls alone (2 threads, 2 x 1 thread); $LIMIT_REPEATS repeats"
  for ((r = 0; r < LIMIT_REPEATS; r++)); do
    distill "inproc_k5_off" "$all" 2 --steps "$LIMIT_STEPS" --inprocess-overlap off
    distill "inproc_k5_on" "$all" 2 --steps "$LIMIT_STEPS" --inprocess-overlap on
    distill "limit_remote_k5" "$ENDPOINTS" "$TRAINER_BLAS" --steps "$LIMIT_STEPS"
    distill "limit_remote_k5_grouped" "$ENDPOINTS" "$TRAINER_BLAS" --steps "$LIMIT_STEPS" "${GROUPED[@]}"
    limit_runs
  done
  stop_workers
}
LIMIT_STEPS=${BENCH_STEPS:-240}
# The workers' throughput setting: a deeper pipeline, two batches a request (the teachers' GEMMs run
# 256 rows, half the round trips); targets equal to ungrouped ones to float rounding (README).
GROUPED=(--inflight 8 --batches-per-request 2)

# BENCH_ONLY=metrics_overhead: that row alone (to judge a change to the metrics code); BENCH_ONLY=cnn:
# conv_forward_vs_sgemm and pytorch_cnn_member_epoch alone; BENCH_ONLY=limit: the distill_vs_limit
# rows (limit_distill). The table goes to bench/results-$BENCH_ONLY.json.
if [[ -n "${BENCH_ONLY:-}" ]]; then
  case $BENCH_ONLY in
    limit)
      LIMIT_REPEATS=${BENCH_REPEATS:-5}
      limit_distill ;;
    metrics_overhead)
      source "$SRC/bench/metrics.sh" ;;
    profile)
      source "$SRC/bench/profile.sh" ;;
    cnn)
      log "conv_forward_vs_sgemm (32x14x14 conv64k3p1, batch 128)"
      "$EB" conv --arch "32x14x14:conv64k3p1,flatten" --batch 128 --repeats 9 --iters 5 >"$RAW/conv.json"
      "$EB" forward --arch "$MEMBER_ARCH" --batch 16 --repeats 1 --iters 1 >"$WORK/blas.json"
      CORE=$(sed -n 's/.*"blas":"OpenBLAS (\([A-Za-z0-9]*\) kernels.*/\1/p' "$WORK/blas.json")
      if [[ -z "${BENCH_SKIP_TORCH:-}" ]] && "$PY" -c 'import torch' 2>/dev/null; then
        cnn_torch_rows "$CORE"
      fi ;;
    *) echo "bench: BENCH_ONLY is metrics_overhead, cnn, limit or profile, not '$BENCH_ONLY'" >&2; exit 2 ;;
  esac
  "$PY" "$SRC/bench/report.py" --raw "$RAW" --out "$SRC/bench/results-$BENCH_ONLY.json" \
      --threads "in-process runs: --blas-threads 2 (with the teacher thread: 2 threads x 1 OpenBLAS thread); workers and their trainer: 1 OpenBLAS thread each" --seconds $(($(date +%s) - t_begin))
  exit 0
fi

# ---- in-process kernels -----------------------------------------------------------------------
log "forward_vs_sgemm ($MEMBER_ARCH, batch 256)"
"$EB" forward --arch "$MEMBER_ARCH" --batch 256 --repeats 9 --iters 10 >"$RAW/forward.json"
log "conv_forward_vs_sgemm (32x14x14 conv64k3p1, batch 128)"
"$EB" conv --arch "32x14x14:conv64k3p1,flatten" --batch 128 --repeats 9 --iters 5 >"$RAW/conv.json"
log "student_step_vs_sgemm ($STUDENT_ARCH, batch 128, Adam)"
"$EB" step --arch "$STUDENT_ARCH" --batch 128 --repeats 9 --iters 20 >"$RAW/step.json"

# ---- request overhead: one worker with the whole machine, like the in-process forward ---------
log "request_overhead (batch 32, 128, 512 over tcp loopback)"
SAVE_WB=$WORKER_BLAS
WORKER_BLAS=2
start_workers 1
"$EB" request --endpoint "$ENDPOINTS" --model "${MODELS[0]}" --batches 32,128,512 --iters 150 \
    >"$RAW/request.json"
stop_workers

# ---- ONNX: the same member served from its ONNX export vs from its model file ------------------
log "onnx_serve_vs_native (batch 128, requests alternating between the two workers)"
"$ST" export --model "${MODELS[0]}" --onnx "$WORK/models/m1.onnx" >/dev/null
SAVE_MODELS=("${MODELS[@]}")
MODELS=("${SAVE_MODELS[0]}" "$WORK/models/m1.onnx")
start_workers 2
"$EB" pair --native "${ENDPOINTS%%,*}" --onnx "${ENDPOINTS##*,}" --batch 128 --iters 200 >"$RAW/onnx_pair.json"
stop_workers
MODELS=("${SAVE_MODELS[@]}")
WORKER_BLAS=$SAVE_WB

# ---- distillation: remote vs in-process, K = 1, 3, 5 ------------------------------------------
for K in 1 3 5; do
  log "distill_remote_vs_inprocess K=$K ($REPEATS repeats of $STEPS steps each side)"
  local_list=$(IFS=,; echo "${MODELS[*]:0:K}")
  start_workers "$K"
  for ((r = 0; r < REPEATS; r++)); do
    distill "inproc_k$K" "$local_list" 2 --steps "$STEPS"
    distill "remote_k$K" "$ENDPOINTS" "$TRAINER_BLAS" --steps "$STEPS"
  done
  if [[ $K -eq 1 ]]; then
    log "wire_bytes_per_sample (f32 inputs, K=1)"
    distill "wire_f32" "$ENDPOINTS" "$TRAINER_BLAS" --steps 40 --labeled-images "$XF32" \
        --labeled-labels "$YF32" --labeled-end 3000 --unlabeled "$XF32" --unlabeled-start 3000
  fi
  stop_workers
done

# ---- distill_vs_limit: K = 5 runs of LIMIT_STEPS and the step's sgemm calls alone, by repeat ----
# Each run is divided by the limit of its thread layout (report.py reads it from the runs' metrics:
# teacher_thread true = 2 x 1 thread, like the workers).
LIMIT_REPEATS=${BENCH_REPEATS:-3}
limit_distill

# ---- metrics: the same K=3 run with every process serving /metrics, scraped each second ---------
source "$SRC/bench/metrics.sh"

# ---- memory: the trainer streaming 1x vs 10x the unlabeled data -------------------------------
# One small in-process member and a small student, so 660,000 samples stream in seconds; the
# trainer's buffers do not depend on the data size, which is what this checks. The shuffle buffer
# is 16,384 samples: the default (65,536) is larger than the 1x file, so 1x would not fill it and
# the comparison would measure the buffer filling up (+4.3 MB), not growth with the data.
log "memory_vs_data_size (1x = 60,000 vs 10x = 600,000 unlabeled samples)"
"$TW" train --arch 784,64,10 --steps 5 --seed 9 --member small --out "$WORK/models/small.safetensors" \
    --train-images "$X1" --train-labels "$Y1" --shuffle-buffer 1024 --quiet >/dev/null
for x in 1 10; do
  f=$X1; [[ $x -eq 10 ]] && f=$X10
  "$ST" distill --teachers "$WORK/models/small.safetensors" --labeled-images "$X1" \
      --labeled-labels "$Y1" --labeled-end 3000 --unlabeled "$f" --arch 784,64,10 \
      --batch-size 128 --epochs 1 --blas-threads 2 --shuffle-buffer 16384 --quiet \
      --out "$WORK/student.safetensors" \
      --metrics "$RAW/memory_x$x.jsonl" >/dev/null 2>>"$WORK/distill.log"
done

# ---- target store (issue 15): cached epochs, labeling, bytes, shards -------------------------
source "$SRC/bench/store.sh"

# ---- PyTorch reference -------------------------------------------------------------------------
TORCH_NOTE=""
if [[ -z "${BENCH_SKIP_TORCH:-}" && -n "${BENCH_INSTALL_TORCH:-}" ]] && ! "$PY" -c 'import torch' 2>/dev/null; then
  if [[ $(id -u) -eq 0 ]]; then
    log "installing python3-torch for the PyTorch comparison (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-torch \
        >"$WORK/apt.log" 2>&1 || log "apt-get install python3-torch failed (see the note in the table)"
  fi
fi
if [[ -n "${BENCH_SKIP_TORCH:-}" ]]; then
  TORCH_NOTE="skipped: BENCH_SKIP_TORCH is set"
elif ! "$PY" -c 'import torch' 2>/dev/null; then
  TORCH_NOTE="skipped: python3-torch is not installed and this is not root (apt-get install python3-torch)"
else
  # Same work on both sides: TORCH_SAMPLES images (150 batches of 128); PyTorch's BLAS is the same
  # Debian OpenBLAS, so it gets the kernels and thread settings edistill's ed_blas_setup picks.
  TS=${BENCH_TORCH_SAMPLES:-19200}
  CORE=$(sed -n 's/.*"blas":"OpenBLAS (\([A-Za-z0-9]*\) kernels.*/\1/p' "$RAW/forward.json")
  log "PyTorch reference and edistill side by side ($TS samples: distillation with 5 members, member training)"
  all=$(IFS=,; echo "${MODELS[*]}")
  for ((r = 0; r < ${BENCH_TORCH_REPEATS:-2}; r++)); do
    distill "ed_distill_epoch" "$all" 2 --steps $((TS / 128)) --schedule constant
    "$TW" train --arch "$MEMBER_ARCH" --steps $((TS / 128)) --seed 1 --member e \
        --out "$WORK/e.safetensors" --train-images "$X1" --train-labels "$Y1" --dropout-in 0.1 \
        --dropout-hidden 0.3 --batch-size 128 --optimizer adam --lr 1e-3 --schedule constant \
        --blas-threads 2 --quiet --metrics "$WORK/t.jsonl" >/dev/null 2>>"$WORK/train.log"
    head -n1 "$WORK/t.jsonl" >>"$RAW/ed_member_epoch.jsonl"
    OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$CORE} OPENBLAS_THREAD_TIMEOUT=${OPENBLAS_THREAD_TIMEOUT:-4} \
        OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=2 \
        "$PY" "$SRC/bench/torch_ref.py" --models "$all" --images "$X1" --labels "$Y1" \
        --samples "$TS" --threads 2 >>"$RAW/torch.jsonl" 2>>"$WORK/torch.log"
  done
  cnn_torch_rows "$CORE"
fi

log "rejoin after a worker restart (tests/e2e/rejoin.sh, ${BENCH_REJOIN_RESTARTS:-20} restarts)"
REJOIN_JSON="$RAW/rejoin.json" REJOIN_RESTARTS=${BENCH_REJOIN_RESTARTS:-20} \
    bash "$SRC/tests/e2e/rejoin.sh" "$BUILD" "$SRC" >"$WORK/rejoin.log" 2>&1 ||
  { tail -n 20 "$WORK/rejoin.log" >&2; echo "bench: rejoin measurement failed" >&2; }

log "writing $OUT"
"$PY" "$SRC/bench/report.py" --raw "$RAW" --out "$OUT" --torch-note "$TORCH_NOTE" \
    --threads "workers: $WORKER_BLAS compute thread + $WORKER_BLAS OpenBLAS thread each; trainer: $TRAINER_BLAS OpenBLAS threads; in-process runs: --blas-threads 2 (with the teacher thread, the default: 2 threads x 1 OpenBLAS thread)" \
    --seconds $(($(date +%s) - t_begin))
