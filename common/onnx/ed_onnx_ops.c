/*
 * ed_onnx_ops: the per-node half of the ONNX reader: attribute and tensor decoding (every value
 * checked: element counts against dims, finiteness, supported attribute values) and the
 * translation of one chain node into an ed_graph op. The walk over the graph is ed_onnx_read.c;
 * the context they share is ed_onnx_internal.h.
 */
#include "ed_onnx_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_log.h"

#define S_MAX_ELEMS ((int64_t)1 << 28)

typedef Onnx__TensorProto s_tensor;
typedef Onnx__NodeProto s_node_t;
typedef ed_onnx_ctx s_ctx;

static const char *s_str(const char *s)
{
    return s ? s : "";
}

int ed_onnx_node_err(ed_onnx_ctx *c, int code, const Onnx__NodeProto *n, const char *fmt, ...)
{
    char why[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return ed_err_set(c->err, code, "%s: node '%s' (%s): %s", c->name, s_str(n->name),
                      s_str(n->op_type), why);
}

s_tensor *ed_onnx_const(const ed_onnx_ctx *c, const char *name)
{
    for (size_t i = 0; name && name[0] && i < c->n_const; i++)
        if (strcmp(c->const_names[i], name) == 0)
            return c->const_vals[i];
    return NULL;
}

/* Element count of t from its dims; -1 for a negative dim or more than S_MAX_ELEMS. */
static int64_t s_numel(const s_tensor *t)
{
    int64_t n = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0 || t->dims[i] > S_MAX_ELEMS)
            return -1;
        n *= t->dims[i];
        if (n > S_MAX_ELEMS)
            return -1;
    }
    return n;
}

/* Copies t's data as floats into a new array of numel(t) (*out, caller frees). raw_data must be
 * exactly numel * 4 little-endian bytes, float_data exactly numel values. */
static int s_floats(s_ctx *c, const s_node_t *n, const s_tensor *t, float **out, int64_t *count)
{
    *out = NULL;
    int64_t ne = s_numel(t);
    if (ne < 0)
        return ed_onnx_node_err(c, ED_ETOOBIG, n, "tensor '%s' has bad or too large dims",
                                s_str(t->name));
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return ed_onnx_node_err(c, ED_EFORMAT, n, "tensor '%s' uses external data (not supported)",
                                s_str(t->name));
    if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return ed_onnx_node_err(c, ED_EFORMAT, n,
                                "tensor '%s' has data type %d, only float32 is supported",
                                s_str(t->name), (int)t->data_type);
    float *v = malloc((size_t)(ne ? ne : 1) * sizeof *v);
    if (!v)
        return ed_err_set(c->err, ED_ENOMEM, "%s: out of memory", c->name);
    if (t->has_raw_data && t->raw_data.len > 0) {
        if (t->raw_data.len != (size_t)ne * 4) {
            free(v);
            return ed_onnx_node_err(c, ED_ESHAPE, n,
                                    "tensor '%s' holds %zu bytes, its dims need %lld",
                                    s_str(t->name), t->raw_data.len, (long long)ne * 4);
        }
        const uint8_t *p = t->raw_data.data;
        for (int64_t i = 0; i < ne; i++) {
            uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                         (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
            memcpy(&v[i], &u, 4);
        }
    } else if (t->n_float_data == (size_t)ne) {
        if (ne)
            memcpy(v, t->float_data, (size_t)ne * sizeof *v);
    } else {
        free(v);
        return ed_onnx_node_err(c, ED_ESHAPE, n, "tensor '%s' holds %zu values, its dims need %lld",
                                s_str(t->name), t->n_float_data, (long long)ne);
    }
    for (int64_t i = 0; i < ne; i++)
        if (!isfinite(v[i])) {
            free(v);
            return ed_onnx_node_err(c, ED_EFORMAT, n, "tensor '%s' holds a non-finite value",
                                    s_str(t->name));
        }
    *out = v;
    *count = ne;
    return ED_OK;
}

/* int64 values of t (raw_data or int64_data) into out[max]; the count in *count. */
static int s_ints(s_ctx *c, const s_node_t *n, const s_tensor *t, int64_t *out, int max, int *count)
{
    int64_t ne = s_numel(t);
    if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || ne < 0 || ne > max)
        return ed_onnx_node_err(c, ED_EFORMAT, n,
                                "tensor '%s' must be int64 with at most %d values", s_str(t->name),
                                max);
    if (t->has_raw_data && t->raw_data.len > 0) {
        if (t->raw_data.len != (size_t)ne * 8)
            return ed_onnx_node_err(c, ED_ESHAPE, n,
                                    "tensor '%s' holds %zu bytes, its dims need %lld",
                                    s_str(t->name), t->raw_data.len, (long long)ne * 8);
        for (int64_t i = 0; i < ne; i++) {
            uint64_t u = 0;
            for (int b = 7; b >= 0; b--)
                u = u << 8 | t->raw_data.data[8 * i + b];
            memcpy(&out[i], &u, 8);
        }
    } else if (t->n_int64_data == (size_t)ne) {
        for (int64_t i = 0; i < ne; i++)
            out[i] = t->int64_data[i];
    } else {
        return ed_onnx_node_err(c, ED_ESHAPE, n, "tensor '%s' holds %zu values, its dims need %lld",
                                s_str(t->name), t->n_int64_data, (long long)ne);
    }
    *count = (int)ne;
    return ED_OK;
}

