/*
 * fuzz.h: the entry point every tests/fuzz/fuzz_*.c target defines, and small helpers they share.
 *
 * A target is built twice: linked with libFuzzer (-fsanitize=fuzzer, clang, EDISTILL_FUZZ=ON) it is
 * a fuzzer; linked with tests/fuzz/replay.c (any compiler) it is a plain program that feeds every
 * file of the seed corpus and of the regressions directory to the same LLVMFuzzerTestOneInput once,
 * so `ctest` in the gcc and ASan builds keeps every input that ever found a bug from coming back.
 */
#ifndef ED_FUZZ_H
#define ED_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* libFuzzer's contract: called once per input; must not keep the pointer; returns 0. A bug shows up
 * as a crash, a sanitizer report or (in these targets) an explicit abort() on a violated invariant.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
