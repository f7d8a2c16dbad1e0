/*
 * test_loss: checks common/nn/ed_loss against independent references: softmax / log-softmax values
 * against a numpy fixture (tests/gen_softmax_fixture.py -> tests/data/softmax_fixture.txt), loss
 * values against direct formulas, gradients by central finite differences, ensemble combination
 * against hand-computed numbers, and finiteness with huge logits.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ed_loss.h"
#include "ed_rng.h"
#include "tu.h"

#define B_ 5
#define C_ 7

/* A loss evaluated at z; adds weight * gradient into dz when non-NULL. */
typedef float (*s_loss_fn)(const float *z, const void *ctx, float weight, float *dz);

typedef struct {
    const int32_t *y;
    const float *q;
    int B, C;
    float T, eps;
} s_ctx;

static float s_hard(const float *z, const void *ctx, float w, float *dz)
{
    const s_ctx *c = ctx;
    return ed_loss_hard_ce(z, c->y, c->B, c->C, c->eps, w, dz);
}
static float s_soft_ce(const float *z, const void *ctx, float w, float *dz)
{
    const s_ctx *c = ctx;
    return ed_loss_soft_ce(z, c->q, c->B, c->C, c->T, w, dz);
}
static float s_soft_kl(const float *z, const void *ctx, float w, float *dz)
{
    const s_ctx *c = ctx;
    return ed_loss_soft_kl(z, c->q, c->B, c->C, c->T, w, dz);
}
static float s_l2(const float *z, const void *ctx, float w, float *dz)
{
    const s_ctx *c = ctx;
    return ed_loss_l2_logits(z, c->q, c->B, c->C, w, dz);
}

static void s_fill_normal(float *a, size_t n, float scale, uint64_t seed)
{
    ed_rng r;
    ed_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        a[i] = scale * ed_rng_normal(&r);
}

/* Checks the analytic gradient of `fn` (accumulated with weight 0.7 onto a non-zero dz, to check
 * that it adds) against central differences with step h. */
static int s_grad_check(const char *what, s_loss_fn fn, const void *ctx, const float *z0, int n,
                        float h, double atol, double rtol)
{
    const float w = 0.7f;
    float z[64], dz[64], base[64], num[64];
    assert_true(n <= 64);
    memcpy(z, z0, (size_t)n * sizeof(float));
    for (int i = 0; i < n; i++)
        base[i] = dz[i] = 0.25f * (float)(i % 3);
    fn(z, ctx, w, dz);
    for (int i = 0; i < n; i++)
        dz[i] -= base[i];
    for (int i = 0; i < n; i++) {
        const float zi = z[i];
        z[i] = zi + h;
        double lp = fn(z, ctx, 1.0f, NULL);
        z[i] = zi - h;
        double lm = fn(z, ctx, 1.0f, NULL);
        z[i] = zi;
        num[i] = (float)(w * (lp - lm) / (2.0 * (double)h));
    }
    return tu_allclose(what, dz, num, (size_t)n, atol, rtol);
}

/* Row-wise softmax(z / T) into q (the test's own double-precision version, small logits only). */
static void s_ref_softmax(const float *z, double *p, int B, int C, double T)
{
    for (int i = 0; i < B; i++) {
        double s = 0.0;
        for (int c = 0; c < C; c++)
            s += exp((double)z[i * C + c] / T);
        for (int c = 0; c < C; c++)
            p[i * C + c] = exp((double)z[i * C + c] / T) / s;
    }
}

