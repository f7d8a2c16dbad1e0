#!/usr/bin/env bash
# Every command has --help; bad flags and bad files exit non-zero with a one-line reason naming
# the flag or file at fault, and never crash.
source "$(dirname "$0")/lib.sh"

# (Output captured first: `cmd | grep -q` under pipefail fails when grep exits before cmd writes.)
for cmd in "$TW" "$ST"; do
  out=$("$cmd" --help) || fail "$cmd --help exited non-zero"
  grep -q "usage:" <<<"$out" || fail "$cmd --help"
done
for sub in "$TW train" "$TW serve" "$ST eval" "$ST distill"; do
  out=$($sub --help) || fail "$sub --help exited non-zero"
  grep -q -- "--" <<<"$out" || fail "$sub --help prints no options"
  pass "$sub --help"
done

expect_fail "unknown command" "unknown command 'fly'" "$TW" fly
expect_fail "unknown flag" "unknown option '--bogus'" "$TW" train --bogus 1 --out "$WORK/x"
expect_fail "bad integer" "--epochs: 'many' is not an integer" "$TW" train --epochs many --out "$WORK/x"
expect_fail "missing value" "--lr needs a value" "$TW" train --out "$WORK/x" --lr
expect_fail "missing required" "missing required option --out" "$TW" train
expect_fail "bad arch" "--arch: .*entry 2" "$TW" train --arch 784,,10 --out "$WORK/x"
expect_fail "arch vs data" "784 values per sample but --arch 100,10 starts with 100" \
  "$TW" train --arch 100,10 --out "$WORK/x"
expect_fail "bad layer token" 'token 3 "maxpol2"' \
  "$TW" train --arch "1x28x28:conv8k3p1,relu,maxpol2,flatten,dense10" --out "$WORK/x"
expect_fail "layer too big for its input" 'token 2 "maxpool9" on input 8x3x3' \
  "$TW" train --arch "1x5x5:conv8k3,maxpool9,flatten,dense10" --out "$WORK/x"
expect_fail "dropout flags on a layer stack" "dropout-hidden apply to MLP archs only" \
  "$TW" train --arch "1x28x28:conv8k3p1,relu,flatten,dense10" --dropout-hidden 0.3 --out "$WORK/x"
expect_fail "missing data file" "nope.gz" "$TW" train --train-images "$WORK/nope.gz" --out "$WORK/x"

# Truncated IDX file.
head -c 5000 <(gzip -dc "$TRAIN_X") > "$WORK/trunc.idx"
expect_fail "truncated IDX" "trunc.idx: truncated" "$TW" train --train-images "$WORK/trunc.idx" \
  --train-labels "$TRAIN_Y" --out "$WORK/x"
# Wrong magic.
printf 'hello world, not data' > "$WORK/junk.bin"
expect_fail "wrong magic" "junk.bin: not an IDX" "$TW" train --train-images "$WORK/junk.bin" --out "$WORK/x"

# Bad model files for eval.
printf 'not a model' > "$WORK/bad.safetensors"
expect_fail "garbage model" "bad.safetensors" "$ST" eval --models "$WORK/bad.safetensors"
expect_fail "missing model" "missing.safetensors" "$ST" eval --models "$WORK/missing.safetensors"
"$TW" train --train-end 256 --arch 784,16,10 --epochs 1 --out "$WORK/tiny.safetensors" --quiet >/dev/null
head -c 2000 "$WORK/tiny.safetensors" > "$WORK/cut.safetensors"
expect_fail "truncated model" "cut.safetensors: truncated" "$ST" eval --models "$WORK/cut.safetensors"
cp "$WORK/tiny.safetensors" "$WORK/flip.safetensors"
size=$(stat -c %s "$WORK/flip.safetensors")
printf '\x55' | dd of="$WORK/flip.safetensors" bs=1 seek=$((size - 7)) conv=notrunc status=none
expect_fail "corrupted weights" "fingerprint mismatch" "$ST" eval --models "$WORK/flip.safetensors"
expect_fail "eval without labels" "labels" "$ST" eval --models "$WORK/tiny.safetensors" --labels "$WORK/missing-labels.gz"
expect_fail "distill without teachers" "give --teachers LIST .* or --targets STORE" "$ST" distill --out "$WORK/s"
expect_fail "distill bad teacher file" "nope.safetensors" "$ST" distill --teachers "$WORK/nope.safetensors" --out "$WORK/s"
echo "all CLI error checks passed"
