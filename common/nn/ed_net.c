/*
 * ed_net: the layer-stack model: blocks and views, workspace planning, and the forward/backward
 * passes that call the kernels of ed_layer_ops in layer order (see ed_net.h).
 *
 * A legacy MLP stack delegates every call to ed_mlp on the same parameter block, so its numbers and
 * speed are exactly ed_mlp's. Other stacks get one float block per workspace: activations (flatten
 * aliases its input, no copy; an inference workspace keeps them in two ping-pong buffers), dropout
 * masks and BN x_hat, BN batch statistics, two backward ping-pong buffers, the conv lowering
 * scratch and the gradients; maxpool argmax indices live in one int32 block. Everything is sized at
 * ed_net_ws_new; a forward never allocates.
 */
#include "ed_net.h"
#include "ed_layer_ops.h"
#include "ed_mem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S_ALIGN_FLOATS 16
/* Floats of each conv lowering buffer (col, gemm): bounds the samples lowered at once. */
#define S_CONV_BUDGET ((size_t)1 << 22)

static size_t s_round_up(size_t n)
{
    return (n + S_ALIGN_FLOATS - 1) / S_ALIGN_FLOATS * S_ALIGN_FLOATS;
}

static bool s_stack_valid(const ed_stack *s)
{
    return s && s->n_layers >= 1 && s->n_layers <= ED_STACK_MAX_LAYERS &&
           ed_shape_size(s->input) >= 1;
}

/* Weight/bias (or gamma/beta) views of every layer into a block of the parameter layout. */
static void s_param_views(const ed_stack *s, float *base, float **W, float **b)
{
    for (int l = 0; l < s->n_layers; l++) {
        const ed_layer *L = &s->layers[l];
        W[l] = b[l] = NULL;
        if (!L->n_params)
            continue;
        W[l] = base + L->param_off;
        b[l] = W[l] + (L->n_params - (L->kind == ED_LAYER_BN ? (size_t)L->in.c : (size_t)L->units));
    }
}

ed_net *ed_net_new(const ed_stack *arch)
{
    if (!s_stack_valid(arch))
        return NULL;
    ed_net *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->arch = *arch;
    m->n_params = arch->n_params;
    m->n_state = arch->n_state;
    if (arch->mlp) {
        m->mlp = ed_mlp_new(&arch->mlp_arch);
        if (!m->mlp || m->mlp->n_params != m->n_params)
            goto fail;
        m->params = m->mlp->params;
    } else {
        m->params = ed_mem_calloc(m->n_params ? m->n_params : 1, sizeof(float));
        if (!m->params)
            goto fail;
        if (m->n_state) {
            m->state = calloc(m->n_state, sizeof(float));
            if (!m->state)
                goto fail;
        }
    }
    s_param_views(arch, m->params, m->W, m->b);
    for (int l = 0; l < arch->n_layers; l++) {
        const ed_layer *L = &arch->layers[l];
        if (L->kind != ED_LAYER_BN)
            continue;
        m->mean[l] = m->state + L->state_off;
        m->var[l] = m->mean[l] + L->in.c;
        for (int c = 0; c < L->in.c; c++)
            m->var[l][c] = 1.0f;
    }
    return m;
fail:
    ed_net_destroy(&m);
    return NULL;
}

void ed_net_destroy(ed_net **pm)
{
    if (!pm || !*pm)
        return;
    ed_net *m = *pm;
    if (m->mlp)
        ed_mlp_destroy(&m->mlp);
    else
        free(m->params);
    free(m->state);
    free(m);
    *pm = NULL;
}

