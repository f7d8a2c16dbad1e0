/*
 * test_layer: checks the layer stack (common/nn/ed_layer, ed_layer_ops, ed_net): architecture
 * strings (shapes, canonical form, errors that quote the offending token, the legacy MLP form), the
 * forward pass of every layer kind against PyTorch (tests/data/layer_fixture.txt, written by
 * tests/gen_layer_fixture.py) to 1e-5, every parameter gradient against central finite differences
 * (conv with stride 1 and 2, padding 0 and 1; both pools; gap; batch norm in training mode; dropout
 * with fixed masks), BN folding, conv lowering in chunks, the legacy MLP bit-identical to ed_mlp,
 * and the workspace's refusals.
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

#include "ed_blas.h"
#include "ed_layer.h"
#include "ed_layer_ops.h"
#include "ed_mlp.h"
#include "ed_net.h"
#include "ed_rng.h"
#include "tu.h"

static ed_stack s_parse(const char *text)
{
    ed_stack s;
    ed_err err = {0};
    if (ed_stack_parse(text, &s, &err) != ED_OK)
        fail_msg("ed_stack_parse(\"%s\"): %s", text, err.msg);
    return s;
}

static void s_fill(float *a, size_t n, float scale, uint64_t seed)
{
    ed_rng r;
    ed_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        a[i] = scale * ed_rng_normal(&r);
}

/* ------------------------------------------------------------------------------------------------
 * Architecture strings
 * --------------------------------------------------------------------------------------------- */

static void test_parse_shapes(void **state)
{
    (void)state;
    ed_stack s = s_parse("1x28x28:conv32k3p1,bn,relu,maxpool2,conv64k3p1,bn,relu,maxpool2,flatten,"
                         "dense128,relu,dropout0.3,dense10");
    assert_false(s.mlp);
    assert_int_equal(s.n_layers, 13);
    assert_int_equal(s.layers[0].out.c, 32);
    assert_int_equal(s.layers[0].out.h, 28);
    assert_int_equal(s.layers[3].out.h, 14);
    assert_int_equal(s.layers[7].out.h, 7);
    assert_int_equal(s.layers[8].out.c, 64 * 7 * 7);
    assert_int_equal(ed_stack_classes(&s), 10);
    assert_int_equal(ed_stack_in_size(&s), 784);
    size_t want =
        (32 * 9 + 32) + 64 + (64 * 32 * 9 + 64) + 128 + (128 * 3136 + 128) + (10 * 128 + 10);
    assert_int_equal(s.n_params, want);
    assert_int_equal(s.n_state, 2 * 32 + 2 * 64);
    assert_true(fabsf(s.layers[11].rate - 0.3f) < 1e-7f);

    ed_stack t = s_parse(" 3x32x32 : conv16k5s2p2 , avgpool3s2 , gap , dense4 ");
    assert_int_equal(t.layers[0].out.h, 16);
    assert_int_equal(t.layers[1].out.h, 7);
    assert_int_equal(t.layers[2].out.c, 16);
    assert_int_equal(t.layers[2].out.h, 1);

    /* Canonical form round-trips. */
    const char *texts[] = {"1x28x28:conv32k3p1,bn,relu,maxpool2,flatten,dense10",
                           "3x32x32:conv16k5s2p2,avgpool3s2,gap,dense4",
                           "784:dense256,relu,dense10",
                           "2x9x9:maxpool3s1,flatten,dropout0.25,dense3", "784,1200,1200,10"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        ed_stack a = s_parse(texts[i]);
        char buf[ED_STACK_TEXT_MAX];
        ed_stack_format(&a, buf, sizeof buf);
        assert_string_equal(buf, texts[i]);
        ed_stack b = s_parse(buf);
        assert_true(ed_stack_equal(&a, &b));
    }
    char buf[ED_STACK_TEXT_MAX];
    ed_stack_format(&t, buf, sizeof buf);
    assert_string_equal(buf, "3x32x32:conv16k5s2p2,avgpool3s2,gap,dense4");
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text, *needle;
    } bad[] = {
        {"1x28x28:conv32k3,relu,maxpol2,flatten,dense10", "token 3 \"maxpol2\""},
        {"1x28x28:conv32,flatten,dense10", "token 1 \"conv32\""},
        {"1x28x28:conv32k3q1,flatten,dense10", "token 1 \"conv32k3q1\""},
        {"1x28x28:conv32k3p3,flatten,dense10", "smaller than the kernel"},
        {"1x5x5:conv4k3,maxpool4,flatten,dense2", "token 2 \"maxpool4\" on input 4x3x3"},
        {"1x28x28:conv8k3,dense10", "token 2 \"dense10\""},
        {"1x28x28:conv8k3", "not flat"},
        {"1x28x28:flatten,dropout1.0,dense10", "token 2 \"dropout1.0\""},
        {"1x28x28:flatten,,dense10", "token 2 is empty"},
        {"1x28:flatten,dense10", "input \"1x28\""},
        {"0x28x28:flatten,dense10", "input \"0x28x28\""},
        {"1x28x28:flatten,dense0", "token 2 \"dense0\""},
        {"784,0,10", "entry 2"},
        {"784", "at least 2 widths"},
        {"784:dense10,", "token 2 is empty"},
        {"784:bn2", "token 1 \"bn2\""},
        {"1x28x28:conv99999999k3,flatten,dense1", "token 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ed_stack s;
        memset(&s, 0x5a, sizeof s);
        ed_err err = {0};
        int rc = ed_stack_parse(bad[i].text, &s, &err);
        if (rc == ED_OK || !strstr(err.msg, bad[i].needle))
            fail_msg("\"%s\": rc %d, message \"%s\" lacks \"%s\"", bad[i].text, rc, err.msg,
                     bad[i].needle);
        assert_int_equal(((unsigned char *)&s)[0], 0x5a); /* untouched on error */
    }
}