static void test_hard_ce_value_and_grad(void **state)
{
    (void)state;
    float z[B_ * C_];
    s_fill_normal(z, B_ * C_, 2.0f, 11);
    const int32_t y[B_] = {3, -1, 0, 6, -1};
    for (int k = 0; k < 2; k++) {
        const float eps = k == 0 ? 0.0f : 0.1f;
        s_ctx c = {.y = y, .B = B_, .C = C_, .T = 1.0f, .eps = eps};
        /* Direct formula: mean over the 3 labeled rows of -sum_c t_c log p_c,
         * t = (1 - eps) onehot(y) + eps / C. */
        double p[B_ * C_];
        s_ref_softmax(z, p, B_, C_, 1.0);
        double want = 0.0;
        for (int i = 0; i < B_; i++) {
            if (y[i] < 0)
                continue;
            for (int j = 0; j < C_; j++) {
                double t = (j == y[i] ? 1.0 - eps : 0.0) + eps / C_;
                want -= t * log(p[i * C_ + j]);
            }
        }
        want /= 3.0;
        float got = ed_loss_hard_ce(z, y, B_, C_, eps, 1.0f, NULL);
        assert_true(tu_allclose(eps == 0.0f ? "hard_ce value" : "hard_ce(eps) value", &got,
                                &(float){(float)want}, 1, 1e-6, 1e-5));
        assert_true(s_grad_check(eps == 0.0f ? "hard_ce grad" : "hard_ce(eps) grad", s_hard, &c, z,
                                 B_ * C_, 1e-2f, 2e-4, 1e-2));
        /* Unlabeled rows get exactly zero gradient. */
        float dz[B_ * C_] = {0};
        ed_loss_hard_ce(z, y, B_, C_, eps, 1.0f, dz);
        for (int j = 0; j < C_; j++) {
            assert_true(dz[1 * C_ + j] == 0.0f);
            assert_true(dz[4 * C_ + j] == 0.0f);
        }
    }
}

static void test_hard_ce_edge_rows(void **state)
{
    (void)state;
    float z[2 * 3] = {1, 2, 3, 4, 5, 6};
    float dz[2 * 3] = {0};
    const int32_t none[2] = {-1, -1};
    assert_true(ed_loss_hard_ce(z, none, 2, 3, 0.0f, 1.0f, dz) == 0.0f);
    for (int i = 0; i < 6; i++)
        assert_true(dz[i] == 0.0f);
    /* An out-of-range label is a caller bug; it must be skipped, not read (ASan run checks). */
    const int32_t bad[2] = {2, 3};
    float l_bad = ed_loss_hard_ce(z, bad, 2, 3, 0.0f, 1.0f, dz);
    const int32_t one[1] = {2};
    float l_one = ed_loss_hard_ce(z, one, 1, 3, 0.0f, 1.0f, NULL);
    assert_true(tu_allclose("hard_ce skips label >= C", &l_bad, &l_one, 1, 1e-7, 1e-6));
    for (int j = 0; j < 3; j++)
        assert_true(dz[3 + j] == 0.0f);
}

