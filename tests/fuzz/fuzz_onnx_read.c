/*
 * fuzz_onnx_read: the ONNX reader (what `teacher_worker serve --model x.onnx` and `import` parse)
 * on arbitrary bytes, then the writer on whatever it accepts.
 *
 * ed_onnx_read_buffer must refuse the input with a matching error record, or give a finished graph:
 * classes >= 1, every op's shapes consistent, weights finite. An accepted graph is written back as
 * ONNX (ed_onnx_write_buffer) and read again: the same ops, shapes, weights (bit for bit) and input
 * scaling must come back, so the writer emits only what the reader accepts and folding is stable.
 */
#include "fuzz.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_graph.h"
#include "ed_log.h"
#include "ed_onnx_read.h"
#include "ed_onnx_write.h"

static void s_fail(const char *what, const ed_err *err)
{
    fprintf(stderr, "fuzz_onnx_read: invariant violated: %s (%s)\n", what, err ? err->msg : "");
    abort();
}

static size_t s_wcount(const ed_gop *op)
{
    switch (op->kind) {
    case ED_GOP_DENSE:
        return (size_t)op->out_ch * (size_t)op->in_ch;
    case ED_GOP_CONV:
        return (size_t)op->out_ch * (size_t)op->in_ch * (size_t)op->kh * (size_t)op->kw;
    case ED_GOP_AFFINE:
        return (size_t)op->in_ch;
    default:
        return 0;
    }
}

static size_t s_bcount(const ed_gop *op)
{
    return op->kind == ED_GOP_AFFINE ? (size_t)op->in_ch : op->w ? (size_t)op->out_ch : 0;
}

static void s_same(const ed_graph *a, const ed_graph *b)
{
    if (a->n_ops != b->n_ops || a->classes != b->classes ||
        memcmp(&a->input, &b->input, sizeof a->input))
        s_fail("write/read changed the graph's shape", NULL);
    if (a->input_scale != b->input_scale || a->input_offset != b->input_offset)
        s_fail("write/read changed the input scaling", NULL);
    for (int i = 0; i < a->n_ops; i++) {
        const ed_gop *x = &a->ops[i], *y = &b->ops[i];
        if (x->kind != y->kind || memcmp(&x->out, &y->out, sizeof x->out) || x->kh != y->kh ||
            x->kw != y->kw || x->stride_h != y->stride_h || x->stride_w != y->stride_w ||
            x->pad_t != y->pad_t || x->pad_l != y->pad_l || x->pad_b != y->pad_b ||
            x->pad_r != y->pad_r)
            s_fail("write/read changed an op", NULL);
        size_t nw = s_wcount(x), nb = s_bcount(x);
        if ((nw && memcmp(x->w, y->w, nw * sizeof(float))) ||
            (nb && memcmp(x->b, y->b, nb * sizeof(float))))
            s_fail("write/read changed weights", NULL);
    }
}

static void s_check(const ed_graph *g)
{
    if (g->classes < 1 || g->n_ops < 1)
        s_fail("accepted graph without classes or ops", NULL);
    volatile float sum = 0;
    for (int i = 0; i < g->n_ops; i++) {
        const ed_gop *op = &g->ops[i];
        size_t nw = s_wcount(op), nb = s_bcount(op);
        for (size_t k = 0; k < nw; k++)
            sum += op->w[k]; /* ASan: every weight is inside its allocation */
        for (size_t k = 0; k < nb; k++)
            sum += op->b[k];
        if (i > 0 && memcmp(&op->in, &g->ops[i - 1].out, sizeof op->in))
            s_fail("op input shape differs from the previous output", NULL);
    }
    if (g->ops[g->n_ops - 1].out.rank != 1 || g->ops[g->n_ops - 1].out.d[0] != g->classes)
        s_fail("graph does not end in (N, classes)", NULL);
    (void)sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        ed_log_set_level(ED_LOG_ERROR);
        quiet = 1;
    }
    ed_err err;
    ed_err_clear(&err);
    ed_graph *g = NULL;
    int rc = ed_onnx_read_buffer(data, size, "fuzz.onnx", &g, &err);
    if (rc < 0) {
        if (g || err.code != rc || err.msg[0] == '\0')
            s_fail("refused without a matching error record", &err);
        return 0;
    }
    if (!g)
        s_fail("accepted without a graph", &err);
    s_check(g);
    uint8_t *buf = NULL;
    size_t n = 0;
    ed_onnx_write_meta meta = {.input_scale = 1.0f, .input_offset = 0.0f, .member = "fuzz"};
    rc = ed_onnx_write_buffer(g, &meta, &buf, &n, &err);
    if (rc == ED_OK) {
        ed_graph *back = NULL;
        if (ed_onnx_read_buffer(buf, n, "fuzz-rewritten.onnx", &back, &err) != ED_OK)
            s_fail("a written graph does not read back", &err);
        s_same(g, back);
        ed_graph_destroy(&back);
    } else if (rc != ED_ENOMEM) {
        s_fail("an accepted graph cannot be written", &err);
    }
    free(buf);
    ed_graph_destroy(&g);
    return 0;
}
