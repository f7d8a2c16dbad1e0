/*
 * test_safetensors: ed_st_write / ed_st_open on their own: a round trip with several dtypes and
 * ranks, the exact byte layout (padded header, "__metadata__" first, tensors in order), and
 * hand-made headers that the reader must refuse with the right code and a message naming the path
 * and the tensor.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ed_safetensors.h"
#include "tu.h"

/* Expects `rc == code` and that the message mentions every non-NULL needle. */
static void s_expect_err(int rc, const ed_err *err, int code, const char *n1, const char *n2)
{
    if (rc != code || err->code != code)
        fprintf(stderr, "expected %s, got rc %s / err %s: %s\n", ed_err_name(code), ed_err_name(rc),
                ed_err_name(err->code), err->msg);
    assert_int_equal(rc, code);
    assert_int_equal(err->code, code);
    if (n1 && !strstr(err->msg, n1))
        fail_msg("message '%s' lacks '%s'", err->msg, n1);
    if (n2 && !strstr(err->msg, n2))
        fail_msg("message '%s' lacks '%s'", err->msg, n2);
}

/* Writes an 8-byte length + header (padded with spaces to `pad_to` if larger) + data. */
static void s_write_raw(const char *path, const char *header, size_t pad_to, const void *data,
                        size_t n)
{
    size_t hlen = strlen(header);
    size_t total_h = hlen > pad_to ? hlen : pad_to;
    size_t size = 8 + total_h + n;
    unsigned char *buf = malloc(size);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)total_h >> (8 * i));
    memcpy(buf + 8, header, hlen);
    memset(buf + 8 + hlen, ' ', total_h - hlen);
    if (n)
        memcpy(buf + 8 + total_h, data, n);
    assert_int_equal(tu_write_file(path, buf, size), 0);
    free(buf);
}

/* Opens a raw file built from `header` and `n` data bytes; returns the code. */
static int s_open_raw(const char *path, const char *header, size_t n, ed_err *err)
{
    unsigned char data[256];
    assert_true(n <= sizeof data);
    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)i;
    s_write_raw(path, header, 0, data, n);
    ed_err_clear(err);
    ed_st_file *f = ed_st_open(path, err);
    int rc = f ? ED_OK : err->code;
    ed_st_close(&f);
    assert_null(f);
    return rc;
}