static void test_legacy_form(void **state)
{
    (void)state;
    ed_stack s = s_parse("784,1200,1200,10");
    assert_true(s.mlp);
    assert_int_equal(s.n_layers, 5);
    assert_int_equal(s.layers[1].kind, ED_LAYER_RELU);
    assert_int_equal(s.n_params, ed_arch_param_count(&s.mlp_arch));
    ed_tensor_desc t[ED_STACK_MAX_TENSORS];
    int n = ed_stack_tensors(&s, t, ED_STACK_MAX_TENSORS);
    assert_int_equal(n, 6);
    assert_string_equal(t[2].name, "layers.1.weight");
    assert_int_equal(t[2].shape[0], 1200);
    assert_int_equal(t[2].offset, 784 * 1200 + 1200);
    ed_stack n2 = s_parse("784:dense1200,relu,dense1200,relu,dense10");
    assert_false(ed_stack_equal(&s, &n2)); /* same layers, other form: other names */
    n = ed_stack_tensors(&n2, t, ED_STACK_MAX_TENSORS);
    assert_string_equal(t[2].name, "layers.2.weight");

    ed_stack c = s_parse("3x8x8:conv4k3p1,bn,relu,flatten,dense2");
    n = ed_stack_tensors(&c, t, ED_STACK_MAX_TENSORS);
    assert_int_equal(n, 8);
    assert_string_equal(t[0].name, "layers.0.weight");
    assert_int_equal(t[0].ndim, 4);
    assert_int_equal(t[0].shape[1], 3);
    assert_int_equal(t[0].shape[3], 3);
    assert_string_equal(t[4].name, "layers.1.running_mean");
    assert_int_equal(t[4].block, ED_BLOCK_STATE);
    assert_int_equal(t[5].offset, 4);
    assert_string_equal(t[6].name, "layers.4.weight");
    assert_int_equal(t[6].offset, 4 * 27 + 4 + 8);
}

/* ------------------------------------------------------------------------------------------------
 * Forward against PyTorch
 * --------------------------------------------------------------------------------------------- */

/* Reads "<tag> <n>" then n doubles as floats into a new array (*n set). */
static float *s_read_block(FILE *f, const char *tag, size_t *n)
{
    char got[32];
    if (fscanf(f, "%31s %zu", got, n) != 2 || strcmp(got, tag) != 0)
        fail_msg("fixture: expected block %s, got %s", tag, got);
    float *a = malloc((*n ? *n : 1) * sizeof(float));
    assert_non_null(a);
    for (size_t i = 0; i < *n; i++) {
        double v;
        if (fscanf(f, "%lf", &v) != 1)
            fail_msg("fixture: block %s truncated at %zu", tag, i);
        a[i] = (float)v;
    }
    return a;
}

