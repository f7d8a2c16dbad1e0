/*
 * test_optim: checks common/nn/ed_optim against values worked out by hand in the comments below:
 * SGD with momentum (two steps, and weight decay), Adam (two steps with bias correction, and
 * decoupled weight decay), the learning-rate schedules with warm-up, and the name tables.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "ed_optim.h"
#include "tu.h"

/* The 3-element example used throughout: p = [1, -2, 0.5], g = [0.1, 0.2, -0.3]. */
static const float P0[3] = {1.0f, -2.0f, 0.5f};
static const float G1[3] = {0.1f, 0.2f, -0.3f};

static ed_opt_config s_cfg(ed_opt_kind kind, float lr, float wd)
{
    ed_opt_config c = ed_opt_config_default();
    c.kind = kind;
    c.lr = lr;
    c.weight_decay = wd;
    return c;
}

static void test_sgd_momentum(void **state)
{
    (void)state;
    ed_opt_config c = s_cfg(ED_OPT_SGD, 0.1f, 0.0f);
    c.momentum = 0.9f;
    ed_optim *o = ed_optim_new(&c, 3, NULL);
    assert_non_null(o);
    assert_null(o->v);
    float p[3] = {P0[0], P0[1], P0[2]};
    /* Step 1: m = g = [0.1, 0.2, -0.3];  p -= 0.1 m  ->  [0.99, -2.02, 0.53] */
    ed_optim_step(o, p, G1);
    const float want1[3] = {0.99f, -2.02f, 0.53f};
    const float want_m1[3] = {0.1f, 0.2f, -0.3f};
    assert_true(tu_allclose("sgd step 1 params", p, want1, 3, 1e-7, 1e-6));
    assert_true(tu_allclose("sgd step 1 momentum", o->m, want_m1, 3, 1e-7, 1e-6));
    /* Step 2, same g: m = 0.9 [0.1, 0.2, -0.3] + g = [0.19, 0.38, -0.57];
     * p -= 0.1 m -> [0.99 - 0.019, -2.02 - 0.038, 0.53 + 0.057] = [0.971, -2.058, 0.587] */
    ed_optim_step(o, p, G1);
    const float want2[3] = {0.971f, -2.058f, 0.587f};
    assert_true(tu_allclose("sgd step 2 params", p, want2, 3, 1e-7, 1e-6));
    assert_int_equal(o->t, 2);
    ed_optim_destroy(&o);
    assert_null(o);
}

static void test_sgd_weight_decay(void **state)
{
    (void)state;
    ed_opt_config c = s_cfg(ED_OPT_SGD, 0.1f, 0.01f);
    c.momentum = 0.9f;
    ed_optim *o = ed_optim_new(&c, 3, NULL);
    assert_non_null(o);
    float p[3] = {P0[0], P0[1], P0[2]};
    /* g' = g + 0.01 p = [0.1 + 0.01, 0.2 - 0.02, -0.3 + 0.005] = [0.11, 0.18, -0.295];
     * m = g';  p -= 0.1 m -> [1 - 0.011, -2 - 0.018, 0.5 + 0.0295] = [0.989, -2.018, 0.5295] */
    ed_optim_step(o, p, G1);
    const float want[3] = {0.989f, -2.018f, 0.5295f};
    assert_true(tu_allclose("sgd weight decay", p, want, 3, 1e-7, 1e-6));
    ed_optim_destroy(&o);
}

