/*
 * test_mlp: checks common/nn/ed_mlp: the forward pass against a naive triple-loop reference (with
 * and without dropout masks), every parameter gradient against central finite differences of a loss
 * computed with the same forward (with dropout active, masks fixed by re-seeding the rng), the
 * workspace's shape checks, initialization statistics, and architecture string parsing.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ed_mlp.h"
#include "ed_rng.h"
#include "tu.h"

static ed_arch s_arch(const char *text)
{
    ed_arch a;
    ed_err err = {0};
    int rc = ed_arch_parse(text, &a, &err);
    if (rc != ED_OK)
        fail_msg("ed_arch_parse(\"%s\"): %s", text, err.msg);
    return a;
}

static void s_fill(float *a, size_t n, float scale, uint64_t seed)
{
    ed_rng r;
    ed_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        a[i] = scale * ed_rng_normal(&r);
}

/* A model with He-normal weights and small random biases (so the bias gradients matter). */
static ed_mlp *s_model(const ed_arch *a, uint64_t seed)
{
    ed_mlp *m = ed_mlp_new(a);
    assert_non_null(m);
    ed_rng r;
    ed_rng_seed(&r, seed);
    ed_mlp_init(m, &r);
    for (int l = 0; l < a->n_layers; l++)
        s_fill(m->b[l], (size_t)a->widths[l + 1], 0.1f, seed + 100 + (uint64_t)l);
    return m;
}

/* Naive reference forward in double: out (batch, w_L). When ws_masks is non-NULL, applies
 * ws_masks->mask[l] to the input of layer l for every l whose mask pointer is given in use[l]. */
static void s_ref_forward(const ed_mlp *m, const float *x, int batch, const ed_mlp_ws *ws_masks,
                          const bool *use, double *out)
{
    const ed_arch *a = &m->arch;
    int maxw = 0;
    for (int l = 0; l <= a->n_layers; l++)
        if (a->widths[l] > maxw)
            maxw = a->widths[l];
    double *cur = calloc((size_t)batch * maxw, sizeof(double));
    double *nxt = calloc((size_t)batch * maxw, sizeof(double));
    assert_non_null(cur);
    assert_non_null(nxt);
    for (int i = 0; i < batch * a->widths[0]; i++)
        cur[i] = x[i] * (ws_masks && use[0] ? (double)ws_masks->mask[0][i] : 1.0);
    for (int l = 0; l < a->n_layers; l++) {
        const int in = a->widths[l], outw = a->widths[l + 1];
        const bool hidden = l + 1 < a->n_layers;
        for (int i = 0; i < batch; i++) {
            for (int o = 0; o < outw; o++) {
                double s = m->b[l][o];
                for (int k = 0; k < in; k++)
                    s += (double)m->W[l][(size_t)o * in + k] * cur[(size_t)i * in + k];
                if (hidden) {
                    s = s > 0.0 ? s : 0.0;
                    if (ws_masks && use[l + 1])
                        s *= ws_masks->mask[l + 1][(size_t)i * outw + o];
                }
                nxt[(size_t)i * outw + o] = s;
            }
        }
        double *t = cur;
        cur = nxt;
        nxt = t;
    }
    memcpy(out, cur, (size_t)batch * ed_arch_out(a) * sizeof(double));
    free(cur);
    free(nxt);
}

static void s_check_forward_ref(const char *arch_text, int batch, int max_batch)
{
    ed_arch a = s_arch(arch_text);
    ed_mlp *m = s_model(&a, 7);
    ed_mlp_ws *ws = ed_mlp_ws_new(&a, max_batch, false);
    assert_non_null(ws);
    /* Dropout rates on an inference forward must be ignored. */
    ws->dropout_in = 0.5f;
    ws->dropout_hidden = 0.5f;
    const int n_in = batch * ed_arch_in(&a), n_out = batch * ed_arch_out(&a);
    float *x = malloc((size_t)n_in * sizeof(float));
    double *want = malloc((size_t)n_out * sizeof(double));
    float *wantf = malloc((size_t)n_out * sizeof(float));
    assert_true(x && want && wantf);
    s_fill(x, (size_t)n_in, 1.0f, 8);
    const float *z = NULL;
    ed_err err = {0};
    assert_int_equal(ed_mlp_forward(m, ws, x, batch, false, NULL, &z, &err), ED_OK);
    assert_true(z == ws->act[a.n_layers]);
    assert_false(ws->masks_used);
    s_ref_forward(m, x, batch, NULL, NULL, want);
    for (int i = 0; i < n_out; i++)
        wantf[i] = (float)want[i];
    char what[128];
    snprintf(what, sizeof what, "forward %s batch %d vs naive reference", arch_text, batch);
    assert_true(tu_allclose(what, z, wantf, (size_t)n_out, 1e-5, 1e-4));
    free(x);
    free(want);
    free(wantf);
    ed_mlp_ws_destroy(&ws);
    ed_mlp_destroy(&m);
}

