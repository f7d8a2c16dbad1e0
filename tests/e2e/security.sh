#!/usr/bin/env bash
# Acceptance (security issue), real processes on loopback only:
#  - keygen writes PREFIX.key mode 0600 and PREFIX.pub mode 0644, refuses to overwrite without
#    --force; a secret key file with mode 0644 is refused by both programs with a clear error;
#  - an authorized trainer distills over CURVE and ends with the same student (fingerprint) and the
#    same soft targets as a plaintext run with the same seed;
#  - a client with an unknown key and a plaintext client get no logits within 2 s (pyzmq), while an
#    authorized client and a distillation running at the same time keep being served; the worker
#    logs the refused key; trainers with the wrong keys or none fail with a hint about keys;
#  - SIGHUP makes a worker re-read --curve-clients: a revoked trainer key is refused from its next
#    connection, a new key admitted, a broken list reported and ignored, and a trainer connected
#    across the reload keeps being served (issue 10, defect 10);
#  - a plaintext worker bound to 0.0.0.0 logs a warning; one on 127.0.0.1 or with CURVE does not.
source "$(dirname "$0")/lib.sh"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"
command -v protoc >/dev/null || fail "protoc not found (scripts/deps.sh installs protobuf-compiler)"
$PY -c 'import zmq, sys; sys.exit(0 if zmq.has("curve") else 1)' || fail "pyzmq without CURVE"
protoc --python_out="$WORK" -I"$SRC/proto" "$SRC/proto/edistill.proto" || fail "protoc edistill.proto"

# --- keys -------------------------------------------------------------------------------------
K="$WORK/keys"; mkdir -p "$K/clients"
for name in teacher trainer intruder; do
  "$TW" keygen --out "$K/$name" > /dev/null || fail "keygen $name"
done
[[ $(stat -c %a "$K/teacher.key") == 600 && $(stat -c %a "$K/teacher.pub") == 644 ]] ||
  fail "keygen modes: $(stat -c '%n %a' "$K"/teacher.*)"
