#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang (ASan+UBSan, coverage) and runs each for a
# set time. Usage: scripts/fuzz.sh [BUILD_DIR=build-fuzz] [SECONDS=60] [TARGET...]
#  - Each target starts from its committed seed corpus (tests/fuzz/corpus/<target>/) plus the inputs
#    it found in earlier runs (BUILD_DIR/fuzz-corpus/<target>/, where new inputs are written, so the
#    committed corpus stays small).
#  - A crash (or leak, timeout, OOM) leaves its input in BUILD_DIR/fuzz-artifacts/<target>/ and a copy
#    in tests/fuzz/regressions/<target>/, which ctest replays in every build: fix the bug, commit both.
#  - Prints one line per target (runs, exec/s, coverage, corpus) and exits 1 if any target failed.
#  - FUZZ_COVERAGE=1: afterwards, replays each corpus through a clang source-coverage build
#    (BUILD_DIR/cov) and prints the line coverage of the code each target parses (llvm-cov).
# Warnings are not errors in this build: the gcc builds enforce them, this one hunts crashes.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build-fuzz}
SECONDS_PER_TARGET=${2:-60}
shift $(( $# > 2 ? 2 : $# ))
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(fuzz_wire_decode fuzz_data_reader fuzz_model_file fuzz_target_store
                                       fuzz_arch_parse fuzz_onnx_read fuzz_metrics_render
                                       fuzz_augment_parse)
case $BUILD in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac

command -v clang >/dev/null || { echo "fuzz: clang not found (scripts/deps.sh installs clang libclang-rt-dev)" >&2; exit 1; }
CC=clang cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDISTILL_FUZZ=ON \
    -DEDISTILL_WERROR=OFF >/dev/null || { echo "fuzz: cmake configure failed" >&2; exit 1; }
cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" --target "${TARGETS[@]}" >"$BUILD/fuzz-build.log" 2>&1 ||
    { cat "$BUILD/fuzz-build.log" >&2; echo "fuzz: build failed" >&2; exit 1; }

export OPENBLAS_NUM_THREADS=1
# Leaks are bugs too; UBSan findings must stop the run (they do: -fno-sanitize-recover).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1:abort_on_error=0"
failed=()
summary=()
for t in "${TARGETS[@]}"; do
    seeds="$ROOT/tests/fuzz/corpus/$t"
    work="$BUILD/fuzz-corpus/$t"
    arts="$BUILD/fuzz-artifacts/$t"
    log="$BUILD/fuzz-$t.log"
    mkdir -p "$work" "$arts"
    echo "== $t: ${SECONDS_PER_TARGET}s (log: $log)"
    "$BUILD/tests/fuzz/$t" -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 -timeout=20 \
        -rss_limit_mb=2048 -artifact_prefix="$arts/" "$work" "$seeds" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -n1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
    line="$t: ${runs:-?} runs, ${eps:-?} exec/s, cov ${cov:-?} edges, ft ${ft:-?}, corpus ${corp:-?}"
    if [[ $rc -ne 0 ]]; then
        mkdir -p "$ROOT/tests/fuzz/regressions/$t"
        saved=()
        for a in "$arts"/crash-* "$arts"/leak-* "$arts"/timeout-* "$arts"/oom-*; do
            [[ -f "$a" ]] || continue
            cp "$a" "$ROOT/tests/fuzz/regressions/$t/" && saved+=("$(basename "$a")")
        done
        grep -E 'ERROR: |runtime error:|invariant violated|SUMMARY' "$log" | head -n 5 >&2
        line="$line -- FAILED (exit $rc); inputs saved to tests/fuzz/regressions/$t/: ${saved[*]:-none}"
        failed+=("$t")
    else
        line="$line -- ok"
    fi
    echo "  $line"
    summary+=("$line")
done
echo "== fuzz summary (${SECONDS_PER_TARGET}s per target)"
printf '  %s\n' "${summary[@]}"

if [[ "${FUZZ_COVERAGE:-0}" == 1 ]]; then
    declare -A SOURCES=([fuzz_wire_decode]="proto/ed_wire.c" [fuzz_data_reader]="common/data/ed_data.c"
                        [fuzz_model_file]="common/files/ed_safetensors.c common/files/ed_model_file.c"
                        [fuzz_target_store]="common/files/ed_ts_reader.c common/files/ed_target_store.c"
                        [fuzz_arch_parse]="common/nn/ed_layer.c"
                        [fuzz_metrics_render]="common/obs/ed_metrics.c"
                        [fuzz_augment_parse]="common/data/ed_augment.c")
    cov="$BUILD/cov"
    CC=clang cmake -S "$ROOT" -B "$cov" -DCMAKE_BUILD_TYPE=Debug -DEDISTILL_WERROR=OFF \
        -DCMAKE_C_FLAGS="-fprofile-instr-generate -fcoverage-mapping" \
        -DCMAKE_EXE_LINKER_FLAGS="-fprofile-instr-generate" >/dev/null &&
    cmake --build "$cov" -j "$(nproc 2>/dev/null || echo 2)" \
        --target "${TARGETS[@]/#/fuzz_replay_}" >"$cov/build.log" 2>&1 ||
        { cat "$cov/build.log" >&2; echo "fuzz: coverage build failed" >&2; exit 1; }
    echo "== line coverage of the seed + found corpus (llvm-cov)"
    for t in "${TARGETS[@]}"; do
        prof="$cov/$t.profraw"
        LLVM_PROFILE_FILE="$prof" "$cov/tests/fuzz/fuzz_replay_$t" "$ROOT/tests/fuzz/corpus/$t" \
            "$BUILD/fuzz-corpus/$t" >/dev/null 2>&1
        llvm-profdata merge -o "$cov/$t.profdata" "$prof" || continue
        srcs=()
        for f in ${SOURCES[$t]:-}; do srcs+=("$ROOT/$f"); done
        llvm-cov report "$cov/tests/fuzz/fuzz_replay_$t" -instr-profile="$cov/$t.profdata" "${srcs[@]}" |
            awk -v t="$t" '/\.c / { n = split($1, p, "/"); printf "  %s: %s lines %s of %s covered, branches %s\n", t, p[n], $(NF-3), $(NF-5), $NF }'
    done
fi
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz: FAILED: ${failed[*]} (reproduce: $BUILD/tests/fuzz/<target> <input>)" >&2
    exit 1
fi
echo "fuzz: no crashes"