static void test_forward_matches_reference(void **state)
{
    (void)state;
    s_check_forward_ref("7,6,5,4", 5, 8);
    s_check_forward_ref("33,20,17,10", 9, 9);
    s_check_forward_ref("64,10", 3, 16);
    s_check_forward_ref("100,300,200,50,10", 31, 64);
}

/* ---- gradient checks ---------------------------------------------------------------------- */

typedef struct {
    ed_mlp *m;
    ed_mlp_ws *ws;
    const float *x;
    const float *t; /* (batch, w_L) regression target */
    int batch;
    bool train;
    ed_rng rng0; /* every evaluation starts from a copy, so dropout masks repeat */
} s_gc;

/* loss = 0.5 * sum (z - t)^2 in double; fills dz (float) when non-NULL, and the ReLU pattern
 * (act > 0 of every hidden layer, in order) when `pattern` is non-NULL. */
static double s_eval(s_gc *g, float *dz, unsigned char *pattern)
{
    ed_rng r = g->rng0;
    const float *z = NULL;
    ed_err err = {0};
    int rc = ed_mlp_forward(g->m, g->ws, g->x, g->batch, g->train, &r, &z, &err);
    if (rc != ED_OK)
        fail_msg("forward: %s", err.msg);
    const ed_arch *a = &g->m->arch;
    if (pattern) {
        size_t k = 0;
        for (int l = 1; l < a->n_layers; l++)
            for (int i = 0; i < g->batch * a->widths[l]; i++)
                pattern[k++] = g->ws->act[l][i] > 0.0f;
    }
    const int n = g->batch * ed_arch_out(a);
    double loss = 0.0;
    for (int i = 0; i < n; i++) {
        double d = (double)z[i] - (double)g->t[i];
        loss += 0.5 * d * d;
        if (dz)
            dz[i] = (float)d;
    }
    return loss;
}

/* Central differences over every entry of every W and b, compared with ws->dW / ws->db. The
 * loss is quadratic in the logits and the net piecewise linear, so central differences are exact
 * up to rounding unless a perturbation moves a hidden pre-activation across the ReLU kink. Such
 * entries are detected (the ReLU pattern at p +- h differs from the one at p) and skipped; the
 * check fails if more than 10% of the entries had to be skipped. */
