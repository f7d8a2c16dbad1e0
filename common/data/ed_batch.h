/*
 * ed_batch: element types of raw samples and a batch of them, as the readers deliver them and as a
 * LogitRequest carries them (uint8 or float32, unscaled), and the scaling into a model's input.
 */
#ifndef ED_BATCH_H
#define ED_BATCH_H

#include <stddef.h>
#include <stdint.h>

typedef enum { ED_DTYPE_U8 = 0, ED_DTYPE_F32 = 1, ED_DTYPE_COUNT } ed_dtype;

/* Bytes per element of a dtype. */
size_t ed_dtype_size(ed_dtype dtype);
const char *ed_dtype_name(ed_dtype dtype);

/* A batch of raw samples. x: (n, dim) of dtype; y: (n) labels, -1 = unlabeled (may be NULL where
 * labels are not needed); idx: (n) each sample's number within its dataset's range (0 = the
 * range's first sample), or NULL when unknown (the soft-target store looks targets up by it). From
 * ed_loader_next it points into the loader's memory, valid until the next call. */
typedef struct {
    int n;
    int dim;
    ed_dtype dtype;
    const void *x;
    const int32_t *y;
    const int64_t *idx;
} ed_batch;

/* out[i] = x[i] * scale + offset for a batch of either dtype. out: (n, dim). */
void ed_batch_to_float(const ed_batch *b, float scale, float offset, float *out);

#endif