static void test_adam_two_steps(void **state)
{
    (void)state;
    ed_opt_config c = s_cfg(ED_OPT_ADAM, 0.1f, 0.0f); /* b1 0.9, b2 0.999, eps 1e-8 */
    ed_optim *o = ed_optim_new(&c, 3, NULL);
    assert_non_null(o);
    assert_non_null(o->v);
    float p[3] = {P0[0], P0[1], P0[2]};
    /* Step 1 (t = 1): m = 0.1 g = [0.01, 0.02, -0.03];  v = 0.001 g^2 = [1e-5, 4e-5, 9e-5];
     * mh = m / (1 - 0.9) = g;  vh = v / (1 - 0.999) = g^2;  mh / (sqrt(vh) + eps) = g / (|g| +
     * 1e-8) = [0.9999999, 0.99999995, -0.99999997];  p -= 0.1 * that -> [0.90000001, -2.1, 0.6] */
    ed_optim_step(o, p, G1);
    const float want_m1[3] = {0.01f, 0.02f, -0.03f};
    const float want_v1[3] = {1e-5f, 4e-5f, 9e-5f};
    const float want1[3] = {0.90000001f, -2.1f, 0.6f};
    assert_true(tu_allclose("adam step 1 m", o->m, want_m1, 3, 1e-9, 1e-5));
    /* float 0.999f is 0.99900001, so 1 - b2 is off by 1.3e-5 relative: allow 5e-5. */
    assert_true(tu_allclose("adam step 1 v", o->v, want_v1, 3, 1e-12, 5e-5));
    assert_true(tu_allclose("adam step 1 params", p, want1, 3, 1e-7, 1e-6));

    /* Step 2 (t = 2), g2 = [0.2, -0.1, -0.3]:
     * m = 0.9 [0.01, 0.02, -0.03] + 0.1 [0.2, -0.1, -0.3] = [0.029, 0.008, -0.057]
     * v = 0.999 [1e-5, 4e-5, 9e-5] + 0.001 [0.04, 0.01, 0.09] = [4.999e-5, 4.996e-5, 1.7991e-4]
     * 1 - 0.9^2 = 0.19;  1 - 0.999^2 = 0.001999
     * mh = [0.15263158, 0.04210526, -0.3];  vh = [0.0250075, 0.0249925, 0.09]
     * sqrt(vh) = [0.15813761, 0.15809015, 0.3];  ratio = [0.96518196, 0.26633702, -0.99999997]
     * p = [0.90000001, -2.1, 0.6] - 0.1 ratio = [0.80348181, -2.1266337, 0.69999999] */
    const float g2[3] = {0.2f, -0.1f, -0.3f};
    ed_optim_step(o, p, g2);
    const float want_m2[3] = {0.029f, 0.008f, -0.057f};
    const float want_v2[3] = {4.999e-5f, 4.996e-5f, 1.7991e-4f};
    const float want2[3] = {0.80348181f, -2.1266337f, 0.69999999f};
    assert_true(tu_allclose("adam step 2 m", o->m, want_m2, 3, 1e-9, 1e-5));
    assert_true(tu_allclose("adam step 2 v", o->v, want_v2, 3, 1e-12, 5e-5));
    assert_true(tu_allclose("adam step 2 params", p, want2, 3, 1e-7, 1e-6));
    assert_int_equal(o->t, 2);
    ed_optim_destroy(&o);
}

static void test_adam_weight_decay(void **state)
{
    (void)state;
    ed_opt_config c = s_cfg(ED_OPT_ADAM, 0.1f, 0.1f);
    ed_optim *o = ed_optim_new(&c, 3, NULL);
    assert_non_null(o);
    float p[3] = {P0[0], P0[1], P0[2]};
    /* Decoupled decay: p -= lr (mh / (sqrt(vh) + eps) + wd p); the moments see g only.
     * ratio as in step 1 above ~ [1, 1, -1];  wd p = [0.1, -0.2, 0.05]
     * p0: 1   - 0.1 (0.9999999 + 0.1)    = 0.89000001
     * p1: -2  - 0.1 (0.99999995 - 0.2)  = -2.079999995
     * p2: 0.5 - 0.1 (-0.99999997 + 0.05) = 0.594999997 */
    ed_optim_step(o, p, G1);
    const float want[3] = {0.89000001f, -2.08f, 0.595f};
    const float want_m[3] = {0.01f, 0.02f, -0.03f};
    assert_true(tu_allclose("adamw params", p, want, 3, 1e-7, 1e-6));
    assert_true(tu_allclose("adamw m (decay not in the moments)", o->m, want_m, 3, 1e-9, 1e-5));
    ed_optim_destroy(&o);
}

static void s_check_lr(const char *what, const ed_opt_config *c, long t, double want)
{
    float got = ed_opt_lr_at(c, t);
    float wantf = (float)want;
    char name[96];
    snprintf(name, sizeof name, "%s at t=%ld", what, t);
    assert_true(tu_allclose(name, &got, &wantf, 1, 1e-9, 1e-6));
}

