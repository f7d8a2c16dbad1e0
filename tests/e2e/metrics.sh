#!/usr/bin/env bash
# e2e metrics: the operations HTTP endpoints (/metrics, /healthz, /readyz) with the real tools.
#  - /healthz answers and /readyz says 503 while a worker is still loading its model (a FIFO holds
#    the load), 200 once it serves;
#  - `promtool check metrics` accepts every endpoint's exposition;
#  - garbage, a 64 KiB header, POSTs and more slowloris connections than the listener's limit do
#    not disturb a client getting correct logits (metrics_client.py hostile), and the worker's
#    logit request counter equals what that client sent;
#  - a real Prometheus server (Debian's `prometheus`; generated config scraping every second,
#    loopback only, its own data dir, bounded run) scrapes 2 workers and a distill run: the
#    trainer's step counter increases, each worker's request counter equals the requests the
#    trainer sent it, and the member info series exist;
#  - student_trainer status (table, JSON, a dead endpoint, CURVE) and plot (a PNG of 2 runs);
#  - `student_trainer label --metrics-listen`, held mid-run: its sample, byte and progress series
#    agree with each other and with its teacher request counters, /readyz 200, promtool passes.
source "$(dirname "$0")/lib.sh"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"
# Debian's prometheus (promtool too): installed here when missing and root, else named.
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  if [[ $(id -u) -eq 0 ]]; then
    flock /tmp/apt.lock apt-get install -y -q --no-install-recommends prometheus >/dev/null ||
      fail "cannot install Debian's prometheus"
  else
    fail "prometheus/promtool missing: apt-get install prometheus (scripts/deps.sh)"
  fi
fi
command -v protoc >/dev/null || fail "protoc missing (scripts/deps.sh installs protobuf-compiler)"
MC="$PY $SRC/tests/e2e/metrics_client.py"
protoc --python_out="$WORK" -I"$SRC/proto" "$SRC/proto/edistill.proto" || fail "protoc"
free_port() { $PY "$SRC/tests/e2e/serve_client.py" free-port; }

# wait_http URL STATUS: polls until URL answers STATUS (10 s at most).
wait_http() {
  for _ in $(seq 1 100); do
    $MC get "$1" --status "$2" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "$1 did not answer $2 within 10 s"
}

# 1. Readiness follows the model load. open() of a FIFO blocks until a writer comes: the worker is
#    "loading" for as long as we like.
mkfifo "$WORK/slow.safetensors"
PORT=$(free_port)
"$TW" serve --model "$WORK/slow.safetensors" --bind "tcp://127.0.0.1:*" \
    --metrics-listen "127.0.0.1:$PORT" 2>>"$WORK/slow.log" &
SLOW=$!
E2E_PIDS+=("$SLOW")
wait_http "http://127.0.0.1:$PORT/healthz" 200
$MC get "http://127.0.0.1:$PORT/readyz" --status 503 >/dev/null ||
  fail "/readyz is not 503 while the model is loading"
pass "while loading: /healthz 200, /readyz 503"
kill -TERM "$SLOW"; wait "$SLOW" 2>/dev/null || true

for s in 1 2; do
  "$TW" train --train-end 2000 --arch 784,32,10 --epochs 1 --seed $s --member "m$s" \
      --blas-threads 1 --out "$WORK/m$s.safetensors" --quiet
done
start_worker "$WORK/m1.safetensors" "$WORK/a.ready" --blas-threads 1 --max-batch 64 \
    --metrics-listen 127.0.0.1:0
EP_A=$WORKER_EP; PID_A=$WORKER_PID; M_A=$(sed -n 's/^metrics=//p' "$WORK/a.ready")
[[ -n "$M_A" ]] || fail "ready file has no metrics= line"
$MC get "http://$M_A/readyz" >/dev/null || fail "/readyz not 200 once the ready file exists"
pass "after loading: /readyz 200 (metrics on $M_A)"

# 2. Hostile HTTP while serving logits (also checks the request counter).
$MC hostile --proto-dir "$WORK" --model "$WORK/m1.safetensors" --ready-file "$WORK/a.ready" \
    --requests 150 || fail "hostile HTTP disturbed the worker"
$MC get "http://$M_A/metrics" > "$WORK/a.prom" || fail "GET /metrics"
promtool check metrics < "$WORK/a.prom" || fail "promtool check metrics (worker)"
pass "promtool check metrics: worker"

# 3. A real Prometheus scrapes 2 workers and a distill run every second.
start_worker "$WORK/m2.safetensors" "$WORK/b.ready" --blas-threads 1 --max-batch 64 \
    --metrics-listen 127.0.0.1:0
EP_B=$WORKER_EP; M_B=$(sed -n 's/^metrics=//p' "$WORK/b.ready")

