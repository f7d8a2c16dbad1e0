#!/usr/bin/env bash
# Reliability issue 10, defect 8: a link that goes silent (packets dropped, no FIN, no RST) is
# noticed by ZMTP heartbeats on both sides, not left to TCP's retransmission backoff. Inside a
# network namespace the test makes, a worker and a trainer talk over 127.0.0.1:5555; iptables DROPs
# that port for BLACKOUT_S (12) seconds while requests are in flight (--timeout 60, so the request
# deadline cannot be what notices it). Checked: during the blackout the trainer logs the teacher
# down with "connection lost" (its heartbeat timeout is 3 s) and the worker logs its client
# disconnected (10 s: it must also cover a large incoming frame): each side dropped it; after the link is back the member is "back" and the run goes on. The time
# from the link's return to "is back" is reported, not asserted.
# Needs root, iproute2 and iptables; otherwise skipped (exit 77).
source "$(dirname "$0")/lib.sh"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"
BLACKOUT_S=${BLACKOUT_S:-12}
if [[ $(id -u) -ne 0 ]] || ! command -v ip >/dev/null || ! command -v iptables >/dev/null; then
  echo "SKIP: needs root, iproute2 and iptables"; exit 77
fi
NS="edistill-blackout-$$"
ip netns add "$NS" || { echo "SKIP: cannot create a network namespace"; exit 77; }
ns_cleanup() { e2e_cleanup; ip netns del "$NS" 2>/dev/null || true; }
trap ns_cleanup EXIT
ip -n "$NS" link set lo up
ip netns exec "$NS" iptables -L INPUT >/dev/null 2>&1 || { echo "SKIP: iptables unusable in a namespace"; exit 77; }

"$TW" train --train-end 3000 --arch 784,64,10 --epochs 1 --seed 1 --member m1 --blas-threads 1 \
    --out "$WORK/m1.safetensors" --quiet >/dev/null
ip netns exec "$NS" "$TW" serve --model "$WORK/m1.safetensors" --bind tcp://127.0.0.1:5555 \
    --blas-threads 1 --ready-file "$WORK/w.ready" >/dev/null 2>"$WORK/worker.log" &
E2E_PIDS+=($!)
for _ in $(seq 1 200); do [[ -s "$WORK/w.ready" ]] && break; sleep 0.05; done
[[ -s "$WORK/w.ready" ]] || fail "worker did not start: $(cat "$WORK/worker.log")"

ip netns exec "$NS" "$ST" distill --teachers tcp://127.0.0.1:5555 --labeled-end 500 \
    --unlabeled "$TRAIN_X" --unlabeled-start 500 --unlabeled-end 2500 --arch 784,32,10 \
    --batch-size 50 --epochs 100000 --blas-threads 1 --inflight 2 --timeout 60 --max-wait 120 \
    --out "$WORK/s.safetensors" --metrics "$WORK/s.jsonl" --quiet >/dev/null 2>"$WORK/s.err" &
TRAINER=$!
E2E_PIDS+=("$TRAINER")
lines() { [[ -f "$WORK/s.jsonl" ]] && wc -l < "$WORK/s.jsonl" || echo 0; }
for _ in $(seq 1 600); do [[ $(lines) -ge 1 ]] && break; sleep 0.05; done
[[ $(lines) -ge 1 ]] || { cat "$WORK/s.err" >&2; fail "no epoch done"; }

RULES=(INPUT -p tcp -m multiport --ports 5555 -j DROP)
ip netns exec "$NS" iptables -A "${RULES[@]}" || fail "cannot add the DROP rule"
sleep "$BLACKOUT_S"
down_in_blackout=$(grep -c "teacher tcp://127.0.0.1:5555 (m1) is down: connection lost" "$WORK/s.err" || true)
worker_dropped=$(grep -c "client disconnected" "$WORK/worker.log" || true)
ip netns exec "$NS" iptables -D "${RULES[@]}"
restored=$(date +%s.%N)
[[ $down_in_blackout -ge 1 ]] ||
  { cat "$WORK/s.err" >&2; fail "the trainer did not drop the silent connection within the ${BLACKOUT_S} s blackout"; }
[[ $worker_dropped -ge 1 ]] ||
  { cat "$WORK/worker.log" >&2; fail "the worker did not drop the silent connection within the ${BLACKOUT_S} s blackout"; }
pass "${BLACKOUT_S} s blackout: both sides dropped the silent connection (heartbeats)"

for _ in $(seq 1 600); do grep -q "teacher tcp://127.0.0.1:5555 (m1) is back" "$WORK/s.err" && break; sleep 0.05; done
back=$(grep -m1 "teacher tcp://127.0.0.1:5555 (m1) is back" "$WORK/s.err") ||
  { cat "$WORK/s.err" >&2; fail "m1 never came back after the blackout"; }
back_at=$(date -u -d "$(date -u +%F) $(cut -d' ' -f1 <<<"$back")" +%s.%N)
ep=$(lines)
for _ in $(seq 1 600); do [[ $(lines) -gt $ep ]] && break; sleep 0.05; done
[[ $(lines) -gt $ep ]] || fail "no epoch finished after the link came back"
kill -TERM "$TRAINER"; wait "$TRAINER" 2>/dev/null || true
echo "link back -> member back: $(awk -v a="$back_at" -v b="$restored" 'BEGIN { printf "%.2f", a - b }') s"
pass "after the blackout m1 came back and the run went on"
echo "blackout checks passed"
