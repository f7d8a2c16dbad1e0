#!/usr/bin/env bash
# Reliability issue 10, defects 6 and 7, with real workers on loopback TCP and one long distill run
# over teachers R (m1), R2 (m1, a second replica, so the run is never degraded) and E2 (m2):
#  6. R's worker is replaced by one serving m2 (an impostor): the trainer refuses it. The impostor
#     is killed and m1 restarted on the same endpoint, as the refusal advises: the trainer checks it
#     again and takes it back ("is back"), and the metrics count 3 live replicas again.
#  7. R's worker is killed and restarted REJOIN_RESTARTS (10) times, 1 s apart; for each restart
#     the time from the new worker's ready file to the trainer's "is back" log line is measured
#     and the median, p95 (nearest rank) and max are REPORTED (not asserted: shared machines are
#     noisy; the bound is stated in README's fault section and measured by `make bench` as
#     rejoin_seconds). With REJOIN_JSON=FILE the figures are also written there as JSON.
source "$(dirname "$0")/lib.sh"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"
RESTARTS=${REJOIN_RESTARTS:-10}

for s in 1 2; do
  "$TW" train --train-end 3000 --arch 784,64,10 --epochs 1 --seed $s --member "m$s" \
      --blas-threads 1 --out "$WORK/m$s.safetensors" --quiet >/dev/null
done
start_worker "$WORK/m1.safetensors" "$WORK/r.ready" --blas-threads 1; R=$WORKER_EP; RPID=$WORKER_PID
start_worker "$WORK/m1.safetensors" "$WORK/r2.ready" --blas-threads 1; R2=$WORKER_EP
start_worker "$WORK/m2.safetensors" "$WORK/e2.ready" --blas-threads 1; E2=$WORKER_EP

"$ST" distill --teachers "$R,$R2,$E2" --labeled-end 500 --unlabeled "$TRAIN_X" --unlabeled-start 500 \
    --unlabeled-end 2500 --arch 784,32,10 --batch-size 50 --epochs 100000 --blas-threads 1 \
    --inflight 2 --timeout 2 --out "$WORK/s.safetensors" --metrics "$WORK/s.jsonl" --quiet \
    >/dev/null 2>"$WORK/s.err" &
TRAINER=$!
E2E_PIDS+=("$TRAINER")
lines() { [[ -f "$WORK/s.jsonl" ]] && wc -l < "$WORK/s.jsonl" || echo 0; }
wait_log() { # pattern count timeout_s: waits until the trainer's log has `count` matching lines
  local n
  for _ in $(seq 1 $(( $3 * 50 ))); do
    n=$(grep -c -- "$1" "$WORK/s.err" || true)
    [[ $n -ge $2 ]] && return 0
    kill -0 "$TRAINER" 2>/dev/null || { cat "$WORK/s.err" >&2; fail "the trainer died"; }
    sleep 0.02
  done
  cat "$WORK/s.err" >&2; fail "no $2 x '$1' in the trainer's log after $3 s"
}
for _ in $(seq 1 600); do [[ $(lines) -ge 1 ]] && break; sleep 0.05; done
[[ $(lines) -ge 1 ]] || { cat "$WORK/s.err" >&2; fail "no epoch done"; }

# --- 6: refused impostor replaced by the right member ---------------------------------------------
quiet_kill "$RPID"
wait_log "teacher $R (m1) is down" 1 10
start_worker "$WORK/m2.safetensors" "$WORK/imp.ready" --blas-threads 1 --bind "$R"; IPID=$WORKER_PID
wait_log "REFUSED teacher $R came back with weights" 1 10
pass "impostor (m2) on $R refused"
quiet_kill "$IPID"
sleep 0.5
start_worker "$WORK/m1.safetensors" "$WORK/r.ready" --blas-threads 1 --bind "$R"; RPID=$WORKER_PID
wait_log "teacher $R (m1) is back" 1 10
ep=$(lines)
for _ in $(seq 1 600); do [[ $(lines) -ge $((ep + 2)) ]] && break; sleep 0.05; done
tail -n1 "$WORK/s.jsonl" | grep -q '"replicas_up":3,' ||
  fail "after m1 returned on $R, the metrics do not count 3 live replicas: $(tail -n1 "$WORK/s.jsonl" | grep -o '"teachers":{[^}]*}')"
pass "m1 restarted on the refused endpoint $R: rechecked, back, 3 live replicas in the metrics"

# --- 7: rejoin time after a restart --------------------------------------------------------------
clock_s() { date -u -d "$(date -u +%F) $1" +%s.%N; } # HH:MM:SS.mmm (UTC, today) -> epoch seconds
SAMPLES=()
for i in $(seq 1 "$RESTARTS"); do
  before=$(grep -c "teacher $R (m1) is back" "$WORK/s.err" || true)
  quiet_kill "$RPID"
  wait_log "teacher $R (m1) is down" "$((i + 1))" 10
  sleep 1 # long enough for the trainer's reconnect attempts to back off to their cap
  start_worker "$WORK/m1.safetensors" "$WORK/r.ready" --blas-threads 1 --bind "$R"; RPID=$WORKER_PID
  ready_at=$(stat -c %.3Y "$WORK/r.ready")
  wait_log "teacher $R (m1) is back" "$((before + 1))" 20
  back_clock=$(grep "teacher $R (m1) is back" "$WORK/s.err" | tail -n1 | cut -d' ' -f1)
  SAMPLES+=("$(awk -v a="$(clock_s "$back_clock")" -v b="$ready_at" 'BEGIN { printf "%.3f", a - b }')")
done
kill -TERM "$TRAINER"
wait "$TRAINER" 2>/dev/null || true
read -r median p95 max < <(printf '%s\n' "${SAMPLES[@]}" | sort -g | awk '
  { v[NR] = $1 } END { n = NR; p = int(0.95 * n); if (p < 0.95 * n) p++;
    m = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2; printf "%.3f %.3f %.3f\n", m, v[p], v[n] }')
echo "rejoin after restart (ready file -> 'is back'), $RESTARTS restarts: ${SAMPLES[*]} s"
echo "rejoin_seconds: median $median p95 $p95 max $max"
if [[ -n "${REJOIN_JSON:-}" ]]; then
  printf '{"restarts":%d,"median_s":%s,"p95_s":%s,"max_s":%s,"samples_s":[%s]}\n' "$RESTARTS" \
      "$median" "$p95" "$max" "$(IFS=,; echo "${SAMPLES[*]}")" > "$REJOIN_JSON"
fi
pass "restarted worker rejoined $RESTARTS times (figures above)"
echo "rejoin checks passed"
