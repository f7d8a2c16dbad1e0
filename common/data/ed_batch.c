/* ed_batch: element types and raw batches (see ed_batch.h). */
#include "ed_batch.h"

size_t ed_dtype_size(ed_dtype dtype)
{
    switch (dtype) {
    case ED_DTYPE_U8:
        return 1;
    case ED_DTYPE_F32:
        return 4;
    default:
        return 0;
    }
}

const char *ed_dtype_name(ed_dtype dtype)
{
    switch (dtype) {
    case ED_DTYPE_U8:
        return "u8";
    case ED_DTYPE_F32:
        return "f32";
    default:
        return "unknown";
    }
}

void ed_batch_to_float(const ed_batch *b, float scale, float offset, float *out)
{
    size_t total = (size_t)b->n * (size_t)b->dim;
    float *restrict o = out;
    if (b->dtype == ED_DTYPE_U8) {
        const uint8_t *restrict x = b->x;
        for (size_t i = 0; i < total; i++)
            o[i] = (float)x[i] * scale + offset;
    } else {
        const float *restrict x = b->x;
        for (size_t i = 0; i < total; i++)
            o[i] = x[i] * scale + offset;
    }
}