static void s_fixture_case(FILE *f, const char *name, const char *mode, int batch, const char *arch)
{
    ed_stack s = s_parse(arch);
    size_t nx, np, ns, ny, na;
    float *x = s_read_block(f, "x", &nx), *p = s_read_block(f, "params", &np);
    float *st = s_read_block(f, "state", &ns), *y = s_read_block(f, "y", &ny);
    float *after = s_read_block(f, "state_after", &na);
    assert_int_equal(nx, (size_t)batch * ed_stack_in_size(&s));
    assert_int_equal(np, s.n_params);
    assert_int_equal(ns, s.n_state);
    assert_int_equal(ny, (size_t)batch * ed_stack_classes(&s));
    ed_net *m = ed_net_new(&s);
    assert_non_null(m);
    memcpy(m->params, p, np * sizeof(float));
    if (ns)
        memcpy(m->state, st, ns * sizeof(float));
    const bool train = strcmp(mode, "train") == 0;
    ed_net_ws *ws = ed_net_ws_new(&s, batch, train);
    assert_non_null(ws);
    ed_rng r;
    ed_rng_seed(&r, 1);
    const float *z;
    ed_err err = {0};
    assert_int_equal(ed_net_forward(m, ws, x, batch, train, &r, &z, &err), ED_OK);
    char what[128];
    snprintf(what, sizeof what, "%s forward", name);
    if (!tu_allclose(what, z, y, ny, 1e-5, 1e-5))
        fail_msg("case %s (%s): forward differs from PyTorch", name, arch);
    ed_net_commit_stats(m, ws);
    snprintf(what, sizeof what, "%s running stats", name);
    if (ns && !tu_allclose(what, m->state, after, na, 1e-5, 1e-5))
        fail_msg("case %s: running statistics differ from PyTorch", name);
    ed_net_ws_destroy(&ws);
    ed_net_destroy(&m);
    free(x);
    free(p);
    free(st);
    free(y);
    free(after);
}

static void test_forward_vs_torch(void **state)
{
    (void)state;
    FILE *f = fopen(EDISTILL_TEST_DATA "/layer_fixture.txt", "r");
    assert_non_null(f);
    char line[2048];
    int cases = 0;
    while (fscanf(f, " %2047[^\n]", line) == 1) {
        if (line[0] == '#')
            continue;
        char name[64], mode[16], arch[1024];
        int batch;
        if (sscanf(line, "case %63s %15s %d %1023s", name, mode, &batch, arch) != 4)
            fail_msg("fixture: bad case line \"%s\"", line);
        s_fixture_case(f, name, mode, batch, arch);
        cases++;
    }
    fclose(f);
    assert_true(cases >= 20);
}

/* ------------------------------------------------------------------------------------------------
 * Gradients by central finite differences
 * --------------------------------------------------------------------------------------------- */

/* loss = sum(z * R) of a training forward, in double; the rng is re-seeded so dropout masks repeat.
 */
static double s_loss(const ed_net *m, ed_net_ws *ws, const float *x, const float *R, int B)
{
    ed_rng r;
    ed_rng_seed(&r, 77);
    const float *z;
    ed_err err = {0};
    if (ed_net_forward(m, ws, x, B, true, &r, &z, &err) != ED_OK)
        fail_msg("forward: %s", err.msg);
    double L = 0.0;
    size_t n = (size_t)B * ed_stack_classes(&m->arch);
    for (size_t i = 0; i < n; i++)
        L += (double)z[i] * R[i];
    return L;
}