# 4. student_trainer status, through the pool code: a table, JSON, a dead endpoint, and CURVE.
"$ST" status --teachers "$EP_A,$EP_B" > "$WORK/status.txt" || fail "status of 2 live workers exited non-zero"
grep -qE "^$EP_A +m1 +fnv1a64:[0-9a-f]{16} +784,32,10 +up +[0-9.]+ +1/1$" "$WORK/status.txt" ||
  fail "status row of A: $(cat "$WORK/status.txt")"
"$ST" status --teachers "$EP_A,$EP_B,tcp://127.0.0.1:$(free_port)" --timeout 1 --json \
    > "$WORK/status.json" && fail "status with a dead endpoint exited 0"
$PY - "$WORK/status.json" "$WORK/a.ready" "$WORK/b.ready" <<'PYEOF' || fail "status --json"
import json, sys
d = json.load(open(sys.argv[1]))
ready = [dict(l.split("=", 1) for l in open(f).read().split("\n") if "=" in l) for f in sys.argv[2:]]
eps = {e["endpoint"]: e for e in d["endpoints"]}
for r in ready:
    e = eps[r["endpoint"]]
    assert e["up"] and e["member"] == r["member"] and e["fingerprint"] == r["fingerprint"], e
    assert e["arch"] == r["arch"] and e["rtt_ms"] > 0 and e["member_replicas_up"] == 1, e
dead = [e for e in d["endpoints"] if not e["up"]]
assert len(dead) == 1 and dead[0]["member"] is None and dead[0]["state"] == "connecting", dead
assert d["ok"] is False and sorted(m["member"] for m in d["members"]) == ["m1", "m2"], d
PYEOF
pass "status: table and JSON rows match the ready files; a dead endpoint makes it exit 1"
K="$WORK/keys"; mkdir -p "$K/clients"
for name in teacher trainer intruder; do "$TW" keygen --out "$K/$name" >/dev/null || fail "keygen"; done
cp "$K/trainer.pub" "$K/clients/"
start_worker "$WORK/m1.safetensors" "$WORK/c.ready" --curve-secret "$K/teacher.key" \
    --curve-clients "$K/clients" --metrics-listen 127.0.0.1:0
EP_C=$WORKER_EP; M_C=$(sed -n 's/^metrics=//p' "$WORK/c.ready")
"$ST" status --teachers "$EP_C" --curve-secret "$K/trainer.key" --curve-server-keys "$K/teacher.pub" \
    > "$WORK/status_c.txt" || fail "status over CURVE: $(cat "$WORK/status_c.txt")"
grep -qE "^$EP_C +m1 .* up " "$WORK/status_c.txt" || fail "status over CURVE: $(cat "$WORK/status_c.txt")"
"$ST" status --teachers "$EP_C" --curve-secret "$K/intruder.key" --curve-server-keys "$K/teacher.pub" \
    --timeout 1 > /dev/null 2>&1 && fail "status with an unlisted key exited 0"
ok=$($MC value "http://$M_C/metrics" 'edistill_worker_curve_handshakes_total{result="admitted"}')
bad=$($MC value "http://$M_C/metrics" 'edistill_worker_curve_handshakes_total{result="refused"}')
awk -v o="$ok" -v b="$bad" 'BEGIN { exit !(o >= 1 && b >= 1) }' ||
  fail "CURVE handshake counters: admitted $ok refused $bad"
pass "status over CURVE: up with the listed key, exit 1 with another; worker counted $ok admitted, $bad refused"

M_T="127.0.0.1:$(free_port)"
PROM="127.0.0.1:$(free_port)"
cat > "$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: 200ms
  scrape_timeout: 200ms
scrape_configs:
  - job_name: edistill_worker
    static_configs:
      - targets: ['$M_A', '$M_B']
  - job_name: edistill_trainer
    static_configs:
      - targets: ['$M_T']
YAML
promtool check config "$WORK/prometheus.yml" >/dev/null || fail "promtool check config"
timeout 300 prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prom-data" \
    --web.listen-address="$PROM" --log.level=warn 2>"$WORK/prometheus.log" &
E2E_PIDS+=("$!")
wait_http "http://$PROM/-/ready" 200
# Requests the hostile client sent to worker A before: the trainer's must come on top.
BASE_A=$($MC value "http://$M_A/metrics" 'edistill_worker_requests_total{kind="logit"}')