pass "keygen: teacher.key mode 600, teacher.pub mode 644"
expect_fail "keygen over an existing key" "exists: refusing to overwrite.*--force" "$TW" keygen --out "$K/teacher"
cp "$K/intruder.pub" "$WORK/intruder.pub.before"
"$TW" keygen --out "$K/intruder" --force > /dev/null || fail "keygen --force"
[[ $(stat -c %a "$K/intruder.key") == 600 ]] || fail "keygen --force: mode $(stat -c %a "$K/intruder.key")"
cmp -s "$WORK/intruder.pub.before" "$K/intruder.pub" && fail "keygen --force did not make a new key"
pass "keygen --force replaces a pair (new key, mode still 600)"
cp "$K/trainer.pub" "$K/clients/"
TEACHER_PUB=$(sed -n 's/.*public-key = "\(.*\)"/\1/p' "$K/teacher.pub")
INTRUDER_PUB=$(sed -n 's/.*public-key = "\(.*\)"/\1/p' "$K/intruder.pub")
[[ ${#TEACHER_PUB} == 40 && ${#INTRUDER_PUB} == 40 ]] || fail "public keys are not 40 Z85 characters"

# Loose permissions are refused by both programs.
cp -p "$K/teacher.key" "$WORK/loose.key"; chmod 644 "$WORK/loose.key"
"$TW" train --train-end 3000 --arch 784,64,10 --epochs 1 --seed 1 --member m1 --blas-threads 1 \
    --out "$WORK/m1.safetensors" --quiet
"$TW" train --train-end 3000 --arch 784,64,10 --epochs 1 --seed 2 --member m2 --blas-threads 1 \
    --out "$WORK/m2.safetensors" --quiet
expect_fail "serve with a 0644 secret key" "loose.key has mode 0644.*chmod 600" \
  "$TW" serve --model "$WORK/m1.safetensors" --bind "tcp://127.0.0.1:*" \
  --curve-secret "$WORK/loose.key" --curve-clients "$K/clients"
expect_fail "distill with a 0644 secret key" "loose.key has mode 0644.*chmod 600" \
  "$ST" distill --teachers "$WORK/m1.safetensors" --out "$WORK/x.safetensors" \
  --curve-secret "$WORK/loose.key" --curve-server-keys "$K/teacher.pub"
expect_fail "serve given a .key as allow-list" "SECRET key" \
  "$TW" serve --model "$WORK/m1.safetensors" --bind "tcp://127.0.0.1:*" \
  --curve-secret "$K/teacher.key" --curve-clients "$K/trainer.key"
expect_fail "serve with an empty allow-list directory" "no \*\.pub file" \
  "$TW" serve --model "$WORK/m1.safetensors" --bind "tcp://127.0.0.1:*" \
  --curve-secret "$K/teacher.key" --curve-clients "$WORK"
expect_fail "serve with keys but no allow-list" "needs --curve-clients" \
  "$TW" serve --model "$WORK/m1.safetensors" --bind "tcp://127.0.0.1:*" --curve-secret "$K/teacher.key"
expect_fail "distill given a directory of server keys" "is a directory" \
  "$ST" distill --teachers "$WORK/m1.safetensors" --out "$WORK/x.safetensors" \
  --curve-secret "$K/trainer.key" --curve-server-keys "$K/clients"

# --- workers ----------------------------------------------------------------------------------
CURVE_ARGS=(--curve-secret "$K/teacher.key" --curve-clients "$K/clients")
start_worker "$WORK/m1.safetensors" "$WORK/a.ready" --blas-threads 1 --max-batch 64 "${CURVE_ARGS[@]}"; EP_A=$WORKER_EP
start_worker "$WORK/m2.safetensors" "$WORK/b.ready" --blas-threads 1 --max-batch 64 "${CURVE_ARGS[@]}"; EP_B=$WORKER_EP
start_worker "$WORK/m1.safetensors" "$WORK/pa.ready" --blas-threads 1 --max-batch 64; EP_PA=$WORKER_EP
start_worker "$WORK/m2.safetensors" "$WORK/pb.ready" --blas-threads 1 --max-batch 64; EP_PB=$WORKER_EP
echo "CURVE workers: $EP_A $EP_B; plaintext workers: $EP_PA $EP_PB"
grep -qF "CURVE on: server public key $TEACHER_PUB" "$WORK/workers.log" || { cat "$WORK/workers.log" >&2; fail "worker did not report CURVE on"; }
grep -q "PLAINTEXT" "$WORK/workers.log" && { cat "$WORK/workers.log" >&2; fail "warning for a loopback or CURVE worker"; }
pass "no plaintext warning for workers on 127.0.0.1 or with CURVE"

distill() { # name teachers [extra args]
  local name=$1 teachers=$2; shift 2
  "$ST" distill --teachers "$teachers" --labeled-end 500 --unlabeled "$TRAIN_X" \
      --unlabeled-start 500 --unlabeled-end 3000 --arch 784,32,10 --steps 30 --batch-size 64 \
      --seed 5 --blas-threads 1 --inflight 3 --dump-targets "$WORK/$name.q" \
      --out "$WORK/$name.safetensors" --metrics "$WORK/$name.jsonl" --quiet "$@" \
      > "$WORK/$name.out" 2> "$WORK/$name.err" || { cat "$WORK/$name.err" >&2; fail "distill $name"; }
  sed -n 's/.*\(fnv1a64:[0-9a-f]*\).*/\1/p' "$WORK/$name.out"
}
TRAINER_KEYS=(--curve-secret "$K/trainer.key" --curve-server-keys "$K/teacher.pub")
FP_PLAIN=$(distill plain "$EP_PA,$EP_PB")
FP_CURVE=$(distill curve "$EP_A,$EP_B" "${TRAINER_KEYS[@]}")
[[ -n "$FP_PLAIN" && "$FP_PLAIN" == "$FP_CURVE" ]] || fail "student over CURVE $FP_CURVE differs from plaintext $FP_PLAIN"
cmp "$WORK/plain.q" "$WORK/curve.q" || fail "soft targets over CURVE differ from plaintext"
grep -q "CURVE on: this trainer's public key" "$WORK/curve.err" || fail "trainer did not report CURVE on"
pass "authorized trainer over CURVE: same student ($FP_CURVE) and soft targets as plaintext"

# The same keys given as env variables, and as a mapping file (one line per --teachers entry).
printf '# teacher entry, its public key (Z85 or .pub path)\n%s teacher.pub\n%s %s\n' "$EP_A" "$EP_B" "$TEACHER_PUB" > "$K/servers.map"
FP_MAP=$(EDISTILL_CURVE_CLIENT_SECRET="$K/trainer.key" distill map "$EP_A,$EP_B" --curve-server-keys "$K/servers.map")
[[ "$FP_MAP" == "$FP_PLAIN" ]] || fail "mapping-file run: student $FP_MAP"
pass "trainer keys from EDISTILL_CURVE_CLIENT_SECRET and a per-teacher mapping file"

# --- refused clients while an authorized trainer is served ------------------------------------
"$ST" distill --teachers "$EP_A,$EP_B" --labeled-end 500 --unlabeled "$TRAIN_X" --unlabeled-start 500 \
    --unlabeled-end 3000 --arch 784,32,10 --epochs 1000 --batch-size 64 --seed 5 --blas-threads 1 \
    --out "$WORK/long.safetensors" --metrics "$WORK/long.jsonl" --quiet "${TRAINER_KEYS[@]}" \
    > "$WORK/long.out" 2> "$WORK/long.err" &
LONG=$!
E2E_PIDS+=("$LONG")
epochs() { grep -c '"epoch"' "$WORK/long.jsonl" 2>/dev/null || true; }
for _ in $(seq 1 600); do [[ $(epochs) -ge 1 ]] && break; kill -0 "$LONG" 2>/dev/null || break; sleep 0.05; done
[[ $(epochs) -ge 1 ]] || { cat "$WORK/long.err" >&2; fail "the concurrent distillation did not finish an epoch"; }
E_BEFORE=$(epochs)
timeout 120 $PY -B "$SRC/tests/e2e/security_client.py" --proto-dir "$WORK" --endpoint "$EP_A" \
    --server-pub "$K/teacher.pub" --good-key "$K/trainer.key" --bad-key "$K/intruder.key" --seconds 2 ||
  { cat "$WORK/workers.log" >&2; fail "refused clients check"; }
E_AFTER=$(epochs)
kill -0 "$LONG" 2>/dev/null || { cat "$WORK/long.err" >&2; fail "the distillation running meanwhile ended early"; }
kill -TERM "$LONG"; rc=0; wait "$LONG" || rc=$?
[[ $rc == 143 ]] || { cat "$WORK/long.err" >&2; fail "concurrent distill exited $rc on SIGTERM, expected 143"; }
(( E_AFTER > E_BEFORE )) || fail "the concurrent distillation made no progress meanwhile ($E_BEFORE -> $E_AFTER epochs)"
pass "a distillation over CURVE progressed meanwhile (epochs $E_BEFORE -> $E_AFTER), stopped with SIGTERM"
grep -qF "refused client $INTRUDER_PUB from 127.0.0.1" "$WORK/workers.log" ||
  { cat "$WORK/workers.log" >&2; fail "worker did not log the refused key $INTRUDER_PUB"; }
pass "worker logged: $(grep -m1 -F "refused client $INTRUDER_PUB" "$WORK/workers.log" | sed 's/.*refused/refused/')"

# Trainers without the right keys never get an answer, and say why.
expect_fail "plaintext trainer against a CURVE worker" "did not report ready.*(CURVE|handshake)" \
  "$ST" distill --teachers "$EP_A" --out "$WORK/x.safetensors" --steps 1 --arch 784,32,10 --connect-timeout 2
expect_fail "trainer with an unknown key" "did not report ready.*(CURVE|key)" \
  "$ST" distill --teachers "$EP_A" --out "$WORK/x.safetensors" --steps 1 --arch 784,32,10 --connect-timeout 2 \
  --curve-secret "$K/intruder.key" --curve-server-keys "$K/teacher.pub"
expect_fail "trainer with the wrong server key" "did not report ready.*(CURVE|key)" \
  "$ST" distill --teachers "$EP_A" --out "$WORK/x.safetensors" --steps 1 --arch 784,32,10 --connect-timeout 2 \
  --curve-secret "$K/trainer.key" --curve-server-keys "$K/intruder.pub"

# The CURVE workers still answer the authorized trainer.
FP_AGAIN=$(distill again "$EP_A,$EP_B" "${TRAINER_KEYS[@]}")
[[ "$FP_AGAIN" == "$FP_PLAIN" ]] || fail "after the refused clients: student $FP_AGAIN"
pass "workers still serve the authorized trainer after refusing others"

# --- SIGHUP re-reads --curve-clients without dropping the connections already made -------------
mkdir -p "$K/hup"; cp "$K/trainer.pub" "$K/hup/"
start_worker "$WORK/m1.safetensors" "$WORK/hup.ready" --blas-threads 1 --curve-secret "$K/teacher.key" \
    --curve-clients "$K/hup"; EP_H=$WORKER_EP; PID_H=$WORKER_PID
"$ST" distill --teachers "$EP_H" --labeled-end 500 --unlabeled "$TRAIN_X" --unlabeled-start 500 \
    --unlabeled-end 3000 --arch 784,32,10 --epochs 1000 --batch-size 64 --seed 5 --blas-threads 1 \
    --out "$WORK/hup.safetensors" --metrics "$WORK/hup.jsonl" --quiet "${TRAINER_KEYS[@]}" \
    > "$WORK/hup.out" 2> "$WORK/hup.err" &
LONG2=$!
E2E_PIDS+=("$LONG2")
hup_epochs() { grep -c '"epoch"' "$WORK/hup.jsonl" 2>/dev/null || true; }
for _ in $(seq 1 600); do [[ $(hup_epochs) -ge 1 ]] && break; kill -0 "$LONG2" 2>/dev/null || break; sleep 0.05; done
[[ $(hup_epochs) -ge 1 ]] || { cat "$WORK/hup.err" >&2; fail "the distillation before SIGHUP did not finish an epoch"; }
INTRUDER_KEYS=(--curve-secret "$K/intruder.key" --curve-server-keys "$K/teacher.pub")
SHORT=(--labeled-end 500 --arch 784,32,10 --steps 3 --batch-size 64 --blas-threads 1 --connect-timeout 3)
expect_fail "before SIGHUP: a key not in the list" "did not report ready.*(CURVE|key)" \
  "$ST" distill --teachers "$EP_H" --out "$WORK/x.safetensors" "${SHORT[@]}" "${INTRUDER_KEYS[@]}"
# Revoke the trainer's key, admit the other one; a broken list first: refused, the old one stays.
printf 'not a key\n' > "$K/hup/broken.pub"
kill -HUP "$PID_H"
for _ in $(seq 1 100); do grep -q "SIGHUP: keeping the current allow-list" "$WORK/workers.log" && break; sleep 0.05; done
grep -q "SIGHUP: keeping the current allow-list.*broken.pub" "$WORK/workers.log" ||
  { cat "$WORK/workers.log" >&2; fail "a broken allow-list on SIGHUP was not reported"; }
rm "$K/hup/broken.pub" "$K/hup/trainer.pub"; cp "$K/intruder.pub" "$K/hup/"
n_reload=$(grep -c "allow-list reloaded" "$WORK/workers.log" || true)
kill -HUP "$PID_H"
for _ in $(seq 1 100); do [[ $(grep -c "allow-list reloaded" "$WORK/workers.log") -gt $n_reload ]] && break; sleep 0.05; done
grep -q "allow-list reloaded: 1 authorized client key(s) from $K/hup" "$WORK/workers.log" ||
  { cat "$WORK/workers.log" >&2; fail "SIGHUP did not reload the allow-list"; }
E_HUP=$(hup_epochs)
"$ST" distill --teachers "$EP_H" --out "$WORK/x.safetensors" "${SHORT[@]}" "${INTRUDER_KEYS[@]}" \
    >/dev/null 2>"$WORK/newkey.err" || { cat "$WORK/newkey.err" >&2; fail "after SIGHUP: the added key is not admitted"; }
expect_fail "after SIGHUP: the revoked key, on a new connection" "did not report ready.*(CURVE|key)" \
  "$ST" distill --teachers "$EP_H" --out "$WORK/x.safetensors" "${SHORT[@]}" "${TRAINER_KEYS[@]}"
for _ in $(seq 1 600); do [[ $(hup_epochs) -gt $E_HUP ]] && break; sleep 0.05; done
kill -0 "$LONG2" 2>/dev/null || { cat "$WORK/hup.err" >&2; fail "the connected trainer ended after SIGHUP"; }
(( $(hup_epochs) > E_HUP )) || fail "the connected trainer made no progress after SIGHUP"
grep -q "is down" "$WORK/hup.err" && { cat "$WORK/hup.err" >&2; fail "SIGHUP dropped the connected trainer"; }
kill -TERM "$LONG2"; rc=0; wait "$LONG2" || rc=$?
[[ $rc == 143 ]] || { cat "$WORK/hup.err" >&2; fail "the trainer connected across SIGHUP exited $rc"; }
pass "SIGHUP: new key admitted, revoked key refused on its next connection, the connected trainer kept going (epochs $E_HUP -> more)"

# --- plaintext on a non-loopback address: warned -------------------------------------------------
start_worker "$WORK/m1.safetensors" "$WORK/w.ready" --bind "tcp://0.0.0.0:*" --blas-threads 1
grep -qF "WARNING: serving in PLAINTEXT on tcp://0.0.0.0:*" "$WORK/workers.log" ||
  { cat "$WORK/workers.log" >&2; fail "no warning for a plaintext worker on 0.0.0.0"; }
pass "plaintext worker on tcp://0.0.0.0:* warns: $(grep -m1 -o 'WARNING: serving in PLAINTEXT[^,]*' "$WORK/workers.log")"
n_warn=$(grep -c "PLAINTEXT" "$WORK/workers.log")
start_worker "$WORK/m1.safetensors" "$WORK/w2.ready" --bind "tcp://0.0.0.0:*" --blas-threads 1 "${CURVE_ARGS[@]}"
[[ $(grep -c "PLAINTEXT" "$WORK/workers.log") == "$n_warn" ]] || fail "warning for a CURVE worker on 0.0.0.0"
pass "CURVE worker on tcp://0.0.0.0:* does not warn"

for p in "${E2E_PIDS[@]}"; do
  [[ $p == "$LONG" || $p == "$LONG2" ]] && continue
  kill -TERM "$p"
done
for p in "${E2E_PIDS[@]}"; do
  [[ $p == "$LONG" || $p == "$LONG2" ]] && continue
  wait "$p" || fail "a worker exited with $? on SIGTERM"
done
E2E_PIDS=()
grep -qE "CURVE: [0-9]+ client handshake\(s\) admitted, [1-9][0-9]* refused" "$WORK/workers.log" ||
  { cat "$WORK/workers.log" >&2; fail "no worker counted refused handshakes at exit"; }
pass "every worker exits 0 on SIGTERM; $(grep -m1 -oE "CURVE: [0-9]+ client handshake\(s\) admitted, [1-9][0-9]* refused" "$WORK/workers.log")"
echo "security checks passed"