static void s_grad_check(const char *arch, int B)
{
    ed_stack s = s_parse(arch);
    ed_net *m = ed_net_new(&s);
    assert_non_null(m);
    ed_rng r;
    ed_rng_seed(&r, 5);
    ed_net_init(m, &r);
    /* Perturb everything (biases, BN gamma/beta) so every gradient matters. */
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] += 0.2f * ed_rng_normal(&r);
    ed_net_ws *ws = ed_net_ws_new(&s, B, true);
    assert_non_null(ws);
    const size_t nx = (size_t)B * ed_stack_in_size(&s), nz = (size_t)B * ed_stack_classes(&s);
    float *x = malloc(nx * sizeof(float)), *R = malloc(nz * sizeof(float));
    float *g = malloc(m->n_params * sizeof(float));
    assert_true(x && R && g);
    s_fill(x, nx, 1.0f, 11);
    s_fill(R, nz, 1.0f, 12);
    s_loss(m, ws, x, R, B);
    ed_err err = {0};
    assert_int_equal(ed_net_backward(m, ws, R, B, &err), ED_OK);
    memcpy(g, ws->grads, m->n_params * sizeof(float));
    /* A ReLU kink or a max-pool switch within eps of a value spoils a difference quotient; such a
     * crossing rarely survives a smaller step, so a gradient passes when one of three steps agrees
     * (the tolerance grows as float32 rounding grows with 1/eps). A wrong backward fails all three.
     */
    static const float steps[3] = {1e-3f, 3e-4f, 1e-4f};
    int bad = 0;
    double worst = 0.0;
    for (size_t i = 0; i < m->n_params; i++) {
        const float keep = m->params[i];
        double best = INFINITY, best_fd = 0.0;
        for (int k = 0; k < 3 && best > 1.0; k++) {
            const float eps = steps[k];
            m->params[i] = keep + eps;
            double lp = s_loss(m, ws, x, R, B);
            m->params[i] = keep - eps;
            double lm = s_loss(m, ws, x, R, B);
            m->params[i] = keep;
            const double fd = (lp - lm) / (2.0 * (double)eps);
            const double tol = 5e-3 * (1e-3 / eps) + 1e-2 * fabs(fd);
            if (fabs(fd - g[i]) / tol < best) {
                best = fabs(fd - g[i]) / tol;
                best_fd = fd;
            }
        }
        if (best > worst)
            worst = best;
        if (best > 1.0) {
            if (bad < 5)
                fprintf(stderr, "%s: param %zu: finite difference %.6g, backward %.6g\n", arch, i,
                        best_fd, (double)g[i]);
            bad++;
        }
    }
    fprintf(stderr, "grad check %-48s %5zu params, worst |fd-bw|/tol %.3f\n", arch, m->n_params,
            worst);
    if (bad)
        fail_msg("%s: %d of %zu gradients differ from finite differences", arch, bad, m->n_params);
    free(x);
    free(R);
    free(g);
    ed_net_ws_destroy(&ws);
    ed_net_destroy(&m);
}

static void test_grad_conv(void **state)
{
    (void)state;
    s_grad_check("2x6x6:conv3k3,flatten,dense4", 2);             /* stride 1, pad 0 */
    s_grad_check("3x7x7:conv2k3s2p1,flatten,dense3", 2);         /* stride 2, pad 1 */
    s_grad_check("1x8x8:conv4k3p1,conv3k3s2,flatten", 2);        /* dx of a conv, stride 2 pad 0 */
    s_grad_check("4x5x5:conv5k1,conv2k3s1p1,flatten,dense2", 2); /* 1x1, several channels */
}

static void test_grad_pools(void **state)
{
    (void)state;
    s_grad_check("2x8x8:conv3k3p1,maxpool2,flatten,dense3", 2);
    s_grad_check("2x7x7:conv3k3p1,maxpool3s2,flatten", 2);
    s_grad_check("2x8x8:conv3k3p1,avgpool2,flatten", 2);
    s_grad_check("2x7x7:conv2k3p1,avgpool3s2,flatten,dense2", 2);
    s_grad_check("3x5x5:conv4k3p1,gap,dense3", 2);
}

static void test_grad_bn_dropout(void **state)
{
    (void)state;
    s_grad_check("2x6x6:conv3k3p1,bn,relu,flatten,dense3", 4); /* BN2d, training mode */
    s_grad_check("5:dense6,bn,relu,dense3", 4);                /* BN1d */
    s_grad_check("6:dense8,dropout0.4,relu,dense3", 3);        /* fixed masks */
    s_grad_check("1x10x10:conv3k3p1,bn,relu,maxpool2,conv4k3s2p1,bn,relu,gap,dense6,relu,"
                 "dropout0.3,dense3",
                 3);
}

/* ------------------------------------------------------------------------------------------------
 * Folding, chunking, the legacy MLP, refusals
 * --------------------------------------------------------------------------------------------- */