static const Onnx__AttributeProto *s_attr(const s_node_t *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i] && n->attribute[i]->name && strcmp(n->attribute[i]->name, name) == 0)
            return n->attribute[i];
    return NULL;
}

static int64_t s_attr_i(const s_node_t *n, const char *name, int64_t dflt)
{
    const Onnx__AttributeProto *a = s_attr(n, name);
    return a && a->has_i ? a->i : dflt;
}

static float s_attr_f(const s_node_t *n, const char *name, float dflt)
{
    const Onnx__AttributeProto *a = s_attr(n, name);
    return a && a->has_f ? a->f : dflt;
}

/* ints attribute into out[want]; absent -> fill with dflt. Wrong length or values outside
 * [lo, hi] -> error. */
static int s_attr_ints(s_ctx *c, const s_node_t *n, const char *name, int want, int dflt, int lo,
                       int hi, int *out)
{
    const Onnx__AttributeProto *a = s_attr(n, name);
    for (int i = 0; i < want; i++)
        out[i] = dflt;
    if (!a)
        return ED_OK;
    if (a->n_ints != (size_t)want)
        return ed_onnx_node_err(c, ED_EFORMAT, n,
                                "attribute %s has %zu values, expected %d (2-D only)", name,
                                a->n_ints, want);
    for (int i = 0; i < want; i++) {
        if (a->ints[i] < lo || a->ints[i] > hi)
            return ed_onnx_node_err(c, ED_EFORMAT, n,
                                    "attribute %s = %lld is not supported (allowed %d..%d)", name,
                                    (long long)a->ints[i], lo, hi);
        out[i] = (int)a->ints[i];
    }
    return ED_OK;
}

/* auto_pad must be NOTSET (or empty) or VALID: SAME_* would need the input size at export time. */
static int s_check_auto_pad(s_ctx *c, const s_node_t *n)
{
    const Onnx__AttributeProto *a = s_attr(n, "auto_pad");
    if (!a || !a->has_s || a->s.len == 0)
        return ED_OK;
    if ((a->s.len == 6 && memcmp(a->s.data, "NOTSET", 6) == 0) ||
        (a->s.len == 5 && memcmp(a->s.data, "VALID", 5) == 0))
        return ED_OK;
    return ed_onnx_node_err(c, ED_EFORMAT, n, "auto_pad %.*s is not supported (use explicit pads)",
                            (int)(a->s.len > 32 ? 32 : a->s.len), (const char *)a->s.data);
}