static void test_soft_ce_kl(void **state)
{
    (void)state;
    const float temps[3] = {1.0f, 4.0f, 20.0f};
    float z[B_ * C_], zq[B_ * C_], q[B_ * C_];
    s_fill_normal(z, B_ * C_, 2.0f, 21);
    s_fill_normal(zq, B_ * C_, 3.0f, 22);
    for (int k = 0; k < 3; k++) {
        const float T = temps[k];
        ed_softmax_temp(zq, q, B_, C_, T); /* targets: rows sum to 1 */
        s_ctx c = {.q = q, .B = B_, .C = C_, .T = T};
        /* Direct formula: T^2 * mean_i sum_c -q log softmax(z / T); KL adds T^2 mean sum q log q.
         */
        double p[B_ * C_];
        s_ref_softmax(z, p, B_, C_, T);
        double ce = 0.0, negent = 0.0;
        for (int i = 0; i < B_ * C_; i++) {
            ce -= q[i] * log(p[i]);
            if (q[i] > 0.0f)
                negent += q[i] * log((double)q[i]);
        }
        const float want_ce = (float)((double)T * T * ce / B_);
        const float want_kl = (float)((double)T * T * (ce + negent) / B_);
        float got_ce = ed_loss_soft_ce(z, q, B_, C_, T, 1.0f, NULL);
        float got_kl = ed_loss_soft_kl(z, q, B_, C_, T, 1.0f, NULL);
        char name[64];
        snprintf(name, sizeof name, "soft_ce value T=%g", (double)T);
        assert_true(tu_allclose(name, &got_ce, &want_ce, 1, 1e-6, 1e-5));
        snprintf(name, sizeof name, "soft_kl value T=%g", (double)T);
        assert_true(tu_allclose(name, &got_kl, &want_kl, 1, 1e-5 * T * T, 1e-4));
        assert_true(got_kl >= -1e-4f);

        /* Finite differences; step and tolerances scale with T (the loss is smooth on scale T and
         * its value on scale T^2). The gradient is T (softmax - q) / B. */
        const float h = 1e-2f * T;
        snprintf(name, sizeof name, "soft_ce grad T=%g", (double)T);
        assert_true(s_grad_check(name, s_soft_ce, &c, z, B_ * C_, h, 5e-4 * T, 1e-2));
        snprintf(name, sizeof name, "soft_kl grad T=%g", (double)T);
        assert_true(s_grad_check(name, s_soft_kl, &c, z, B_ * C_, h, 5e-4 * T, 1e-2));

        /* The documented closed form, T * (softmax(z/T) - q) / B. */
        float dz[B_ * C_] = {0}, want_dz[B_ * C_];
        ed_loss_soft_ce(z, q, B_, C_, T, 1.0f, dz);
        for (int i = 0; i < B_ * C_; i++)
            want_dz[i] = (float)((double)T * (p[i] - q[i]) / B_);
        snprintf(name, sizeof name, "soft_ce closed-form grad T=%g", (double)T);
        assert_true(tu_allclose(name, dz, want_dz, B_ * C_, 1e-6, 1e-4));
    }
}

static void test_l2_logits(void **state)
{
    (void)state;
    float z[B_ * C_], t[B_ * C_];
    s_fill_normal(z, B_ * C_, 2.0f, 31);
    s_fill_normal(t, B_ * C_, 2.0f, 32);
    double want = 0.0;
    for (int i = 0; i < B_ * C_; i++)
        want += 0.5 * ((double)z[i] - t[i]) * ((double)z[i] - t[i]);
    const float wantf = (float)(want / B_);
    float got = ed_loss_l2_logits(z, t, B_, C_, 1.0f, NULL);
    assert_true(tu_allclose("l2 value", &got, &wantf, 1, 1e-6, 1e-5));
    s_ctx c = {.q = t, .B = B_, .C = C_};
    assert_true(s_grad_check("l2 grad", s_l2, &c, z, B_ * C_, 1e-2f, 1e-3, 1e-2));
}

/* Reads one "case" block of the fixture; returns 1 on success, 0 at end of file. */
static int s_read_case(FILE *f, char *name, int *B, int *C, double *T, float *z, double *p,
                       double *lp, int cap)
{
    char line[256];
    for (;;) {
        long pos = ftell(f);
        if (!fgets(line, sizeof line, f))
            return 0;
        if (line[0] == '#')
            continue;
        fseek(f, pos, SEEK_SET);
        break;
    }
    if (fscanf(f, " case %63s %d %d %lf", name, B, C, T) != 4)
        return 0;
    int n = *B * *C;
    assert_true(n > 0 && n <= cap);
    for (int i = 0; i < n; i++) {
        double v;
        assert_int_equal(fscanf(f, "%lf", &v), 1);
        z[i] = (float)v;
    }
    for (int i = 0; i < n; i++)
        assert_int_equal(fscanf(f, "%lf", &p[i]), 1);
    for (int i = 0; i < n; i++)
        assert_int_equal(fscanf(f, "%lf", &lp[i]), 1);
    return 1;
}

