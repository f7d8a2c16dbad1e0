/* ed_view: derived views of raw samples (see ed_view.h). */
#include "ed_view.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ed_view_parse(const char *text, ed_view *v, ed_err *err)
{
    memset(v, 0, sizeof *v);
    if (!text || !*text || !strcmp(text, "none")) {
        snprintf(v->text, sizeof v->text, "none");
        return 0;
    }
    const char *p = "avgpool:";
    if (strncmp(text, p, strlen(p)) != 0)
        return ed_err_set(err, ED_EINVAL, "view '%s': unknown (the one view is avgpool:K)", text);
    char *end = NULL;
    long k = strtol(text + strlen(p), &end, 10);
    if (end == text + strlen(p) || *end || k < 1 || k > 64)
        return ed_err_set(err, ED_EINVAL, "view '%s': K must be an integer in 1..64", text);
    v->kind = ED_VIEW_AVGPOOL;
    v->k = (int)k;
    snprintf(v->text, sizeof v->text, "avgpool:%ld", k);
    return 0;
}

int ed_view_bind(ed_view *v, int in_dim, ed_err *err)
{
    v->in_dim = in_dim;
    if (v->kind == ED_VIEW_NONE) {
        v->out_dim = in_dim;
        return 0;
    }
    int s = 0;
    while ((long)(s + 1) * (s + 1) <= in_dim)
        s++;
    if (in_dim < 1 || s * s != in_dim || s % v->k != 0)
        return ed_err_set(err, ED_ESHAPE,
                          "view %s needs square single-channel samples whose side is a multiple "
                          "of %d; the samples have %d values",
                          v->text, v->k, in_dim);
    v->side = s;
    v->out_dim = (s / v->k) * (s / v->k);
    return 0;
}

/* One sample's avgpool: out (S/K, S/K) from in (S, S). */
static void s_avgpool(const ed_view *v, const void *x, ed_dtype dtype, float *out)
{
    const int s = v->side, k = v->k, o = s / k;
    const float inv = 1.0f / (float)(k * k);
    for (int r = 0; r < o; r++)
        for (int c = 0; c < o; c++) {
            float sum = 0.0f;
            for (int i = 0; i < k; i++)
                for (int j = 0; j < k; j++) {
                    const size_t at = (size_t)(r * k + i) * (size_t)s + (size_t)(c * k + j);
                    sum += dtype == ED_DTYPE_U8 ? (float)((const uint8_t *)x)[at]
                                                : ((const float *)x)[at];
                }
            out[r * o + c] = sum * inv;
        }
}

void ed_view_apply(const ed_view *v, const void *x, ed_dtype dtype, long n, float *out)
{
    const size_t in_bytes = (size_t)v->in_dim * ed_dtype_size(dtype);
    for (long i = 0; i < n; i++) {
        const void *xi = (const uint8_t *)x + (size_t)i * in_bytes;
        float *oi = out + (size_t)i * (size_t)v->out_dim;
        if (v->kind == ED_VIEW_AVGPOOL)
            s_avgpool(v, xi, dtype, oi);
        else
            ed_batch_to_float(&(ed_batch){.n = 1, .dim = v->in_dim, .dtype = dtype, .x = xi}, 1.0f,
                              0.0f, oi);
    }
}