static void test_lr_schedules(void **state)
{
    (void)state;
    ed_opt_config c = s_cfg(ED_OPT_SGD, 0.1f, 0.0f);
    /* constant */
    s_check_lr("constant", &c, 0, 0.1);
    s_check_lr("constant", &c, 12345, 0.1);

    /* cosine, lr 0.1 -> lr_min 0.01 over 100 steps: 0.01 + 0.09 (1 + cos(pi t / 100)) / 2 */
    c.schedule = ED_LR_COSINE;
    c.total_steps = 100;
    c.lr_min = 0.01f;
    s_check_lr("cosine start", &c, 0, 0.1);
    s_check_lr("cosine quarter", &c, 25, 0.0868198051533946); /* 0.01 + 0.09 * 0.85355339 */
    s_check_lr("cosine middle", &c, 50, 0.055);               /* 0.01 + 0.09 * 0.5 */
    s_check_lr("cosine end", &c, 100, 0.01);
    s_check_lr("cosine past end", &c, 250, 0.01);

    /* step: 0.1 * 0.5^floor(t / 10) */
    c.schedule = ED_LR_STEP;
    c.step_size = 10;
    c.gamma = 0.5f;
    s_check_lr("step", &c, 0, 0.1);
    s_check_lr("step", &c, 9, 0.1);
    s_check_lr("step", &c, 10, 0.05);
    s_check_lr("step", &c, 25, 0.025);

    /* warm-up over 4 steps: lr (t + 1) / 4, then cosine on t - 4 */
    c.schedule = ED_LR_COSINE;
    c.warmup_steps = 4;
    s_check_lr("warmup", &c, 0, 0.025);
    s_check_lr("warmup", &c, 1, 0.05);
    s_check_lr("warmup", &c, 3, 0.1);
    s_check_lr("warmup then cosine start", &c, 4, 0.1);
    s_check_lr("warmup then cosine middle", &c, 54, 0.055);
    s_check_lr("warmup then cosine end", &c, 104, 0.01);

    /* The step uses the scheduled lr: SGD, first step at lr 0.1 / 4, no momentum history yet.
     * p -= 0.025 g -> [1 - 0.0025, -2 - 0.005, 0.5 + 0.0075] */
    c.schedule = ED_LR_CONSTANT;
    ed_optim *o = ed_optim_new(&c, 3, NULL);
    assert_non_null(o);
    float p[3] = {P0[0], P0[1], P0[2]};
    ed_optim_step(o, p, G1);
    const float want[3] = {0.9975f, -2.005f, 0.5075f};
    assert_true(tu_allclose("sgd step under warm-up", p, want, 3, 1e-7, 1e-6));
    ed_optim_destroy(&o);
}

static void test_names_and_defaults(void **state)
{
    (void)state;
    ed_opt_config c = ed_opt_config_default();
    assert_int_equal(c.kind, ED_OPT_ADAM);
    assert_true(c.lr == 1e-3f && c.beta1 == 0.9f && c.beta2 == 0.999f && c.eps == 1e-8f);
    assert_true(c.momentum == 0.9f && c.weight_decay == 0.0f);
    assert_int_equal(c.schedule, ED_LR_CONSTANT);
    assert_int_equal(c.warmup_steps, 0);

    assert_int_equal(ed_opt_kind_parse("sgd"), ED_OPT_SGD);
    assert_int_equal(ed_opt_kind_parse("adam"), ED_OPT_ADAM);
    assert_int_equal(ed_opt_kind_parse("adamw"), -1);
    assert_int_equal(ed_opt_kind_parse(NULL), -1);
    assert_int_equal(ed_lr_schedule_parse("constant"), ED_LR_CONSTANT);
    assert_int_equal(ed_lr_schedule_parse("cosine"), ED_LR_COSINE);
    assert_int_equal(ed_lr_schedule_parse("step"), ED_LR_STEP);
    assert_int_equal(ed_lr_schedule_parse("linear"), -1);
    for (int k = 0; k < ED_OPT_KIND_COUNT; k++)
        assert_int_equal(ed_opt_kind_parse(ed_opt_kind_name((ed_opt_kind)k)), k);
    for (int k = 0; k < ED_LR_SCHED_COUNT; k++)
        assert_int_equal(ed_lr_schedule_parse(ed_lr_schedule_name((ed_lr_schedule)k)), k);

    ed_optim *none = NULL;
    ed_optim_destroy(&none);
    ed_optim_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_momentum),   cmocka_unit_test(test_sgd_weight_decay),
        cmocka_unit_test(test_adam_two_steps), cmocka_unit_test(test_adam_weight_decay),
        cmocka_unit_test(test_lr_schedules),   cmocka_unit_test(test_names_and_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