static void test_round_trip_dtypes(void **state)
{
    (void)state;
    char *path = tu_temp_path(".safetensors");
    float wf[6] = {1.5f, -2.25f, 3.0f, 0.0f, -0.0f, 1e-30f};
    int32_t wi[4] = {-1, 0, 2147483647, -2147483647 - 1};
    uint8_t wu[5] = {0, 1, 127, 128, 255};
    double wd = 3.141592653589793;
    int64_t wl[4] = {INT64_MIN, -1, 0, INT64_MAX};
    ed_st_tensor t[] = {
        {.name = "w.f32",
         .dtype = "F32",
         .ndim = 2,
         .shape = {2, 3},
         .data = wf,
         .nbytes = sizeof wf},
        {.name = "b.i32", .dtype = "I32", .ndim = 1, .shape = {4}, .data = wi, .nbytes = sizeof wi},
        {.name = "u8", .dtype = "U8", .ndim = 1, .shape = {5}, .data = wu, .nbytes = sizeof wu},
        {.name = "scalar", .dtype = "F64", .ndim = 0, .data = &wd, .nbytes = sizeof wd},
        {.name = "i64",
         .dtype = "I64",
         .ndim = 3,
         .shape = {1, 2, 2},
         .data = wl,
         .nbytes = sizeof wl},
        {.name = "empty", .dtype = "F32", .ndim = 2, .shape = {0, 3}, .data = NULL, .nbytes = 0},
    };
    ed_st_meta md[] = {{"hello", "world"}, {"json", "{\"a\": [1, 2]}"}};
    ed_err err;
    ed_err_clear(&err);
    int rc = ed_st_write(path, t, 6, md, 2, &err);
    if (rc)
        fail_msg("%s", err.msg);

    ed_st_file *f = ed_st_open(path, &err);
    if (!f)
        fail_msg("%s", err.msg);
    assert_int_equal(ed_st_tensor_count(f), 6);
    assert_string_equal(ed_st_meta_get(f, "hello"), "world");
    assert_string_equal(ed_st_meta_get(f, "json"), "{\"a\": [1, 2]}");
    assert_null(ed_st_meta_get(f, "absent"));
    for (int i = 0; i < 6; i++) {
        ed_st_tensor got;
        assert_int_equal(ed_st_find(f, t[i].name, &got), ED_OK);
        assert_string_equal(got.name, t[i].name);
        assert_string_equal(got.dtype, t[i].dtype);
        assert_int_equal(got.ndim, t[i].ndim);
        for (int d = 0; d < t[i].ndim; d++)
            assert_int_equal(got.shape[d], t[i].shape[d]);
        assert_int_equal(got.nbytes, t[i].nbytes);
        if (t[i].nbytes)
            assert_memory_equal(got.data, t[i].data, t[i].nbytes);
    }
    ed_st_tensor none;
    assert_int_equal(ed_st_find(f, "nope", &none), ED_ENOTFOUND);
    ed_st_close(&f);
    assert_null(f);
    ed_st_close(&f); /* NULL is fine */

    /* Byte layout: header length a multiple of 8, "__metadata__" first, tensors in given order,
     * contiguous data right after the header. */
    size_t n = 0;
    unsigned char *raw = tu_read_file(path, &n);
    assert_non_null(raw);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++)
        hl |= (uint64_t)raw[i] << (8 * i);
    assert_int_equal(hl % 8, 0);
    size_t data_bytes = sizeof wf + sizeof wi + sizeof wu + sizeof wd + sizeof wl;
    assert_int_equal(n, 8 + hl + data_bytes);
    char *h = calloc(1, hl + 1);
    memcpy(h, raw + 8, hl);
    assert_memory_equal(h, "{\"__metadata__\":", 16);
    const char *prev = h;
    for (int i = 0; i < 6; i++) {
        char key[64];
        snprintf(key, sizeof key, "\"%s\":", t[i].name);
        const char *at = strstr(h, key);
        assert_non_null(at);
        assert_true(at > prev);
        prev = at;
    }
    assert_non_null(
        strstr(h, "\"w.f32\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}"));
    assert_memory_equal(raw + 8 + hl, wf, sizeof wf);
    free(h);
    free(raw);
    unlink(path);
    free(path);
}

static void test_writer_refuses_bad_tensors(void **state)
{
    (void)state;
    char *path = tu_temp_path(".safetensors");
    float x[4] = {0};
    ed_err err;
    ed_st_tensor bad_size = {
        .name = "x", .dtype = "F32", .ndim = 1, .shape = {3}, .data = x, .nbytes = sizeof x};
    s_expect_err(ed_st_write(path, &bad_size, 1, NULL, 0, &err), &err, ED_EINVAL, path, "tensor x");
    ed_st_tensor bad_dtype = {
        .name = "y", .dtype = "F8", .ndim = 1, .shape = {4}, .data = x, .nbytes = sizeof x};
    s_expect_err(ed_st_write(path, &bad_dtype, 1, NULL, 0, &err), &err, ED_EINVAL, path, "F8");
    ed_st_tensor dup[2] = {
        {.name = "z", .dtype = "F32", .ndim = 1, .shape = {4}, .data = x, .nbytes = sizeof x},
        {.name = "z", .dtype = "U8", .ndim = 1, .shape = {16}, .data = x, .nbytes = sizeof x},
    };
    s_expect_err(ed_st_write(path, dup, 2, NULL, 0, &err), &err, ED_EINVAL, path, "duplicate");
    assert_int_not_equal(access(path, F_OK), 0); /* nothing written */
    free(path);
}

