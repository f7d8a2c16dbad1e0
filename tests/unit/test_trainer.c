/*
 * test_trainer: the composed distillation objective of ed_trainer_distill_step, checked
 * independently, for each combine mode and soft-loss kind:
 *  - the targets built from K = 2 members' logits equal mean_k softmax(z_k/T) (prob),
 *    softmax(mean_k z_k / T) (logit) or mean_k z_k (l2), computed here in double;
 *  - the reported loss equals alpha * T^2 * mean_B CE(q, softmax(z/T)) + (1-alpha) * mean_L CE(y,
 * z) (or alpha * mean_B 0.5 |z - t|^2 + ... for l2) computed here with plain double loops;
 *  - one plain-SGD step (lr eta, no momentum) moves every parameter by -eta * dObjective/dtheta,
 *    with the derivative taken by central finite differences of that same double-precision
 * objective;
 *  - unlabeled rows contribute to the soft term only; a label >= classes is refused untouched;
 *  - ed_trainer_new refuses a bad config with ED_EINVAL and frees the model it was given.
 */
#include <math.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ed_loss.h"
#include "ed_trainer.h"
#include "tu.h"

enum { B = 6, D = 5, H = 7, C = 4 };

/* Objective in double for parameters p, with the naive forward of a D-H-C ReLU MLP. q: target
 * probabilities, or with l2 the target logits. */
static double s_objective(const float *p, const float *x, const int32_t *y, const float *q, float T,
                          float alpha, bool l2)
{
    const float *W0 = p, *b0 = W0 + H * D, *W1 = b0 + H, *b1 = W1 + C * H;
    double soft = 0.0, hard = 0.0;
    int labeled = 0;
    for (int i = 0; i < B; i++) {
        double h[H], z[C];
        for (int j = 0; j < H; j++) {
            double a = b0[j];
            for (int k = 0; k < D; k++)
                a += (double)W0[j * D + k] * x[i * D + k];
            h[j] = a > 0 ? a : 0;
        }
        for (int c = 0; c < C; c++) {
            double a = b1[c];
            for (int j = 0; j < H; j++)
                a += (double)W1[c * H + j] * h[j];
            z[c] = a;
        }
        double mt = -INFINITY, m1 = -INFINITY;
        for (int c = 0; c < C; c++) {
            mt = fmax(mt, z[c] / T);
            m1 = fmax(m1, z[c]);
        }
        double st = 0, s1 = 0;
        for (int c = 0; c < C; c++) {
            st += exp(z[c] / T - mt);
            s1 += exp(z[c] - m1);
        }
        for (int c = 0; c < C; c++)
            soft -= l2 ? -0.5 * (z[c] - q[i * C + c]) * (z[c] - q[i * C + c])
                       : q[i * C + c] * (z[c] / T - mt - log(st));
        if (y[i] >= 0) {
            hard -= z[y[i]] - m1 - log(s1);
            labeled++;
        }
    }
    return alpha * (l2 ? 1.0 : T * T) * soft / B + (1.0 - alpha) * (labeled ? hard / labeled : 0.0);
}

/* Inputs, labels (half unlabeled) and two members' logits zt (2, B, C). */
static void s_fixture(float *x, int32_t *y, float *zt, ed_rng *r)
{
    for (int i = 0; i < B * D; i++)
        x[i] = ed_rng_normal(r);
    const int32_t labels[B] = {2, -1, 0, -1, 3, -1};
    memcpy(y, labels, sizeof labels);
    for (int i = 0; i < 2 * B * C; i++)
        zt[i] = 3.0f * ed_rng_normal(r);
}

/* The targets of the two members zt under (mode, l2, T), in double: what ed_loss_targets must give.
 */