static void test_softmax_fixture(void **state)
{
    (void)state;
    const char *path = EDISTILL_TEST_DATA "/softmax_fixture.txt";
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s (regenerate with /usr/bin/python3 tests/gen_softmax_fixture.py)",
                 path);
    enum { CAP = 256 };
    float z[CAP], p[CAP], lp[CAP], wp[CAP], wlp[CAP], inplace[CAP];
    double dp[CAP], dlp[CAP];
    char name[64];
    int B, C, cases = 0, ok = 1;
    double T;
    while (s_read_case(f, name, &B, &C, &T, z, dp, dlp, CAP)) {
        int n = B * C;
        for (int i = 0; i < n; i++) {
            wp[i] = (float)dp[i];
            wlp[i] = (float)dlp[i];
        }
        ed_softmax_temp(z, p, B, C, (float)T);
        ed_log_softmax_temp(z, lp, B, C, (float)T);
        char what[128];
        snprintf(what, sizeof what, "softmax %s T=%g", name, T);
        ok &= tu_allclose(what, p, wp, (size_t)n, 1e-7, 2e-5);
        snprintf(what, sizeof what, "log_softmax %s T=%g", name, T);
        ok &= tu_allclose(what, lp, wlp, (size_t)n, 2e-5, 2e-6);
        /* p and z may alias. */
        memcpy(inplace, z, (size_t)n * sizeof(float));
        ed_softmax_temp(inplace, inplace, B, C, (float)T);
        snprintf(what, sizeof what, "softmax in place %s T=%g", name, T);
        ok &= tu_allclose(what, inplace, p, (size_t)n, 0.0, 1e-7);
        memcpy(inplace, z, (size_t)n * sizeof(float));
        ed_log_softmax_temp(inplace, inplace, B, C, (float)T);
        snprintf(what, sizeof what, "log_softmax in place %s T=%g", name, T);
        ok &= tu_allclose(what, inplace, lp, (size_t)n, 0.0, 1e-7);
        cases++;
    }
    fclose(f);
    assert_true(ok);
    assert_int_equal(cases, 5 * 4); /* 5 matrices x 4 temperatures */
}

static int s_all_finite(const float *a, int n)
{
    for (int i = 0; i < n; i++)
        if (!isfinite(a[i]))
            return 0;
    return 1;
}

static void test_huge_logits_stay_finite(void **state)
{
    (void)state;
    const float z[2 * 4] = {1e6f, -1e6f, 0.0f, 1e4f, -3e4f, -3e4f, -3e4f, 2e4f};
    const float q[2 * 4] = {0.25f, 0.25f, 0.25f, 0.25f, 0.0f, 0.0f, 0.5f, 0.5f};
    const int32_t y[2] = {1, 0};
    const float temps[3] = {0.5f, 1.0f, 20.0f};
    for (int k = 0; k < 3; k++) {
        float p[8], lp[8], dz[8] = {0};
        ed_softmax_temp(z, p, 2, 4, temps[k]);
        ed_log_softmax_temp(z, lp, 2, 4, temps[k]);
        assert_true(s_all_finite(p, 8));
        assert_true(s_all_finite(lp, 8));
        float l[4];
        l[0] = ed_loss_hard_ce(z, y, 2, 4, 0.1f, 1.0f, dz);
        l[1] = ed_loss_soft_ce(z, q, 2, 4, temps[k], 1.0f, dz);
        l[2] = ed_loss_soft_kl(z, q, 2, 4, temps[k], 1.0f, dz);
        l[3] = ed_loss_l2_logits(z, q, 2, 4, 1.0f, dz);
        assert_true(s_all_finite(l, 4));
        assert_true(s_all_finite(dz, 8));
    }
    /* Winning logit 1e6 with T = 0.5: p is exactly one-hot, log p of the winner is 0. */
    float p[8];
    ed_softmax_temp(z, p, 2, 4, 0.5f);
    assert_true(p[0] == 1.0f && p[1] == 0.0f);
}

