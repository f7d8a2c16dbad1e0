/*
 * ed_half: float16 conversion (see ed_half.h). The float -> half direction follows the classic
 * branch-per-range construction: overflow to infinity, subnormals through one float addition of a
 * magic constant (whose rounding, in the default round-to-nearest-even mode, is the rounding we
 * want), normals by integer rounding of the mantissa with the tie broken towards even.
 */
#include "ed_half.h"

#include <math.h>
#include <string.h>

static uint32_t s_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float s_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t ed_half_from_float(float f)
{
    const uint32_t f32_inf = 255u << 23;
    const uint32_t f16_overflow = (127u + 16u) << 23; /* 65536.0f: the first value past max */
    const uint32_t denorm_magic = ((127u - 15u) + (23u - 10u) + 1u) << 23; /* 0.5f */
    uint32_t x = s_bits(f);
    const uint32_t sign = x & 0x80000000u;
    x ^= sign;
    uint16_t o;
    if (x >= f16_overflow) {
        o = x > f32_inf ? 0x7e00 : 0x7c00; /* NaN stays NaN; everything else overflows to inf */
    } else if (x < (113u << 23)) {
        /* below 2^-14: a subnormal half (or zero); the addition rounds to 2^-24 steps */
        o = (uint16_t)(s_bits(s_float(x) + s_float(denorm_magic)) - denorm_magic);
    } else {
        const uint32_t mant_odd = (x >> 13) & 1u;
        x += ((uint32_t)(15 - 127) << 23) + 0xfffu; /* rebias the exponent, round half down... */
        x += mant_odd;                              /* ...and up when the kept bit is odd */
        o = (uint16_t)(x >> 13);                    /* a carry into the exponent gives inf */
    }
    return (uint16_t)(o | (sign >> 16));
}

float ed_half_to_float(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0) {
        float v = ldexpf((float)mant, -24); /* zero or subnormal, exact */
        return sign ? -v : v;
    }
    if (exp == 31)
        return s_float(sign | 0x7f800000u | (mant << 13));
    return s_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

void ed_half_from_floats(const float *in, uint16_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = ed_half_from_float(in[i]);
}

void ed_half_to_floats(const uint16_t *in, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = ed_half_to_float(in[i]);
}
