#!/usr/bin/env bash
# Reliability issue 10, defect 1: `--teachers tcp://NAME:PORT` where NAME resolves to two addresses,
# with CURVE and a --curve-server-keys mapping file that has no entry for NAME. The trainer used to
# leak the first address's sockets (the failed replica's slot was reused by the second address),
# report "resolves to no address" and hang for ever in zmq_ctx_term. Now it must exit non-zero
# promptly (a 30 s `timeout` turns a hang into a failure) naming the missing mapping entry.
# The name comes from a network namespace's /etc/hosts (ip netns exec bind-mounts
# /etc/netns/NAME/hosts), as in elastic.sh. Needs root and iproute2; otherwise skipped (exit 77).
source "$(dirname "$0")/lib.sh"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"
if [[ $(id -u) -ne 0 ]] || ! command -v ip >/dev/null; then
  echo "SKIP: needs root and iproute2 for a network namespace"; exit 77
fi
NS="edistill-keys-$$"
ip netns add "$NS" || { echo "SKIP: cannot create a network namespace"; exit 77; }
ns_cleanup() { e2e_cleanup; ip netns del "$NS" 2>/dev/null || true; rm -rf "/etc/netns/$NS"; }
trap ns_cleanup EXIT
ip -n "$NS" link set lo up
mkdir -p "/etc/netns/$NS"
printf 'multi on\n' > "/etc/netns/$NS/host.conf"
printf '127.0.0.1 localhost\n127.0.0.2 teachers.edistill.test\n127.0.0.3 teachers.edistill.test\n' \
    > "/etc/netns/$NS/hosts"
ip netns exec "$NS" $PY -c 'import socket; print(socket.getaddrinfo("teachers.edistill.test", 5555))' |
    grep -q 127.0.0.3 ||
  fail "the namespace's /etc/hosts does not give teachers.edistill.test two addresses"

"$TW" keygen --out "$WORK/trainer" >/dev/null || fail "keygen trainer"
"$TW" keygen --out "$WORK/teacher" >/dev/null || fail "keygen teacher"
printf 'tcp://other.edistill.test:5555 %s\n' "$WORK/teacher.pub" > "$WORK/map"

t0=$(date +%s.%N)
rc=0
timeout 30 ip netns exec "$NS" "$ST" distill --teachers tcp://teachers.edistill.test:5555 \
    --labeled-end 200 --arch 784,16,10 --epochs 1 --connect-timeout 20 --blas-threads 1 \
    --curve-secret "$WORK/trainer.key" --curve-server-keys "$WORK/map" \
    --out "$WORK/s.safetensors" >/dev/null 2>"$WORK/s.err" || rc=$?
took=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
[[ $rc -ne 124 ]] || { cat "$WORK/s.err" >&2; fail "distill hung (killed by timeout after 30 s)"; }
[[ $rc -ne 0 && $rc -lt 128 ]] || { cat "$WORK/s.err" >&2; fail "distill exited $rc"; }
grep -q "no CURVE server key for it in --curve-server-keys" "$WORK/s.err" ||
  { cat "$WORK/s.err" >&2; fail "the error does not name the missing mapping entry"; }
grep -q "resolves to no address" "$WORK/s.err" && fail "misleading 'resolves to no address'"
pass "name with two addresses, no mapping entry: exit $rc after $took s: $(grep -m1 'CURVE server key' "$WORK/s.err" | cut -d' ' -f3- | cut -c1-150)"
echo "dns + key mapping checks passed"
