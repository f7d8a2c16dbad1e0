/*
 * test_checkpoint: ed_checkpoint files end to end:
 *  - a trainer (Adam and SGD, with dropout) saved after a few steps and restored into a trainer
 *    built from a different initialization holds bit-identical parameters, moments, step count and
 *    dropout RNG, and its next steps match the original's bit for bit;
 *  - ints, reals (including -0, subnormals, infinities and NaN payloads) and RNG states come back
 *    exactly;
 *  - the config comparison names the first differing, missing or extra field;
 *  - truncated, corrupted, foreign, newer-version and missing files are refused with the right code
 *    and a message naming the path; an optimizer-kind mismatch is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ed_checkpoint.h"
#include "ed_rng.h"
#include "ed_safetensors.h"
#include "ed_trainer.h"
#include "tu.h"

enum { B = 8, D = 6, H = 9, C = 4 };

static const char *s_config =
    "{\"arch\":\"6,9,4\",\"temperature\":4,\"seed\":\"7\",\"teachers\":[\"a\",\"b\"]}";

/* A trainer of arch (6 inputs, 4 classes) initialized from init_seed, with dropout so the RNG
 * matters (flags for an MLP; a stack brings its own dropout layers). */
static ed_trainer *s_trainer_arch(const char *arch, ed_opt_kind kind, uint64_t init_seed)
{
    ed_err err = {0};
    ed_stack a;
    assert_int_equal(ed_stack_parse(arch, &a, &err), 0);
    ed_net *m = ed_net_new(&a);
    assert_non_null(m);
    ed_rng r;
    ed_rng_seed(&r, init_seed);
    ed_net_init(m, &r);
    ed_opt_config oc = ed_opt_config_default();
    oc.kind = kind;
    oc.lr = 0.05f;
    oc.schedule = ED_LR_COSINE;
    oc.total_steps = 20;
    oc.weight_decay = 0.01f;
    const bool mlp = a.mlp;
    const ed_trainer_config tc = {.opt = oc,
                                  .max_batch = B,
                                  .dropout_in = mlp ? 0.1f : 0.0f,
                                  .dropout_hidden = mlp ? 0.3f : 0.0f,
                                  .input_scale = 1.0f / 255.0f,
                                  .seed = init_seed + 100};
    ed_trainer *t = ed_trainer_new(&m, &tc, &err);
    assert_non_null(t);
    return t;
}

/* The 6-9-4 MLP trainer. */
static ed_trainer *s_trainer(ed_opt_kind kind, uint64_t init_seed)
{
    return s_trainer_arch("6,9,4", kind, init_seed);
}

/* A deterministic batch (half labeled) and one member's logits for step i. */
static void s_batch(int i, uint8_t *x, int32_t *y, float *q, ed_batch *b)
{
    ed_rng r;
    ed_rng_seed(&r, 1000 + (uint64_t)i);
    for (int k = 0; k < B * D; k++)
        x[k] = (uint8_t)ed_rng_below(&r, 256);
    for (int k = 0; k < B; k++) {
        y[k] = k % 2 ? -1 : (int32_t)ed_rng_below(&r, C);
        for (int c = 0; c < C; c++)
            q[k * C + c] = 2.0f * ed_rng_normal(&r);
    }
    *b = (ed_batch){.n = B, .dim = D, .dtype = ED_DTYPE_U8, .x = x, .y = y};
}

static void s_steps(ed_trainer *t, int from, int to)
{
    uint8_t x[B * D];
    int32_t y[B];
    float q[B * C];
    ed_batch b;
    ed_loss_config lc = {.alpha = 0.7f, .temperature = 3.0f, .soft_loss = ED_SOFT_CE};
    ed_err err = {0};
    for (int i = from; i < to; i++) {
        s_batch(i, x, y, q, &b);
        ed_step_stats st;
        const float *members[1] = {q};
        assert_int_equal(ed_trainer_distill_step(t, &b, members, 1, &lc, &st, &err), 0);
    }
}

static int s_same_bits(const char *what, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float))) {
            fprintf(stderr, "%s: element %zu differs: %.9g vs %.9g\n", what, i, (double)a[i],
                    (double)b[i]);
            return 0;
        }
    return 1;
}