static void s_targets(const float *zt, ed_combine_mode mode, bool l2, float T, float *q)
{
    for (int i = 0; i < B; i++) {
        double out[C] = {0};
        for (int k = 0; k < 2; k++) {
            const float *z = zt + (size_t)k * B * C + (size_t)i * C;
            if (l2 || mode == ED_COMBINE_LOGIT) {
                for (int c = 0; c < C; c++)
                    out[c] += 0.5 * z[c];
                continue;
            }
            double mx = -INFINITY, s = 0;
            for (int c = 0; c < C; c++)
                mx = fmax(mx, z[c] / T);
            for (int c = 0; c < C; c++)
                s += exp(z[c] / T - mx);
            for (int c = 0; c < C; c++)
                out[c] += 0.5 * exp(z[c] / T - mx) / s;
        }
        if (!l2 && mode == ED_COMBINE_LOGIT) {
            double mx = -INFINITY, s = 0;
            for (int c = 0; c < C; c++)
                mx = fmax(mx, out[c] / T);
            for (int c = 0; c < C; c++)
                s += exp(out[c] / T - mx);
            for (int c = 0; c < C; c++)
                out[c] = exp(out[c] / T - mx) / s;
        }
        for (int c = 0; c < C; c++)
            q[i * C + c] = (float)out[c];
    }
}

static ed_trainer *s_trainer(float lr, ed_net **copy)
{
    ed_stack a;
    assert_int_equal(ed_stack_parse("5,7,4", &a, NULL), 0);
    ed_net *m = ed_net_new(&a);
    ed_rng r;
    ed_rng_seed(&r, 42);
    ed_net_init(m, &r);
    *copy = ed_net_new(&a);
    memcpy((*copy)->params, m->params, sizeof(float) * m->n_params);
    ed_opt_config oc = ed_opt_config_default();
    oc.kind = ED_OPT_SGD;
    oc.momentum = 0.0f;
    oc.lr = lr;
    const ed_trainer_config tc = {.opt = oc, .max_batch = B, .input_scale = 1.0f, .seed = 1};
    ed_trainer *t = ed_trainer_new(&m, &tc, NULL);
    assert_non_null(t);
    assert_null(m);
    return t;
}

static void test_step_matches_objective(void **state)
{
    (void)state;
    /* (T, combine, soft loss): three temperatures of the default, then the other modes. */
    const struct {
        float T;
        ed_combine_mode mode;
        ed_soft_loss soft;
    } cases[] = {{1.0f, ED_COMBINE_PROB, ED_SOFT_CE},
                 {4.0f, ED_COMBINE_PROB, ED_SOFT_CE},
                 {20.0f, ED_COMBINE_PROB, ED_SOFT_CE},
                 {3.0f, ED_COMBINE_LOGIT, ED_SOFT_CE},
                 {2.0f, ED_COMBINE_PROB, ED_SOFT_L2}};
    for (size_t ti = 0; ti < sizeof cases / sizeof cases[0]; ti++) {
        const float T = cases[ti].T, alpha = 0.7f, lr = 1e-3f;
        const bool l2 = cases[ti].soft == ED_SOFT_L2;
        float x[B * D], zt[2 * B * C], q[B * C];
        int32_t y[B];
        ed_rng r;
        ed_rng_seed(&r, 7 + ti);
        s_fixture(x, y, zt, &r);
        s_targets(zt, cases[ti].mode, l2, T, q);
        ed_net *before;
        ed_trainer *t = s_trainer(lr, &before);
        const size_t n = before->n_params;

        double want_loss = s_objective(before->params, x, y, q, T, alpha, l2);
        ed_batch b = {.n = B, .dim = D, .dtype = ED_DTYPE_F32, .x = x, .y = y};
        ed_loss_config lc = {.combine = cases[ti].mode,
                             .temperature = T,
                             .alpha = alpha,
                             .soft_loss = cases[ti].soft};
        ed_step_stats st;
        ed_err err = {0};
        const float *members[2] = {zt, zt + B * C};
        assert_int_equal(ed_trainer_distill_step(t, &b, members, 2, &lc, &st, &err), 0);
        assert_true(tu_allclose("targets", ed_trainer_targets(t), q, B * C, 1e-6, 1e-5));
        assert_int_equal(st.n_labeled, 3);
        float got = (float)st.loss, want = (float)want_loss;
        assert_true(tu_allclose("objective", &got, &want, 1, 1e-5, 1e-5));

        /* SGD without momentum: delta = -lr * grad. Compare with finite differences. */
        float *fd = malloc(sizeof(float) * n), *delta = malloc(sizeof(float) * n);
        float *p = malloc(sizeof(float) * n);
        memcpy(p, before->params, sizeof(float) * n);
        const float eps = 1e-3f; /* small enough not to cross a ReLU kink here */
        for (size_t i = 0; i < n; i++) {
            float keep = p[i];
            p[i] = keep + eps;
            double lp = s_objective(p, x, y, q, T, alpha, l2);
            p[i] = keep - eps;
            double lm = s_objective(p, x, y, q, T, alpha, l2);
            p[i] = keep;
            fd[i] = (float)((lp - lm) / (2.0 * eps));
            delta[i] = (before->params[i] - t->model->params[i]) / lr;
        }
        assert_true(tu_allclose("gradient via one SGD step vs finite differences", delta, fd, n,
                                2e-3, 2e-2));
        free(fd);
        free(delta);
        free(p);
        ed_net_destroy(&before);
        ed_trainer_destroy(&t);
    }
}