static int s_grad_check(s_gc *g, float h)
{
    const ed_arch *a = &g->m->arch;
    const int n_out = g->batch * ed_arch_out(a);
    size_t n_pat = 0;
    for (int l = 1; l < a->n_layers; l++)
        n_pat += (size_t)g->batch * a->widths[l];
    float *dz = malloc((size_t)n_out * sizeof(float));
    unsigned char *pat0 = malloc(n_pat + 1), *pat1 = malloc(n_pat + 1), *pat2 = malloc(n_pat + 1);
    assert_true(dz && pat0 && pat1 && pat2);
    size_t skipped = 0;
    s_eval(g, dz, pat0);
    assert_int_equal(ed_mlp_backward(g->m, g->ws, dz, g->batch), ED_OK);
    float *analytic = malloc(g->m->n_params * sizeof(float));
    assert_non_null(analytic);
    memcpy(analytic, g->ws->grads, g->m->n_params * sizeof(float));
    int ok = 1;
    for (int l = 0; l < a->n_layers; l++) {
        for (int which = 0; which < 2; which++) {
            float *p = which == 0 ? g->m->W[l] : g->m->b[l];
            const float *ga = which == 0 ? g->ws->dW[l] : g->ws->db[l];
            size_t n =
                which == 0 ? (size_t)a->widths[l + 1] * a->widths[l] : (size_t)a->widths[l + 1];
            float *num = malloc(n * sizeof(float));
            const float *an = analytic + (ga - g->ws->grads);
            assert_non_null(num);
            for (size_t i = 0; i < n; i++) {
                const float p0 = p[i];
                p[i] = p0 + h;
                double lp = s_eval(g, NULL, pat1);
                p[i] = p0 - h;
                double lm = s_eval(g, NULL, pat2);
                p[i] = p0;
                num[i] = (float)((lp - lm) / (2.0 * (double)h));
                if (memcmp(pat0, pat1, n_pat) != 0 || memcmp(pat0, pat2, n_pat) != 0) {
                    num[i] = an[i]; /* straddles a kink: not comparable */
                    skipped++;
                }
            }
            char what[96];
            snprintf(what, sizeof what, "%s grad of %s[%d] (train=%d)", "finite-difference",
                     which == 0 ? "W" : "b", l, (int)g->train);
            ok &= tu_allclose(what, an, num, n, 5e-4, 2e-3);
            free(num);
        }
    }
    if (skipped * 10 > g->m->n_params) {
        fprintf(stderr, "gradient check: %zu of %zu entries straddle a ReLU kink\n", skipped,
                g->m->n_params);
        ok = 0;
    }
    free(dz);
    free(pat0);
    free(pat1);
    free(pat2);
    free(analytic);
    return ok;
}

static void s_run_grad_check(bool dropout)
{
    ed_arch a = s_arch("7,6,5,4");
    ed_mlp *m = s_model(&a, 3);
    const int batch = 6;
    ed_mlp_ws *ws = ed_mlp_ws_new(&a, 8, true);
    assert_non_null(ws);
    assert_non_null(ws->grads);
    float x[6 * 7], t[6 * 4];
    s_fill(x, 6 * 7, 1.0f, 4);
    s_fill(t, 6 * 4, 1.0f, 5);
    s_gc g = {.m = m, .ws = ws, .x = x, .t = t, .batch = batch, .train = true};
    ed_rng_seed(&g.rng0, 99);
    if (dropout) {
        ws->dropout_in = 0.2f;
        ws->dropout_hidden = 0.3f;
    }
    assert_true(s_grad_check(&g, 1e-2f));
    assert_true(ws->masks_used == dropout);
    ed_mlp_ws_destroy(&ws);
    ed_mlp_destroy(&m);
}

static void test_gradients_finite_differences(void **state)
{
    (void)state;
    s_run_grad_check(false);
}

static void test_gradients_with_dropout(void **state)
{
    (void)state;
    s_run_grad_check(true);
}

/* Dropout masks: values 0 or 1/(1-p), reproducible from the rng state, applied as the reference
 * says; an inference forward leaves masks and rng alone; backward overwrites, not accumulates. */