static void s_roundtrip(ed_opt_kind kind)
{
    ed_err err = {0};
    char *path = tu_temp_path(".ckpt");
    ed_trainer *a = s_trainer(kind, 1);
    s_steps(a, 0, 5);

    ed_checkpoint *w = ed_checkpoint_new(s_config, &err);
    assert_non_null(w);
    assert_int_equal(ed_checkpoint_put_trainer(w, a, &err), 0);
    assert_int_equal(ed_checkpoint_write(w, path, &err), 0);
    ed_checkpoint_destroy(&w);
    assert_null(w);

    ed_trainer *b = s_trainer(kind, 2); /* different weights and dropout stream */
    ed_checkpoint *r = ed_checkpoint_read(path, &err);
    assert_non_null(r);
    assert_string_equal(ed_checkpoint_config(r), s_config);
    assert_int_equal(ed_checkpoint_get_trainer(r, b, &err), 0);
    ed_checkpoint_destroy(&r);

    size_t n = a->model->n_params;
    assert_true(s_same_bits("params", a->model->params, b->model->params, n));
    assert_true(s_same_bits("moment 1", a->opt->m, b->opt->m, n));
    if (kind == ED_OPT_ADAM)
        assert_true(s_same_bits("moment 2", a->opt->v, b->opt->v, n));
    assert_int_equal(a->opt->t, 5);
    assert_int_equal(b->opt->t, 5);
    assert_memory_equal(&a->rng, &b->rng, sizeof a->rng);

    /* The restored trainer continues exactly like the original. */
    s_steps(a, 5, 9);
    s_steps(b, 5, 9);
    assert_true(s_same_bits("params after 4 more steps", a->model->params, b->model->params, n));
    assert_true(s_same_bits("moment 1 after 4 more steps", a->opt->m, b->opt->m, n));

    /* The other optimizer kind cannot take this state. */
    ed_trainer *other = s_trainer(kind == ED_OPT_ADAM ? ED_OPT_SGD : ED_OPT_ADAM, 3);
    r = ed_checkpoint_read(path, &err);
    assert_non_null(r);
    assert_int_equal(ed_checkpoint_get_trainer(r, other, &err), ED_EFORMAT);
    assert_non_null(strstr(err.msg, kind == ED_OPT_ADAM ? "holds Adam state" : "holds SGD state"));
    ed_checkpoint_destroy(&r);

    ed_trainer_destroy(&a);
    ed_trainer_destroy(&b);
    ed_trainer_destroy(&other);
    unlink(path);
    free(path);
}

/* A stack with batch norm: the running statistics travel in "bn_state" and a restored trainer
 * continues bit for bit (weights and statistics). */
static void test_trainer_roundtrip_bn(void **state)
{
    (void)state;
    const char *arch = "6:dense9,bn,relu,dropout0.2,dense4";
    ed_err err = {0};
    char *path = tu_temp_path(".ckpt");
    ed_trainer *a = s_trainer_arch(arch, ED_OPT_ADAM, 1);
    s_steps(a, 0, 5);
    ed_checkpoint *w = ed_checkpoint_new(s_config, &err);
    assert_int_equal(ed_checkpoint_put_trainer(w, a, &err), 0);
    assert_int_equal(ed_checkpoint_write(w, path, &err), 0);
    ed_checkpoint_destroy(&w);
    ed_trainer *b = s_trainer_arch(arch, ED_OPT_ADAM, 2);
    ed_checkpoint *r = ed_checkpoint_read(path, &err);
    assert_non_null(r);
    assert_int_equal(ed_checkpoint_has_tensor(r, "bn_state"), 1);
    assert_int_equal(ed_checkpoint_get_trainer(r, b, &err), 0);
    ed_checkpoint_destroy(&r);
    const size_t ns = a->model->n_state;
    assert_int_equal(ns, 18);
    assert_true(s_same_bits("bn state", a->model->state, b->model->state, ns));
    s_steps(a, 5, 9);
    s_steps(b, 5, 9);
    assert_true(s_same_bits("params after 4 more steps", a->model->params, b->model->params,
                            a->model->n_params));
    assert_true(s_same_bits("bn state after 4 more steps", a->model->state, b->model->state, ns));
    ed_trainer_destroy(&a);
    ed_trainer_destroy(&b);
    unlink(path);
    free(path);
}

static void test_trainer_roundtrip_adam(void **state)
{
    (void)state;
    s_roundtrip(ED_OPT_ADAM);
}

static void test_trainer_roundtrip_sgd(void **state)
{
    (void)state;
    s_roundtrip(ED_OPT_SGD);
}

