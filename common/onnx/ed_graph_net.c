/*
 * ed_graph_net: ed_graph <-> ed_net (see ed_graph_net.h). The graph -> net direction writes the
 * architecture string of the layer stack and lets ed_stack_parse derive (and check) every shape,
 * then copies the weights into the views of the new model; the net -> graph direction reads the
 * stack layer by layer.
 */
#include "ed_graph_net.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_op_err(ed_err *err, const ed_gop *op, const char *why)
{
    return ed_err_set(err, ED_EFORMAT, "%s '%s': %s", ed_gop_name(op->kind), op->name, why);
}

/* True when the graph is [Flatten] Dense (Relu Dense)*: a legacy MLP. Fills its arch. */
static bool s_is_mlp(const ed_graph *g, ed_arch *a)
{
    int i = g->n_ops > 0 && g->ops[0].kind == ED_GOP_FLATTEN ? 1 : 0;
    memset(a, 0, sizeof *a);
    a->widths[0] = i ? g->ops[0].out.d[0] : g->input.d[0];
    if (!i && g->input.rank != 1)
        return false;
    for (bool dense = true; i < g->n_ops; i++, dense = !dense) {
        if (g->ops[i].kind != (dense ? ED_GOP_DENSE : ED_GOP_RELU))
            return false;
        if (dense) {
            if (a->n_layers >= ED_MLP_MAX_LAYERS)
                return false;
            a->widths[++a->n_layers] = g->ops[i].out_ch;
        }
    }
    return g->ops[g->n_ops - 1].kind == ED_GOP_DENSE;
}

/* Appends the stack token of op to buf (at *len); error naming the op when it does not map. */
static int s_token(const ed_gop *op, char *buf, size_t size, size_t *len, ed_err *err)
{
    char t[64];
    bool square = op->kh == op->kw && op->stride_h == op->stride_w;
    bool nopad = !op->pad_t && !op->pad_l && !op->pad_b && !op->pad_r;
    switch (op->kind) {
    case ED_GOP_DENSE:
        snprintf(t, sizeof t, "dense%d", op->out_ch);
        break;
    case ED_GOP_CONV:
        if (!square)
            return s_op_err(err, op, "the layer stack has square kernels and equal strides");
        if (op->pad_t != op->pad_l || op->pad_t != op->pad_b || op->pad_t != op->pad_r)
            return s_op_err(err, op, "the layer stack pads every side equally");
        snprintf(t, sizeof t, "conv%dk%ds%dp%d", op->out_ch, op->kh, op->stride_h, op->pad_t);
        break;
    case ED_GOP_MAXPOOL:
    case ED_GOP_AVGPOOL:
        if (!square || !nopad)
            return s_op_err(err, op,
                            "the layer stack pools square windows, equal strides, no padding");
        snprintf(t, sizeof t, "%s%ds%d", op->kind == ED_GOP_MAXPOOL ? "maxpool" : "avgpool", op->kh,
                 op->stride_h);
        break;
    case ED_GOP_GLOBAL_AVGPOOL:
        snprintf(t, sizeof t, "gap");
        break;
    case ED_GOP_FLATTEN:
        snprintf(t, sizeof t, "flatten");
        break;
    case ED_GOP_RELU:
        snprintf(t, sizeof t, "relu");
        break;
    case ED_GOP_AFFINE:
        snprintf(t, sizeof t, "bn");
        break;
    default:
        return s_op_err(err, op, "no such layer");
    }
    int n = snprintf(buf + *len, size - *len, "%s%s", *len && buf[*len - 1] != ':' ? "," : "", t);
    if (n < 0 || (size_t)n >= size - *len)
        return ed_err_set(err, ED_ETOOBIG, "the architecture is longer than %zu characters", size);
    *len += (size_t)n;
    return ED_OK;
}

/* Copies op's weights into layer l of m. */
static void s_copy(ed_net *m, int l, const ed_gop *op)
{
    const ed_layer *L = &m->arch.layers[l];
    if (op->kind == ED_GOP_DENSE || op->kind == ED_GOP_CONV) {
        size_t nb = (size_t)op->out_ch;
        memcpy(m->W[l], op->w, (L->n_params - nb) * sizeof(float));
        memcpy(m->b[l], op->b, nb * sizeof(float));
    } else if (op->kind == ED_GOP_AFFINE) {
        /* y = x * w + b as batch norm: mean 0, var 1 - eps, so 1 / sqrt(var + eps) = 1 */
        for (int c = 0; c < op->in_ch; c++) {
            m->W[l][c] = op->w[c];
            m->b[l][c] = op->b[c];
            m->mean[l][c] = 0.0f;
            m->var[l][c] = 1.0f - ED_BN_EPS;
        }
    }
}