/* Window attributes shared by Conv, MaxPool and AveragePool into op. */
static int s_window(s_ctx *c, const s_node_t *n, ed_gop *op, bool need_kernel)
{
    int k[2], s[2], p[4], d[2], rc;
    if ((rc = s_check_auto_pad(c, n)) ||
        (rc = s_attr_ints(c, n, "kernel_shape", 2, 0, 1, 4096, k)) ||
        (rc = s_attr_ints(c, n, "strides", 2, 1, 1, 4096, s)) ||
        (rc = s_attr_ints(c, n, "pads", 4, 0, 0, 4096, p)) ||
        (rc = s_attr_ints(c, n, "dilations", 2, 1, 1, 1, d)))
        return rc;
    if (need_kernel && !s_attr(n, "kernel_shape"))
        return ed_onnx_node_err(c, ED_EFORMAT, n, "kernel_shape is missing");
    if (s_attr_i(n, "ceil_mode", 0) != 0)
        return ed_onnx_node_err(c, ED_EFORMAT, n, "ceil_mode=1 is not supported");
    if (s_attr_i(n, "storage_order", 0) != 0)
        return ed_onnx_node_err(c, ED_EFORMAT, n, "storage_order=1 is not supported");
    if (k[0])
        op->kh = k[0], op->kw = k[1];
    op->stride_h = s[0], op->stride_w = s[1];
    op->pad_t = p[0], op->pad_l = p[1], op->pad_b = p[2], op->pad_r = p[3];
    return ED_OK;
}

/* The constant input i of node n, or an error naming it. */
static int s_const_input(s_ctx *c, const s_node_t *n, size_t i, s_tensor **out)
{
    *out = i < n->n_input ? ed_onnx_const(c, n->input[i]) : NULL;
    if (!*out)
        return ed_onnx_node_err(c, ED_EFORMAT, n, "input %zu ('%s') must be a constant initializer",
                                i, i < n->n_input ? s_str(n->input[i]) : "");
    return ED_OK;
}

/* Current per-sample shape after the ops so far. */
static int s_shape(s_ctx *c, ed_gshape *sh)
{
    int rc = ed_graph_infer(c->g, sh, c->err);
    return rc ? ed_err_wrap(c->err, "%s", c->name) : ED_OK;
}

static ed_gop *s_add(s_ctx *c, ed_gop_kind kind, const s_node_t *n)
{
    ed_gop *op = ed_graph_add(c->g, kind, s_str(n->name), c->err);
    if (!op)
        ed_err_wrap(c->err, "%s", c->name);
    return op;
}

/* Gemm: Y = alpha * A * B' + beta * C with A the chain's tensor, B (and C) constants. */
static int s_gemm(s_ctx *c, const s_node_t *n, ed_gshape in)
{
    if (s_attr_i(n, "transA", 0) != 0)
        return ed_onnx_node_err(c, ED_EFORMAT, n, "transA=1 is not supported");
    int64_t tb = s_attr_i(n, "transB", 0);
    float alpha = s_attr_f(n, "alpha", 1.0f), beta = s_attr_f(n, "beta", 1.0f);
    s_tensor *B;
    int rc = s_const_input(c, n, 1, &B);
    if (rc)
        return rc;
    if (B->n_dims != 2)
        return ed_onnx_node_err(c, ED_EFORMAT, n, "B must be 2-D, it has %zu dims", B->n_dims);
    if (in.rank != 1)
        return ed_onnx_node_err(c, ED_ESHAPE, n,
                                "needs a 2-D (N, D) input; add a Flatten before it");
    int64_t K = tb ? B->dims[1] : B->dims[0], N = tb ? B->dims[0] : B->dims[1];
    if (K != in.d[0] || N < 1)
        return ed_onnx_node_err(
            c, ED_ESHAPE, n,
            "B is (%lld, %lld) with transB=%lld: %lld input features, the input has %d",
            (long long)B->dims[0], (long long)B->dims[1], (long long)tb, (long long)K, in.d[0]);
    float *bv;
    int64_t cnt;
    if ((rc = s_floats(c, n, B, &bv, &cnt)))
        return rc;
    ed_gop *op = s_add(c, ED_GOP_DENSE, n);
    if (!op) {
        free(bv);
        return c->err->code;
    }
    op->out_ch = (int)N;
    op->in_ch = (int)K;
    op->w = malloc((size_t)(N * K) * sizeof(float));
    op->b = calloc((size_t)N, sizeof(float));
    if (!op->w || !op->b) {
        free(bv);
        return ed_err_set(c->err, ED_ENOMEM, "%s: out of memory", c->name);
    }
    for (int64_t o = 0; o < N; o++)
        for (int64_t k = 0; k < K; k++)
            op->w[o * K + k] = alpha * (tb ? bv[o * K + k] : bv[k * N + o]);
    free(bv);
    if (n->n_input > 2 && n->input[2] && n->input[2][0]) {
        s_tensor *C;
        if ((rc = s_const_input(c, n, 2, &C)) || (rc = s_floats(c, n, C, &bv, &cnt)))
            return rc;
        if (cnt != N && cnt != 1) {
            free(bv);
            return ed_onnx_node_err(c, ED_ESHAPE, n, "C has %lld values, expected %lld (or 1)",
                                    (long long)cnt, (long long)N);
        }
        for (int64_t o = 0; o < N; o++)
            op->b[o] = beta * bv[cnt == 1 ? 0 : o];
        free(bv);
    }
    return ED_OK;
}

