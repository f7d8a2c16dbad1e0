/*
 * ed_mlp: architecture strings, the dense MLP's parameter block, and its forward/backward kernels.
 *
 * This is the one module in common/ that calls BLAS for the MLP. Each weight layer is one
 * cblas_sgemm (row-major, H = X W^T) followed by a single pass that adds the bias, applies ReLU
 * (hidden layers) and the inverted-dropout mask of the next layer's input. The backward pass runs
 * the same layers in reverse: dW = dH^T X, db = column sums of dH, dX = dH W, and the ReLU/dropout
 * derivative is applied to dX in one pass. Nothing is allocated per call: all buffers live in one
 * workspace block sized for max_batch.
 */
#include "ed_mlp.h"
#include "ed_mem.h"
#include "ed_simd.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Widths above this are refused by the parser: they cannot be meant, and keeping every
 * batch * width product far from overflow keeps the size arithmetic simple. */
#define S_MAX_WIDTH (1 << 20)
/* Workspace sub-buffers start on 64-byte boundaries (16 floats). */
#define S_ALIGN_FLOATS 16

/* ------------------------------------------------------------------------------------------------
 * Architecture
 * --------------------------------------------------------------------------------------------- */

static bool s_arch_valid(const ed_arch *a)
{
    if (!a || a->n_layers < 1 || a->n_layers > ED_MLP_MAX_LAYERS)
        return false;
    for (int l = 0; l <= a->n_layers; l++)
        if (a->widths[l] < 1 || a->widths[l] > S_MAX_WIDTH)
            return false;
    return true;
}

int ed_arch_parse(const char *text, ed_arch *out, ed_err *err)
{
    if (!text || !out)
        return ed_err_set(err, ED_EINVAL, "arch: NULL argument");
    ed_arch a;
    memset(&a, 0, sizeof a);
    int n = 0;
    const char *p = text;
    for (;;) {
        /* One entry: optional blanks, digits, optional blanks, then ',' or end. */
        const char *start = p;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (*start == ' ' || *start == '\t')) {
            start++;
            len--;
        }
        while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t'))
            len--;
        if (n >= ED_MLP_MAX_LAYERS + 1)
            return ed_err_set(err, ED_EINVAL,
                              "arch \"%s\": too many widths (at most %d, i.e. %d weight layers)",
                              text, ED_MLP_MAX_LAYERS + 1, ED_MLP_MAX_LAYERS);
        if (len == 0)
            return ed_err_set(err, ED_EINVAL, "arch \"%s\": entry %d is empty", text, n + 1);
        long v = 0;
        for (size_t i = 0; i < len; i++) {
            if (start[i] < '0' || start[i] > '9')
                return ed_err_set(err, ED_EINVAL,
                                  "arch \"%s\": entry %d (\"%.*s\") is not a positive integer",
                                  text, n + 1, (int)len, start);
            if (v <= S_MAX_WIDTH)
                v = v * 10 + (start[i] - '0');
        }
        if (v < 1)
            return ed_err_set(err, ED_EINVAL, "arch \"%s\": entry %d (\"%.*s\") must be >= 1", text,
                              n + 1, (int)len, start);
        if (v > S_MAX_WIDTH)
            return ed_err_set(err, ED_EINVAL, "arch \"%s\": entry %d (\"%.*s\") exceeds %d", text,
                              n + 1, (int)len, start, S_MAX_WIDTH);
        a.widths[n++] = (int)v;
        if (!end)
            break;
        p = end + 1;
    }
    if (n < 2)
        return ed_err_set(err, ED_EINVAL,
                          "arch \"%s\": need at least 2 widths (input and output), got %d", text,
                          n);
    a.n_layers = n - 1;
    *out = a;
    return ED_OK;
}

