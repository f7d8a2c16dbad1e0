#!/usr/bin/env bash
# Multi-host distillation over real TCP between network namespaces (iproute2), all on this machine:
#
#   ns teach1 (10.231.0.11) ─┐
#   ns teach2 (10.231.0.12) ─┼─ veth ── bridge br0 in ns switch
#   ns teach3 (10.231.0.13) ─┤
#   ns train  (10.231.0.20) ─┘
#
# Every interface and address lives inside namespaces this test creates (the host's own network
# namespace is not touched, and there is no route out of 10.231.0.0/24). One `teacher_worker serve`
# per teacher host binds its own address; `student_trainer distill` on the trainer host reaches them
# through the bridge. Checks: the student is written and `eval` accepts it; each teacher's eth0
# received at least the request payloads of every step; each worker's exit log counts replies; the
# teachers are not reachable on the trainer's loopback (so traffic really crossed hosts); then a
# second run names the teachers by one host name with three addresses (the trainer host's
# /etc/hosts, as a headless Service's DNS would) and finds all three members.
# Needs root and `ip netns`; otherwise it exits 77, which ctest reports as skipped.
source "$(dirname "$0")/lib.sh"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"

skip() { echo "SKIP: $*"; exit 77; }
[[ $(id -u) == 0 ]] || skip "needs root to create network namespaces"
command -v ip >/dev/null || skip "iproute2 (ip) is not installed"
NS="edmh$$"
NSS=()
HOSTS_DIR=""
mh_cleanup() {
  e2e_cleanup_workers
  local n
  for n in "${NSS[@]}"; do ip netns delete "$n" 2>/dev/null || true; done
  [[ -z "$HOSTS_DIR" ]] || rm -rf "$HOSTS_DIR"
  rm -rf "$WORK"
}
e2e_cleanup_workers() {
  local p
  for p in "${E2E_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${E2E_PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  E2E_PIDS=()
}
trap mh_cleanup EXIT
trap 'exit 130' INT TERM
ip netns add "$NS-sw" 2>"$WORK/netns.err" || skip "ip netns add failed: $(cat "$WORK/netns.err")"
NSS+=("$NS-sw")

SUBNET=10.231.0
names=(teach1 teach2 teach3 train)
addrs=("$SUBNET.11" "$SUBNET.12" "$SUBNET.13" "$SUBNET.20")
ip -n "$NS-sw" link add br0 type bridge
ip -n "$NS-sw" link set br0 up
for i in "${!names[@]}"; do
  n="$NS-${names[$i]}"
  ip netns add "$n"; NSS+=("$n")
  # Both ends are created inside the switch namespace, then one moves to the host namespace.
  ip -n "$NS-sw" link add "p$i" type veth peer name eth0
  ip -n "$NS-sw" link set eth0 netns "$n"
  ip -n "$NS-sw" link set "p$i" master br0 up
  ip -n "$n" link set lo up
  ip -n "$n" addr add "${addrs[$i]}/24" dev eth0
  ip -n "$n" link set eth0 up
done
[[ -z "$(ip -n "$NS-train" route show default)" ]] || fail "trainer host has a default route"
pass "4 hosts in namespaces $NS-{teach1,teach2,teach3,train} on bridge $NS-sw/br0 ($SUBNET.0/24, no route out)"

for s in 1 2 3; do
  "$TW" train --train-end 2000 --arch 784,64,10 --epochs 1 --seed $s --member "m$s" \
      --blas-threads 1 --out "$WORK/m$s.safetensors" --quiet
done

EPS=()
WPIDS=()
for i in 0 1 2; do
  ready="$WORK/w$i.ready"
  ip netns exec "$NS-${names[$i]}" "$TW" serve --model "$WORK/m$((i + 1)).safetensors" \
      --bind "tcp://${addrs[$i]}:5555" --ready-file "$ready" --blas-threads 1 --max-batch 128 \
      > /dev/null 2> "$WORK/w$i.log" &
  WPIDS+=($!); E2E_PIDS+=($!)
  EPS+=("tcp://${addrs[$i]}:5555")
done
for i in 0 1 2; do
  for _ in $(seq 1 200); do [[ -s "$WORK/w$i.ready" ]] && break; sleep 0.05; done
  [[ -s "$WORK/w$i.ready" ]] || { cat "$WORK/w$i.log" >&2; fail "worker on ${names[$i]} not ready"; }