/* MatMul(A, B) with B a constant (K, N): a Dense layer without bias (a following Add gives it). */
static int s_matmul(s_ctx *c, const s_node_t *n, ed_gshape in)
{
    s_tensor *B;
    int rc = s_const_input(c, n, 1, &B);
    if (rc)
        return rc;
    if (B->n_dims != 2)
        return ed_onnx_node_err(c, ED_EFORMAT, n, "B must be 2-D, it has %zu dims", B->n_dims);
    if (in.rank != 1)
        return ed_onnx_node_err(c, ED_ESHAPE, n,
                                "needs a 2-D (N, D) input; add a Flatten before it");
    int64_t K = B->dims[0], N = B->dims[1];
    if (K != in.d[0] || N < 1)
        return ed_onnx_node_err(c, ED_ESHAPE, n, "B is (%lld, %lld): the input has %d features",
                                (long long)K, (long long)N, in.d[0]);
    float *bv;
    int64_t cnt;
    if ((rc = s_floats(c, n, B, &bv, &cnt)))
        return rc;
    ed_gop *op = s_add(c, ED_GOP_DENSE, n);
    if (!op) {
        free(bv);
        return c->err->code;
    }
    op->out_ch = (int)N;
    op->in_ch = (int)K;
    op->w = malloc((size_t)(N * K) * sizeof(float));
    op->b = calloc((size_t)N, sizeof(float));
    if (!op->w || !op->b) {
        free(bv);
        return ed_err_set(c->err, ED_ENOMEM, "%s: out of memory", c->name);
    }
    for (int64_t o = 0; o < N; o++)
        for (int64_t k = 0; k < K; k++)
            op->w[o * K + k] = bv[k * N + o];
    free(bv);
    c->last_matmul = c->g->n_ops - 1;
    return ED_OK;
}

/* True while no op but Flatten has been emitted: scalar arithmetic here is input scaling. */
static bool s_before_layers(const s_ctx *c)
{
    for (int i = 0; i < c->g->n_ops; i++)
        if (c->g->ops[i].kind != ED_GOP_FLATTEN)
            return false;
    return true;
}

/* Add/Sub/Mul/Div with a constant: a scalar before the first layer folds into the input scaling,
 * an Add of a vector right after a MatMul is its bias. data_idx: which input is the chain's. */
static int s_arith(s_ctx *c, const s_node_t *n, const char *t, size_t data_idx)
{
    bool commutes = strcmp(t, "Add") == 0 || strcmp(t, "Mul") == 0;
    if (n->n_input != 2 || (data_idx != 0 && !commutes))
        return ed_onnx_node_err(c, ED_EFORMAT, n, "expects (chain tensor, constant) inputs");
    s_tensor *k;
    int rc = s_const_input(c, n, 1 - data_idx, &k);
    float *v;
    int64_t cnt;
    if (rc || (rc = s_floats(c, n, k, &v, &cnt)))
        return rc;
    ed_graph *g = c->g;
    if (cnt == 1 && s_before_layers(c)) {
        float x = v[0];
        free(v);
        if (t[0] == 'A')
            g->input_offset += x;
        else if (t[0] == 'S')
            g->input_offset -= x;
        else if (t[0] == 'M')
            g->input_scale *= x, g->input_offset *= x;
        else if (x != 0.0f)
            g->input_scale /= x, g->input_offset /= x;
        else
            return ed_onnx_node_err(c, ED_EFORMAT, n, "division by zero");
        return ED_OK;
    }
    if (t[0] == 'A' && c->last_matmul >= 0 && c->last_matmul == g->n_ops - 1 &&
        cnt == g->ops[c->last_matmul].out_ch) {
        ed_gop *op = &g->ops[c->last_matmul];
        for (int64_t o = 0; o < cnt; o++)
            op->b[o] += v[o];
        free(v);
        c->last_matmul = -1;
        return ED_OK;
    }
    free(v);
    return ed_onnx_node_err(
        c, ED_EFORMAT, n,
        "%s by a constant is supported only as a MatMul bias (Add) or as a scalar before "
        "the first layer (input scaling)",
        t);
}