static void test_values_exact(void **state)
{
    (void)state;
    ed_err err = {0};
    char *path = tu_temp_path(".ckpt");
    uint64_t nan_bits = 0x7ff8000000abcdefULL;
    double nan_payload;
    memcpy(&nan_payload, &nan_bits, sizeof nan_payload);
    const double reals[] = {0.1,       -0.0,        4.9406564584124654e-324, DBL_MAX,
                            -INFINITY, nan_payload, 33.136834123456789};
    const int64_t ints[] = {0, -1, INT64_MIN, INT64_MAX, 141};
    ed_rng rngs[2];
    ed_rng_seed(&rngs[0], 5);
    rngs[1] = (ed_rng){{0, UINT64_MAX, 0x0123456789abcdefULL, 1}};
    float block[3] = {1.5f, -0.0f, 3e-42f};

    ed_checkpoint *w = ed_checkpoint_new("{}", &err);
    assert_non_null(w);
    char key[32];
    for (int i = 0; i < 7; i++) {
        snprintf(key, sizeof key, "r%d", i);
        assert_int_equal(ed_checkpoint_put_real(w, key, reals[i], &err), 0);
    }
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "i%d", i);
        assert_int_equal(ed_checkpoint_put_int(w, key, ints[i], &err), 0);
    }
    assert_int_equal(ed_checkpoint_put_int(w, "i4", 142, &err), 0); /* replaces */
    assert_int_equal(ed_checkpoint_put_rng(w, "g0", &rngs[0], &err), 0);
    assert_int_equal(ed_checkpoint_put_rng(w, "g1", &rngs[1], &err), 0);
    assert_int_equal(ed_checkpoint_put_tensor(w, "block", block, 3, &err), 0);
    assert_int_equal(ed_checkpoint_put_tensor(w, "block", block, 3, &err), ED_EINVAL);
    assert_int_equal(ed_checkpoint_write(w, path, &err), 0);
    ed_checkpoint_destroy(&w);

    ed_checkpoint *r = ed_checkpoint_read(path, &err);
    assert_non_null(r);
    for (int i = 0; i < 7; i++) {
        double v;
        snprintf(key, sizeof key, "r%d", i);
        assert_int_equal(ed_checkpoint_get_real(r, key, &v, &err), 0);
        assert_memory_equal(&v, &reals[i], sizeof v);
    }
    for (int i = 0; i < 5; i++) {
        int64_t v;
        snprintf(key, sizeof key, "i%d", i);
        assert_int_equal(ed_checkpoint_get_int(r, key, &v, &err), 0);
        assert_true(v == (i == 4 ? 142 : ints[i]));
    }
    for (int i = 0; i < 2; i++) {
        ed_rng g;
        snprintf(key, sizeof key, "g%d", i);
        assert_int_equal(ed_checkpoint_get_rng(r, key, &g, &err), 0);
        assert_memory_equal(&g, &rngs[i], sizeof g);
    }
    float back[3];
    assert_int_equal(ed_checkpoint_get_tensor(r, "block", back, 3, &err), 0);
    assert_memory_equal(back, block, sizeof block);
    assert_int_equal(ed_checkpoint_get_tensor(r, "block", back, 2, &err), ED_ESHAPE);
    assert_int_equal(ed_checkpoint_get_tensor(r, "nope", back, 3, &err), ED_ENOTFOUND);
    int64_t iv;
    assert_int_equal(ed_checkpoint_get_int(r, "nope", &iv, &err), ED_ENOTFOUND);
    assert_non_null(strstr(err.msg, "nope"));
    ed_checkpoint_destroy(&r);
    unlink(path);
    free(path);
}

static void test_config_match(void **state)
{
    (void)state;
    ed_err err = {0};
    char *path = tu_temp_path(".ckpt");
    ed_checkpoint *w = ed_checkpoint_new(s_config, &err);
    assert_non_null(w);
    assert_int_equal(ed_checkpoint_write(w, path, &err), 0);
    ed_checkpoint_destroy(&w);
    ed_checkpoint *r = ed_checkpoint_read(path, &err);
    assert_non_null(r);
    /* Same values, other key order and spacing: a match. */
    assert_int_equal(ed_checkpoint_match_config(r,
                                                "{\"teachers\": [\"a\", \"b\"], \"seed\": \"7\", "
                                                "\"temperature\": 4.0, \"arch\": \"6,9,4\"}",
                                                &err),
                     0);
    const struct {
        const char *json, *expect;
    } cases[] = {
        {"{\"arch\":\"6,9,4\",\"temperature\":2,\"seed\":\"7\",\"teachers\":[\"a\",\"b\"]}",
         "config field \"temperature\" differs: the checkpoint has 4, this run has 2"},
        {"{\"arch\":\"6,9,4\",\"temperature\":4,\"seed\":\"7\",\"teachers\":[\"b\",\"a\"]}",
         "config field \"teachers\" differs"},
        {"{\"arch\":\"6,9,4\",\"temperature\":4,\"teachers\":[\"a\",\"b\"]}",
         "config field \"seed\" differs: the checkpoint has \"7\", this run has (absent)"},
        {"{\"arch\":\"6,9,4\",\"temperature\":4,\"seed\":\"7\",\"teachers\":[\"a\",\"b\"],\"lr\":"
         "1}",
         "config field \"lr\" differs: the checkpoint has (absent), this run has 1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ed_err_clear(&err);
        assert_int_equal(ed_checkpoint_match_config(r, cases[i].json, &err), ED_EINVAL);
        if (!strstr(err.msg, cases[i].expect))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.msg, cases[i].expect);
    }
    assert_int_equal(ed_checkpoint_match_config(r, "[1]", &err), ED_EINVAL);
    ed_checkpoint_destroy(&r);
    assert_null(ed_checkpoint_new("not json", &err));
    assert_int_equal(err.code, ED_EINVAL);
    unlink(path);
    free(path);
}