done
pass "teachers serving on ${EPS[*]}"

rx() { ip -n "$1" -s link show eth0 | awk '/RX:/ && !n++ { getline; print $1 }'; }
RX0=(); for i in 0 1 2; do RX0+=("$(rx "$NS-${names[$i]}")"); done

STEPS=40; BATCH=64
distill() { # name teachers
  ip netns exec "$NS-train" "$ST" distill --teachers "$2" --labeled-end 500 --unlabeled "$TRAIN_X" \
      --unlabeled-start 500 --unlabeled-end 3000 --arch 784,32,10 --steps $STEPS --batch-size $BATCH \
      --seed 5 --blas-threads 1 --inflight 3 --connect-timeout 20 \
      --out "$WORK/$1.safetensors" --metrics "$WORK/$1.jsonl" --quiet \
      > "$WORK/$1.out" 2> "$WORK/$1.err" || { cat "$WORK/$1.err" >&2; fail "distill $1 on the trainer host"; }
}
TEACHERS=$(IFS=,; echo "${EPS[*]}")
t0=$(date +%s)
distill static "$TEACHERS"
grep -q '"members":3' "$WORK/static.jsonl" || fail "distill did not use 3 members"
"$ST" eval --models "$WORK/static.safetensors" --images "$TEST_X" --labels "$TEST_Y" --no-confusion \
  > "$WORK/eval.out" || fail "eval of the student"
pass "distilled on the trainer host from 3 remote teachers in $(( $(date +%s) - t0 ))s: $(awk '/static.safetensors/ { print $3 }' "$WORK/eval.out") test accuracy"

min=$(( STEPS * BATCH * 784 ))   # u8 pixels of every batch go to every member
for i in 0 1 2; do
  got=$(( $(rx "$NS-${names[$i]}") - RX0[i] ))
  (( got >= min )) || fail "${names[$i]} received $got bytes on eth0, expected >= $min"
  echo "  ${names[$i]}: $got bytes received on eth0 (>= $min)"
done
pass "each teacher host received every batch over its veth link"

ip netns exec "$NS-train" "$ST" distill --teachers "tcp://127.0.0.1:5555" --steps 1 --arch 784,32,10 \
    --labeled-end 500 --connect-timeout 2 --out "$WORK/nope.safetensors" --quiet > /dev/null 2>&1 &&
  fail "a teacher answered on the trainer host's loopback"
pass "no teacher on the trainer host's loopback: the traffic crossed hosts"

# One name, three addresses (what a headless Service's DNS returns), from the trainer host's
# /etc/hosts: `ip netns exec` bind-mounts /etc/netns/NAME/hosts over /etc/hosts for that command.
HOSTS_DIR="/etc/netns/$NS-train"
mkdir -p "$HOSTS_DIR"
{ echo "127.0.0.1 localhost"; for i in 0 1 2; do echo "${addrs[$i]} teachers.edistill.test"; done; } > "$HOSTS_DIR/hosts"
n=$(ip netns exec "$NS-train" getent ahostsv4 teachers.edistill.test | awk '$2 == "STREAM"' | wc -l)
[[ $n == 3 ]] || fail "teachers.edistill.test resolves to $n addresses on the trainer host, expected 3"
distill byname "tcp://teachers.edistill.test:5555"
grep -q '"members":3' "$WORK/byname.jsonl" || { cat "$WORK/byname.err" >&2; fail "by name: not 3 members"; }
pass "tcp://teachers.edistill.test:5555 (3 A records) -> 3 members"

for p in "${WPIDS[@]}"; do kill -TERM "$p"; done
for i in 0 1 2; do
  wait "${WPIDS[$i]}" || fail "worker on ${names[$i]} exited with $? on SIGTERM"
  replies=$(sed -n 's/.*stopped: \([0-9]*\) replies sent.*/\1/p' "$WORK/w$i.log")
  [[ -n "$replies" ]] && (( replies >= 2 * STEPS )) ||
    { cat "$WORK/w$i.log" >&2; fail "worker on ${names[$i]} sent ${replies:-no} replies, expected >= $((2 * STEPS))"; }
  echo "  ${names[$i]}: $replies replies"
done
E2E_PIDS=()
pass "each worker answered both runs and stopped cleanly"
echo "multi-host checks passed"
