/*
 * ed_graph: the neutral op chain shared by ONNX import and export (see ed_graph.h). Shape checking
 * lives here so the reader and the writer agree on what a valid chain is; the bridge to the layer
 * stack is ed_graph_net.c.
 */
#include "ed_graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const s_names[ED_GOP_COUNT] = {
    [ED_GOP_DENSE] = "Dense",
    [ED_GOP_CONV] = "Conv",
    [ED_GOP_AFFINE] = "BatchNorm",
    [ED_GOP_RELU] = "Relu",
    [ED_GOP_MAXPOOL] = "MaxPool",
    [ED_GOP_AVGPOOL] = "AveragePool",
    [ED_GOP_GLOBAL_AVGPOOL] = "GlobalAveragePool",
    [ED_GOP_FLATTEN] = "Flatten",
};

#define S_MAX_DIM (1 << 24)

const char *ed_gop_name(ed_gop_kind kind)
{
    return (kind >= 0 && kind < ED_GOP_COUNT) ? s_names[kind] : "?";
}

ed_graph *ed_graph_new(void)
{
    ed_graph *g = calloc(1, sizeof *g);
    if (g) {
        g->input_scale = 1.0f;
        g->input_offset = 0.0f;
    }
    return g;
}

static void s_op_free(ed_gop *op)
{
    free(op->w);
    free(op->b);
    op->w = op->b = NULL;
}

void ed_graph_destroy(ed_graph **pg)
{
    if (!pg || !*pg)
        return;
    ed_graph *g = *pg;
    for (int i = 0; i < g->n_ops; i++)
        s_op_free(&g->ops[i]);
    free(g);
    *pg = NULL;
}

