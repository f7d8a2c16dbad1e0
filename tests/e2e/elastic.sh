#!/usr/bin/env bash
# Acceptance (reliability issue): elastic membership through a DNS name that resolves to many hosts,
# as a headless Kubernetes Service does. The test makes its own network namespace whose /etc/hosts
# (ip netns exec bind-mounts /etc/netns/NAME/hosts) maps teachers.edistill.test to loopback
# addresses inside that namespace; the trainer re-resolves the name while it runs:
#   - an address added to the name joins as a new replica,
#   - an address removed from the name is dropped, and its member carries on on its other replica;
#   - a name whose DNS server never answers does not stall the run: re-resolution is asynchronous
#     (the namespace's resolv.conf points at a black hole on its own loopback that counts queries).
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
# --- a DNS server that never answers: the loop must not wait for it -------------------------------
printf 'nameserver 127.0.0.1\noptions timeout:2 attempts:2\n' > "/etc/netns/$NS/resolv.conf"
printf '127.0.0.1 localhost\n127.0.0.2 teachers.edistill.test\n127.0.0.3 slow.edistill.test\n' > "$HOSTS"
ip netns exec "$NS" /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 53))
open(sys.argv[1], "w").close()
n = 0
while True:
    s.recvfrom(4096); n += 1
    with open(sys.argv[1], "w") as f: f.write(str(n))
' "$WORK/dns.queries" &
E2E_PIDS+=($!)
for _ in $(seq 1 100); do [[ -f "$WORK/dns.queries" ]] && break; sleep 0.05; done
ns_worker "$WORK/m1.safetensors" 127.0.0.2 2>/dev/null || true   # 127.0.0.2's worker was dropped, not stopped
ip netns exec "$NS" "$ST" distill --teachers tcp://teachers.edistill.test:5555,tcp://slow.edistill.test:5555 \
    --labeled-end 1000 --unlabeled "$TRAIN_X" --unlabeled-start 1000 --unlabeled-end 20000 \
    --arch 784,64,10 --batch-size 64 --blas-threads 1 --epochs 500 --resolve-interval 0.3 \
    --timeout 2 --out "$WORK/b.safetensors" --metrics "$WORK/b.jsonl" >/dev/null 2>"$WORK/b.err" &
TRAINER=$!
E2E_PIDS+=("$TRAINER")
for _ in $(seq 1 600); do [[ -f "$WORK/b.jsonl" && $(wc -l < "$WORK/b.jsonl") -ge 1 ]] && break; sleep 0.05; done
grep -v 'slow.edistill.test' "$HOSTS" > "$WORK/hosts.new"; cat "$WORK/hosts.new" > "$HOSTS"  # now only DNS knows it
# The run is long on purpose (500 epochs): it lasts until the lookup has failed (timeout 2 s x 2
# attempts) and three more epochs have run, however fast this machine trains; then SIGTERM ends it.
warned=0
for _ in $(seq 1 600); do
  grep -q "teacher name slow.edistill.test: cannot resolve" "$WORK/b.err" && { warned=1; break; }
  kill -0 "$TRAINER" 2>/dev/null || break
  sleep 0.1
done
[[ $warned == 1 ]] || { cat "$WORK/b.err" >&2; fail "no warning about the unresolvable name"; }
after=$(( $(wc -l < "$WORK/b.jsonl") + 3 ))
for _ in $(seq 1 600); do
  [[ $(wc -l < "$WORK/b.jsonl") -ge $after ]] && break
  kill -0 "$TRAINER" 2>/dev/null || break
  sleep 0.1
done
kill -TERM "$TRAINER" 2>/dev/null || true
rc=0; wait "$TRAINER" || rc=$?
[[ $rc == 143 ]] || { cat "$WORK/b.err" >&2; fail "the run with a dead DNS server did not run until SIGTERM (exit $rc)"; }
[[ $(wc -l < "$WORK/b.jsonl") -ge $after ]] || fail "fewer than 3 epochs after the failed lookup"
queries=$(cat "$WORK/dns.queries"); queries=${queries:-0}
[[ $queries -ge 1 ]] || { cat "$WORK/b.err" >&2; fail "the trainer never asked the DNS server (test set-up)"; }
# A blocking lookup would hold the loop 4+ s every 0.3 s re-resolution: each later epoch would take
# many times the first. The bound is loose on purpose (a stall detector, not a timing goal).
secs=$(sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p' "$WORK/b.jsonl")
awk -v q="$queries" 'NR == 1 { first = $1; next } { if ($1 > 3 * first + 3) bad = bad " epoch " NR ": " $1 " s" }
     END { if (bad != "") { print "stalled (first epoch " first " s):" bad > "/dev/stderr"; exit 1 } }' <<< "$secs" ||
  fail "the run stalled while the DNS server did not answer"
pass "DNS server black-holed ($queries queries unanswered): epochs took $(echo $secs | tr '\n' ' ')s, no stall"
echo "elastic membership checks passed"
