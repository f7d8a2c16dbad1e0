/*
 * ed_view: a derived view of raw samples, computed sample by sample: what a student sees when it
 * is given less than the teachers (privileged information, Lopez-Paz et al. 2016). The one view
 * today is `avgpool:K`: square single-channel images (dim = S*S) are averaged over K x K blocks
 * into (S/K) x (S/K) float32 values on the raw scale (a 28x28 uint8 image and avgpool:4 give 7x7
 * floats in [0, 255]; the mean of K*K integers is exact in float32 when K is a power of two).
 *
 *     ed_view v;
 *     if (ed_view_parse("avgpool:4", &v, err) || ed_view_bind(&v, 784, err)) ...;
 *     // v.out_dim == 49
 *     ed_view_apply(&v, raw_u8, ED_DTYPE_U8, n, out_f32);   // out: (n, 49)
 */
#ifndef ED_VIEW_H
#define ED_VIEW_H

#include <stdbool.h>

#include "ed_batch.h"
#include "ed_error.h"

typedef enum { ED_VIEW_NONE = 0, ED_VIEW_AVGPOOL, ED_VIEW_COUNT } ed_view_kind;

typedef struct {
    ed_view_kind kind;
    int k;       /* avgpool block size */
    int in_dim;  /* values per input sample (0 until ed_view_bind) */
    int side;    /* input image side S (in_dim = S*S) */
    int out_dim; /* values per output sample: (S/K)^2 */
    char text[32];
} ed_view;

/* Parses "avgpool:K" (K in 1..64) into *v (unbound). NULL or "" or "none" gives ED_VIEW_NONE.
 * ED_EINVAL with a message quoting the text when it is not a view. */
int ed_view_parse(const char *text, ed_view *v, ed_err *err);

/* Fixes the input size: in_dim must be S*S with S divisible by K (ED_ESHAPE otherwise, naming
 * both). Sets side and out_dim. A NONE view binds to out_dim = in_dim. */
int ed_view_bind(ed_view *v, int in_dim, ed_err *err);

/* True when v is a real view (not NONE). */
static inline bool ed_view_on(const ed_view *v)
{
    return v && v->kind != ED_VIEW_NONE;
}

/* out (n, out_dim) float32 = the view of the n raw samples x (n, in_dim) of dtype. v bound. */
void ed_view_apply(const ed_view *v, const void *x, ed_dtype dtype, long n, float *out);

#endif
