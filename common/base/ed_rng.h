/*
 * ed_rng: a small, fast, seedable pseudo-random generator (xoshiro256**, seeded through
 * splitmix64). The whole state is a plain struct so checkpoints can save and restore it exactly.
 */
#ifndef ED_RNG_H
#define ED_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} ed_rng;

/* Seeds the generator; the same seed always gives the same stream. */
void ed_rng_seed(ed_rng *rng, uint64_t seed);

uint64_t ed_rng_next(ed_rng *rng);

/* Uniform float in [0, 1). */
float ed_rng_uniform(ed_rng *rng);

/* Uniform integer in [0, n); n > 0. */
uint64_t ed_rng_below(ed_rng *rng, uint64_t n);

/* Standard normal (Box-Muller). */
float ed_rng_normal(ed_rng *rng);

/* Draws an inverted-dropout mask (n): 0 with probability p, else 1 / (1 - p); p in [0, 1). Each
 * 64-bit draw gives four 16-bit uniforms, so p is resolved to 1/65536 at a quarter of the generator
 * calls. Shared by every dropout (ed_mlp, ed_net) so one rng state reproduces the same masks. */
void ed_rng_dropout_mask(float *restrict mask, size_t n, float p, ed_rng *rng);

#endif
