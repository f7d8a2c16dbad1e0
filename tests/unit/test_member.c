/*
 * test_member: ed_member, the in-process member: a saved model file run on raw uint8 and float32
 * batches against a naive double-precision forward pass written here (scaling as the file records,
 * ReLU hidden layers, linear logits); shares of one member give identical logits and outlive the
 * member they came from; a wrapped model sees its updates; refused inputs name the member.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_member.h"
#include "ed_model_file.h"
#include "tu.h"

#define S_ARCH "6,5,4,3"
#define S_B 7

/* Naive reference: logits (n, classes) of m on x_model = x_raw * scale + offset, in double. */
static void s_reference(const ed_mlp *m, const float *xraw, int n, float scale, float offset,
                        float *out)
{
    const ed_arch *a = &m->arch;
    double cur[64], next[64];
    for (int i = 0; i < n; i++) {
        int w = a->widths[0];
        for (int j = 0; j < w; j++)
            cur[j] = (double)xraw[i * w + j] * scale + offset;
        for (int l = 0; l < a->n_layers; l++) {
            int wi = a->widths[l], wo = a->widths[l + 1];
            for (int o = 0; o < wo; o++) {
                double s = m->b[l][o];
                for (int j = 0; j < wi; j++)
                    s += (double)m->W[l][o * wi + j] * cur[j];
                next[o] = (l + 1 < a->n_layers && s < 0) ? 0.0 : s;
            }
            memcpy(cur, next, sizeof(double) * (size_t)wo);
        }
        for (int c = 0; c < ed_arch_out(a); c++)
            out[i * ed_arch_out(a) + c] = (float)cur[c];
    }
}

typedef struct {
    char *path;
    ed_net *model;
    ed_model_meta meta;
} s_fixture;

static int s_setup(void **state)
{
    s_fixture *f = calloc(1, sizeof *f);
    ed_stack a;
    ed_err err;
    assert_int_equal(ed_stack_parse(S_ARCH, &a, &err), 0);
    f->model = ed_net_new(&a);
    ed_rng r;
    ed_rng_seed(&r, 11);
    ed_net_init(f->model, &r);
    for (size_t i = 0; i < f->model->n_params; i++) /* non-zero biases too */
        f->model->params[i] += 0.05f * ed_rng_normal(&r);
    snprintf(f->meta.member, sizeof f->meta.member, "m-test");
    f->meta.input_scale = 1.0f / 255.0f;
    f->meta.input_offset = -0.25f;
    f->path = tu_temp_path(".safetensors");
    assert_int_equal(ed_model_save(f->path, f->model, &f->meta, &err), 0);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    s_fixture *f = *state;
    remove(f->path);
    free(f->path);
    ed_net_destroy(&f->model);
    free(f);
    return 0;
}

static void test_open_and_forward(void **state)
{
    s_fixture *f = *state;
    ed_err err = {0};
    ed_member *m = ed_member_open(f->path, S_B, &err);
    assert_non_null(m);
    assert_string_equal(ed_member_name(m), "m-test");
    assert_string_equal(ed_member_arch(m), S_ARCH);
    assert_string_equal(ed_member_path(m), f->path);
    char fp[32];
    ed_fingerprint_format(f->meta.fingerprint, fp, sizeof fp);
    assert_string_equal(ed_member_fingerprint(m), fp);
    assert_int_equal(ed_member_input_dim(m), 6);
    assert_int_equal(ed_member_classes(m), 3);
    assert_int_equal(ed_member_max_batch(m), S_B);

    uint8_t xu[S_B * 6];
    float xf[S_B * 6], z[S_B * 3], ref[S_B * 3];
    ed_rng r;
    ed_rng_seed(&r, 3);
    for (int i = 0; i < S_B * 6; i++) {
        xu[i] = (uint8_t)(ed_rng_next(&r) >> 56);
        xf[i] = (float)xu[i];
    }
    s_reference(f->model->mlp, xf, S_B, f->meta.input_scale, f->meta.input_offset, ref);
    assert_int_equal(ed_member_forward(m, xu, ED_DTYPE_U8, S_B, z, &err), 0);
    assert_true(tu_allclose("u8 logits", z, ref, S_B * 3, 1e-5, 1e-5));
    memset(z, 0, sizeof z);
    assert_int_equal(ed_member_forward(m, xf, ED_DTYPE_F32, 3, z, &err), 0);
    assert_true(tu_allclose("f32 logits", z, ref, 3 * 3, 1e-5, 1e-5));
    assert_true(z[3 * 3] == 0.0f); /* only n rows written */

    /* Refusals name the member and write nothing. */
    assert_int_equal(ed_member_forward(m, xu, ED_DTYPE_U8, S_B + 1, z, &err), ED_ESHAPE);
    assert_non_null(strstr(err.msg, "m-test"));
    assert_int_equal(ed_member_forward(m, xu, ED_DTYPE_U8, 0, z, &err), ED_EINVAL);
    assert_int_equal(ed_member_forward(m, xu, (ed_dtype)7, 1, z, &err), ED_EINVAL);
    ed_member_destroy(&m);
    assert_null(m);
    ed_member_destroy(&m); /* NULL is fine */
}