static void test_dropout_masks(void **state)
{
    (void)state;
    ed_arch a = s_arch("50,40,30,5");
    ed_mlp *m = s_model(&a, 12);
    const int batch = 16;
    ed_mlp_ws *ws = ed_mlp_ws_new(&a, batch, true);
    assert_non_null(ws);
    ws->dropout_in = 0.25f;
    ws->dropout_hidden = 0.5f;
    float *x = malloc((size_t)batch * 50 * sizeof(float));
    assert_non_null(x);
    s_fill(x, (size_t)batch * 50, 1.0f, 13);
    ed_rng r0, r;
    ed_rng_seed(&r0, 2024);
    r = r0;
    const float *z = NULL;
    ed_err err = {0};
    assert_int_equal(ed_mlp_forward(m, ws, x, batch, true, &r, &z, &err), ED_OK);
    assert_true(ws->masks_used);
    assert_true(memcmp(&r, &r0, sizeof r) != 0); /* the masks came from the rng */

    /* Mask values and drop fractions. */
    for (int l = 0; l < a.n_layers; l++) {
        const float p = l == 0 ? 0.25f : 0.5f;
        const size_t n = (size_t)batch * a.widths[l];
        size_t zeros = 0;
        for (size_t i = 0; i < n; i++) {
            float v = ws->mask[l][i];
            assert_true(v == 0.0f || v == 1.0f / (1.0f - p));
            zeros += v == 0.0f;
        }
        double frac = (double)zeros / (double)n;
        if (fabs(frac - p) > 0.1)
            fail_msg("mask[%d]: dropped fraction %.3f, rate %.2f", l, frac, (double)p);
    }

    /* The logits equal the reference forward under the same masks. */
    double want[16 * 5];
    float wantf[16 * 5], first[16 * 5];
    const bool use[3] = {true, true, true};
    s_ref_forward(m, x, batch, ws, use, want);
    for (int i = 0; i < batch * 5; i++)
        wantf[i] = (float)want[i];
    assert_true(tu_allclose("dropout forward vs reference with the same masks", z, wantf, 16 * 5,
                            1e-5, 1e-4));
    memcpy(first, z, sizeof first);

    /* Same rng state -> same masks and logits. */
    size_t mask_bytes = (size_t)batch * (50 + 40 + 30) * sizeof(float);
    float *masks_copy = malloc(mask_bytes);
    assert_non_null(masks_copy);
    memcpy(masks_copy, ws->mask[0], (size_t)batch * 50 * sizeof(float));
    memcpy(masks_copy + batch * 50, ws->mask[1], (size_t)batch * 40 * sizeof(float));
    memcpy(masks_copy + batch * 90, ws->mask[2], (size_t)batch * 30 * sizeof(float));
    r = r0;
    assert_int_equal(ed_mlp_forward(m, ws, x, batch, true, &r, &z, &err), ED_OK);
    assert_true(
        tu_allclose("dropout forward repeated with the same rng", z, first, 16 * 5, 0.0, 0.0));
    assert_true(memcmp(masks_copy, ws->mask[0], (size_t)batch * 50 * sizeof(float)) == 0);

    /* train = false: no masks drawn, rng untouched, output equals the mask-free reference. */
    ed_rng before = r;
    assert_int_equal(ed_mlp_forward(m, ws, x, batch, false, &r, &z, &err), ED_OK);
    assert_true(memcmp(&before, &r, sizeof r) == 0);
    assert_false(ws->masks_used);
    assert_true(memcmp(masks_copy, ws->mask[0], (size_t)batch * 50 * sizeof(float)) == 0);
    assert_true(memcmp(masks_copy + batch * 50, ws->mask[1], (size_t)batch * 40 * sizeof(float)) ==
                0);
    assert_true(memcmp(masks_copy + batch * 90, ws->mask[2], (size_t)batch * 30 * sizeof(float)) ==
                0);
    s_ref_forward(m, x, batch, NULL, NULL, want);
    for (int i = 0; i < batch * 5; i++)
        wantf[i] = (float)want[i];
    assert_true(tu_allclose("inference forward ignores dropout", z, wantf, 16 * 5, 1e-5, 1e-4));

    /* Backward twice gives the same gradients (overwrite, not accumulate). */
    float dz[16 * 5];
    s_fill(dz, 16 * 5, 1.0f, 14);
    assert_int_equal(ed_mlp_backward(m, ws, dz, batch), ED_OK);
    float *g1 = malloc(m->n_params * sizeof(float));
    assert_non_null(g1);
    memcpy(g1, ws->grads, m->n_params * sizeof(float));
    assert_int_equal(ed_mlp_backward(m, ws, dz, batch), ED_OK);
    assert_true(tu_allclose("backward overwrites grads", ws->grads, g1, m->n_params, 0.0, 0.0));

    /* Dropout needs an rng. */
    assert_int_equal(ed_mlp_forward(m, ws, x, batch, true, NULL, &z, &err), ED_EINVAL);
    ws->dropout_hidden = 1.0f;
    assert_int_equal(ed_mlp_forward(m, ws, x, batch, true, &r, &z, &err), ED_EINVAL);

    free(g1);
    free(masks_copy);
    free(x);
    ed_mlp_ws_destroy(&ws);
    ed_mlp_destroy(&m);
}

