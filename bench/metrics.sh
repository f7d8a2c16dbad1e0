#!/usr/bin/env bash
# bench/metrics.sh: the metrics_overhead row of `make bench` (issue 16), sourced by bench/run.sh
# after its members and data exist (uses $ST, $PY, $SRC, $WORK, $RAW, $REPEATS, $STEPS,
# $TRAINER_BLAS, start_workers/stop_workers, distill, log). `BENCH_ONLY=metrics_overhead make bench`
# runs this row alone.
#
# The same K=3 distillation over ZeroMQ with --metrics-listen on the 3 workers and the trainer, all
# scraped every second (one Python scraper, the stand-in for Prometheus), vs without. Two sets of
# workers are up (one with metrics, one without) and the runs alternate in ABBA order
# (off on on off off on ...), so a drift of the machine's speed during the row cancels out;
# BENCH_METRICS_PAIRS pairs (default 2 * BENCH_REPEATS), medians of each side in bench/report.py.
# The scraper starts once, before the first run (its interpreter start-up is no part of either
# side), and is stopped (SIGSTOP) during the "off" runs, so "off" has no scraping at all.
PAIRS=${BENCH_METRICS_PAIRS:-$((2 * REPEATS))}
log "metrics_overhead (K=3 over ZeroMQ, $PAIRS pairs of $STEPS-step runs, ABBA: metrics on vs off)"
start_workers 3; EP_OFF=$ENDPOINTS; OFF_WPIDS=("${WPIDS[@]}")
start_workers 3 --metrics-listen 127.0.0.1:0; EP_ON=$ENDPOINTS
MTARGETS=()
for ((k = 1; k <= 3; k++)); do MTARGETS+=("http://$(sed -n 's/^metrics=//p' "$WORK/w$k.ready")/metrics"); done
TPORT=$("$PY" "$SRC/tests/e2e/serve_client.py" free-port)
MTARGETS+=("http://127.0.0.1:$TPORT/metrics")
"$PY" "$SRC/tests/e2e/metrics_client.py" scrape-loop --interval 1 "${MTARGETS[@]}" \
    >"$WORK/scrape.log" 2>&1 &
SCRAPER=$!
PIDS+=("$SCRAPER")
for _ in $(seq 1 100); do grep -q started "$WORK/scrape.log" && break; sleep 0.1; done # start-up done
kill -STOP "$SCRAPER" 2>/dev/null || true
for ((r = 0; r < 2 * PAIRS; r++)); do
  if (((r + r / 2) % 2 == 0)); then # r = 0 1 2 3 4 ...: off on on off off on ...
    distill "metrics_off" "$EP_OFF" "$TRAINER_BLAS" --steps "$STEPS"
  else
    kill -CONT "$SCRAPER" 2>/dev/null || true
    distill "metrics_on" "$EP_ON" "$TRAINER_BLAS" --steps "$STEPS" --metrics-listen "127.0.0.1:$TPORT"
    kill -STOP "$SCRAPER" 2>/dev/null || true
  fi
done
kill -TERM "$SCRAPER" 2>/dev/null || true; kill -CONT "$SCRAPER" 2>/dev/null || true
wait "$SCRAPER" 2>/dev/null || true
stop_workers
WPIDS=("${OFF_WPIDS[@]}"); stop_workers
