/* ed_rng: xoshiro256** (Blackman & Vigna), seeded with splitmix64. */
#include "ed_rng.h"

#include <math.h>

__extension__ typedef unsigned __int128 s_u128;

static uint64_t s_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t s_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void ed_rng_seed(ed_rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = s_splitmix64(&x);
}

uint64_t ed_rng_next(ed_rng *rng)
{
    uint64_t *s = rng->s;
    const uint64_t result = s_rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s_rotl(s[3], 45);
    return result;
}

float ed_rng_uniform(ed_rng *rng)
{
    return (float)(ed_rng_next(rng) >> 40) * (1.0f / 16777216.0f);
}

uint64_t ed_rng_below(ed_rng *rng, uint64_t n)
{
    /* Lemire's multiply-shift with rejection: unbiased. */
    uint64_t x = ed_rng_next(rng);
    s_u128 m = (s_u128)x * n;
    uint64_t low = (uint64_t)m;
    if (low < n) {
        uint64_t threshold = -n % n;
        while (low < threshold) {
            x = ed_rng_next(rng);
            m = (s_u128)x * n;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

float ed_rng_normal(ed_rng *rng)
{
    double u1 = ((double)(ed_rng_next(rng) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (double)(ed_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void ed_rng_dropout_mask(float *restrict mask, size_t n, float p, ed_rng *rng)
{
    const float keep_scale = 1.0f / (1.0f - p);
    const uint32_t drop_below = (uint32_t)(p * 65536.0f + 0.5f);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint64_t r = ed_rng_next(rng);
        for (int k = 0; k < 4; k++, r >>= 16)
            mask[i + (size_t)k] = (uint32_t)(r & 0xffff) < drop_below ? 0.0f : keep_scale;
    }
    if (i < n) {
        uint64_t r = ed_rng_next(rng);
        for (; i < n; i++, r >>= 16)
            mask[i] = (uint32_t)(r & 0xffff) < drop_below ? 0.0f : keep_scale;
    }
}