static void test_shape_errors(void **state)
{
    (void)state;
    ed_arch a = s_arch("7,6,4");
    ed_mlp *m = s_model(&a, 1);
    ed_mlp_ws *ws = ed_mlp_ws_new(&a, 4, false);
    assert_non_null(ws);
    assert_null(ws->grads);
    assert_null(ws->mask[0]);
    float x[8 * 7] = {0};
    const float *z = NULL;
    ed_err err = {0};

    assert_int_equal(ed_mlp_forward(m, ws, x, 5, false, NULL, &z, &err), ED_ESHAPE);
    assert_int_equal(err.code, ED_ESHAPE);
    if (!strstr(err.msg, "5") || !strstr(err.msg, "max_batch"))
        fail_msg("unhelpful message: \"%s\"", err.msg);
    assert_int_equal(ed_mlp_forward(m, ws, x, 0, false, NULL, &z, &err), ED_EINVAL);
    assert_int_equal(ed_mlp_forward(m, ws, x, 4, false, NULL, &z, &err), ED_OK);

    /* A workspace for another arch is refused. */
    ed_arch b = s_arch("7,5,4");
    ed_mlp_ws *wb = ed_mlp_ws_new(&b, 4, true);
    assert_non_null(wb);
    ed_err_clear(&err);
    assert_int_equal(ed_mlp_forward(m, wb, x, 4, false, NULL, &z, &err), ED_ESHAPE);
    if (!strstr(err.msg, "7,6,4") || !strstr(err.msg, "7,5,4"))
        fail_msg("message should name both archs: \"%s\"", err.msg);

    /* Backward: needs a train workspace and the batch of the last forward. */
    float dz[8 * 4] = {0};
    assert_int_equal(ed_mlp_backward(m, ws, dz, 4), ED_EINVAL);
    ed_mlp_ws *wt = ed_mlp_ws_new(&a, 4, true);
    assert_non_null(wt);
    assert_int_equal(ed_mlp_backward(m, wt, dz, 4), ED_EINVAL); /* no forward yet */
    assert_int_equal(ed_mlp_forward(m, wt, x, 3, true, NULL, &z, &err), ED_OK);
    assert_int_equal(ed_mlp_backward(m, wt, dz, 4), ED_EINVAL);
    assert_int_equal(ed_mlp_backward(m, wt, dz, 3), ED_OK);

    assert_null(ed_mlp_ws_new(&a, 0, false));
    ed_arch bad = a;
    bad.n_layers = 0;
    assert_null(ed_mlp_new(&bad));
    assert_null(ed_mlp_ws_new(&bad, 4, false));

    ed_mlp_ws_destroy(&wt);
    ed_mlp_ws_destroy(&wb);
    ed_mlp_ws_destroy(&ws);
    assert_null(ws);
    ed_mlp_ws_destroy(&ws);
    ed_mlp_destroy(&m);
    assert_null(m);
    ed_mlp_destroy(&m);
    ed_mlp_destroy(NULL);
    ed_mlp_ws_destroy(NULL);
}

static void test_init_statistics(void **state)
{
    (void)state;
    ed_arch a = s_arch("400,300,10");
    ed_mlp *m = ed_mlp_new(&a);
    assert_non_null(m);
    assert_int_equal(m->n_params, 400 * 300 + 300 + 300 * 10 + 10);
    for (size_t i = 0; i < m->n_params; i++)
        assert_true(m->params[i] == 0.0f);
    /* Views follow the documented layout. */
    assert_true(m->W[0] == m->params);
    assert_true(m->b[0] == m->params + 400 * 300);
    assert_true(m->W[1] == m->params + 400 * 300 + 300);
    assert_true(m->b[1] == m->params + 400 * 300 + 300 + 3000);
    ed_rng r;
    ed_rng_seed(&r, 5);
    ed_mlp_init(m, &r);
    for (int l = 0; l < 2; l++) {
        size_t n = (size_t)a.widths[l] * a.widths[l + 1];
        double s = 0.0, s2 = 0.0;
        for (size_t i = 0; i < n; i++) {
            s += m->W[l][i];
            s2 += (double)m->W[l][i] * m->W[l][i];
        }
        double mean = s / n, sd = sqrt(s2 / n - mean * mean), want = sqrt(2.0 / a.widths[l]);
        if (fabs(sd / want - 1.0) > 0.05 || fabs(mean) > 0.1 * want)
            fail_msg("W[%d]: mean %.4g sd %.4g, want mean 0 sd %.4g", l, mean, sd, want);
        for (int j = 0; j < a.widths[l + 1]; j++)
            assert_true(m->b[l][j] == 0.0f);
    }
    ed_mlp_destroy(&m);
}