static void test_fold_bn(void **state)
{
    (void)state;
    ed_stack s = s_parse("2x8x8:conv4k3p1,bn,relu,maxpool2,flatten,dense6,bn,relu,dense3");
    ed_net *m = ed_net_new(&s);
    ed_rng r;
    ed_rng_seed(&r, 9);
    ed_net_init(m, &r);
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] += 0.3f * ed_rng_normal(&r);
    for (size_t i = 0; i < m->n_state; i++)
        m->state[i] = 0.5f + 0.4f * ed_rng_uniform(&r);
    ed_net *f = ed_net_fold_bn(m);
    assert_non_null(f);
    assert_int_equal(f->arch.n_layers, 7);
    assert_int_equal(f->n_state, 0);
    char buf[ED_STACK_TEXT_MAX];
    ed_stack_format(&f->arch, buf, sizeof buf);
    assert_string_equal(buf, "2x8x8:conv4k3p1,relu,maxpool2,flatten,dense6,relu,dense3");
    const int B = 5;
    float x[5 * 128];
    s_fill(x, sizeof x / sizeof x[0], 1.0f, 3);
    ed_net_ws *w1 = ed_net_ws_new(&m->arch, B, false), *w2 = ed_net_ws_new(&f->arch, B, false);
    const float *z1, *z2;
    ed_err err = {0};
    assert_int_equal(ed_net_forward(m, w1, x, B, false, NULL, &z1, &err), ED_OK);
    assert_int_equal(ed_net_forward(f, w2, x, B, false, NULL, &z2, &err), ED_OK);
    assert_true(tu_allclose("folded vs bn", z2, z1, (size_t)B * 3, 1e-5, 1e-5));
    ed_net_ws_destroy(&w1);
    ed_net_ws_destroy(&w2);
    ed_net_destroy(&f);
    ed_net_destroy(&m);
}

static void test_conv_chunks(void **state)
{
    (void)state;
    ed_stack s = s_parse("3x9x9:conv5k3p1,relu,conv4k3s2,flatten,dense3");
    ed_net *m = ed_net_new(&s);
    ed_rng r;
    ed_rng_seed(&r, 4);
    ed_net_init(m, &r);
    const int B = 7;
    float x[7 * 243], R[21];
    s_fill(x, sizeof x / sizeof x[0], 1.0f, 8);
    s_fill(R, 21, 1.0f, 9);
    ed_net_ws *a = ed_net_ws_new(&s, B, true), *b = ed_net_ws_new(&s, B, true);
    assert_int_equal(a->conv_chunk, B);
    b->conv_chunk = 3; /* lowering in 3 + 3 + 1 samples */
    const float *za, *zb;
    ed_err err = {0};
    assert_int_equal(ed_net_forward(m, a, x, B, true, &r, &za, &err), ED_OK);
    assert_int_equal(ed_net_forward(m, b, x, B, true, &r, &zb, &err), ED_OK);
    assert_true(tu_allclose("chunked forward", zb, za, 21, 1e-6, 1e-6));
    assert_int_equal(ed_net_backward(m, a, R, B, &err), ED_OK);
    assert_int_equal(ed_net_backward(m, b, R, B, &err), ED_OK);
    assert_true(tu_allclose("chunked grads", b->grads, a->grads, m->n_params, 1e-5, 1e-5));
    ed_net_ws_destroy(&a);
    ed_net_ws_destroy(&b);
    ed_net_destroy(&m);
}

/* The conv forward (per sample, 1-thread sgemm calls split over the cores) gives the same bits on
 * 1 and 2 BLAS threads and for any chunk, and leaves OpenBLAS's thread count as it found it; for
 * the general im2col and for the stride-1 "same" one (whose per-thread slot is zeroed once). */