ed_gop *ed_graph_add(ed_graph *g, ed_gop_kind kind, const char *name, ed_err *err)
{
    if (g->n_ops >= ED_GRAPH_MAX_OPS) {
        ed_err_set(err, ED_ETOOBIG, "more than %d layers", ED_GRAPH_MAX_OPS);
        return NULL;
    }
    ed_gop *op = &g->ops[g->n_ops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->stride_h = op->stride_w = 1;
    snprintf(op->name, sizeof op->name, "%s", name ? name : "");
    return op;
}

void ed_graph_remove(ed_graph *g, int i)
{
    if (i < 0 || i >= g->n_ops)
        return;
    s_op_free(&g->ops[i]);
    memmove(&g->ops[i], &g->ops[i + 1], (size_t)(g->n_ops - i - 1) * sizeof g->ops[0]);
    g->n_ops--;
}

static int s_op_err(ed_err *err, int code, const ed_gop *op, const char *why)
{
    return ed_err_set(err, code, "%s '%s': %s", ed_gop_name(op->kind), op->name, why);
}

/* Output size of a window op along one axis (floor mode); -1 if the window does not fit. */
static int s_window_out(int in, int pad0, int pad1, int k, int stride)
{
    long span = (long)in + pad0 + pad1;
    if (k < 1 || stride < 1 || span < k)
        return -1;
    return (int)((span - k) / stride + 1);
}

/* Shape of one op from its input shape; ED_OK or an error naming the op. */
static int s_op_shape(ed_gop *op, ed_err *err)
{
    const ed_gshape *in = &op->in;
    ed_gshape *out = &op->out;
    char why[160];
    *out = *in;
    switch (op->kind) {
    case ED_GOP_DENSE:
        if (in->rank != 1)
            return s_op_err(err, ED_ESHAPE, op,
                            "needs a 2-D (N, D) input (add a Flatten before it)");
        if (op->out_ch < 1 || op->out_ch > S_MAX_DIM || !op->w || !op->b)
            return s_op_err(err, ED_EFORMAT, op, "missing weights or output width");
        if (op->in_ch != in->d[0]) {
            snprintf(why, sizeof why, "weights expect %d input features, the input has %d",
                     op->in_ch, in->d[0]);
            return s_op_err(err, ED_ESHAPE, op, why);
        }
        out->d[0] = op->out_ch;
        return ED_OK;
    case ED_GOP_AFFINE:
        if (!op->w || !op->b)
            return s_op_err(err, ED_EFORMAT, op, "missing scale or shift");
        if (op->in_ch != in->d[0]) {
            snprintf(why, sizeof why, "has %d channels, the input has %d", op->in_ch, in->d[0]);
            return s_op_err(err, ED_ESHAPE, op, why);
        }
        return ED_OK;
    case ED_GOP_RELU:
        return ED_OK;
    case ED_GOP_FLATTEN:
        out->rank = 1;
        out->d[0] = in->rank == 3 ? in->d[0] * in->d[1] * in->d[2] : in->d[0];
        return ED_OK;
    case ED_GOP_GLOBAL_AVGPOOL:
        if (in->rank != 3)
            return s_op_err(err, ED_ESHAPE, op, "needs a 4-D (N, C, H, W) input");
        out->d[1] = out->d[2] = 1;
        return ED_OK;
    case ED_GOP_CONV:
    case ED_GOP_MAXPOOL:
    case ED_GOP_AVGPOOL: {
        if (in->rank != 3)
            return s_op_err(err, ED_ESHAPE, op, "needs a 4-D (N, C, H, W) input");
        if (op->pad_t < 0 || op->pad_l < 0 || op->pad_b < 0 || op->pad_r < 0 ||
            op->pad_t >= op->kh || op->pad_b >= op->kh || op->pad_l >= op->kw ||
            op->pad_r >= op->kw)
            return s_op_err(err, ED_EFORMAT, op,
                            "padding must be >= 0 and smaller than the kernel");
        int oh = s_window_out(in->d[1], op->pad_t, op->pad_b, op->kh, op->stride_h);
        int ow = s_window_out(in->d[2], op->pad_l, op->pad_r, op->kw, op->stride_w);
        if (oh < 1 || ow < 1) {
            snprintf(why, sizeof why,
                     "kernel %dx%d stride %dx%d does not fit the padded input %dx%d", op->kh,
                     op->kw, op->stride_h, op->stride_w, in->d[1] + op->pad_t + op->pad_b,
                     in->d[2] + op->pad_l + op->pad_r);
            return s_op_err(err, ED_ESHAPE, op, why);
        }
        out->d[1] = oh;
        out->d[2] = ow;
        if (op->kind == ED_GOP_CONV) {
            if (op->out_ch < 1 || op->out_ch > S_MAX_DIM || !op->w || !op->b)
                return s_op_err(err, ED_EFORMAT, op, "missing weights or output channels");
            if (op->in_ch != in->d[0]) {
                snprintf(why, sizeof why, "weights expect %d input channels, the input has %d",
                         op->in_ch, in->d[0]);
                return s_op_err(err, ED_ESHAPE, op, why);
            }
            out->d[0] = op->out_ch;
        }
        return ED_OK;
    }
    default:
        return s_op_err(err, ED_EFORMAT, op, "unknown op kind");
    }
}

static size_t s_op_params(const ed_gop *op)
{
    size_t in = (size_t)op->in_ch;
    switch (op->kind) {
    case ED_GOP_DENSE:
        return (size_t)op->out_ch * in + (size_t)op->out_ch;
    case ED_GOP_CONV:
        return (size_t)op->out_ch * in * (size_t)op->kh * (size_t)op->kw + (size_t)op->out_ch;
    case ED_GOP_AFFINE:
        return 2 * in;
    default:
        return 0;
    }
}

int ed_graph_infer(ed_graph *g, ed_gshape *out, ed_err *err)
{
    if (g->input.rank != 1 && g->input.rank != 3)
        return ed_err_set(err, ED_ESHAPE, "input must be (N, D) or (N, C, H, W)");
    if (!isfinite(g->input_scale) || !isfinite(g->input_offset))
        return ed_err_set(err, ED_EFORMAT, "input scaling is not finite");
    long elems = 1;
    for (int k = 0; k < g->input.rank; k++) {
        if (g->input.d[k] < 1 || g->input.d[k] > S_MAX_DIM)
            return ed_err_set(err, ED_ESHAPE, "input dimension %d is %d", k + 1, g->input.d[k]);
        elems *= g->input.d[k];
        if (elems > S_MAX_DIM)
            return ed_err_set(err, ED_ETOOBIG, "input has more than %d values per sample",
                              S_MAX_DIM);
    }
    ed_gshape cur = g->input;
    for (int i = 0; i < g->n_ops; i++) {
        ed_gop *op = &g->ops[i];
        op->in = cur;
        int rc = s_op_shape(op, err);
        if (rc)
            return rc;
        size_t np = s_op_params(op),
               nw = op->kind == ED_GOP_AFFINE ? np / 2 : np - (size_t)op->out_ch;
        for (size_t k = 0; np && k < nw; k++)
            if (!isfinite(op->w[k]))
                return s_op_err(err, ED_EFORMAT, op, "weights are not finite (after folding)");
        for (size_t k = 0; np && k < np - nw; k++)
            if (!isfinite(op->b[k]))
                return s_op_err(err, ED_EFORMAT, op, "biases are not finite (after folding)");
        long n = 1;
        for (int k = 0; k < op->out.rank; k++)
            n *= op->out.d[k];
        if (n > S_MAX_DIM)
            return s_op_err(err, ED_ETOOBIG, op, "output too large");
        cur = op->out;
    }
    *out = cur;
    return ED_OK;
}

int ed_graph_finish(ed_graph *g, ed_err *err)
{
    ed_gshape cur;
    int rc = ed_graph_infer(g, &cur, err);
    if (rc)
        return rc;
    if (g->n_ops < 1)
        return ed_err_set(err, ED_EFORMAT, "the graph has no layers");
    if (cur.rank != 1)
        return ed_err_set(err, ED_ESHAPE,
                          "the output is (N, %d, %d, %d), not 2-D (N, classes) logits", cur.d[0],
                          cur.d[1], cur.d[2]);
    g->classes = cur.d[0];
    return ED_OK;
}

size_t ed_graph_param_count(const ed_graph *g)
{
    size_t n = 0;
    for (int i = 0; i < g->n_ops; i++)
        n += s_op_params(&g->ops[i]);
    return n;
}