static void test_hard_only_and_bad_label(void **state)
{
    (void)state;
    float x[B * D], zt[2 * B * C], q[B * C];
    int32_t y[B];
    ed_rng r;
    ed_rng_seed(&r, 3);
    s_fixture(x, y, zt, &r);
    s_targets(zt, ED_COMBINE_PROB, false, 1.0f, q);
    ed_net *before;
    ed_trainer *t = s_trainer(1e-3f, &before);
    ed_batch b = {.n = B, .dim = D, .dtype = ED_DTYPE_F32, .x = x, .y = y};
    ed_loss_config lc = {.label_smoothing = 0.0f};
    ed_step_stats st;
    ed_err err = {0};
    /* No targets: the hard loss over the 3 labeled rows only (alpha = 0 gives the same). */
    assert_int_equal(ed_trainer_step(t, &b, &lc, &st, &err), 0);
    float got = (float)st.loss,
          want = (float)s_objective(before->params, x, y, q, 1.0f, 0.0f, false);
    assert_true(tu_allclose("hard-only objective", &got, &want, 1, 1e-5, 1e-5));

    /* A label outside the classes: refused, parameters untouched. */
    memcpy(before->params, t->model->params, sizeof(float) * before->n_params);
    y[0] = C;
    assert_int_equal(ed_trainer_step(t, &b, &lc, &st, &err), ED_EFORMAT);
    assert_non_null(strstr(err.msg, "label 4"));
    assert_memory_equal(before->params, t->model->params, sizeof(float) * before->n_params);
    /* All unlabeled and no targets: nothing to learn from. */
    for (int i = 0; i < B; i++)
        y[i] = -1;
    assert_int_equal(ed_trainer_step(t, &b, &lc, &st, &err), ED_EINVAL);
    /* Wrong input dimension. */
    b.dim = D + 1;
    const float *members[1] = {zt};
    assert_int_equal(ed_trainer_distill_step(t, &b, members, 1, &lc, &st, &err), ED_ESHAPE);
    b.dim = D;
    assert_int_equal(ed_trainer_distill_step(t, &b, members, 0, &lc, &st, &err), ED_EINVAL);
    ed_net_destroy(&before);
    ed_trainer_destroy(&t);
}

/* A bad config is refused as such (ED_EINVAL, not ENOMEM) and the model handed over is freed (the
 * ASan build's leak check sees it otherwise). */
static void test_new_refuses_bad_config(void **state)
{
    (void)state;
    ed_stack a;
    assert_int_equal(ed_stack_parse("5,7,4", &a, NULL), 0);
    ed_net *m = ed_net_new(&a);
    ed_trainer_config tc = {.opt = ed_opt_config_default(), .max_batch = 0};
    ed_err err = {0};
    assert_null(ed_trainer_new(&m, &tc, &err));
    assert_null(m);
    assert_int_equal(err.code, ED_EINVAL);
    assert_non_null(strstr(err.msg, "max batch"));
    m = ed_net_new(&a);
    assert_null(ed_trainer_new(&m, NULL, &err));
    assert_null(m);
    assert_int_equal(err.code, ED_EINVAL);
    ed_net *none = NULL;
    tc.max_batch = 4;
    assert_null(ed_trainer_new(&none, &tc, &err));
    assert_int_equal(err.code, ED_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_matches_objective),
        cmocka_unit_test(test_hard_only_and_bad_label),
        cmocka_unit_test(test_new_refuses_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