/* Writes a small valid checkpoint to path and returns its bytes. */
static unsigned char *s_valid(const char *path, size_t *n)
{
    ed_err err = {0};
    float block[64];
    for (int i = 0; i < 64; i++)
        block[i] = (float)i * 0.25f;
    ed_checkpoint *w = ed_checkpoint_new(s_config, &err);
    assert_non_null(w);
    assert_int_equal(ed_checkpoint_put_tensor(w, "params", block, 64, &err), 0);
    assert_int_equal(ed_checkpoint_put_int(w, "step", 12345, &err), 0);
    assert_int_equal(ed_checkpoint_write(w, path, &err), 0);
    ed_checkpoint_destroy(&w);
    unsigned char *bytes = tu_read_file(path, n);
    assert_non_null(bytes);
    return bytes;
}

/* First occurrence of needle (k bytes) in hay (n bytes), or NULL (memmem is not POSIX). */
static char *s_find(unsigned char *hay, size_t n, const char *needle, size_t k)
{
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(hay + i, needle, k))
            return (char *)hay + i;
    return NULL;
}

static void s_expect_refused(const char *path, int code, const char *what)
{
    ed_err err = {0};
    ed_checkpoint *r = ed_checkpoint_read(path, &err);
    if (r)
        fail_msg("%s: accepted", what);
    if (err.code != code)
        fail_msg("%s: code %s, expected %s (%s)", what, ed_err_name(err.code), ed_err_name(code),
                 err.msg);
    if (!strstr(err.msg, path))
        fail_msg("%s: message does not name the file: %s", what, err.msg);
}

static void test_damaged_files(void **state)
{
    (void)state;
    char *path = tu_temp_path(".ckpt");
    size_t n;
    unsigned char *good = s_valid(path, &n);
    unsigned char *bad = malloc(n);
    assert_non_null(bad);

    assert_int_equal(tu_write_file(path, good, n - 10), 0);
    s_expect_refused(path, ED_ETRUNC, "truncated data");

    memcpy(bad, good, n);
    bad[n - 7] ^= 0x40; /* a bit of the last parameter */
    assert_int_equal(tu_write_file(path, bad, n), 0);
    s_expect_refused(path, ED_ECHECKSUM, "flipped tensor bit");

    memcpy(bad, good, n);
    char *step = s_find(bad, n, "12345", 5);
    assert_non_null(step);
    step[0] = '9'; /* the counter, inside the state metadata */
    assert_int_equal(tu_write_file(path, bad, n), 0);
    s_expect_refused(path, ED_ECHECKSUM, "edited state");

    memcpy(bad, good, n);
    char *t4 = s_find(bad, n, "\\\"temperature\\\":4", 17);
    assert_non_null(t4);
    t4[16] = '2'; /* the config */
    assert_int_equal(tu_write_file(path, bad, n), 0);
    s_expect_refused(path, ED_ECHECKSUM, "edited config");

    memcpy(bad, good, n);
    char *fmt = s_find(bad, n, "edistill-checkpoint", 19);
    assert_non_null(fmt);
    memcpy(fmt, "edistill-mlpxxxxxxx", 19);
    assert_int_equal(tu_write_file(path, bad, n), 0);
    s_expect_refused(path, ED_EFORMAT, "foreign format");

    /* A newer format version. */
    ed_err err = {0};
    const ed_st_meta meta[] = {{"format", ED_CHECKPOINT_FORMAT}, {"format_version", "2"}};
    assert_int_equal(ed_st_write(path, NULL, 0, meta, 2, &err), 0);
    s_expect_refused(path, ED_EVERSION, "newer version");

    unlink(path);
    s_expect_refused(path, ED_ENOTFOUND, "missing file");
    free(good);
    free(bad);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trainer_roundtrip_adam), cmocka_unit_test(test_trainer_roundtrip_sgd),
        cmocka_unit_test(test_trainer_roundtrip_bn),   cmocka_unit_test(test_values_exact),
        cmocka_unit_test(test_config_match),           cmocka_unit_test(test_damaged_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