/* Conv: 2-D, group 1, dilations 1; W (M, C, kh, kw) and optional B (M) constants. */
static int s_conv(s_ctx *c, const s_node_t *n)
{
    if (s_attr_i(n, "group", 1) != 1)
        return ed_onnx_node_err(c, ED_EFORMAT, n, "group=%lld is not supported (only 1)",
                                (long long)s_attr_i(n, "group", 1));
    s_tensor *W;
    int rc = s_const_input(c, n, 1, &W);
    if (rc)
        return rc;
    if (W->n_dims != 4)
        return ed_onnx_node_err(c, ED_EFORMAT, n,
                                "weights must be 4-D (2-D convolution), they have %zu dims",
                                W->n_dims);
    float *wv;
    int64_t cnt;
    if ((rc = s_floats(c, n, W, &wv, &cnt)))
        return rc;
    ed_gop *op = s_add(c, ED_GOP_CONV, n);
    if (!op) {
        free(wv);
        return c->err->code;
    }
    op->w = wv;
    op->out_ch = (int)W->dims[0];
    op->in_ch = (int)W->dims[1];
    if ((rc = s_window(c, n, op, false)))
        return rc;
    if ((op->kh && op->kh != W->dims[2]) || (op->kw && op->kw != W->dims[3]))
        return ed_onnx_node_err(c, ED_ESHAPE, n,
                                "kernel_shape %dx%d does not match the weights' %lldx%lld", op->kh,
                                op->kw, (long long)W->dims[2], (long long)W->dims[3]);
    op->kh = (int)W->dims[2];
    op->kw = (int)W->dims[3];
    if (op->out_ch < 1 || op->in_ch < 1 || op->kh < 1 || op->kw < 1)
        return ed_onnx_node_err(c, ED_ESHAPE, n, "empty weights");
    op->b = calloc((size_t)op->out_ch, sizeof(float));
    if (!op->b)
        return ed_err_set(c->err, ED_ENOMEM, "%s: out of memory", c->name);
    if (n->n_input > 2 && n->input[2] && n->input[2][0]) {
        s_tensor *B;
        float *bv;
        if ((rc = s_const_input(c, n, 2, &B)) || (rc = s_floats(c, n, B, &bv, &cnt)))
            return rc;
        if (cnt != op->out_ch) {
            free(bv);
            return ed_onnx_node_err(c, ED_ESHAPE, n, "bias has %lld values, expected %d",
                                    (long long)cnt, op->out_ch);
        }
        memcpy(op->b, bv, (size_t)cnt * sizeof(float));
        free(bv);
    }
    return ED_OK;
}

static int s_pool(s_ctx *c, const s_node_t *n, ed_gop_kind kind)
{
    ed_gop *op = s_add(c, kind, n);
    if (!op)
        return c->err->code;
    op->count_include_pad = s_attr_i(n, "count_include_pad", 0) != 0;
    return kind == ED_GOP_GLOBAL_AVGPOOL ? ED_OK : s_window(c, n, op, true);
}

/* BatchNormalization (inference): folded into the Dense/Conv emitted just before, else an affine
 * op. */
