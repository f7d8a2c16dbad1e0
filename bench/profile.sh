# Sourced by bench/run.sh for BENCH_ONLY=profile (issue 18): where the K = 5 distillation step's
# time goes, from `perf record` (Debian's linux-perf) on the distill_vs_limit workload:
#   inproc  one `student_trainer distill` with the 5 members in-process (teacher thread on);
#   workers the same run against 5 `teacher_worker serve` processes, 1 OpenBLAS thread each, at
#           distill_vs_limit's workers setting (GROUPED: --inflight 8 --batches-per-request 2)
#           (one perf attached to the workers, one running the trainer; their samples add up).
# bench/profile_report.py folds the samples into categories (sgemm kernel, packing, sgemm_beta,
# BLAS thread hand-offs and spinning, Adam, softmax/loss, elementwise layers, copies, protobuf-c,
# ZeroMQ, the kernel, data reading, other) and writes bench/results-profile.json and a table.
# Start-up (model loading, fingerprints, the student's init) is in the samples too: BENCH_STEPS
# [480] steps a run keep it small.
command -v perf >/dev/null || { echo "bench: perf is missing (apt-get install linux-perf)" >&2; exit 1; }
PROFILE_STEPS=${BENCH_STEPS:-480}
profile_all=$(IFS=,; echo "${MODELS[*]}")
log "profile: in-process K=5 ($PROFILE_STEPS steps, teacher thread on)"
perf record -q -F 999 -o "$WORK/inproc.perf" -- "$ST" distill --teachers "$profile_all" \
    "${DISTILL_COMMON[@]}" --blas-threads 2 --inprocess-overlap on --steps "$PROFILE_STEPS" \
    --out "$WORK/student.safetensors" --metrics "$RAW/profile_inproc.jsonl" >/dev/null 2>>"$WORK/distill.log"
start_workers 5
log "profile: 5 workers (perf attached to them) + the trainer ($PROFILE_STEPS steps, ${GROUPED[*]})"
perf record -q -F 999 -p "$(IFS=,; echo "${WPIDS[*]}")" -o "$WORK/workers.perf" 2>/dev/null &
profile_pid=$!
sleep 0.5
perf record -q -F 999 -o "$WORK/trainer.perf" -- "$ST" distill --teachers "$ENDPOINTS" \
    "${DISTILL_COMMON[@]}" --blas-threads "$TRAINER_BLAS" --steps "$PROFILE_STEPS" "${GROUPED[@]}" \
    --out "$WORK/student.safetensors" --metrics "$RAW/profile_workers.jsonl" >/dev/null 2>>"$WORK/distill.log"
kill -INT "$profile_pid"
wait "$profile_pid" || true
stop_workers
for run in inproc workers trainer; do  # -n: sample counts, so the two files of a run add up
  perf report -i "$WORK/$run.perf" -n --no-children --sort dso,sym --stdio --percent-limit 0 \
      2>/dev/null >"$WORK/$run.txt"
done
"$PY" "$SRC/bench/profile_report.py" --inproc "$WORK/inproc.txt" \
    --workers "$WORK/workers.txt" "$WORK/trainer.txt" \
    --metrics "$RAW/profile_inproc.jsonl" "$RAW/profile_workers.jsonl" \
    --out "$SRC/bench/results-profile.json"
exit 0