static void test_combine(void **state)
{
    (void)state;
    const float ln2 = (float)log(2.0), ln3 = (float)log(3.0);
    /* Two members, two samples, three classes.
     * member A: sample 0 [0, 0, 0]      -> softmax [1/3, 1/3, 1/3]
     *           sample 1 [ln3, 0, 0]    -> softmax [3/5, 1/5, 1/5]
     * member B: sample 0 [0, ln2, 0]    -> softmax [1/4, 1/2, 1/4]
     *           sample 1 [0, 0, ln3]    -> softmax [1/5, 1/5, 3/5] */
    const float A[6] = {0, 0, 0, ln3, 0, 0};
    const float Bm[6] = {0, ln2, 0, 0, 0, ln3};
    const float *const members[2] = {A, Bm};
    float q[6], scratch[6];

    /* prob, T = 1: mean of the softmaxes.
     * sample 0: [(1/3 + 1/4)/2, (1/3 + 1/2)/2, (1/3 + 1/4)/2] = [7/24, 10/24, 7/24]
     * sample 1: [(3/5 + 1/5)/2, 1/5, (1/5 + 3/5)/2]           = [2/5, 1/5, 2/5] */
    const float want_prob[6] = {7.0f / 24, 10.0f / 24, 7.0f / 24, 0.4f, 0.2f, 0.4f};
    ed_combine(ED_COMBINE_PROB, members, 2, 2, 3, 1.0f, q, scratch);
    assert_true(tu_allclose("combine prob T=1", q, want_prob, 6, 1e-7, 1e-6));

    /* logit, T = 1: softmax of the mean logits.
     * sample 0: mean [0, ln2/2, 0] -> exp [1, sqrt2, 1] / (2 + sqrt2)
     * sample 1: mean [ln3/2, 0, ln3/2] -> exp [sqrt3, 1, sqrt3] / (2 sqrt3 + 1) */
    const double s2 = sqrt(2.0), s3 = sqrt(3.0);
    const float want_logit[6] = {(float)(1 / (2 + s2)),     (float)(s2 / (2 + s2)),
                                 (float)(1 / (2 + s2)),     (float)(s3 / (2 * s3 + 1)),
                                 (float)(1 / (2 * s3 + 1)), (float)(s3 / (2 * s3 + 1))};
    ed_combine(ED_COMBINE_LOGIT, members, 2, 2, 3, 1.0f, q, scratch);
    assert_true(tu_allclose("combine logit T=1", q, want_logit, 6, 1e-7, 1e-6));

    /* prob, T = 2: members' logits halve, so exp gives square roots.
     * A0 [1,1,1]/3;  B0 [1, sqrt2, 1]/(2 + sqrt2);  A1 [sqrt3, 1, 1]/(sqrt3 + 2);
     * B1 [1, 1, sqrt3]/(sqrt3 + 2). Means:
     * sample 0: [(1/3 + 1/(2+s2))/2, (1/3 + s2/(2+s2))/2, (1/3 + 1/(2+s2))/2]
     * sample 1: [(s3+1)/(2(s3+2)), 1/(s3+2), (s3+1)/(2(s3+2))] */
    const float want_prob2[6] = {(float)((1.0 / 3 + 1 / (2 + s2)) / 2),
                                 (float)((1.0 / 3 + s2 / (2 + s2)) / 2),
                                 (float)((1.0 / 3 + 1 / (2 + s2)) / 2),
                                 (float)((s3 + 1) / (2 * (s3 + 2))),
                                 (float)(1 / (s3 + 2)),
                                 (float)((s3 + 1) / (2 * (s3 + 2)))};
    ed_combine(ED_COMBINE_PROB, members, 2, 2, 3, 2.0f, q, scratch);
    assert_true(tu_allclose("combine prob T=2", q, want_prob2, 6, 1e-7, 1e-6));

    /* logit, T = 2: sample 0 mean [0, ln2/2, 0] / 2 -> [1, 2^(1/4), 1] / (2 + 2^(1/4)). */
    const double r4 = pow(2.0, 0.25), r34 = pow(3.0, 0.25);
    const float want_logit2[6] = {(float)(1 / (2 + r4)),      (float)(r4 / (2 + r4)),
                                  (float)(1 / (2 + r4)),      (float)(r34 / (2 * r34 + 1)),
                                  (float)(1 / (2 * r34 + 1)), (float)(r34 / (2 * r34 + 1))};
    ed_combine(ED_COMBINE_LOGIT, members, 2, 2, 3, 2.0f, q, scratch);
    assert_true(tu_allclose("combine logit T=2", q, want_logit2, 6, 1e-7, 1e-6));

    /* Mean logits: [0, ln2/2, 0, ln3/2, 0, ln3/2]. */
    const float want_mean[6] = {0, ln2 / 2, 0, ln3 / 2, 0, ln3 / 2};
    ed_combine_mean_logits(members, 2, 2, 3, q);
    assert_true(tu_allclose("mean logits", q, want_mean, 6, 1e-7, 1e-6));

    /* One member: prob and logit agree with plain softmax. */
    float p[6];
    ed_softmax_temp(Bm, p, 2, 3, 4.0f);
    ed_combine(ED_COMBINE_PROB, members + 1, 1, 2, 3, 4.0f, q, scratch);
    assert_true(tu_allclose("combine prob K=1", q, p, 6, 1e-7, 1e-6));
    ed_combine(ED_COMBINE_LOGIT, members + 1, 1, 2, 3, 4.0f, q, scratch);
    assert_true(tu_allclose("combine logit K=1", q, p, 6, 1e-7, 1e-6));
}