"$ST" distill --teachers "$EP_A,$EP_B" --labeled-end 500 --unlabeled "$TRAIN_X" \
    --unlabeled-start 500 --unlabeled-end 3000 --arch 784,32,10 --steps "${METRICS_STEPS:-6000}" \
    --batch-size 32 --blas-threads 1 --inflight 2 --out "$WORK/student.safetensors" \
    --metrics "$WORK/run.jsonl" --checkpoint "$WORK/run.ckpt" --checkpoint-every 100 \
    --metrics-listen "$M_T" --metrics-linger 4 --quiet 2>"$WORK/distill.err" &
TRAINER=$!
E2E_PIDS+=("$TRAINER")
# Scrape the trainer ourselves too while it runs (promtool + readiness).
wait_http "http://$M_T/readyz" 200
$MC get "http://$M_T/metrics" > "$WORK/t.prom" || fail "GET trainer /metrics"
promtool check metrics < "$WORK/t.prom" || fail "promtool check metrics (trainer)"
pass "promtool check metrics: trainer; trainer /readyz 200 with both members up"
# Hold the run mid-way so that Prometheus must see a value between 0 and the last one (a quiet
# machine may otherwise run all steps between two scrapes): worker A is stopped (the trainer waits
# for it, its metrics listener keeps answering) until Prometheus has scraped the trainer's count.
mid=0
for _ in $(seq 1 500); do
  mid=$($MC value "http://$M_T/metrics" edistill_trainer_steps_total 2>/dev/null || echo 0)
  [[ "${mid%.*}" -gt 0 ]] && break
  sleep 0.01
done
kill -STOP "$PID_A"
sleep 0.3 # steps already in the pipeline finish; then the count stays put
mid=$($MC value "http://$M_T/metrics" edistill_trainer_steps_total)
seen=""
for _ in $(seq 1 50); do
  seen=$($MC prom-query "http://$PROM" edistill_trainer_steps_total 2>/dev/null | awk '{print $2}')
  [[ "$seen" == "$mid" ]] && break
  sleep 0.1
done
kill -CONT "$PID_A"
[[ "$seen" == "$mid" ]] || fail "Prometheus did not scrape the held step count $mid (saw '$seen')"
wait "$TRAINER" || { cat "$WORK/distill.err" >&2; fail "distill with --metrics-listen"; }
sleep 2.5 # one more scrape of the workers after the run

q() { $MC prom-query "http://$PROM" "$1" || fail "query $1"; }
changes=$(q 'changes(edistill_trainer_steps_total[5m])' | awk '{print $2}')
final=$(q 'max_over_time(edistill_trainer_steps_total[5m])' | awk '{print $2}')
[[ -n "$changes" && "$changes" -ge 1 ]] ||
  { cat "$WORK/prometheus.log" >&2; fail "trainer step counter changed $changes times in Prometheus"; }
[[ "$final" == "${METRICS_STEPS:-6000}" ]] || fail "trainer steps in Prometheus: $final"
pass "Prometheus: trainer steps increased over $changes scrapes to $final"
for w in "A $EP_A $M_A $BASE_A" "B $EP_B $M_B 0"; do
  read -r name ep addr base <<<"$w"
  sent=$(q "max_over_time(edistill_trainer_teacher_requests_total{replica=\"$ep\"}[5m])" | awk '{print $2}')
  got=$(q "max_over_time(edistill_worker_requests_total{kind=\"logit\",instance=\"$addr\"}[5m])" | awk '{print $2}')
  [[ -n "$sent" && -n "$got" ]] || fail "worker $name: series missing in Prometheus (sent '$sent', got '$got')"
  awk -v s="$sent" -v g="$got" -v b="$base" 'BEGIN { exit !(s > 0 && g - b == s) }' ||
    fail "worker $name ($ep): the trainer sent $sent logit requests, its counter says $got - $base"
  pass "Prometheus: worker $name answered exactly the $sent requests the trainer sent it"
done
infos=$(q 'edistill_worker_info')
grep -q 'member="m1"' <<<"$infos" && grep -q 'member="m2"' <<<"$infos" ||
  fail "edistill_worker_info series missing: $infos"
pass "Prometheus: edistill_worker_info for m1 and m2"

# 5. The trainer's /readyz follows its teachers: 503 while the only member is not there yet, 200
#    once it connected (and through --metrics-linger after the run).
WP=$(free_port); TP="127.0.0.1:$(free_port)"
"$ST" distill --teachers "tcp://127.0.0.1:$WP" --labeled-end 500 --arch 784,16,10 --steps 20 \
    --batch-size 32 --blas-threads 1 --connect-timeout 30 --out "$WORK/late.safetensors" \
    --metrics-listen "$TP" --metrics-linger 3 --quiet >/dev/null 2>"$WORK/late.err" &