/* ---- architecture strings ----------------------------------------------------------------- */

static void s_expect_parse_error(const char *text, const char *needle)
{
    ed_arch a;
    ed_err err = {0};
    int rc = ed_arch_parse(text, &a, &err);
    if (rc != ED_EINVAL)
        fail_msg("ed_arch_parse(\"%s\") returned %d, want ED_EINVAL", text, rc);
    if (!strstr(err.msg, needle))
        fail_msg("ed_arch_parse(\"%s\"): message \"%s\" does not mention \"%s\"", text, err.msg,
                 needle);
}

static void test_arch_parse(void **state)
{
    (void)state;
    ed_arch a;
    ed_err err = {0};
    assert_int_equal(ed_arch_parse("784,1200,10", &a, &err), ED_OK);
    assert_int_equal(a.n_layers, 2);
    assert_int_equal(a.widths[0], 784);
    assert_int_equal(a.widths[1], 1200);
    assert_int_equal(a.widths[2], 10);
    assert_int_equal(ed_arch_in(&a), 784);
    assert_int_equal(ed_arch_out(&a), 10);
    assert_int_equal(ed_arch_param_count(&a), 784 * 1200 + 1200 + 1200 * 10 + 10);
    assert_true(ed_arch_forward_flops(&a) == 2.0 * (784.0 * 1200 + 1200.0 * 10));
    char buf[128];
    ed_arch_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "784,1200,10");
    ed_arch_format(&a, buf, 6); /* truncated, still terminated */
    assert_string_equal(buf, "784,1");

    ed_arch b;
    assert_int_equal(ed_arch_parse(" 784, 1200 ,10 ", &b, &err), ED_OK);
    assert_true(ed_arch_equal(&a, &b));
    assert_int_equal(ed_arch_parse("784,1200,1200,10", &b, &err), ED_OK);
    assert_false(ed_arch_equal(&a, &b));
    assert_int_equal(ed_arch_parse("784,1201,10", &b, &err), ED_OK);
    assert_false(ed_arch_equal(&a, &b));

    /* 17 widths (16 weight layers) is the maximum. */
    const char *max17 = "5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5";
    assert_int_equal(ed_arch_parse(max17, &b, &err), ED_OK);
    assert_int_equal(b.n_layers, ED_MLP_MAX_LAYERS);
    ed_arch_format(&b, buf, sizeof buf);
    assert_string_equal(buf, max17);

    s_expect_parse_error("", "entry 1");
    s_expect_parse_error("784", "at least 2");
    s_expect_parse_error("784,,10", "entry 2");
    s_expect_parse_error("784,-5,10", "entry 2 (\"-5\")");
    s_expect_parse_error("784,abc", "entry 2 (\"abc\")");
    s_expect_parse_error("784,0,10", "entry 2");
    s_expect_parse_error("784,10,", "entry 3");
    s_expect_parse_error("784,12x,10", "entry 2 (\"12x\")");
    s_expect_parse_error("784,99999999999999999999,10", "entry 2");
    s_expect_parse_error("5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5", "too many");
    /* The output is untouched on error. */
    ed_arch keep = a;
    assert_int_equal(ed_arch_parse("1,x", &keep, &err), ED_EINVAL);
    assert_true(ed_arch_equal(&keep, &a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arch_parse),
        cmocka_unit_test(test_forward_matches_reference),
        cmocka_unit_test(test_gradients_finite_differences),
        cmocka_unit_test(test_gradients_with_dropout),
        cmocka_unit_test(test_dropout_masks),
        cmocka_unit_test(test_shape_errors),
        cmocka_unit_test(test_init_statistics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
