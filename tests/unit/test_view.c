/*
 * test_view: ed_view (the student's derived view, avgpool:K): parsing and its refusals, binding to
 * a sample size, hand-derived block means on u8 and f32 samples, and a stream read through a view
 * (an IDX file of 8x8 images read as 4x4 and 2x2 means, in chunks across the read buffer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_data.h"
#include "ed_view.h"
#include "tu.h"

static void test_parse(void **state)
{
    (void)state;
    ed_view v;
    ed_err err = {0};
    assert_int_equal(ed_view_parse(NULL, &v, &err), 0);
    assert_false(ed_view_on(&v));
    assert_int_equal(ed_view_parse("none", &v, &err), 0);
    assert_false(ed_view_on(&v));
    assert_int_equal(ed_view_parse("avgpool:4", &v, &err), 0);
    assert_true(ed_view_on(&v));
    assert_int_equal(v.k, 4);
    const char *bad[] = {"avgpool", "avgpool:", "avgpool:0", "avgpool:65", "avgpool:2x", "max:2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ed_view_parse(bad[i], &v, &err), ED_EINVAL);
        assert_non_null(strstr(err.msg, bad[i]));
    }
}

static void test_bind(void **state)
{
    (void)state;
    ed_view v;
    ed_err err = {0};
    assert_int_equal(ed_view_parse("avgpool:4", &v, &err), 0);
    assert_int_equal(ed_view_bind(&v, 784, &err), 0);
    assert_int_equal(v.side, 28);
    assert_int_equal(v.out_dim, 49);
    assert_int_equal(ed_view_parse("avgpool:2", &v, &err), 0);
    assert_int_equal(ed_view_bind(&v, 784, &err), 0);
    assert_int_equal(v.out_dim, 196);
    assert_int_equal(ed_view_parse("avgpool:3", &v, &err), 0);
    assert_int_equal(ed_view_bind(&v, 784, &err), ED_ESHAPE); /* 28 is not a multiple of 3 */
    assert_non_null(strstr(err.msg, "784"));
    assert_int_equal(ed_view_bind(&v, 785, &err), ED_ESHAPE); /* not square */
}

static void test_apply(void **state)
{
    (void)state;
    ed_view v;
    ed_err err = {0};
    assert_int_equal(ed_view_parse("avgpool:2", &v, &err), 0);
    assert_int_equal(ed_view_bind(&v, 16, &err), 0);
    /* two 4x4 samples; block means derived by hand */
    const uint8_t x[32] = {0,   1,   2, 3, 4,   5,   6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                           255, 255, 0, 0, 255, 254, 0, 1, 9, 9, 9,  9,  9,  9,  9,  9};
    const float want[8] = {2.5f, 4.5f, 10.5f, 12.5f, 254.75f, 0.25f, 9.0f, 9.0f};
    float out[8], xf[32], out_f[8];
    ed_view_apply(&v, x, ED_DTYPE_U8, 2, out);
    assert_memory_equal(out, want, sizeof want);
    for (int i = 0; i < 32; i++)
        xf[i] = (float)x[i];
    ed_view_apply(&v, xf, ED_DTYPE_F32, 2, out_f);
    assert_memory_equal(out_f, want, sizeof want);
}

/* An IDX file of n 8x8 images: pixel (i, r, c) = (i + 8r + c) % 256. */
static char *s_write_idx(long n)
{
    size_t bytes = 16 + (size_t)n * 64;
    uint8_t *buf = malloc(bytes);
    assert_non_null(buf);
    const uint8_t hdr[16] = {0,
                             0,
                             8,
                             3,
                             (uint8_t)(n >> 24),
                             (uint8_t)(n >> 16),
                             (uint8_t)(n >> 8),
                             (uint8_t)n,
                             0,
                             0,
                             0,
                             8,
                             0,
                             0,
                             0,
                             8};
    memcpy(buf, hdr, 16);
    for (long i = 0; i < n; i++)
        for (int p = 0; p < 64; p++)
            buf[16 + i * 64 + p] = (uint8_t)((i + p) % 256);
    char *path = tu_temp_path(".idx");
    assert_int_equal(tu_write_file(path, buf, bytes), 0);
    free(buf);
    return path;
}

static void test_stream_view(void **state)
{
    (void)state;
    const long n = 600; /* more than one chunk of the stream's view buffer */
    char *path = s_write_idx(n);
    ed_err err = {0};
    ed_dataset_spec spec = {path, NULL, 100, 600};
    ed_stream *s = ed_stream_open(&spec, &err);
    assert_non_null(s);
    ed_view v;
    assert_int_equal(ed_view_parse("avgpool:4", &v, &err), 0);
    assert_int_equal(ed_stream_set_view(s, &v, &err), 0);
    assert_int_equal(ed_stream_dim(s), 4);
    assert_int_equal(ed_stream_dtype(s), ED_DTYPE_F32);
    assert_int_equal(ed_stream_set_view(s, &v, &err), ED_EINVAL); /* one view per stream */
    float *x = malloc(sizeof(float) * 4 * 500);
    int32_t *y = malloc(sizeof(int32_t) * 500);
    assert_int_equal(ed_stream_read(s, x, y, 500, &err), 500);
    for (long i = 0; i < 500; i++) {
        const long g = i + 100;
        for (int br = 0; br < 2; br++)
            for (int bc = 0; bc < 2; bc++) {
                long sum = 0;
                for (int r = 0; r < 4; r++)
                    for (int c = 0; c < 4; c++)
                        sum += (g + 8 * (4 * br + r) + 4 * bc + c) % 256;
                assert_true(x[i * 4 + br * 2 + bc] == (float)sum / 16.0f);
            }
        assert_int_equal(y[i], -1);
    }
    assert_int_equal(ed_stream_read(s, x, y, 10, &err), 0);
    ed_stream_destroy(&s);
    /* a view that does not fit names the file */
    s = ed_stream_open(&spec, &err);
    assert_int_equal(ed_view_parse("avgpool:3", &v, &err), 0);
    assert_int_equal(ed_stream_set_view(s, &v, &err), ED_ESHAPE);
    assert_non_null(strstr(err.msg, path));
    ed_stream_destroy(&s);
    free(x);
    free(y);
    remove(path);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_bind),
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_stream_view),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