LATE=$!
E2E_PIDS+=("$LATE")
wait_http "http://$TP/healthz" 200
$MC get "http://$TP/readyz" --status 503 >/dev/null || fail "trainer /readyz not 503 before its teacher exists"
start_worker "$WORK/m1.safetensors" "$WORK/late.ready" --bind "tcp://127.0.0.1:$WP"
wait_http "http://$TP/readyz" 200
wait "$LATE" || { cat "$WORK/late.err" >&2; fail "distill with a late teacher"; }
pass "trainer: /healthz 200 at once, /readyz 503 until its member is up, then 200"

# 6. Learning curves of two runs on one chart (gnuplot), and a broken metrics file refused.
command -v gnuplot >/dev/null || fail "gnuplot missing: apt-get install gnuplot-nox (scripts/deps.sh)"
"$ST" plot --metrics "$WORK/run.jsonl,$WORK/run.jsonl" --labels "a,b" --out "$WORK/curves.png" \
    >/dev/null 2>"$WORK/plot.err" || { cat "$WORK/plot.err" >&2; fail "student_trainer plot"; }
[[ $(head -c 8 "$WORK/curves.png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] ||
  fail "plot did not write a PNG"
printf '{"epoch":1,"step":5}\nnot json\n' > "$WORK/bad.jsonl"
expect_fail "plot of a broken metrics file" "bad.jsonl:2: not a metrics record" \
    "$ST" plot --metrics "$WORK/bad.jsonl" --out "$WORK/bad.png"
pass "plot: 2 runs on one PNG ($(stat -c %s "$WORK/curves.png") bytes)"
# 7. label --metrics-listen, held mid-run like the distill run above (worker A stopped: the label
#    pipeline waits for it, its values stay put) so that one scrape sees consistent values.
M_L="127.0.0.1:$(free_port)"
"$ST" label --teachers "$EP_A,$EP_B" --unlabeled "$TRAIN_X" --unlabeled-end 20000 --batch-size 1 \
    --inflight 1 --store "$WORK/store" --metrics-listen "$M_L" --quiet 2>"$WORK/label.err" &
LABEL=$!
E2E_PIDS+=("$LABEL")
$MC wait-value "http://$M_L/metrics" edistill_label_samples_total --min 1 >/dev/null ||
  { cat "$WORK/label.err" >&2; fail "label: no labeled sample counted on /metrics"; }
$MC get "http://$M_L/readyz" >/dev/null || fail "label /readyz not 200 with both members up"
kill -STOP "$PID_A"
# The batch in flight settles (two scrapes 0.2 s apart agree); then every value stays put.
$MC settled "http://$M_L/metrics" > "$WORK/l.prom" || fail "label /metrics did not settle"
kill -CONT "$PID_A"
kill -TERM "$LABEL"
wait "$LABEL" && rc=0 || rc=$?
[[ $rc -eq 143 ]] || { cat "$WORK/label.err" >&2; fail "label stopped by SIGTERM exited $rc, not 143"; }
promtool check metrics < "$WORK/l.prom" || fail "promtool check metrics (label)"
$PY - "$WORK/l.prom" "$EP_A" "$EP_B" <<'PYEOF' || fail "label metrics: $(grep -v '^#' "$WORK/l.prom")"
import re, sys
v = {}
for line in open(sys.argv[1]):
    if not line.startswith("#"):
        name, _, value = line.rstrip("\n").rpartition(" ")
        v[name] = float(value)
n = v["edistill_label_samples_total"]
assert 0 < n < 20000, n
assert v["edistill_label_shard_samples"] == 20000
assert abs(v["edistill_label_shard_progress_ratio"] - n / 20000) < 1e-12
assert v["edistill_label_written_bytes_total"] == n * 2 * 10 * 2  # 2 members, 10 classes, float16
assert v["edistill_trainer_ready"] == 1 and v["edistill_trainer_members"] == 2
assert v["edistill_trainer_degraded_batches_total"] == 0
assert v['edistill_label_info{store="%s",shard="0/1"}' % sys.argv[1].replace("l.prom", "store")] == 1
for m, ep in (("m1", sys.argv[2]), ("m2", sys.argv[3])):
    sent = v['edistill_trainer_teacher_requests_total{member="%s",replica="%s"}' % (m, ep)]
    answered = v['edistill_trainer_teacher_request_duration_seconds_count{member="%s"}' % m]
    # batch 1, inflight 1: the one batch in flight may have reached and left either member
    assert sent in (n, n + 1) and answered in (n, n + 1) and answered <= sent, (m, sent, answered, n)
for s in ("process_start_time_seconds", "edistill_process_peak_rss_bytes"):
    assert v[s] > 0, s
PYEOF
pass "label --metrics-listen: $(sed -n 's/^edistill_label_samples_total //p' "$WORK/l.prom") samples labeled, consistent series, /readyz 200, promtool ok"
echo "metrics acceptance checks passed"
