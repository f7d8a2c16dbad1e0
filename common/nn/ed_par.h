/*
 * ed_par: a tiny fork-join helper for the element-wise loops of a training step (optimizer
 * updates), so they use the cores the process gives OpenBLAS instead of one core while the BLAS
 * threads idle.
 *
 * The helper threads are created on first use and live as long as the process; they sleep on a
 * condition variable between calls. The thread count follows ed_blas_threads() (the process's
 * OpenBLAS setting), capped at ED_PAR_MAX_THREADS. Work is split into contiguous, 64-byte aligned
 * chunks of [0, n): an element-wise loop gives bit-identical results however it is split.
 *
 *     static void s_body(size_t lo, size_t hi, void *ctx) { ... loop over [lo, hi) ... }
 *     ed_par_for(n, 1 << 16, s_body, &ctx);
 */
#ifndef ED_PAR_H
#define ED_PAR_H

#include <stddef.h>

#define ED_PAR_MAX_THREADS 8

typedef void (*ed_par_fn)(size_t lo, size_t hi, void *ctx);

/* Calls fn over disjoint ranges covering [0, n), in parallel when n >= 2 * min_chunk and more than
 * one thread is configured; otherwise (or if the helpers cannot be started, or another thread is
 * inside ed_par_for) as one call fn(0, n, ctx) on the caller's thread. Returns when every range is
 * done. fn must only touch elements of its own range. */
void ed_par_for(size_t n, size_t min_chunk, ed_par_fn fn, void *ctx);
/* The same on at most `threads` threads instead of ed_blas_threads()'s count. */
void ed_par_for_threads(size_t n, size_t min_chunk, int threads, ed_par_fn fn, void *ctx);

#endif