static int s_batchnorm(s_ctx *c, const s_node_t *n, ed_gshape in)
{
    if (s_attr_i(n, "training_mode", 0) != 0)
        return ed_onnx_node_err(c, ED_EFORMAT, n, "training_mode=1 is not supported");
    double eps = s_attr_f(n, "epsilon", 1e-5f);
    float *p[4] = {0};
    int64_t cnt[4];
    int rc = ED_OK;
    int ch = in.d[0];
    for (int i = 0; i < 4 && !rc; i++) {
        s_tensor *t;
        if (!(rc = s_const_input(c, n, (size_t)i + 1, &t)) &&
            !(rc = s_floats(c, n, t, &p[i], &cnt[i])) && cnt[i] != ch)
            rc = ed_onnx_node_err(c, ED_ESHAPE, n,
                                  "parameter %d has %lld values, the input has %d channels", i + 1,
                                  (long long)cnt[i], ch);
    }
    /* y = (x - mean) / sqrt(var + eps) * scale + B  =  x * s + (B - mean * s) */
    for (int k = 0; !rc && k < ch; k++) {
        if (p[3][k] + eps <= 0.0)
            rc = ed_onnx_node_err(c, ED_EFORMAT, n, "variance + epsilon is not positive");
        double s = (double)p[0][k] / sqrt((double)p[3][k] + eps);
        p[0][k] = (float)s;
        p[1][k] = (float)((double)p[1][k] - (double)p[2][k] * s);
    }
    ed_graph *g = c->g;
    int prev = c->last_weight_node;
    if (!rc && prev >= 0 && prev == g->n_ops - 1 && g->ops[prev].out_ch == ch) {
        ed_gop *op = &g->ops[prev];
        size_t per = op->kind == ED_GOP_CONV ? (size_t)op->in_ch * (size_t)op->kh * (size_t)op->kw
                                             : (size_t)op->in_ch;
        for (int k = 0; k < ch; k++) {
            for (size_t j = 0; j < per; j++)
                op->w[(size_t)k * per + j] *= p[0][k];
            op->b[k] = op->b[k] * p[0][k] + p[1][k];
        }
        ed_log_debug("%s: BatchNormalization '%s' folded into %s '%s'", c->name, s_str(n->name),
                     ed_gop_name(op->kind), op->name);
    } else if (!rc) {
        ed_gop *op = s_add(c, ED_GOP_AFFINE, n);
        if (!op) {
            rc = c->err->code;
        } else {
            op->in_ch = ch;
            op->w = p[0];
            op->b = p[1];
            p[0] = p[1] = NULL;
        }
    }
    for (int i = 0; i < 4; i++)
        free(p[i]);
    return rc;
}

/* Flatten (axis 1) or Reshape to (N, -1): a Flatten op when the tensor is 4-D, nothing when 2-D. */
static int s_flatten(s_ctx *c, const s_node_t *n, ed_gshape in, bool reshape)
{
    int rank = in.rank + 1;
    int64_t per = in.rank == 3 ? (int64_t)in.d[0] * in.d[1] * in.d[2] : in.d[0];
    if (!reshape) {
        int64_t axis = s_attr_i(n, "axis", 1);
        if (axis < 0)
            axis += rank;
        if (axis != 1)
            return ed_onnx_node_err(c, ED_EFORMAT, n,
                                    "axis=%lld is not supported (only 1: keep the batch)",
                                    (long long)s_attr_i(n, "axis", 1));
    } else {
        s_tensor *t;
        int64_t sh[8];
        int cnt = 0;
        int rc = s_const_input(c, n, 1, &t);
        if (rc || (rc = s_ints(c, n, t, sh, 8, &cnt)))
            return rc;
        if (cnt != 2)
            return ed_onnx_node_err(c, ED_ESHAPE, n,
                                    "reshape to %d-D is not supported (only 2-D (N, -1))", cnt);
        if (s_attr_i(n, "allowzero", 0) != 0)
            return ed_onnx_node_err(c, ED_EFORMAT, n, "allowzero=1 is not supported");
        bool batch_ok =
            sh[0] == 0 || (sh[0] == -1 && (sh[1] == per || (sh[1] == 0 && in.rank == 1)));
        if (!batch_ok)
            return ed_onnx_node_err(
                c, ED_ESHAPE, n,
                "shape (%lld, %lld) cannot be resolved for batch N (the batch entry must be 0 "
                "or -1 with the features fixed)",
                (long long)sh[0], (long long)sh[1]);
        if (!(sh[1] == -1 || sh[1] == per || (sh[1] == 0 && in.rank == 1)))
            return ed_onnx_node_err(c, ED_ESHAPE, n,
                                    "shape (%lld, %lld) does not keep %lld features per sample",
                                    (long long)sh[0], (long long)sh[1], (long long)per);
    }
    if (in.rank == 3 && !s_add(c, ED_GOP_FLATTEN, n))
        return c->err->code;
    return ED_OK;
}