static void test_reader_accepts_unpadded_and_trailing_space(void **state)
{
    (void)state;
    char *path = tu_temp_path(".safetensors");
    ed_err err;
    /* 7-byte header: data area not 8-aligned; reader must still work. */
    assert_int_equal(s_open_raw(path,
                                "{\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}",
                                3, &err),
                     ED_OK);
    assert_int_equal(s_open_raw(path, "{}", 0, &err), ED_OK);
    unlink(path);
    free(path);
}

static void test_reader_refuses_bad_headers(void **state)
{
    (void)state;
    char *path = tu_temp_path(".safetensors");
    ed_err err;
    struct {
        const char *header;
        size_t n;
        int code;
        const char *needle;
    } cases[] = {
        {"{not json", 0, ED_EFORMAT, "not valid JSON"},
        {"{} trailing", 0, ED_EFORMAT, "not valid JSON"},
        {"[1, 2]", 0, ED_EFORMAT, "not a JSON object"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"u\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         16, ED_EFORMAT, "overlap"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, ED_ETRUNC,
         "tensor t"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}}", 16, ED_EFORMAT,
         "tensor t"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 16, ED_EFORMAT,
         "tensor t"},
        {"{\"t\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, ED_EFORMAT, "Q7"},
        {"{\"t\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}", 1, ED_EFORMAT,
         "tensor t"},
        {"{\"t\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,1]}}", 1, ED_EFORMAT,
         "tensor t"},
        {"{\"t\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, ED_EFORMAT,
         "tensor t"},
        {"{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1, ED_EFORMAT,
         "tensor t"},
        {"{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}", 1, ED_EFORMAT,
         "tensor t"},
        {"{\"t\":[1,2]}", 0, ED_EFORMAT, "tensor t"},
        {"{\"t\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, ED_EFORMAT, "tensor t"},
        {"{\"t\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, ED_EFORMAT, "tensor t"},
        {"{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
         "\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
         2, ED_EFORMAT, "duplicate tensor t"},
        {"{\"__metadata__\":{\"k\":1}}", 0, ED_EFORMAT, "metadata k"},
        {"{\"__metadata__\":[\"k\"]}", 0, ED_EFORMAT, "__metadata__"},
        {"{\"t\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],"
         "\"data_offsets\":[0,8]}}",
         8, ED_EFORMAT, "tensor t"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = s_open_raw(path, cases[i].header, cases[i].n, &err);
        if (rc != cases[i].code)
            fprintf(stderr, "case %zu (%s): expected %s, got %s: %s\n", i, cases[i].header,
                    ed_err_name(cases[i].code), ed_err_name(rc), err.msg);
        s_expect_err(rc, &err, cases[i].code, path, cases[i].needle);
    }
    unlink(path);
    free(path);
}

static void test_reader_refuses_bad_lengths(void **state)
{
    (void)state;
    char *path = tu_temp_path(".safetensors");
    ed_err err;
    ed_st_file *f;

    assert_int_equal(tu_write_file(path, "abcd", 4), 0);
    f = ed_st_open(path, &err);
    assert_null(f);
    s_expect_err(err.code, &err, ED_ETRUNC, path, "truncated");

    unsigned char huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
    assert_int_equal(tu_write_file(path, huge, sizeof huge), 0);
    f = ed_st_open(path, &err);
    assert_null(f);
    s_expect_err(err.code, &err, ED_ETRUNC, path, "header says 18446744073709551615 bytes");

    /* A header over the limit that the file does hold: refused before parsing. */
    s_write_raw(path, "{}", ED_ST_MAX_HEADER + 8, NULL, 0);
    f = ed_st_open(path, &err);
    assert_null(f);
    s_expect_err(err.code, &err, ED_EFORMAT, path, "limit");

    unlink(path);
    f = ed_st_open(path, &err);
    assert_null(f);
    s_expect_err(err.code, &err, ED_ENOTFOUND, path, "No such file");
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_dtypes),
        cmocka_unit_test(test_writer_refuses_bad_tensors),
        cmocka_unit_test(test_reader_accepts_unpadded_and_trailing_space),
        cmocka_unit_test(test_reader_refuses_bad_headers),
        cmocka_unit_test(test_reader_refuses_bad_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