static void test_count_correct_argmax(void **state)
{
    (void)state;
    const float z[4 * 3] = {
        0.1f,  0.9f,  0.0f,  /* argmax 1 */
        2.0f,  2.0f,  1.0f,  /* tie -> first, 0 */
        -1.0f, -2.0f, -0.5f, /* argmax 2 */
        5.0f,  0.0f,  0.0f,  /* argmax 0, unlabeled */
    };
    assert_int_equal(ed_argmax(z, 3), 1);
    assert_int_equal(ed_argmax(z + 3, 3), 0);
    assert_int_equal(ed_argmax(z + 6, 3), 2);
    const int32_t y1[4] = {1, 0, 2, -1};
    assert_int_equal(ed_count_correct(z, y1, 4, 3), 3);
    const int32_t y2[4] = {0, 1, 2, 0};
    assert_int_equal(ed_count_correct(z, y2, 4, 3), 2);
    const int32_t y3[4] = {-1, -1, -1, -1};
    assert_int_equal(ed_count_correct(z, y3, 4, 3), 0);
}

static void test_combine_names(void **state)
{
    (void)state;
    assert_int_equal(ed_combine_parse("prob"), ED_COMBINE_PROB);
    assert_int_equal(ed_combine_parse("logit"), ED_COMBINE_LOGIT);
    assert_int_equal(ed_combine_parse("Prob"), -1);
    assert_int_equal(ed_combine_parse(""), -1);
    assert_int_equal(ed_combine_parse(NULL), -1);
    assert_string_equal(ed_combine_name(ED_COMBINE_PROB), "prob");
    assert_string_equal(ed_combine_name(ED_COMBINE_LOGIT), "logit");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hard_ce_value_and_grad),
        cmocka_unit_test(test_hard_ce_edge_rows),
        cmocka_unit_test(test_soft_ce_kl),
        cmocka_unit_test(test_l2_logits),
        cmocka_unit_test(test_softmax_fixture),
        cmocka_unit_test(test_huge_logits_stay_finite),
        cmocka_unit_test(test_combine),
        cmocka_unit_test(test_count_correct_argmax),
        cmocka_unit_test(test_combine_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
