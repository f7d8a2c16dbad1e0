#!/usr/bin/env bash
# Acceptance (reliability issue): elastic membership through a DNS name that resolves to many hosts,
# as a headless Kubernetes Service does. The test makes its own network namespace whose /etc/hosts
# (ip netns exec bind-mounts /etc/netns/NAME/hosts) maps teachers.edistill.test to loopback
# addresses inside that namespace; the trainer re-resolves the name while it runs:
#   - an address added to the name joins as a new replica,
#   - an address removed from the name is dropped, and its member carries on on its other replica.
# Needs root and iproute2; otherwise it is skipped (exit 77).
source "$(dirname "$0")/lib.sh"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"
if [[ $(id -u) -ne 0 ]] || ! command -v ip >/dev/null; then
  echo "SKIP: needs root and iproute2 for a network namespace"; exit 77
fi
NS="edistill-dns-$$"
ip netns add "$NS" || { echo "SKIP: cannot create a network namespace"; exit 77; }
ns_cleanup() { e2e_cleanup; ip netns del "$NS" 2>/dev/null || true; rm -rf "/etc/netns/$NS"; }
trap ns_cleanup EXIT
ip -n "$NS" link set lo up
mkdir -p "/etc/netns/$NS"
HOSTS="/etc/netns/$NS/hosts"
printf 'multi on\n' > "/etc/netns/$NS/host.conf"
printf '127.0.0.1 localhost\n127.0.0.2 teachers.edistill.test\n127.0.0.3 teachers.edistill.test\n' > "$HOSTS"

for s in 1 2; do
  "$TW" train --train-end 10000 --arch 784,128,10 --epochs 1 --seed $s --member "m$s" \
      --blas-threads 1 --out "$WORK/m$s.safetensors" --quiet >/dev/null
done
ns_worker() { # model address
  ip netns exec "$NS" "$TW" serve --model "$1" --bind "tcp://$2:5555" --blas-threads 1 \
      --ready-file "$WORK/$2.ready" >/dev/null 2>>"$WORK/workers.log" &
  E2E_PIDS+=($!)
  for _ in $(seq 1 200); do [[ -s "$WORK/$2.ready" ]] && return 0; sleep 0.05; done
  fail "worker on $2 did not start: $(cat "$WORK/workers.log")"
}
ns_worker "$WORK/m1.safetensors" 127.0.0.2
ns_worker "$WORK/m2.safetensors" 127.0.0.3
ns_worker "$WORK/m1.safetensors" 127.0.0.4   # a replica of m1, not yet in the name

ip netns exec "$NS" "$ST" distill --teachers tcp://teachers.edistill.test:5555 \
    --labeled-end 1000 --unlabeled "$TRAIN_X" --unlabeled-start 1000 --unlabeled-end 30000 \
    --arch 784,64,10 --batch-size 64 --blas-threads 1 --epochs 12 --resolve-interval 0.3 \
    --timeout 2 --out "$WORK/s.safetensors" --metrics "$WORK/s.jsonl" >/dev/null 2>"$WORK/s.err" &
TRAINER=$!
E2E_PIDS+=("$TRAINER")
lines() { [[ -f "$WORK/s.jsonl" ]] && wc -l < "$WORK/s.jsonl" || echo 0; }
for _ in $(seq 1 600); do [[ $(lines) -ge 1 ]] && break; sleep 0.05; done
grep -q "member 0: m1 (fnv1a64:[0-9a-f]*) at tcp://127.0.0.2:5555" "$WORK/s.err" ||
  { cat "$WORK/s.err" >&2; fail "the name did not resolve to m1 at 127.0.0.2"; }
grep -q "member 1: m2 (fnv1a64:[0-9a-f]*) at tcp://127.0.0.3:5555" "$WORK/s.err" || fail "m2 at 127.0.0.3 missing"

echo "127.0.0.4 teachers.edistill.test" >> "$HOSTS"           # scale up: a new replica of m1
for _ in $(seq 1 100); do grep -q "new replica of m1 at tcp://127.0.0.4:5555" "$WORK/s.err" && break; sleep 0.05; done
grep -q "new replica of m1 at tcp://127.0.0.4:5555" "$WORK/s.err" || { cat "$WORK/s.err" >&2; fail "added address not picked up"; }
pass "address added to teachers.edistill.test: joined as a replica of m1"

grep -v '127.0.0.2 ' "$HOSTS" > "$WORK/hosts.new"; cat "$WORK/hosts.new" > "$HOSTS"   # in place: bind mount
for _ in $(seq 1 100); do grep -q "teacher tcp://127.0.0.2:5555 left" "$WORK/s.err" && break; sleep 0.05; done
grep -q "teacher tcp://127.0.0.2:5555 left teachers.edistill.test's addresses: dropping it" "$WORK/s.err" ||
  { cat "$WORK/s.err" >&2; fail "removed address not dropped"; }
pass "address removed from the name: dropped"

wait "$TRAINER" || { cat "$WORK/s.err" >&2; fail "the elastic run did not complete"; }
[[ $(sed -n 's/.*"degraded_batches":\([0-9]*\).*/\1/p' "$WORK/s.jsonl" | awk '{ s += $1 } END { print s + 0 }') == 0 ]] ||
  fail "degraded batches although m1 always had a live replica"
pass "run completed over the changing membership without a degraded batch ($(lines) epochs)"
echo "elastic membership checks passed"