void ed_net_init(ed_net *m, ed_rng *rng)
{
    if (m->mlp) {
        ed_mlp_init(m->mlp, rng);
        return;
    }
    const ed_stack *s = &m->arch;
    for (int l = 0; l < s->n_layers; l++) {
        const ed_layer *L = &s->layers[l];
        if (L->kind == ED_LAYER_DENSE || L->kind == ED_LAYER_CONV) {
            const size_t kk = L->kind == ED_LAYER_CONV ? (size_t)L->k * L->k : 1;
            const size_t nw = (size_t)L->units * L->in.c * kk;
            const float std = sqrtf(2.0f / (float)((size_t)L->in.c * kk));
            for (size_t i = 0; i < nw; i++)
                m->W[l][i] = std * ed_rng_normal(rng);
            memset(m->b[l], 0, (size_t)L->units * sizeof(float));
        } else if (L->kind == ED_LAYER_BN) {
            for (int c = 0; c < L->in.c; c++) {
                m->W[l][c] = 1.0f;
                m->b[l][c] = 0.0f;
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------------
 * Workspace
 * --------------------------------------------------------------------------------------------- */

/* Offsets (floats) of every buffer of a generic workspace, computed once. */
typedef struct {
    size_t act[ED_STACK_MAX_LAYERS + 1], aux[ED_STACK_MAX_LAYERS], bn[ED_STACK_MAX_LAYERS];
    size_t dbuf[2], col, gemm, grads, total;
    size_t argmax[ED_STACK_MAX_LAYERS], itotal;
    bool has_aux[ED_STACK_MAX_LAYERS], has_argmax[ED_STACK_MAX_LAYERS];
    size_t col_n, gemm_n;
} s_plan;

static void s_plan_make(const ed_stack *s, size_t B, bool train, int chunk, s_plan *p)
{
    memset(p, 0, sizeof *p);
    size_t t = 0;
    p->act[0] = t;
    t += s_round_up(B * ed_shape_size(s->input));
    /* Inference needs no activation after its consumer ran: two ping-pong buffers hold them all. */
    size_t pp_size = 0, pp[2] = {0, 0};
    if (!train) {
        for (int l = 0; l < s->n_layers; l++)
            if (B * ed_shape_size(s->layers[l].out) > pp_size)
                pp_size = B * ed_shape_size(s->layers[l].out);
        for (int k = 0; k < 2; k++) {
            pp[k] = t;
            t += s_round_up(pp_size);
        }
    }
    int cur = -1; /* ping-pong buffer holding act[l]; -1: the input buffer */
    for (int l = 0; l < s->n_layers; l++) {
        const ed_layer *L = &s->layers[l];
        if (L->kind == ED_LAYER_FLATTEN) {
            p->act[l + 1] = p->act[l];
        } else if (!train) {
            cur = cur == 0 ? 1 : 0;
            p->act[l + 1] = pp[cur];
        } else {
            p->act[l + 1] = t;
            t += s_round_up(B * ed_shape_size(L->out));
        }
        if (L->kind == ED_LAYER_CONV) {
            size_t c = ed_conv_col_size(L, chunk), g = ed_conv_gemm_size(L, chunk);
            p->col_n = c > p->col_n ? c : p->col_n;
            p->gemm_n = g > p->gemm_n ? g : p->gemm_n;
        }
    }
    p->col = t;
    t += s_round_up(p->col_n);
    p->gemm = t;
    t += s_round_up(p->gemm_n);
    if (train) {
        size_t maxd = 1;
        for (int l = 0; l < s->n_layers; l++) {
            const ed_layer *L = &s->layers[l];
            if (l > 0 && ed_shape_size(L->in) > maxd)
                maxd = ed_shape_size(L->in);
            if ((L->kind == ED_LAYER_DROPOUT && L->rate > 0.0f) || L->kind == ED_LAYER_BN) {
                p->has_aux[l] = true;
                p->aux[l] = t;
                t += s_round_up(B * ed_shape_size(L->in));
            }
            if (L->kind == ED_LAYER_BN) {
                p->bn[l] = t;
                t += s_round_up(3 * (size_t)L->in.c);
            }
            if (L->kind == ED_LAYER_MAXPOOL) {
                p->has_argmax[l] = true;
                p->argmax[l] = p->itotal;
                p->itotal += s_round_up(B * ed_shape_size(L->out));
            }
        }
        for (int k = 0; k < 2; k++) {
            p->dbuf[k] = t;
            t += s_round_up(B * maxd);
        }
        p->grads = t;
        t += s_round_up(s->n_params);
    }
    p->total = t;
}

/* Samples per conv lowering step: as many as fit S_CONV_BUDGET floats per buffer, at most B. */
static int s_conv_chunk(const ed_stack *s, int B)
{
    size_t per = 1;
    for (int l = 0; l < s->n_layers; l++) {
        const ed_layer *L = &s->layers[l];
        if (L->kind != ED_LAYER_CONV)
            continue;
        size_t c = ed_conv_col_size(L, 1), g = ed_conv_gemm_size(L, 1);
        per = c > per ? c : per;
        per = g > per ? g : per;
    }
    size_t chunk = S_CONV_BUDGET / per;
    if (chunk < 1)
        chunk = 1;
    return chunk > (size_t)B ? B : (int)chunk;
}

static ed_net_ws *s_ws_mlp(ed_net_ws *ws, bool train)
{
    ws->mlp = ed_mlp_ws_new(&ws->arch.mlp_arch, ws->max_batch, train);
    if (!ws->mlp)
        return NULL;
    ws->act[0] = ws->mlp->act[0];
    ws->act[ws->arch.n_layers] = ws->mlp->act[ws->arch.mlp_arch.n_layers];
    if (train) {
        ws->grads = ws->mlp->grads;
        s_param_views(&ws->arch, ws->grads, ws->dW, ws->db);
    }
    return ws;
}

ed_net_ws *ed_net_ws_new(const ed_stack *arch, int max_batch, bool train)
{
    if (!s_stack_valid(arch) || max_batch < 1)
        return NULL;
    ed_net_ws *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    ws->arch = *arch;
    ws->max_batch = max_batch;
    ws->train = train;
    if (arch->mlp) {
        if (!s_ws_mlp(ws, train))
            goto fail;
        return ws;
    }
    ws->conv_chunk = s_conv_chunk(arch, max_batch);
    s_plan *p = malloc(sizeof *p);
    if (!p)
        goto fail;
    s_plan_make(arch, (size_t)max_batch, train, ws->conv_chunk, p);
    ws->block = ed_mem_calloc(p->total, sizeof(float)); /* 64-byte aligned: S_ALIGN_FLOATS floats */
    if (!ws->block) {
        free(p);
        goto fail;
    }
    if (p->itotal) {
        ws->iblock = calloc(p->itotal, sizeof(int32_t));
        if (!ws->iblock) {
            free(p);
            goto fail;
        }
    }
    for (int l = 0; l <= arch->n_layers; l++)
        ws->act[l] = ws->block + p->act[l];
    ws->col = p->col_n ? ws->block + p->col : NULL;
    ws->gemm = p->gemm_n ? ws->block + p->gemm : NULL;
    if (train) {
        for (int l = 0; l < arch->n_layers; l++) {
            if (p->has_aux[l])
                ws->aux[l] = ws->block + p->aux[l];
            if (arch->layers[l].kind == ED_LAYER_BN) {
                const int C = arch->layers[l].in.c;
                ws->bn_mean[l] = ws->block + p->bn[l];
                ws->bn_var[l] = ws->bn_mean[l] + C;
                ws->bn_istd[l] = ws->bn_var[l] + C;
            }
            if (p->has_argmax[l])
                ws->argmax[l] = ws->iblock + p->argmax[l];
        }
        ws->dbuf[0] = ws->block + p->dbuf[0];
        ws->dbuf[1] = ws->block + p->dbuf[1];
        ws->grads = ws->block + p->grads;
        s_param_views(arch, ws->grads, ws->dW, ws->db);
    }
    free(p);
    return ws;
fail:
    ed_net_ws_destroy(&ws);
    return NULL;
}

void ed_net_ws_destroy(ed_net_ws **pws)
{
    if (!pws || !*pws)
        return;
    ed_mlp_ws_destroy(&(*pws)->mlp);
    free((*pws)->block);
    free((*pws)->iblock);
    free(*pws);
    *pws = NULL;
}

/* ------------------------------------------------------------------------------------------------
 * Forward / backward
 * --------------------------------------------------------------------------------------------- */

/* Argument checks shared by both passes' entry; ED_OK or the error. */
static int s_check(const ed_net *m, const ed_net_ws *ws, int batch, const char *what, ed_err *err)
{
    if (!ed_stack_equal(&m->arch, &ws->arch)) {
        char am[ED_STACK_TEXT_MAX], aw[ED_STACK_TEXT_MAX];
        ed_stack_format(&m->arch, am, sizeof am);
        ed_stack_format(&ws->arch, aw, sizeof aw);
        return ed_err_set(err, ED_ESHAPE, "%s: model arch %s differs from workspace arch %s", what,
                          am, aw);
    }
    if (batch < 1)
        return ed_err_set(err, ED_EINVAL, "%s: batch %d < 1", what, batch);
    if (batch > ws->max_batch)
        return ed_err_set(err, ED_ESHAPE, "%s: batch %d exceeds the workspace max_batch %d", what,
                          batch, ws->max_batch);
    return ED_OK;
}

static int s_forward_mlp(const ed_net *m, ed_net_ws *ws, const float *x, int batch, bool train,
                         ed_rng *rng, const float **logits, ed_err *err)
{
    ws->mlp->dropout_in = ws->dropout_in;
    ws->mlp->dropout_hidden = ws->dropout_hidden;
    int rc = ed_mlp_forward(m->mlp, ws->mlp, x, batch, train, rng, logits, err);
    if (rc == ED_OK) {
        ws->last_train = train;
        ws->last_batch = batch;
    }
    return rc;
}

/* Refuses what a training forward of a generic stack cannot do; ED_OK otherwise. */
static int s_check_train(const ed_net_ws *ws, int batch, ed_rng *rng, ed_err *err)
{
    if (!ws->train)
        return ed_err_set(err, ED_EINVAL,
                          "net forward: training needs a workspace made with train");
    for (int l = 0; l < ws->arch.n_layers; l++) {
        const ed_layer *L = &ws->arch.layers[l];
        if (L->kind == ED_LAYER_DROPOUT && L->rate > 0.0f && !rng)
            return ed_err_set(err, ED_EINVAL, "net forward: layer %d (dropout) needs an rng", l);
        if (L->kind == ED_LAYER_BN && (size_t)batch * L->in.h * L->in.w < 2)
            return ed_err_set(err, ED_EINVAL,
                              "net forward: layer %d (bn) cannot train on one value per channel "
                              "(batch %d)",
                              l, batch);
    }
    return ED_OK;
}

/* Runs layer l forward from ws->act[l] into ws->act[l + 1]. */
static void s_layer_forward(const ed_net *m, ed_net_ws *ws, int l, int batch, bool train,
                            ed_rng *rng)
{
    const ed_layer *L = &m->arch.layers[l];
    const float *x = ws->act[l];
    float *y = ws->act[l + 1];
    const size_t n = (size_t)batch * ed_shape_size(L->in);
    switch (L->kind) {
    case ED_LAYER_DENSE:
        ed_dense_forward(y, x, m->W[l], m->b[l], batch, L);
        break;
    case ED_LAYER_CONV:
        ed_conv_forward(y, x, m->W[l], m->b[l], ws->col, ws->gemm, batch, ws->conv_chunk, L);
        break;
    case ED_LAYER_MAXPOOL:
        ed_maxpool_forward(y, train ? ws->argmax[l] : NULL, x, batch, L);
        break;
    case ED_LAYER_AVGPOOL:
        ed_avgpool_forward(y, x, batch, L);
        break;
    case ED_LAYER_GAP:
        ed_gap_forward(y, x, batch, L);
        break;
    case ED_LAYER_RELU:
        ed_relu_forward(y, x, n);
        break;
    case ED_LAYER_DROPOUT:
        if (train && L->rate > 0.0f) {
            ed_rng_dropout_mask(ws->aux[l], n, L->rate, rng);
            ed_dropout_forward(y, x, ws->aux[l], n);
        } else {
            memcpy(y, x, n * sizeof(float));
        }
        break;
    case ED_LAYER_BN:
        if (train)
            ed_bn_forward_train(y, ws->aux[l], ws->bn_mean[l], ws->bn_var[l], ws->bn_istd[l], x,
                                m->W[l], m->b[l], batch, L);
        else
            ed_bn_forward_infer(y, x, m->W[l], m->b[l], m->mean[l], m->var[l], batch, L);
        break;
    case ED_LAYER_FLATTEN: /* act[l + 1] aliases act[l] */
    case ED_LAYER_KIND_COUNT:
        break;
    }
}

int ed_net_forward(const ed_net *m, ed_net_ws *ws, const float *x, int batch, bool train,
                   ed_rng *rng, const float **logits, ed_err *err)
{
    if (!m || !ws || !x || !logits)
        return ed_err_set(err, ED_EINVAL, "net forward: NULL argument");
    int rc = s_check(m, ws, batch, "net forward", err);
    if (rc != ED_OK)
        return rc;
    if (m->mlp)
        return s_forward_mlp(m, ws, x, batch, train, rng, logits, err);
    if (ws->dropout_in != 0.0f || ws->dropout_hidden != 0.0f)
        return ed_err_set(err, ED_EINVAL,
                          "net forward: input/hidden dropout rates apply to MLP archs only; put "
                          "dropoutP layers in the arch");
    if (train && (rc = s_check_train(ws, batch, rng, err)) != ED_OK)
        return rc;
    if (x != ws->act[0])
        memcpy(ws->act[0], x, (size_t)batch * ed_stack_in_size(&m->arch) * sizeof(float));
    for (int l = 0; l < m->arch.n_layers; l++)
        s_layer_forward(m, ws, l, batch, train, rng);
    ws->last_train = train;
    ws->last_batch = batch;
    *logits = ws->act[m->arch.n_layers];
    return ED_OK;
}

/* Runs layer l backward: dy is the gradient w.r.t. its output; writes its parameter gradients and,
 * when dx is non-NULL, the gradient w.r.t. its input. Returns the buffer that now holds the input
 * gradient: dx, or dy itself for layers that pass it through unchanged. */
static const float *s_layer_backward(const ed_net *m, ed_net_ws *ws, int l, int batch,
                                     const float *dy, float *dx)
{
    const ed_layer *L = &m->arch.layers[l];
    const size_t n = (size_t)batch * ed_shape_size(L->in);
    switch (L->kind) {
    case ED_LAYER_DENSE:
        ed_dense_backward(dx, ws->dW[l], ws->db[l], dy, ws->act[l], m->W[l], batch, L);
        return dx;
    case ED_LAYER_CONV:
        ed_conv_backward(dx, ws->dW[l], ws->db[l], dy, ws->act[l], m->W[l], ws->col, ws->gemm,
                         batch, ws->conv_chunk, L);
        return dx;
    case ED_LAYER_BN:
        ed_bn_backward(dx, ws->dW[l], ws->db[l], dy, ws->aux[l], m->W[l], ws->bn_istd[l], batch, L);
        return dx;
    case ED_LAYER_FLATTEN:
        return dy;
    case ED_LAYER_DROPOUT:
        if (!ws->aux[l])
            return dy;
        break;
    default:
        break;
    }
    if (!dx)
        return NULL;
    switch (L->kind) {
    case ED_LAYER_MAXPOOL:
        ed_maxpool_backward(dx, dy, ws->argmax[l], batch, L);
        break;
    case ED_LAYER_AVGPOOL:
        ed_avgpool_backward(dx, dy, batch, L);
        break;
    case ED_LAYER_GAP:
        ed_gap_backward(dx, dy, batch, L);
        break;
    case ED_LAYER_RELU:
        ed_relu_backward(dx, dy, ws->act[l + 1], n);
        break;
    case ED_LAYER_DROPOUT:
        ed_dropout_backward(dx, dy, ws->aux[l], n);
        break;
    default:
        break;
    }
    return dx;
}

int ed_net_backward(const ed_net *m, ed_net_ws *ws, const float *dlogits, int batch, ed_err *err)
{
    if (!m || !ws || !dlogits)
        return ed_err_set(err, ED_EINVAL, "net backward: NULL argument");
    int rc = s_check(m, ws, batch, "net backward", err);
    if (rc != ED_OK)
        return rc;
    if (!ws->train || !ws->last_train || batch != ws->last_batch)
        return ed_err_set(err, ED_EINVAL,
                          "net backward: needs a training workspace and a training forward of the "
                          "same batch (last forward: batch %d, %s)",
                          ws->last_batch, ws->last_train ? "training" : "inference");
    if (m->mlp)
        return ed_mlp_backward(m->mlp, ws->mlp, dlogits, batch) == ED_OK
                   ? ED_OK
                   : ed_err_set(err, ED_EINVAL, "net backward: MLP backward refused the batch");
    const float *dy = dlogits;
    int cur = 0;
    for (int l = m->arch.n_layers - 1; l >= 0; l--) {
        float *dx = l > 0 ? ws->dbuf[cur] : NULL;
        const float *got = s_layer_backward(m, ws, l, batch, dy, dx);
        if (l == 0)
            break;
        if (got == dx)
            cur ^= 1;
        dy = got;
    }
    return ED_OK;
}

void ed_net_commit_stats(ed_net *m, const ed_net_ws *ws)
{
    if (!m || !ws || m->mlp || !ws->train || !ws->last_train)
        return;
    const float mom = ED_BN_MOMENTUM;
    for (int l = 0; l < m->arch.n_layers; l++) {
        const ed_layer *L = &m->arch.layers[l];
        if (L->kind != ED_LAYER_BN)
            continue;
        const double M = (double)ws->last_batch * L->in.h * L->in.w;
        const float unbias = (float)(M / (M - 1.0));
        for (int c = 0; c < L->in.c; c++) {
            m->mean[l][c] = (1.0f - mom) * m->mean[l][c] + mom * ws->bn_mean[l][c];
            m->var[l][c] = (1.0f - mom) * m->var[l][c] + mom * ws->bn_var[l][c] * unbias;
        }
    }
}

/* ------------------------------------------------------------------------------------------------
 * BN folding
 * --------------------------------------------------------------------------------------------- */

static bool s_foldable(const ed_stack *s, int l)
{
    return l > 0 && s->layers[l].kind == ED_LAYER_BN &&
           (s->layers[l - 1].kind == ED_LAYER_CONV || s->layers[l - 1].kind == ED_LAYER_DENSE);
}

/* Copies layer `from` of m into layer `to` of f (same kind and shape), folding bn layer `bn` (or
 * -1) into it. */
static void s_fold_copy(ed_net *f, int to, const ed_net *m, int from, int bn)
{
    const ed_layer *L = &m->arch.layers[from];
    if (L->n_params)
        memcpy(f->W[to], m->W[from], L->n_params * sizeof(float));
    if (L->n_state)
        memcpy(f->mean[to], m->mean[from], L->n_state * sizeof(float));
    if (bn < 0)
        return;
    const size_t per = (L->n_params - (size_t)L->units) / (size_t)L->units;
    for (int o = 0; o < L->units; o++) {
        const float sc = m->W[bn][o] / sqrtf(m->var[bn][o] + ED_BN_EPS);
        for (size_t i = 0; i < per; i++)
            f->W[to][(size_t)o * per + i] *= sc;
        f->b[to][o] = (m->b[from][o] - m->mean[bn][o]) * sc + m->b[bn][o];
    }
}

ed_net *ed_net_fold_bn(const ed_net *m)
{
    if (!m)
        return NULL;
    if (m->mlp) {
        ed_net *c = ed_net_new(&m->arch);
        if (c)
            memcpy(c->params, m->params, m->n_params * sizeof(float));
        return c;
    }
    ed_stack *s = malloc(sizeof *s);
    if (!s)
        return NULL;
    *s = m->arch;
    for (int l = m->arch.n_layers - 1; l > 0; l--)
        if (s_foldable(&m->arch, l) && ed_stack_remove_layer(s, l) != ED_OK) {
            free(s);
            return NULL;
        }
    ed_net *f = ed_net_new(s);
    free(s);
    if (!f)
        return NULL;
    int to = 0;
    for (int l = 0; l < m->arch.n_layers; l++) {
        if (s_foldable(&m->arch, l))
            continue;
        const int bn = l + 1 < m->arch.n_layers && s_foldable(&m->arch, l + 1) ? l + 1 : -1;
        s_fold_copy(f, to++, m, l, bn);
    }
    return f;
}