void ed_arch_format(const ed_arch *arch, char *buf, size_t size)
{
    if (!buf || size == 0)
        return;
    buf[0] = '\0';
    if (!arch || arch->n_layers < 1 || arch->n_layers > ED_MLP_MAX_LAYERS)
        return;
    size_t used = 0;
    for (int l = 0; l <= arch->n_layers && used < size; l++) {
        int w = snprintf(buf + used, size - used, "%s%d", l ? "," : "", arch->widths[l]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    buf[size - 1 < used ? size - 1 : used] = '\0';
}

bool ed_arch_equal(const ed_arch *a, const ed_arch *b)
{
    if (!a || !b || a->n_layers != b->n_layers)
        return false;
    if (a->n_layers < 1 || a->n_layers > ED_MLP_MAX_LAYERS)
        return false;
    for (int l = 0; l <= a->n_layers; l++)
        if (a->widths[l] != b->widths[l])
            return false;
    return true;
}

size_t ed_arch_param_count(const ed_arch *arch)
{
    if (!s_arch_valid(arch))
        return 0;
    size_t n = 0;
    for (int l = 0; l < arch->n_layers; l++)
        n += (size_t)arch->widths[l + 1] * (size_t)arch->widths[l] + (size_t)arch->widths[l + 1];
    return n;
}

double ed_arch_forward_flops(const ed_arch *arch)
{
    if (!s_arch_valid(arch))
        return 0.0;
    double f = 0.0;
    for (int l = 0; l < arch->n_layers; l++)
        f += 2.0 * (double)arch->widths[l + 1] * (double)arch->widths[l];
    return f;
}

/* ------------------------------------------------------------------------------------------------
 * Model
 * --------------------------------------------------------------------------------------------- */

/* Points W[l], b[l] into a block laid out as [W_0 | b_0 | W_1 | b_1 | ...]. */
static void s_set_views(const ed_arch *a, float *base, float **W, float **b)
{
    float *p = base;
    for (int l = 0; l < a->n_layers; l++) {
        W[l] = p;
        p += (size_t)a->widths[l + 1] * (size_t)a->widths[l];
        b[l] = p;
        p += a->widths[l + 1];
    }
}

ed_mlp *ed_mlp_new(const ed_arch *arch)
{
    if (!s_arch_valid(arch))
        return NULL;
    ed_mlp *m = calloc(1, sizeof *m);
    if (!m)
        goto fail;
    m->arch = *arch;
    m->n_params = ed_arch_param_count(arch);
    m->params = ed_mem_calloc(m->n_params, sizeof(float));
    if (!m->params)
        goto fail;
    s_set_views(arch, m->params, m->W, m->b);
    return m;
fail:
    ed_mlp_destroy(&m);
    return NULL;
}

void ed_mlp_destroy(ed_mlp **pm)
{
    if (!pm || !*pm)
        return;
    free((*pm)->params);
    free(*pm);
    *pm = NULL;
}

void ed_mlp_init(ed_mlp *m, ed_rng *rng)
{
    const ed_arch *a = &m->arch;
    for (int l = 0; l < a->n_layers; l++) {
        size_t nw = (size_t)a->widths[l + 1] * (size_t)a->widths[l];
        float std = sqrtf(2.0f / (float)a->widths[l]);
        float *W = m->W[l];
        for (size_t i = 0; i < nw; i++)
            W[i] = std * ed_rng_normal(rng);
        memset(m->b[l], 0, (size_t)a->widths[l + 1] * sizeof(float));
    }
}

/* ------------------------------------------------------------------------------------------------
 * Workspace
 * --------------------------------------------------------------------------------------------- */

static size_t s_round_up(size_t n)
{
    return (n + S_ALIGN_FLOATS - 1) / S_ALIGN_FLOATS * S_ALIGN_FLOATS;
}

ed_mlp_ws *ed_mlp_ws_new(const ed_arch *arch, int max_batch, bool train)
{
    if (!s_arch_valid(arch) || max_batch < 1)
        return NULL;
    const int L = arch->n_layers;
    const size_t B = (size_t)max_batch;
    ed_mlp_ws *ws = calloc(1, sizeof *ws);
    if (!ws)
        goto fail;
    ws->arch = *arch;
    ws->max_batch = max_batch;

    /* First pass computes offsets (in floats), second pass sets the pointers. */
    size_t off_act[ED_MLP_MAX_LAYERS + 1] = {0}, off_mask[ED_MLP_MAX_LAYERS] = {0};
    size_t off_dbuf[2] = {0}, off_grads = 0;
    size_t total = 0;
    for (int l = 0; l <= L; l++) {
        off_act[l] = total;
        total += s_round_up(B * (size_t)arch->widths[l]);
    }
    size_t n_params = ed_arch_param_count(arch);
    if (train) {
        for (int l = 0; l < L; l++) {
            off_mask[l] = total;
            total += s_round_up(B * (size_t)arch->widths[l]);
        }
        /* dX of layer l > 0 has width widths[l]; size for the widest of widths[1..L]. */
        int maxw = 1;
        for (int l = 1; l <= L; l++)
            if (arch->widths[l] > maxw)
                maxw = arch->widths[l];
        for (int k = 0; k < 2; k++) {
            off_dbuf[k] = total;
            total += s_round_up(B * (size_t)maxw);
        }
        off_grads = total;
        total += s_round_up(n_params);
    }
    ws->block = ed_mem_calloc(total, sizeof(float)); /* 64-byte aligned: S_ALIGN_FLOATS floats */
    if (!ws->block)
        goto fail;
    for (int l = 0; l <= L; l++)
        ws->act[l] = ws->block + off_act[l];
    if (train) {
        for (int l = 0; l < L; l++)
            ws->mask[l] = ws->block + off_mask[l];
        ws->dbuf[0] = ws->block + off_dbuf[0];
        ws->dbuf[1] = ws->block + off_dbuf[1];
        ws->grads = ws->block + off_grads;
        s_set_views(arch, ws->grads, ws->dW, ws->db);
    }
    return ws;
fail:
    ed_mlp_ws_destroy(&ws);
    return NULL;
}

void ed_mlp_ws_destroy(ed_mlp_ws **pws)
{
    if (!pws || !*pws)
        return;
    free((*pws)->block);
    free(*pws);
    *pws = NULL;
}

/* ------------------------------------------------------------------------------------------------
 * Kernels
 * --------------------------------------------------------------------------------------------- */

/* h (B, out) <- h + b, then ReLU when `relu`, then times mask (B, out) when non-NULL. */
ED_VECTOR_CLONES
static void s_bias_act(float *restrict h, const float *restrict b, const float *restrict mask,
                       int B, int out, bool relu)
{
    for (int i = 0; i < B; i++) {
        float *restrict row = h + (size_t)i * out;
        if (mask) {
            const float *restrict mrow = mask + (size_t)i * out;
            for (int j = 0; j < out; j++) {
                float v = row[j] + b[j];
                row[j] = (v > 0.0f ? v : 0.0f) * mrow[j];
            }
        } else if (relu) {
            for (int j = 0; j < out; j++) {
                float v = row[j] + b[j];
                row[j] = v > 0.0f ? v : 0.0f;
            }
        } else {
            for (int j = 0; j < out; j++)
                row[j] += b[j];
        }
    }
}

static float s_layer_rate(const ed_mlp_ws *ws, int l)
{
    return l == 0 ? ws->dropout_in : ws->dropout_hidden;
}

int ed_mlp_forward(const ed_mlp *m, ed_mlp_ws *ws, const float *x, int batch, bool train,
                   ed_rng *rng, const float **logits, ed_err *err)
{
    if (!m || !ws || !x || !logits)
        return ed_err_set(err, ED_EINVAL, "mlp forward: NULL argument");
    if (!ed_arch_equal(&m->arch, &ws->arch)) {
        char am[256], aw[256];
        ed_arch_format(&m->arch, am, sizeof am);
        ed_arch_format(&ws->arch, aw, sizeof aw);
        return ed_err_set(err, ED_ESHAPE,
                          "mlp forward: model arch %s differs from workspace arch %s", am, aw);
    }
    if (batch < 1)
        return ed_err_set(err, ED_EINVAL, "mlp forward: batch %d < 1", batch);
    if (batch > ws->max_batch)
        return ed_err_set(err, ED_ESHAPE,
                          "mlp forward: batch %d exceeds the workspace max_batch %d", batch,
                          ws->max_batch);
    const ed_arch *a = &m->arch;
    const int L = a->n_layers;
    bool use_mask[ED_MLP_MAX_LAYERS] = {false};
    bool any_mask = false;
    if (train) {
        for (int l = 0; l < L; l++) {
            float p = s_layer_rate(ws, l);
            if (!(p >= 0.0f && p < 1.0f))
                return ed_err_set(err, ED_EINVAL,
                                  "mlp forward: %s dropout rate %g is not in [0, 1)",
                                  l == 0 ? "input" : "hidden", (double)p);
            use_mask[l] = p > 0.0f;
            any_mask = any_mask || use_mask[l];
        }
        if (any_mask && !ws->mask[0])
            return ed_err_set(err, ED_EINVAL,
                              "mlp forward: dropout needs a workspace created with train = true");
        if (any_mask && !rng)
            return ed_err_set(err, ED_EINVAL, "mlp forward: dropout needs an rng");
    }

    /* act[0] = x (times the input mask). */
    const size_t n0 = (size_t)batch * (size_t)a->widths[0];
    float *x0 = ws->act[0];
    if (use_mask[0]) {
        float *restrict mk = ws->mask[0];
        ed_rng_dropout_mask(mk, n0, ws->dropout_in, rng);
        for (size_t i = 0; i < n0; i++)
            x0[i] = x[i] * mk[i];
    } else if (x != x0) {
        memcpy(x0, x, n0 * sizeof(float));
    }

    for (int l = 0; l < L; l++) {
        const int in = a->widths[l], out = a->widths[l + 1];
        const bool hidden = l + 1 < L;
        float *h = ws->act[l + 1];
        const float *next_mask = NULL;
        if (hidden && use_mask[l + 1]) {
            ed_rng_dropout_mask(ws->mask[l + 1], (size_t)batch * (size_t)out, ws->dropout_hidden,
                                rng);
            next_mask = ws->mask[l + 1];
        }
        /* H (batch, out) = X (batch, in) W^T (in, out) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, batch, out, in, 1.0f, ws->act[l], in,
                    m->W[l], in, 0.0f, h, out);
        s_bias_act(h, m->b[l], next_mask, batch, out, hidden);
    }
    ws->masks_used = any_mask;
    ws->last_batch = batch;
    *logits = ws->act[L];
    return ED_OK;
}

/* db (out) = column sums of dH (B, out). */
static void s_col_sums(float *restrict db, const float *restrict dH, int B, int out)
{
    memset(db, 0, (size_t)out * sizeof(float));
    for (int i = 0; i < B; i++) {
        const float *restrict row = dH + (size_t)i * out;
        for (int j = 0; j < out; j++)
            db[j] += row[j];
    }
}

/* dX (n) <- dX where act > 0 (ReLU; act is post-dropout, so also zero where dropped), times mask.
 */
static void s_relu_mask_back(float *restrict dX, const float *restrict act,
                             const float *restrict mask, size_t n)
{
    if (mask) {
        for (size_t i = 0; i < n; i++)
            dX[i] = act[i] > 0.0f ? dX[i] * mask[i] : 0.0f;
    } else {
        for (size_t i = 0; i < n; i++)
            dX[i] = act[i] > 0.0f ? dX[i] : 0.0f;
    }
}

int ed_mlp_backward(const ed_mlp *m, ed_mlp_ws *ws, const float *dlogits, int batch)
{
    if (!m || !ws || !dlogits || !ws->grads)
        return ED_EINVAL;
    if (!ed_arch_equal(&m->arch, &ws->arch))
        return ED_EINVAL;
    if (batch < 1 || batch != ws->last_batch)
        return ED_EINVAL;
    const ed_arch *a = &m->arch;
    const int L = a->n_layers;
    const float *dH = dlogits;
    int cur = 0;
    for (int l = L - 1; l >= 0; l--) {
        const int in = a->widths[l], out = a->widths[l + 1];
        /* dW (out, in) = dH^T (out, batch) X (batch, in) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, batch, 1.0f, dH, out,
                    ws->act[l], in, 0.0f, ws->dW[l], in);
        s_col_sums(ws->db[l], dH, batch, out);
        if (l == 0)
            break;
        /* dX (batch, in) = dH (batch, out) W (out, in) */
        float *dX = ws->dbuf[cur];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, batch, in, out, 1.0f, dH, out,
                    m->W[l], in, 0.0f, dX, in);
        const float *mask = ws->masks_used && s_layer_rate(ws, l) > 0.0f ? ws->mask[l] : NULL;
        s_relu_mask_back(dX, ws->act[l], mask, (size_t)batch * (size_t)in);
        dH = dX;
        cur ^= 1;
    }
    return ED_OK;
}
