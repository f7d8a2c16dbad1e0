/*
 * fuzz_view_parse: ed_view_parse on arbitrary bytes (a --student-view flag), then ed_view_bind to
 * several sample sizes and ed_view_apply on samples of both dtypes.
 *
 * Checks, beyond "no crash, no sanitizer report": a refused string leaves an error message; an
 * accepted view's canonical text parses back to the same view; a bound view has out_dim * K * K ==
 * in_dim; every output of a uint8 sample lies in [0, 255] and a constant sample stays constant.
 * Any violation aborts.
 */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_view.h"

static void s_fail(const char *what)
{
    fprintf(stderr, "fuzz_view_parse: invariant violated: %s\n", what);
    abort();
}

static void s_apply(const ed_view *v)
{
    uint8_t *x = malloc((size_t)v->in_dim);
    float *xf = malloc(sizeof(float) * (size_t)v->in_dim);
    float *out = malloc(sizeof(float) * (size_t)v->out_dim);
    if (!x || !xf || !out)
        goto done;
    for (int i = 0; i < v->in_dim; i++)
        x[i] = (uint8_t)(i * 37 + 11);
    ed_view_apply(v, x, ED_DTYPE_U8, 1, out);
    for (int i = 0; i < v->out_dim; i++)
        if (!(out[i] >= 0.0f && out[i] <= 255.0f))
            s_fail("a mean of uint8 values outside [0, 255]");
    for (int i = 0; i < v->in_dim; i++)
        xf[i] = 3.5f;
    ed_view_apply(v, xf, ED_DTYPE_F32, 1, out);
    for (int i = 0; i < v->out_dim; i++)
        if (out[i] != 3.5f)
            s_fail("a constant sample is not constant under the view");
done:
    free(x);
    free(xf);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    ed_view v, back;
    ed_err err = {0};
    if (ed_view_parse(text, &v, &err) != ED_OK) {
        if (!err.msg[0])
            s_fail("refused without a message");
        goto done;
    }
    if (ed_view_parse(v.text, &back, &err) != ED_OK || back.kind != v.kind || back.k != v.k)
        s_fail("canonical text does not parse back to the same view");
    const int dims[] = {0, 1, 16, 49, 64, 784, 785, 3 * 28 * 28, 64 * 64};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        ed_view b = v;
        if (ed_view_bind(&b, dims[i], &err) != ED_OK) {
            if (!err.msg[0])
                s_fail("bind refused without a message");
            continue;
        }
        const long k2 = ed_view_on(&b) ? (long)b.k * b.k : 1;
        if ((long)b.out_dim * k2 != b.in_dim)
            s_fail("out_dim * K * K != in_dim");
        if (b.in_dim > 0)
            s_apply(&b);
    }
done:
    free(text);
    return 0;
}