static void s_conv_threads_case(const char *arch)
{
    ed_stack s = s_parse(arch);
    const ed_layer *L = &s.layers[0];
    enum { B = 11 };
    const size_t in = ed_shape_size(L->in), out = ed_shape_size(L->out);
    const size_t nw = (size_t)L->units * L->in.c * L->k * L->k;
    float *x = malloc(B * in * sizeof(float)), *w = malloc((nw + L->units) * sizeof(float));
    float *col = malloc(ed_conv_col_size(L, B) * sizeof(float));
    float *gemm = malloc(ed_conv_gemm_size(L, B) * sizeof(float));
    float *y[4];
    s_fill(x, B * in, 1.0f, 31);
    s_fill(w, nw + L->units, 0.5f, 32);
    const int saved = ed_blas_threads();
    const int chunks[2] = {B, 4};
    for (int t = 0; t < 2; t++)
        for (int c = 0; c < 2; c++) {
            ed_blas_set_threads(t + 1);
            float *o = y[2 * t + c] = malloc(B * out * sizeof(float));
            memset(col, 0x7f,
                   ed_conv_col_size(L, B) * sizeof(float)); /* stale data: NaN-free junk */
            ed_conv_forward(o, x, w, w + nw, col, gemm, B, chunks[c], L);
            assert_int_equal(ed_blas_threads(), t + 1);
        }
    ed_blas_set_threads(saved);
    for (int k = 1; k < 4; k++)
        assert_memory_equal(y[0], y[k], B * out * sizeof(float));
    for (int k = 0; k < 4; k++)
        free(y[k]);
    free(x);
    free(w);
    free(col);
    free(gemm);
}

static void test_conv_forward_threads_invariant(void **state)
{
    (void)state;
    s_conv_threads_case("5x9x9:conv7k3s2p1,flatten");
    s_conv_threads_case("3x10x10:conv4k3p1,flatten");
}

/* The passes split over the cores (ed_par: BN, max pool, ReLU, by channel / plane / range) give the
 * same bits on 1 and on 2 threads, on sizes large enough to be split. */
static void test_passes_split_invariant(void **state)
{
    (void)state;
    ed_stack s = s_parse("8x28x28:bn,relu,maxpool2,flatten");
    const ed_layer *bn = &s.layers[0], *mp = &s.layers[2];
    enum { B = 16, C = 8, HW = 784, N = B * C * HW, NP = N / 4 };
    float *x = malloc(N * sizeof(float)), *g = malloc(C * 2 * sizeof(float));
    float *out[2][6];
    int32_t *am[2];
    for (int t = 0; t < 2; t++) {
        for (int k = 0; k < 6; k++)
            out[t][k] = malloc(N * sizeof(float));
        am[t] = malloc(NP * sizeof(int32_t));
    }
    s_fill(x, N, 2.0f, 21);
    s_fill(g, 2 * C, 1.0f, 22);
    float stats[2][5 * C];
    const int saved = ed_blas_threads();
    for (int t = 0; t < 2; t++) {
        ed_blas_set_threads(t + 1);
        float *y = out[t][0], *xhat = out[t][1], *r = out[t][2], *p = out[t][3], *d = out[t][4];
        float *e = out[t][5];
        float *st = stats[t];
        ed_bn_forward_train(y, xhat, st, st + C, st + 2 * C, x, g, g + C, B, bn);
        ed_relu_forward(r, y, N);
        ed_maxpool_forward(p, am[t], r, B, mp);
        ed_maxpool_backward(d, x, am[t], B, mp); /* x stands in for dy (NP values read) */
        ed_relu_backward(e, d, r, N);
        ed_bn_backward(y, st + 3 * C, st + 4 * C, e, xhat, g, st + 2 * C, B, bn);
    }
    ed_blas_set_threads(saved);
    for (int k = 0; k < 6; k++)
        assert_memory_equal(out[0][k], out[1][k], N * sizeof(float));
    assert_memory_equal(am[0], am[1], NP * sizeof(int32_t));
    assert_memory_equal(stats[0], stats[1], sizeof stats[0]);
    for (int t = 0; t < 2; t++) {
        for (int k = 0; k < 6; k++)
            free(out[t][k]);
        free(am[t]);
    }
    free(x);
    free(g);
}