int ed_graph_to_net(const ed_graph *g, ed_net **out, ed_err *err)
{
    *out = NULL;
    ed_stack s;
    ed_arch a;
    int rc;
    if (s_is_mlp(g, &a)) {
        rc = ed_stack_from_mlp(&a, &s, err);
    } else {
        if (g->n_ops > ED_STACK_MAX_LAYERS)
            return ed_err_set(err, ED_ETOOBIG, "%d layers, the layer stack holds %d", g->n_ops,
                              ED_STACK_MAX_LAYERS);
        char text[ED_STACK_TEXT_MAX];
        size_t len;
        if (g->input.rank == 1)
            len = (size_t)snprintf(text, sizeof text, "%d:", g->input.d[0]);
        else
            len = (size_t)snprintf(text, sizeof text, "%dx%dx%d:", g->input.d[0], g->input.d[1],
                                   g->input.d[2]);
        for (int i = 0; i < g->n_ops; i++)
            if ((rc = s_token(&g->ops[i], text, sizeof text, &len, err)))
                return rc;
        rc = ed_stack_parse(text, &s, err);
    }
    if (rc)
        return rc;
    /* A legacy MLP has no layer for a leading Flatten: skip it. */
    int skip = s.mlp && g->ops[0].kind == ED_GOP_FLATTEN ? 1 : 0;
    if (s.n_layers != g->n_ops - skip)
        return ed_err_set(err, ED_EFORMAT, "the layer stack has %d layers for %d ops", s.n_layers,
                          g->n_ops);
    ed_net *m = ed_net_new(&s);
    if (!m)
        return ed_err_set(err, ED_ENOMEM, "cannot allocate the model");
    for (int l = 0; l < s.n_layers; l++)
        s_copy(m, l, &g->ops[l + skip]);
    *out = m;
    return ED_OK;
}

static float *s_dup(const float *src, size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (p && n)
        memcpy(p, src, n * sizeof *p);
    return p;
}

/* Appends the graph op(s) of layer L (weights from m's layer l). */
static int s_layer_op(ed_graph *g, const ed_net *m, int l, ed_err *err)
{
    const ed_layer *L = &m->arch.layers[l];
    char name[32];
    snprintf(name, sizeof name, "%s_%d", ed_layer_kind_name(L->kind), l);
    ed_gshape cur;
    int rc = ed_graph_infer(g, &cur, err);
    if (rc)
        return rc;
    bool flat_needed = (L->kind == ED_LAYER_DENSE || L->kind == ED_LAYER_FLATTEN) && cur.rank == 3;
    if (flat_needed &&
        !ed_graph_add(g, ED_GOP_FLATTEN, L->kind == ED_LAYER_FLATTEN ? name : "flatten", err))
        return err ? err->code : ED_ETOOBIG;
    if (L->kind == ED_LAYER_FLATTEN || L->kind == ED_LAYER_DROPOUT)
        return ED_OK;
    static const ed_gop_kind map[ED_LAYER_KIND_COUNT] = {
        [ED_LAYER_DENSE] = ED_GOP_DENSE,        [ED_LAYER_CONV] = ED_GOP_CONV,
        [ED_LAYER_MAXPOOL] = ED_GOP_MAXPOOL,    [ED_LAYER_AVGPOOL] = ED_GOP_AVGPOOL,
        [ED_LAYER_GAP] = ED_GOP_GLOBAL_AVGPOOL, [ED_LAYER_RELU] = ED_GOP_RELU,
        [ED_LAYER_BN] = ED_GOP_AFFINE};
    ed_gop *op = ed_graph_add(g, map[L->kind], name, err);
    if (!op)
        return err ? err->code : ED_ETOOBIG;
    op->kh = op->kw = L->k;
    op->stride_h = op->stride_w = L->stride > 0 ? L->stride : 1;
    op->pad_t = op->pad_l = op->pad_b = op->pad_r = L->pad;
    if (L->kind == ED_LAYER_DENSE || L->kind == ED_LAYER_CONV) {
        op->out_ch = L->units;
        op->in_ch = L->in.c;
        op->w = s_dup(m->W[l], L->n_params - (size_t)L->units);
        op->b = s_dup(m->b[l], (size_t)L->units);
    } else if (L->kind == ED_LAYER_BN) {
        op->in_ch = L->in.c;
        op->w = malloc((size_t)L->in.c * sizeof(float));
        op->b = malloc((size_t)L->in.c * sizeof(float));
        for (int c = 0; op->w && op->b && c < L->in.c; c++) {
            double sc = (double)m->W[l][c] / sqrt((double)m->var[l][c] + (double)ED_BN_EPS);
            op->w[c] = (float)sc;
            op->b[c] = (float)((double)m->b[l][c] - (double)m->mean[l][c] * sc);
        }
    }
    bool needs = op->kind == ED_GOP_DENSE || op->kind == ED_GOP_CONV || op->kind == ED_GOP_AFFINE;
    if (needs && (!op->w || !op->b))
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    return ED_OK;
}

ed_graph *ed_graph_from_net(const ed_net *model, ed_err *err)
{
    ed_net *m = ed_net_fold_bn(model);
    ed_graph *g = m ? ed_graph_new() : NULL;
    if (!g) {
        ed_net_destroy(&m);
        ed_err_set(err, ED_ENOMEM, "out of memory");
        return NULL;
    }
    const ed_stack *s = &m->arch;
    bool flat = s->input.h == 1 && s->input.w == 1 && s->n_layers > 0 &&
                s->layers[0].kind != ED_LAYER_CONV && s->layers[0].kind != ED_LAYER_MAXPOOL &&
                s->layers[0].kind != ED_LAYER_AVGPOOL && s->layers[0].kind != ED_LAYER_GAP;
    g->input.rank = flat ? 1 : 3;
    g->input.d[0] = s->input.c;
    g->input.d[1] = s->input.h;
    g->input.d[2] = s->input.w;
    int rc = ED_OK;
    for (int l = 0; l < s->n_layers && !rc; l++)
        rc = s_layer_op(g, m, l, err);
    if (!rc)
        rc = ed_graph_finish(g, err);
    ed_net_destroy(&m);
    if (rc)
        ed_graph_destroy(&g);
    return g;
}