static void test_share_outlives_original(void **state)
{
    s_fixture *f = *state;
    ed_err err = {0};
    ed_member *m = ed_member_open(f->path, 2, &err);
    assert_non_null(m);
    ed_member *s1 = ed_member_share(m, S_B, &err);
    ed_member *s2 = ed_member_share(s1, 1, &err);
    assert_non_null(s1);
    assert_non_null(s2);
    assert_int_equal(ed_member_max_batch(s1), S_B);
    assert_string_equal(ed_member_fingerprint(s2), ed_member_fingerprint(m));
    ed_member_destroy(&m); /* the weights stay while a share uses them */

    uint8_t xu[S_B * 6];
    for (int i = 0; i < S_B * 6; i++)
        xu[i] = (uint8_t)(i * 37);
    float z1[S_B * 3], z2[3];
    assert_int_equal(ed_member_forward(s1, xu, ED_DTYPE_U8, S_B, z1, &err), 0);
    assert_int_equal(ed_member_forward(s2, xu + 6 * 4, ED_DTYPE_U8, 1, z2, &err), 0);
    assert_memory_equal(z1 + 3 * 4, z2, sizeof z2);
    ed_member_destroy(&s1);
    ed_member_destroy(&s2);
    assert_null(ed_member_share(NULL, 1, &err));
    assert_int_equal(err.code, ED_EINVAL);
}

static void test_wrap_sees_updates(void **state)
{
    s_fixture *f = *state;
    ed_err err = {0};
    ed_member *m = ed_member_wrap_net(f->model, 0.5f, 1.0f, "student", 2, &err);
    assert_non_null(m);
    assert_string_equal(ed_member_name(m), "student");
    assert_string_equal(ed_member_fingerprint(m), "");
    float x[2 * 6] = {1, 2, 3, 4, 5, 6, -1, 0, 1, 0, -1, 2}, z[6], ref[6];
    s_reference(f->model->mlp, x, 2, 0.5f, 1.0f, ref);
    assert_int_equal(ed_member_forward(m, x, ED_DTYPE_F32, 2, z, &err), 0);
    assert_true(tu_allclose("wrapped", z, ref, 6, 1e-5, 1e-5));
    f->model->mlp->b[2][1] += 1.0f; /* the member reads the model it wraps at each forward */
    ref[1] += 1.0f;
    ref[4] += 1.0f;
    assert_int_equal(ed_member_forward(m, x, ED_DTYPE_F32, 2, z, &err), 0);
    assert_true(tu_allclose("wrapped after update", z, ref, 6, 1e-5, 1e-5));
    f->model->mlp->b[2][1] -= 1.0f;
    ed_member_destroy(&m);
}

static void test_open_errors(void **state)
{
    s_fixture *f = *state;
    ed_err err = {0};
    assert_null(ed_member_open("/nonexistent/m.safetensors", 4, &err));
    assert_true(err.code < 0);
    assert_non_null(strstr(err.msg, "/nonexistent/m.safetensors"));
    assert_null(ed_member_open(f->path, 0, &err));
    assert_int_equal(err.code, ED_EINVAL);
    assert_non_null(strstr(err.msg, f->path));
    /* A truncated file is refused by the model-file checks, with the path. */
    size_t n;
    char *bytes = tu_read_file(f->path, &n);
    char *cut = tu_temp_path(".safetensors");
    assert_int_equal(tu_write_file(cut, bytes, n - 8), 0);
    assert_null(ed_member_open(cut, 4, &err));
    assert_non_null(strstr(err.msg, cut));
    remove(cut);
    free(cut);
    free(bytes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_and_forward),
        cmocka_unit_test(test_share_outlives_original),
        cmocka_unit_test(test_wrap_sees_updates),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