static void test_legacy_matches_mlp(void **state)
{
    (void)state;
    ed_stack s = s_parse("20,16,12,5");
    ed_net *m = ed_net_new(&s);
    ed_mlp *ref = ed_mlp_new(&s.mlp_arch);
    ed_rng r1, r2;
    ed_rng_seed(&r1, 21);
    ed_rng_seed(&r2, 21);
    ed_net_init(m, &r1);
    ed_mlp_init(ref, &r2);
    assert_memory_equal(m->params, ref->params, m->n_params * sizeof(float));
    const int B = 6;
    float x[120], R[30];
    s_fill(x, 120, 1.0f, 2);
    s_fill(R, 30, 1.0f, 3);
    ed_net_ws *ws = ed_net_ws_new(&s, B, true);
    ed_mlp_ws *rw = ed_mlp_ws_new(&s.mlp_arch, B, true);
    ws->dropout_in = rw->dropout_in = 0.1f;
    ws->dropout_hidden = rw->dropout_hidden = 0.3f;
    const float *z1, *z2;
    ed_err err = {0};
    ed_rng_seed(&r1, 5);
    ed_rng_seed(&r2, 5);
    assert_int_equal(ed_net_forward(m, ws, x, B, true, &r1, &z1, &err), ED_OK);
    assert_int_equal(ed_mlp_forward(ref, rw, x, B, true, &r2, &z2, &err), ED_OK);
    assert_memory_equal(z1, z2, 30 * sizeof(float));
    assert_int_equal(ed_net_backward(m, ws, R, B, &err), ED_OK);
    assert_int_equal(ed_mlp_backward(ref, rw, R, B), ED_OK);
    assert_memory_equal(ws->grads, rw->grads, m->n_params * sizeof(float));
    ed_net_ws_destroy(&ws);
    ed_mlp_ws_destroy(&rw);
    ed_net_destroy(&m);
    ed_mlp_destroy(&ref);
}

static void test_refusals(void **state)
{
    (void)state;
    ed_stack s = s_parse("4:dense3,bn,dense2");
    ed_net *m = ed_net_new(&s);
    ed_net_ws *ws = ed_net_ws_new(&s, 4, true), *inf = ed_net_ws_new(&s, 4, false);
    float x[32] = {0}, dz[16] = {0};
    const float *z;
    ed_err err = {0};
    assert_int_equal(ed_net_forward(m, ws, x, 5, false, NULL, &z, &err), ED_ESHAPE);
    assert_int_equal(ed_net_forward(m, ws, x, 0, false, NULL, &z, &err), ED_EINVAL);
    assert_int_equal(ed_net_forward(m, ws, x, 1, true, NULL, &z, &err), ED_EINVAL);
    assert_non_null(strstr(err.msg, "bn"));
    assert_int_equal(ed_net_forward(m, inf, x, 2, true, NULL, &z, &err), ED_EINVAL);
    assert_int_equal(ed_net_forward(m, ws, x, 2, false, NULL, &z, &err), ED_OK);
    assert_int_equal(ed_net_backward(m, ws, dz, 2, &err), ED_EINVAL); /* inference forward */
    assert_int_equal(ed_net_forward(m, ws, x, 2, true, NULL, &z, &err), ED_OK);
    assert_int_equal(ed_net_backward(m, ws, dz, 3, &err), ED_EINVAL);
    assert_int_equal(ed_net_backward(m, ws, dz, 2, &err), ED_OK);
    ws->dropout_hidden = 0.5f;
    assert_int_equal(ed_net_forward(m, ws, x, 2, true, NULL, &z, &err), ED_EINVAL);
    ed_stack o = s_parse("4:dense3,dense2");
    ed_net *m2 = ed_net_new(&o);
    assert_int_equal(ed_net_forward(m2, inf, x, 2, false, NULL, &z, &err), ED_ESHAPE);
    ed_stack d = s_parse("4:dropout0.5,dense2");
    ed_net *m3 = ed_net_new(&d);
    ed_net_ws *w3 = ed_net_ws_new(&d, 2, true);
    assert_int_equal(ed_net_forward(m3, w3, x, 2, true, NULL, &z, &err), ED_EINVAL);
    assert_non_null(strstr(err.msg, "rng"));
    ed_net_ws_destroy(&w3);
    ed_net_destroy(&m3);
    ed_net_destroy(&m2);
    ed_net_ws_destroy(&ws);
    ed_net_ws_destroy(&inf);
    ed_net_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_shapes),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_legacy_form),
        cmocka_unit_test(test_forward_vs_torch),
        cmocka_unit_test(test_grad_conv),
        cmocka_unit_test(test_grad_pools),
        cmocka_unit_test(test_grad_bn_dropout),
        cmocka_unit_test(test_fold_bn),
        cmocka_unit_test(test_conv_chunks),
        cmocka_unit_test(test_legacy_matches_mlp),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_passes_split_invariant),
        cmocka_unit_test(test_conv_forward_threads_invariant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