/* Pad: only the all-zero Pad that PyTorch emits before AveragePool (an identity) is accepted. */
static int s_pad(s_ctx *c, const s_node_t *n)
{
    const Onnx__AttributeProto *a = s_attr(n, "mode");
    if (a && a->has_s && !(a->s.len == 8 && memcmp(a->s.data, "constant", 8) == 0))
        return ed_onnx_node_err(c, ED_EFORMAT, n, "only constant padding is supported");
    s_tensor *t;
    int64_t p[8];
    int cnt = 0;
    int rc = s_const_input(c, n, 1, &t);
    if (rc || (rc = s_ints(c, n, t, p, 8, &cnt)))
        return rc;
    for (int i = 0; i < cnt; i++)
        if (p[i] != 0)
            return ed_onnx_node_err(
                c, ED_EFORMAT, n,
                "non-zero padding is not supported as its own op (pad in the Conv/pool)");
    ed_log_debug("%s: zero Pad '%s' dropped", c->name, s_str(n->name));
    return ED_OK;
}

int ed_onnx_node(ed_onnx_ctx *c, const Onnx__NodeProto *n, size_t data_idx, bool last)
{
    const char *t = s_str(n->op_type);
    ed_gshape in;
    int rc = s_shape(c, &in);
    if (rc)
        return rc;
    int before = c->g->n_ops;
    bool arith = strcmp(t, "Add") == 0 || strcmp(t, "Sub") == 0 || strcmp(t, "Mul") == 0 ||
                 strcmp(t, "Div") == 0;
    if (data_idx != 0 && !arith)
        return ed_onnx_node_err(c, ED_EFORMAT, n, "the chain's tensor must be the first input");
    if (strcmp(t, "Gemm") == 0)
        rc = s_gemm(c, n, in);
    else if (strcmp(t, "MatMul") == 0)
        rc = s_matmul(c, n, in);
    else if (arith)
        rc = s_arith(c, n, t, data_idx);
    else if (strcmp(t, "Conv") == 0)
        rc = s_conv(c, n);
    else if (strcmp(t, "Relu") == 0)
        rc = s_add(c, ED_GOP_RELU, n) ? ED_OK : c->err->code;
    else if (strcmp(t, "MaxPool") == 0)
        rc = s_pool(c, n, ED_GOP_MAXPOOL);
    else if (strcmp(t, "AveragePool") == 0)
        rc = s_pool(c, n, ED_GOP_AVGPOOL);
    else if (strcmp(t, "GlobalAveragePool") == 0)
        rc = s_pool(c, n, ED_GOP_GLOBAL_AVGPOOL);
    else if (strcmp(t, "BatchNormalization") == 0)
        rc = s_batchnorm(c, n, in);
    else if (strcmp(t, "Flatten") == 0 || strcmp(t, "Reshape") == 0)
        rc = s_flatten(c, n, in, t[0] == 'R');
    else if (strcmp(t, "Pad") == 0)
        rc = s_pad(c, n);
    else if (strcmp(t, "Dropout") == 0 || strcmp(t, "Identity") == 0)
        ed_log_debug("%s: %s '%s' dropped (inference)", c->name, t, s_str(n->name));
    else if (strcmp(t, "Softmax") == 0 || strcmp(t, "LogSoftmax") == 0) {
        if (!last || in.rank != 1)
            return ed_onnx_node_err(c, ED_EFORMAT, n,
                                    "only a trailing %s on 2-D logits is supported", t);
        ed_log_info("%s: trailing %s '%s' dropped: the worker serves logits", c->name, t,
                    s_str(n->name));
    } else
        return ed_onnx_node_err(c, ED_EFORMAT, n, "unsupported op");
    if (rc)
        return rc;
    if (c->g->n_ops > before) {
        ed_gop_kind k = c->g->ops[c->g->n_ops - 1].kind;
        c->last_weight_node = (k == ED_GOP_DENSE || k == ED_GOP_CONV) ? c->g->n_ops - 1 : -1;
        if (strcmp(t, "MatMul") != 0)
            c->last_matmul = -1;
    }
    return s_shape(c, &in);
}
