/*
 * ed_half: IEEE 754 binary16 (float16) <-> float32 conversion, bit-exact with numpy's astype:
 * float32 -> float16 rounds to nearest, ties to even; values from 65520 up become infinity;
 * subnormal halves are produced and read back exactly; NaN stays NaN (quiet, payload not kept).
 */
#ifndef ED_HALF_H
#define ED_HALF_H

#include <stddef.h>
#include <stdint.h>

/* The float16 bits nearest to f (ties to even). */
uint16_t ed_half_from_float(float f);

/* The float32 value of float16 bits h (exact: every half is a float). */
float ed_half_to_float(uint16_t h);

/* out[i] = ed_half_from_float(in[i]) / ed_half_to_float(in[i]) for n elements. */
void ed_half_from_floats(const float *in, uint16_t *out, size_t n);
void ed_half_to_floats(const uint16_t *in, float *out, size_t n);

#endif
