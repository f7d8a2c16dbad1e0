/*
 * test_data: the IDX / .npy / CSV readers, ranges, error reporting on bad files, the shuffle-buffer
 * loader (exactly-once, determinism, drop_last), bounded memory while streaming a 50 MB file, and
 * the real Fashion-MNIST files when they are installed. Fixtures are generated in $TMPDIR.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "ed_data.h"
#include "ed_loader.h"
#include "ed_rng.h"
#include "tu.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define S_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define S_ASAN 1
#endif

#ifdef S_ASAN
size_t __sanitizer_get_current_allocated_bytes(void);
static size_t s_heap_in_use(void)
{
    return __sanitizer_get_current_allocated_bytes();
}
#else
#include <malloc.h>
/* Bytes handed out by malloc: small chunks (uordblks) plus mmap'd large ones (hblkhd). */
static size_t s_heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}
#endif

/* ---- fixture writers ------------------------------------------------------------------------- */

static uint8_t s_pattern(long i, long j)
{
    return (uint8_t)((i * 31 + j * 7) % 251);
}

static void s_write(const char *path, bool gz, const void *data, size_t n)
{
    if (!gz) {
        assert_int_equal(tu_write_file(path, data, n), 0);
        return;
    }
    gzFile g = gzopen(path, "wb6");
    assert_non_null(g);
    if (n > 0)
        assert_int_equal(gzwrite(g, data, (unsigned)n), (int)n);
    assert_int_equal(gzclose(g), Z_OK);
}

/* IDX bytes: header for `dims` with element type `type`, then `data` (n bytes, may differ from what
 * the header declares). Caller frees. */
static unsigned char *s_idx_bytes(uint8_t type, int ndim, const uint32_t *dims, const void *data,
                                  size_t n, size_t *len)
{
    size_t h = 4 + 4 * (size_t)ndim;
    unsigned char *b = malloc(h + n + 1);
    assert_non_null(b);
    b[0] = 0;
    b[1] = 0;
    b[2] = type;
    b[3] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++) {
        b[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
        b[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
        b[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
        b[7 + 4 * i] = (unsigned char)dims[i];
    }
    if (n)
        memcpy(b + h, data, n);
    *len = h + n;
    return b;
}

static void s_write_idx(const char *path, bool gz, int ndim, const uint32_t *dims, const void *data,
                        size_t n)
{
    size_t len;
    unsigned char *b = s_idx_bytes(0x08, ndim, dims, data, n, &len);
    s_write(path, gz, b, len);
    free(b);
}

/* A full IDX sample file of count x (rows, cols) with s_pattern values. */
static void s_write_pattern_idx(const char *path, bool gz, long count, uint32_t rows, uint32_t cols)
{
    long dim = (long)rows * cols;
    uint8_t *d = malloc((size_t)(count * dim) + 1);
    assert_non_null(d);
    for (long i = 0; i < count; i++)
        for (long j = 0; j < dim; j++)
            d[i * dim + j] = s_pattern(i, j);
    uint32_t dims[3] = {(uint32_t)count, rows, cols};
    s_write_idx(path, gz, 3, dims, d, (size_t)(count * dim));
    free(d);
}

/* .npy bytes (format major.0) with the given descr, fortran flag and shape text, then data. */
static unsigned char *s_npy_bytes(int major, const char *descr, const char *fortran,
                                  const char *shape, const void *data, size_t n, size_t *len)
{
    char dict[256];
    int dl = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }",
                      descr, fortran, shape);
    assert_true(dl > 0 && dl < (int)sizeof dict - 70);
    size_t pre = major == 1 ? 10 : 12;
    size_t hlen = (size_t)dl + 1;
    while ((pre + hlen) % 64 != 0)
        hlen++;
    unsigned char *b = malloc(pre + hlen + n + 1);
    assert_non_null(b);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[7] = 0;
    if (major == 1) {
        b[8] = (unsigned char)(hlen & 0xff);
        b[9] = (unsigned char)(hlen >> 8);
    } else {
        b[8] = (unsigned char)(hlen & 0xff);
        b[9] = (unsigned char)(hlen >> 8);
        b[10] = 0;
        b[11] = 0;
    }
    memset(b + pre, ' ', hlen);
    memcpy(b + pre, dict, (size_t)dl);
    b[pre + hlen - 1] = '\n';
    if (n)
        memcpy(b + pre + hlen, data, n);
    *len = pre + hlen + n;
    return b;
}

static void s_write_npy(const char *path, bool gz, int major, const char *descr, const char *shape,
                        const void *data, size_t n)
{
    size_t len;
    unsigned char *b = s_npy_bytes(major, descr, "False", shape, data, n, &len);
    s_write(path, gz, b, len);
    free(b);
}

static void s_write_text(const char *path, const char *text)
{
    assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
}

/* Checks an error code and that the message contains each non-NULL fragment; prints on mismatch. */
static void s_expect_err(const ed_err *e, int code, const char *a, const char *b)
{
    bool ok = e->code == code && (!a || strstr(e->msg, a)) && (!b || strstr(e->msg, b));
    if (!ok)
        fprintf(stderr, "expected %s containing [%s] [%s], got %s: %s\n", ed_err_name(code),
                a ? a : "", b ? b : "", ed_err_name(e->code), e->msg);
    assert_true(ok);
}

/* Opening must fail with `code` and a message naming `path` (and containing `frag`). */
static void s_expect_open_fail(const char *images, const char *labels, long start, long end,
                               int code, const char *path, const char *frag)
{
    ed_dataset_spec spec = {images, labels, start, end};
    ed_err e = {0};
    ed_stream *s = ed_stream_open(&spec, &e);
    if (s)
        fprintf(stderr, "expected open of %s to fail with %s\n", images, ed_err_name(code));
    assert_null(s);
    s_expect_err(&e, code, path, frag);
}

static ed_stream *s_open(const char *images, const char *labels, long start, long end)
{
    ed_dataset_spec spec = {images, labels, start, end};
    ed_err e = {0};
    ed_stream *s = ed_stream_open(&spec, &e);
    if (!s)
        fprintf(stderr, "open %s: %s: %s\n", images, ed_err_name(e.code), e.msg);
    assert_non_null(s);
    return s;
}

static void s_unlink_free(char *path)
{
    if (path) {
        unlink(path);
        free(path);
    }
}

/* ---- IDX ------------------------------------------------------------------------------------ */

/* Reads the pattern file in two pieces, checks values and labels, rewinds, reads again. */
static void s_check_idx_roundtrip(bool gz)
{
    const long count = 10;
    char *img = tu_temp_path(gz ? "-img.idx.gz" : "-img.idx");
    char *lab = tu_temp_path(gz ? "-lab.idx.gz" : "-lab.idx");
    s_write_pattern_idx(img, gz, count, 4, 3);
    uint8_t labels[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    uint32_t ldims[1] = {10};
    s_write_idx(lab, gz, 1, ldims, labels, sizeof labels);

    ed_stream *s = s_open(img, lab, 0, -1);
    assert_int_equal(ed_stream_count(s), count);
    assert_int_equal(ed_stream_dim(s), 12);
    assert_int_equal(ed_stream_dtype(s), ED_DTYPE_U8);
    assert_true(ed_stream_has_labels(s));
    assert_string_equal(ed_stream_path(s), img);
    ed_err e = {0};
    for (int pass = 0; pass < 2; pass++) {
        uint8_t x[10 * 12];
        int32_t y[10];
        assert_int_equal(ed_stream_read(s, x, y, 3, &e), 3);
        assert_int_equal(ed_stream_read(s, x + 3 * 12, y + 3, 100, &e), 7);
        assert_int_equal(ed_stream_read(s, x, y, 5, &e), 0);
        for (long i = 0; i < count; i++) {
            assert_int_equal(y[i], labels[i]);
            for (long j = 0; j < 12; j++)
                assert_int_equal(x[i * 12 + j], s_pattern(i, j));
        }
        assert_int_equal(ed_stream_rewind(s, &e), 0);
    }
    ed_stream_destroy(&s);
    assert_null(s);
    ed_stream_destroy(&s);
    s_unlink_free(img);
    s_unlink_free(lab);
}

static void test_idx_raw_roundtrip(void **state)
{
    (void)state;
    s_check_idx_roundtrip(false);
}

static void test_idx_gz_roundtrip(void **state)
{
    (void)state;
    s_check_idx_roundtrip(true);
}

static void test_idx_rank1_and_unlabeled(void **state)
{
    (void)state;
    char *img = tu_temp_path("-r1.idx");
    uint8_t d[5] = {1, 2, 3, 4, 5};
    uint32_t dims[1] = {5};
    s_write_idx(img, false, 1, dims, d, 5);
    ed_stream *s = s_open(img, NULL, 0, -1);
    assert_int_equal(ed_stream_dim(s), 1);
    assert_false(ed_stream_has_labels(s));
    uint8_t x[5];
    int32_t y[5];
    ed_err e = {0};
    assert_int_equal(ed_stream_read(s, x, y, 5, &e), 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(x[i], d[i]);
        assert_int_equal(y[i], -1);
    }
    ed_stream_destroy(&s);
    s_unlink_free(img);
}

/* ---- .npy ----------------------------------------------------------------------------------- */

static void test_npy_u8_with_i8_labels(void **state)
{
    (void)state;
    for (int gz = 0; gz < 2; gz++) {
        char *img = tu_temp_path(gz ? "-u8.npy.gz" : "-u8.npy");
        char *lab = tu_temp_path("-i8.npy");
        uint8_t d[6 * 2 * 2];
        for (int i = 0; i < 24; i++)
            d[i] = (uint8_t)(200 + i);
        s_write_npy(img, gz, 1, "|u1", "(6, 2, 2)", d, sizeof d);
        int64_t l[6] = {3, 1, 4, 1, 5, 2147483647};
        s_write_npy(lab, false, 1, "<i8", "(6,)", l, sizeof l);
        ed_stream *s = s_open(img, lab, 0, -1);
        assert_int_equal(ed_stream_count(s), 6);
        assert_int_equal(ed_stream_dim(s), 4);
        assert_int_equal(ed_stream_dtype(s), ED_DTYPE_U8);
        uint8_t x[24];
        int32_t y[6];
        ed_err e = {0};
        assert_int_equal(ed_stream_read(s, x, y, 6, &e), 6);
        assert_memory_equal(x, d, sizeof d);
        for (int i = 0; i < 6; i++)
            assert_int_equal(y[i], l[i]);
        ed_stream_destroy(&s);
        s_unlink_free(img);
        s_unlink_free(lab);
    }
}

static void test_npy_f32_with_i4_labels(void **state)
{
    (void)state;
    char *img = tu_temp_path("-f32.npy");
    char *lab = tu_temp_path("-i4.npy");
    float d[5 * 3];
    for (int i = 0; i < 15; i++)
        d[i] = (float)i * 0.5f - 3.25f;
    s_write_npy(img, false, 2, "<f4", "(5, 3)", d, sizeof d);
    int32_t l[5] = {0, 9, 8, 7, 6};
    s_write_npy(lab, false, 3, "<i4", "(5, 1)", l, sizeof l);
    ed_stream *s = s_open(img, lab, 0, -1);
    assert_int_equal(ed_stream_count(s), 5);
    assert_int_equal(ed_stream_dim(s), 3);
    assert_int_equal(ed_stream_dtype(s), ED_DTYPE_F32);
    float x[15];
    int32_t y[5];
    ed_err e = {0};
    assert_int_equal(ed_stream_read(s, x, y, 5, &e), 5);
    assert_true(tu_allclose("npy f32", x, d, 15, 0.0, 0.0));
    assert_memory_equal(y, l, sizeof l);
    ed_stream_destroy(&s);

    /* u1 labels too */
    uint8_t lu[5] = {1, 2, 3, 4, 5};
    s_write_npy(lab, false, 1, "|u1", "(5,)", lu, sizeof lu);
    s = s_open(img, lab, 0, -1);
    assert_int_equal(ed_stream_read(s, x, y, 5, &e), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(y[i], lu[i]);
    ed_stream_destroy(&s);
    s_unlink_free(img);
    s_unlink_free(lab);
}

static void test_npy_rejects(void **state)
{
    (void)state;
    char *p = tu_temp_path("-bad.npy");
    float d[4] = {0};
    size_t len;
    unsigned char *b = s_npy_bytes(1, "<f4", "True", "(2, 2)", d, sizeof d, &len);
    s_write(p, false, b, len);
    free(b);
    s_expect_open_fail(p, NULL, 0, -1, ED_EFORMAT, p, "fortran_order");

    s_write_npy(p, false, 1, "<f8", "(2, 1)", d, sizeof d);
    s_expect_open_fail(p, NULL, 0, -1, ED_EFORMAT, p, "'<f8'");

    b = s_npy_bytes(4, "<f4", "False", "(2, 2)", d, sizeof d, &len);
    s_write(p, false, b, len);
    free(b);
    s_expect_open_fail(p, NULL, 0, -1, ED_EVERSION, p, "4.0");

    s_write_npy(p, false, 1, "<f4", "()", d, 4);
    s_expect_open_fail(p, NULL, 0, -1, ED_EFORMAT, p, "rank 0");

    /* f4 is a sample dtype, not a label dtype */
    char *img = tu_temp_path("-ok.npy");
    s_write_npy(img, false, 1, "<f4", "(4,)", d, sizeof d);
    s_write_npy(p, false, 1, "<f4", "(4,)", d, sizeof d);
    s_expect_open_fail(img, p, 0, -1, ED_EFORMAT, p, "labels");

    /* data section shorter than the shape says */
    s_write_npy(p, false, 1, "<f4", "(3, 2)", d, sizeof d);
    s_expect_open_fail(p, NULL, 0, -1, ED_ETRUNC, p,
                       "header says 3 samples of 8 bytes, data ends after sample 2");
    s_unlink_free(p);
    s_unlink_free(img);
}

/* ---- CSV ------------------------------------------------------------------------------------ */

static void test_csv(void **state)
{
    (void)state;
    char *img = tu_temp_path("-x.csv");
    char *lab = tu_temp_path("-y.csv");
    s_write_text(img, "1.5, 2,-3\n4e0,5,6\r\n\n 7,8,9.25");
    s_write_text(lab, "0\n12\r\n\n3\n");
    ed_stream *s = s_open(img, lab, 0, -1);
    assert_int_equal(ed_stream_count(s), 3);
    assert_int_equal(ed_stream_dim(s), 3);
    assert_int_equal(ed_stream_dtype(s), ED_DTYPE_F32);
    float want[9] = {1.5f, 2, -3, 4, 5, 6, 7, 8, 9.25f};
    int32_t wy[3] = {0, 12, 3};
    ed_err e = {0};
    for (int pass = 0; pass < 2; pass++) {
        float x[9];
        int32_t y[3];
        assert_int_equal(ed_stream_read(s, x, y, 2, &e), 2);
        assert_int_equal(ed_stream_read(s, x + 6, y + 2, 2, &e), 1);
        assert_true(tu_allclose("csv", x, want, 9, 0.0, 0.0));
        assert_memory_equal(y, wy, sizeof wy);
        assert_int_equal(ed_stream_rewind(s, &e), 0);
    }
    ed_stream_destroy(&s);

    s = s_open(img, lab, 1, 3);
    float x[6];
    int32_t y[2];
    assert_int_equal(ed_stream_read(s, x, y, 5, &e), 2);
    assert_true(tu_allclose("csv range", x, want + 3, 6, 0.0, 0.0));
    assert_int_equal(y[0], 12);
    assert_int_equal(y[1], 3);
    ed_stream_destroy(&s);

    s_write_text(img, "1,2,3\n4,5\n");
    s_expect_open_fail(img, NULL, 0, -1, ED_EFORMAT, img, ":2:");
    s_write_text(img, "1,2,3\n\n4,x,6\n");
    s_expect_open_fail(img, NULL, 0, -1, ED_EFORMAT, img, ":3: column 2");
    s_write_text(img, "1,2,\n");
    s_expect_open_fail(img, NULL, 0, -1, ED_EFORMAT, img, ":1: column 3");

    s_write_text(img, "1\n2\n3\n");
    s_write_text(lab, "0\n-1\n2\n");
    s_expect_open_fail(img, lab, 0, -1, ED_EFORMAT, lab, "index 1");
    s_write_text(lab, "0\n1\n2.5\n");
    s_expect_open_fail(img, lab, 0, -1, ED_EFORMAT, lab, ":3:");
    s_write_text(lab, "0\n1\n99999999999\n");
    s_expect_open_fail(img, lab, 0, -1, ED_EFORMAT, lab, "index 2");
    s_write_text(lab, "0\n1\n");
    s_expect_open_fail(img, lab, 0, -1, ED_ESHAPE, lab, img);
    s_unlink_free(img);
    s_unlink_free(lab);
}

/* ---- ranges --------------------------------------------------------------------------------- */

static void test_range(void **state)
{
    (void)state;
    for (int gz = 0; gz < 2; gz++) {
        char *img = tu_temp_path(gz ? "-r.idx.gz" : "-r.idx");
        char *lab = tu_temp_path("-r.npy");
        s_write_pattern_idx(img, gz, 10, 2, 5);
        int64_t l[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
        s_write_npy(lab, gz, 1, "<i8", "(10,)", l, sizeof l);
        ed_err e = {0};
        ed_stream *s = s_open(img, lab, 2, 7);
        assert_int_equal(ed_stream_count(s), 5);
        for (int pass = 0; pass < 2; pass++) {
            uint8_t x[10 * 10];
            int32_t y[10];
            assert_int_equal(ed_stream_read(s, x, y, 10, &e), 5);
            for (int i = 0; i < 5; i++) {
                assert_int_equal(y[i], 2 + i);
                for (int j = 0; j < 10; j++)
                    assert_int_equal(x[i * 10 + j], s_pattern(2 + i, j));
            }
            assert_int_equal(ed_stream_read(s, x, y, 10, &e), 0);
            assert_int_equal(ed_stream_rewind(s, &e), 0);
        }
        ed_stream_destroy(&s);

        s = s_open(img, lab, 8, -1);
        assert_int_equal(ed_stream_count(s), 2);
        uint8_t x[20];
        int32_t y[2];
        assert_int_equal(ed_stream_read(s, x, y, 3, &e), 2);
        assert_int_equal(y[0], 8);
        assert_int_equal(x[10], s_pattern(9, 0));
        ed_stream_destroy(&s);

        s = s_open(img, NULL, 10, 10);
        assert_int_equal(ed_stream_count(s), 0);
        assert_int_equal(ed_stream_read(s, x, y, 3, &e), 0);
        ed_stream_destroy(&s);

        s_expect_open_fail(img, lab, 11, -1, ED_EINVAL, img, "range");
        s_expect_open_fail(img, lab, 0, 11, ED_EINVAL, img, "range");
        s_expect_open_fail(img, lab, 5, 4, ED_EINVAL, img, "range");
        s_expect_open_fail(img, lab, -1, 4, ED_EINVAL, img, "range");
        s_unlink_free(img);
        s_unlink_free(lab);
    }
}

/* ---- malformed files ------------------------------------------------------------------------ */

static void test_truncated_idx(void **state)
{
    (void)state;
    char *p = tu_temp_path("-t.idx");
    char *pgz = tu_temp_path("-t.idx.gz");
    uint8_t d[10 * 4];
    for (int i = 0; i < 40; i++)
        d[i] = (uint8_t)i;
    uint32_t dims[3] = {10, 2, 2};
    size_t len;
    unsigned char *b = s_idx_bytes(0x08, 3, dims, d, 7 * 4 + 2, &len);

    /* header cut short: 10 of the 16 header bytes */
    s_write(p, false, b, 10);
    s_expect_open_fail(p, NULL, 0, -1, ED_ETRUNC, p, "header");
    s_write(pgz, true, b, 10);
    s_expect_open_fail(pgz, NULL, 0, -1, ED_ETRUNC, pgz, "header");
    s_write(p, false, b, 2);
    s_expect_open_fail(p, NULL, 0, -1, ED_ETRUNC, p, "header");
    s_write(p, false, b, 0);
    s_expect_open_fail(p, NULL, 0, -1, ED_ETRUNC, p, "empty");

    /* data cut: 7.5 of 10 samples. Raw: caught at open from the file size. */
    const char *msg = "header says 10 samples of 4 bytes, data ends after sample 7";
    s_write(p, false, b, len);
    s_expect_open_fail(p, NULL, 0, -1, ED_ETRUNC, p, msg);

    /* gzip: caught when the data is read */
    s_write(pgz, true, b, len);
    ed_stream *s = s_open(pgz, NULL, 0, -1);
    uint8_t x[40];
    ed_err e = {0};
    assert_int_equal(ed_stream_read(s, x, NULL, 5, &e), 5);
    assert_int_equal(ed_stream_read(s, x, NULL, 5, &e), ED_ETRUNC);
    s_expect_err(&e, ED_ETRUNC, pgz, msg);
    ed_stream_destroy(&s);
    /* ... or at open when the range starts past the end of the data */
    s_expect_open_fail(pgz, NULL, 9, -1, ED_ETRUNC, pgz, msg);
    free(b);

    /* a labels file cut short names the labels file */
    char *lab = tu_temp_path("-t-lab.idx");
    s_write_pattern_idx(p, false, 10, 2, 2);
    uint32_t ldims[1] = {10};
    s_write_idx(lab, false, 1, ldims, d, 6);
    s_expect_open_fail(p, lab, 0, -1, ED_ETRUNC, lab, "10 labels");

    /* a gzip stream cut in the middle of a large, incompressible file */
    const long n = 1000, dim = 100;
    uint8_t *big = malloc((size_t)(n * dim));
    assert_non_null(big);
    ed_rng rng;
    ed_rng_seed(&rng, 7);
    for (long i = 0; i < n * dim; i++)
        big[i] = (uint8_t)ed_rng_next(&rng);
    uint32_t bdims[2] = {(uint32_t)n, (uint32_t)dim};
    s_write_idx(pgz, true, 2, bdims, big, (size_t)(n * dim));
    size_t gzlen = 0;
    unsigned char *gzb = tu_read_file(pgz, &gzlen);
    assert_non_null(gzb);
    assert_int_equal(tu_write_file(pgz, gzb, gzlen / 2), 0);
    s = s_open(pgz, NULL, 0, -1);
    long r = ed_stream_read(s, big, NULL, n, &e);
    assert_int_equal(r, ED_ETRUNC);
    s_expect_err(&e, ED_ETRUNC, pgz, "gzip stream cut short");
    ed_stream_destroy(&s);
    free(gzb);
    free(big);
    s_unlink_free(p);
    s_unlink_free(pgz);
    s_unlink_free(lab);
}

static void test_bad_magic_and_type(void **state)
{
    (void)state;
    char *p = tu_temp_path("-m.bin");
    s_write_text(p, "PK\x03\x04 this is a zip file");
    s_expect_open_fail(p, NULL, 0, -1, ED_EFORMAT, p,
                       "not an IDX, .npy or CSV file (bad magic 50 4b 03 04)");
    uint8_t junk[8] = {0x00, 0x01, 0x08, 0x01, 0, 0, 0, 0};
    s_write(p, false, junk, sizeof junk);
    s_expect_open_fail(p, NULL, 0, -1, ED_EFORMAT, p, "bad magic");

    uint32_t dims[1] = {4};
    float f[4] = {0};
    size_t len;
    unsigned char *b = s_idx_bytes(0x0D, 1, dims, f, sizeof f, &len);
    s_write(p, false, b, len);
    free(b);
    s_expect_open_fail(p, NULL, 0, -1, ED_EFORMAT, p, "0x0d");

    b = s_idx_bytes(0x08, 0, dims, NULL, 0, &len);
    s_write(p, false, b, len);
    free(b);
    s_expect_open_fail(p, NULL, 0, -1, ED_EFORMAT, p, "rank 0");

    s_expect_open_fail("/nonexistent/dir/x.idx", NULL, 0, -1, ED_EIO, "/nonexistent/dir/x.idx",
                       "cannot open");
    s_unlink_free(p);
}

static void test_label_mismatch_and_rank(void **state)
{
    (void)state;
    char *img = tu_temp_path("-mm.idx");
    char *lab = tu_temp_path("-mm-lab.idx");
    s_write_pattern_idx(img, false, 10, 2, 2);
    uint8_t l[30] = {0};
    uint32_t d9[1] = {9};
    s_write_idx(lab, false, 1, d9, l, 9);
    s_expect_open_fail(img, lab, 0, -1, ED_ESHAPE, lab, img);

    uint32_t d10x3[2] = {10, 3};
    s_write_idx(lab, false, 2, d10x3, l, 30);
    s_expect_open_fail(img, lab, 0, -1, ED_ESHAPE, lab, "rank");

    uint32_t d10x1[2] = {10, 1};
    s_write_idx(lab, false, 2, d10x1, l, 10);
    ed_stream *s = s_open(img, lab, 0, -1);
    ed_stream_destroy(&s);

    int64_t l8[20] = {0};
    s_write_npy(lab, false, 1, "<i8", "(10, 2)", l8, sizeof l8);
    s_expect_open_fail(img, lab, 0, -1, ED_ESHAPE, lab, "rank");
    s_unlink_free(img);
    s_unlink_free(lab);
}

static void test_label_values_out_of_range(void **state)
{
    (void)state;
    char *img = tu_temp_path("-lv.idx");
    char *lab = tu_temp_path("-lv.npy");
    s_write_pattern_idx(img, false, 8, 1, 2);
    ed_err e = {0};
    uint8_t x[16];
    int32_t y[8];

    int64_t neg[8] = {0, 1, 2, -1, 4, 5, 6, 7};
    s_write_npy(lab, false, 1, "<i8", "(8,)", neg, sizeof neg);
    ed_stream *s = s_open(img, lab, 0, -1);
    assert_int_equal(ed_stream_read(s, x, y, 8, &e), ED_EFORMAT);
    s_expect_err(&e, ED_EFORMAT, lab, "index 3");
    ed_stream_destroy(&s);

    int64_t big[8] = {0, 1, 2, 3, 4, (int64_t)INT32_MAX + 1, 6, 7};
    s_write_npy(lab, false, 1, "<i8", "(8,)", big, sizeof big);
    s = s_open(img, lab, 4, -1);
    assert_int_equal(ed_stream_read(s, x, y, 8, &e), ED_EFORMAT);
    s_expect_err(&e, ED_EFORMAT, lab, "index 5");
    ed_stream_destroy(&s);

    int32_t neg4[8] = {-7, 1, 2, 3, 4, 5, 6, 7};
    s_write_npy(lab, false, 1, "<i4", "(8,)", neg4, sizeof neg4);
    s = s_open(img, lab, 0, -1);
    assert_int_equal(ed_stream_read(s, x, y, 8, &e), ED_EFORMAT);
    s_expect_err(&e, ED_EFORMAT, lab, "index 0 is -7");
    ed_stream_destroy(&s);
    s_unlink_free(img);
    s_unlink_free(lab);
}

static void test_huge_declared_sizes(void **state)
{
    (void)state;
    char *p = tu_temp_path("-huge.idx");
    uint8_t d[16] = {0};
    uint32_t d4[4] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
    s_write_idx(p, false, 4, d4, d, sizeof d);
    s_expect_open_fail(p, NULL, 0, -1, ED_EFORMAT, p, "too large");
    uint32_t d3[3] = {2, 0x10000u, 0x10000u}; /* 2^32 values per sample */
    s_write_idx(p, false, 3, d3, d, sizeof d);
    s_expect_open_fail(p, NULL, 0, -1, ED_EFORMAT, p, "too large");
    uint32_t d2[2] = {0xFFFFFFFFu, 1000}; /* addressable but the file is short */
    s_write_idx(p, false, 2, d2, d, sizeof d);
    s_expect_open_fail(p, NULL, 0, -1, ED_ETRUNC, p, "data ends after sample 0");

    char *n = tu_temp_path("-huge.npy");
    s_write_npy(n, false, 1, "<f4", "(1099511627776, 1073741824)", d, sizeof d);
    s_expect_open_fail(n, NULL, 0, -1, ED_EFORMAT, n, "more than a file can hold");
    s_write_npy(n, false, 1, "<f4", "(99999999999999999999999, 2)", d, sizeof d);
    s_expect_open_fail(n, NULL, 0, -1, ED_EFORMAT, n, "too large");
    s_unlink_free(p);
    s_unlink_free(n);
}

/* ---- loader --------------------------------------------------------------------------------- */

/* count samples of dim 3 whose first two bytes hold the index; labels index % 7. */
static void s_write_indexed(const char *img, const char *lab, bool gz, long count)
{
    uint8_t *d = malloc((size_t)count * 3);
    uint8_t *l = malloc((size_t)count);
    assert_non_null(d);
    assert_non_null(l);
    for (long i = 0; i < count; i++) {
        d[3 * i] = (uint8_t)(i & 0xff);
        d[3 * i + 1] = (uint8_t)(i >> 8);
        d[3 * i + 2] = (uint8_t)((i * 7) & 0xff);
        l[i] = (uint8_t)(i % 7);
    }
    uint32_t dims[2] = {(uint32_t)count, 3};
    s_write_idx(img, gz, 2, dims, d, (size_t)count * 3);
    uint32_t ldims[1] = {(uint32_t)count};
    s_write_idx(lab, gz, 1, ldims, l, (size_t)count);
    free(d);
    free(l);
}

static ed_loader *s_loader(const char *img, const char *lab, long start, long end, int bs,
                           long shuf, uint64_t seed, bool drop_last)
{
    ed_stream *s = s_open(img, lab, start, end);
    ed_loader_config cfg = {bs, shuf, seed, drop_last};
    ed_err e = {0};
    ed_loader *l = ed_loader_new(&s, &cfg, &e);
    if (!l)
        fprintf(stderr, "loader: %s\n", e.msg);
    assert_non_null(l);
    assert_null(s);
    return l;
}

/* The range start of the loader s_epoch reads: b.idx (a sample's number within the range) must be
 * its index in the file minus this. */
static long s_idx_base;

/* Runs one epoch, storing emitted indices in order[]; checks labels, payload and batch idx of every
 * sample and that all batches but the last are full. Returns the number of samples. */
static long s_epoch(ed_loader *l, long *order, long max)
{
    ed_batch b;
    ed_err e = {0};
    long total = 0;
    int bs = 0, rc;
    bool short_seen = false;
    while ((rc = ed_loader_next(l, &b, &e)) > 0) {
        assert_int_equal(rc, b.n);
        assert_false(short_seen);
        if (bs == 0)
            bs = b.n;
        short_seen = b.n < bs;
        assert_int_equal(b.dim, 3);
        const uint8_t *x = b.x;
        for (int k = 0; k < b.n; k++) {
            long idx = x[3 * k] | (long)x[3 * k + 1] << 8;
            assert_int_equal(x[3 * k + 2], (idx * 7) & 0xff);
            assert_int_equal(b.y[k], idx % 7);
            assert_int_equal(b.idx[k], idx - s_idx_base);
            assert_true(total < max);
            order[total++] = idx;
        }
    }
    if (rc < 0)
        fprintf(stderr, "loader: %s\n", e.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(ed_loader_next(l, &b, &e), 0);
    return total;
}

/* Every index of [lo, hi) exactly once. */
static void s_expect_permutation(const long *order, long n, long lo, long hi)
{
    assert_int_equal(n, hi - lo);
    char *seen = calloc((size_t)(hi - lo), 1);
    assert_non_null(seen);
    for (long i = 0; i < n; i++) {
        assert_true(order[i] >= lo && order[i] < hi);
        assert_int_equal(seen[order[i] - lo], 0);
        seen[order[i] - lo] = 1;
    }
    free(seen);
}

static bool s_same(const long *a, const long *b, long n)
{
    return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

static void test_loader_exactly_once_and_deterministic(void **state)
{
    (void)state;
    const long count = 1000, shuf = 64;
    char *img = tu_temp_path("-ld.idx.gz");
    char *lab = tu_temp_path("-ld-lab.idx.gz");
    s_write_indexed(img, lab, true, count);
    long *a = malloc(sizeof(long) * count);
    long *b = malloc(sizeof(long) * count);
    long *c = malloc(sizeof(long) * count);
    long *ident = malloc(sizeof(long) * count);
    for (long i = 0; i < count; i++)
        ident[i] = i;

    ed_loader *l = s_loader(img, lab, 0, -1, 32, shuf, 42, false);
    long n = s_epoch(l, a, count);
    s_expect_permutation(a, n, 0, count);
    assert_false(s_same(a, ident, count));
    /* a shuffle buffer of B slots can only emit at output position p a sample with index < p + B */
    for (long p = 0; p < count; p++)
        assert_true(a[p] < p + shuf);
    ed_err e = {0};
    assert_int_equal(ed_loader_reset(l, &e), 0);
    n = s_epoch(l, c, count);
    s_expect_permutation(c, n, 0, count);
    assert_false(s_same(a, c, count)); /* epochs differ */
    ed_loader_destroy(&l);
    assert_null(l);

    l = s_loader(img, lab, 0, -1, 32, shuf, 42, false);
    n = s_epoch(l, b, count);
    assert_true(s_same(a, b, count)); /* same seed, same order */
    assert_int_equal(ed_loader_reset(l, &e), 0);
    n = s_epoch(l, b, count);
    assert_true(s_same(c, b, count)); /* and the same second epoch */
    ed_loader_destroy(&l);

    l = s_loader(img, lab, 0, -1, 32, shuf, 43, false);
    n = s_epoch(l, b, count);
    s_expect_permutation(b, n, 0, count);
    assert_false(s_same(a, b, count)); /* different seed, different order */
    ed_loader_destroy(&l);

    /* shuffle buffer larger than the data: a full permutation */
    l = s_loader(img, lab, 0, -1, 100, 5000, 1, false);
    n = s_epoch(l, b, count);
    s_expect_permutation(b, n, 0, count);
    assert_false(s_same(b, ident, count));
    ed_loader_destroy(&l);

    /* 0 and 1 keep the file order */
    for (long sb = 0; sb <= 1; sb++) {
        l = s_loader(img, lab, 0, -1, 7, sb, 1, false);
        for (int ep = 0; ep < 2; ep++) {
            n = s_epoch(l, b, count);
            assert_int_equal(n, count);
            assert_true(s_same(b, ident, count));
            assert_int_equal(ed_loader_reset(l, &e), 0);
        }
        ed_loader_destroy(&l);
    }

    /* a range */
    l = s_loader(img, lab, 100, 400, 16, 50, 3, false);
    s_idx_base = 100;
    n = s_epoch(l, b, count);
    s_idx_base = 0;
    s_expect_permutation(b, n, 100, 400);
    ed_loader_destroy(&l);

    free(a);
    free(b);
    free(c);
    free(ident);
    s_unlink_free(img);
    s_unlink_free(lab);
}

/* A sharded input: 3 IDX/.npy files in a directory read as one sequence, in name order, by
 * directory, glob and list; a range across file boundaries; refusals (labels, other dims). */
static void test_sharded_input(void **state)
{
    (void)state;
    char *dir = tu_temp_path("-shards");
    assert_int_equal(mkdir(dir, 0755), 0);
    char p[3][512];
    const long counts[3] = {5, 1, 7};
    long base = 0;
    for (int f = 0; f < 3; f++) {
        uint8_t d[7 * 4];
        for (long i = 0; i < counts[f] * 4; i++)
            d[i] = (uint8_t)(base * 4 + i); /* sample k of the sequence holds 4k .. 4k+3 */
        snprintf(p[f], sizeof p[f], "%s/part-%d.%s", dir, f, f == 1 ? "npy" : "idx");
        if (f == 1) {
            s_write_npy(p[f], false, 1, "|u1", "(1, 4)", d, 4);
        } else {
            uint32_t dims[2] = {(uint32_t)counts[f], 4};
            s_write_idx(p[f], f == 2, 2, dims, d, (size_t)counts[f] * 4);
        }
        base += counts[f];
    }
    char glob_pat[600], list[1600];
    snprintf(glob_pat, sizeof glob_pat, "%s/part-*", dir);
    snprintf(list, sizeof list, "%s,%s,%s", p[0], p[1], p[2]);
    const char *forms[3] = {dir, glob_pat, list};
    for (int form = 0; form < 3; form++) {
        ed_stream *s = s_open(forms[form], NULL, 3, 11); /* across both boundaries */
        assert_int_equal(ed_stream_count(s), 8);
        assert_int_equal(ed_stream_dim(s), 4);
        for (int pass = 0; pass < 2; pass++) {
            uint8_t x[8 * 4];
            int32_t y[8];
            ed_err e = {0};
            long got = 0, r;
            while ((r = ed_stream_read(s, x + got * 4, y + got, 3, &e)) > 0)
                got += r;
            assert_int_equal(r, 0);
            assert_int_equal(got, 8);
            for (long k = 0; k < 8; k++) {
                assert_int_equal(x[k * 4], (uint8_t)((3 + k) * 4));
                assert_int_equal(y[k], -1);
            }
            assert_int_equal(ed_stream_rewind(s, &e), 0);
        }
        ed_stream_destroy(&s);
    }
    s_expect_open_fail(dir, p[0], 0, -1, ED_EINVAL, dir, "unlabeled");
    s_expect_open_fail(dir, NULL, 0, 14, ED_EINVAL, dir, "13 samples");
    char nomatch[600];
    snprintf(nomatch, sizeof nomatch, "%s/none-*", dir);
    s_expect_open_fail(nomatch, NULL, 0, -1, ED_ENOTFOUND, nomatch, "no file matches");
    char other[600];
    snprintf(other, sizeof other, "%s/part-3.idx", dir);
    uint32_t dims[2] = {1, 5};
    uint8_t five[5] = {0};
    s_write_idx(other, false, 2, dims, five, 5);
    s_expect_open_fail(dir, NULL, 0, -1, ED_ESHAPE, other, "must agree");
    for (int f = 0; f < 3; f++)
        unlink(p[f]);
    unlink(other);
    rmdir(dir);
    free(dir);
}

static void test_loader_drop_last(void **state)
{
    (void)state;
    const long count = 1000;
    char *img = tu_temp_path("-dl.idx");
    char *lab = tu_temp_path("-dl-lab.idx");
    s_write_indexed(img, lab, false, count);
    long *o = malloc(sizeof(long) * count);
    for (long sb = 0; sb <= 64; sb += 64) {
        ed_loader *l = s_loader(img, lab, 0, -1, 32, sb, 9, true);
        ed_batch b;
        ed_err e = {0};
        int batches = 0, rc;
        while ((rc = ed_loader_next(l, &b, &e)) > 0) {
            assert_int_equal(rc, 32);
            batches++;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(batches, 31);
        assert_int_equal(ed_loader_reset(l, &e), 0);
        long n = s_epoch(l, o, count);
        assert_int_equal(n, 992);
        char *seen = calloc((size_t)count, 1);
        for (long i = 0; i < n; i++) {
            assert_int_equal(seen[o[i]], 0);
            seen[o[i]] = 1;
        }
        free(seen);
        ed_loader_destroy(&l);
    }
    /* without drop_last the final batch holds the remainder */
    ed_loader *l = s_loader(img, lab, 0, -1, 32, 64, 9, false);
    ed_batch b;
    ed_err e = {0};
    int rc, last = 0;
    while ((rc = ed_loader_next(l, &b, &e)) > 0)
        last = rc;
    assert_int_equal(last, 1000 % 32);
    ed_loader_destroy(&l);

    /* bad configurations are refused and the stream is released */
    ed_stream *s = s_open(img, lab, 0, -1);
    ed_loader_config bad = {0, 10, 1, false};
    assert_null(ed_loader_new(&s, &bad, &e));
    assert_null(s);
    assert_int_equal(e.code, ED_EINVAL);
    free(o);
    s_unlink_free(img);
    s_unlink_free(lab);
}

static void test_loader_f32_npy_and_to_float(void **state)
{
    (void)state;
    const int count = 50, dim = 4;
    char *img = tu_temp_path("-lf.npy");
    char *lab = tu_temp_path("-lf-lab.npy");
    float d[50 * 4];
    int64_t l8[50];
    for (int i = 0; i < count; i++) {
        l8[i] = i;
        for (int j = 0; j < dim; j++)
            d[i * dim + j] = (float)i + 0.25f * (float)j;
    }
    s_write_npy(img, false, 1, "<f4", "(50, 4)", d, sizeof d);
    s_write_npy(lab, false, 1, "<i8", "(50,)", l8, sizeof l8);
    ed_loader *l = s_loader(img, lab, 0, -1, 8, 16, 5, false);
    assert_int_equal(ed_stream_dtype(ed_loader_stream(l)), ED_DTYPE_F32);
    ed_batch b;
    ed_err e = {0};
    int rc, seen = 0;
    float out[8 * 4], want[8 * 4];
    char hit[50] = {0};
    while ((rc = ed_loader_next(l, &b, &e)) > 0) {
        assert_int_equal(b.dtype, ED_DTYPE_F32);
        ed_batch_to_float(&b, 2.0f, 1.0f, out);
        for (int k = 0; k < b.n; k++) {
            int i = b.y[k];
            assert_true(i >= 0 && i < count && !hit[i]);
            hit[i] = 1;
            for (int j = 0; j < dim; j++)
                want[k * dim + j] = d[i * dim + j] * 2.0f + 1.0f;
        }
        assert_true(tu_allclose("f32 batch", out, want, (size_t)b.n * dim, 1e-6, 1e-6));
        seen += b.n;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(seen, count);
    ed_loader_destroy(&l);

    uint8_t u[6] = {0, 1, 127, 128, 254, 255};
    ed_batch ub = {2, 3, ED_DTYPE_U8, u, NULL, NULL};
    float uo[6], uw[6];
    for (int i = 0; i < 6; i++)
        uw[i] = (float)u[i] / 255.0f - 0.5f;
    ed_batch_to_float(&ub, 1.0f / 255.0f, -0.5f, uo);
    assert_true(tu_allclose("u8 to float", uo, uw, 6, 1e-6, 1e-6));
    s_unlink_free(img);
    s_unlink_free(lab);
}

/* ---- bounded memory ------------------------------------------------------------------------- */

static void test_bounded_memory_50mb(void **state)
{
    (void)state;
    /* The meter must see a large allocation, or the bound below would prove nothing. */
    size_t m0 = s_heap_in_use();
    char *probe = malloc((size_t)16 << 20);
    assert_non_null(probe);
    memset(probe, 1, (size_t)16 << 20);
    size_t m1 = s_heap_in_use();
    free(probe);
    assert_true(m1 >= m0 + ((size_t)16 << 20));

    const long count = 64000, dim = 784; /* 50.2 MB */
    char *img = tu_temp_path("-big.idx");
    char *lab = tu_temp_path("-big-lab.idx");
    FILE *f = fopen(img, "wb");
    assert_non_null(f);
    unsigned char hdr[16] = {
        0, 0,  8, 3, 0, 0, (unsigned char)(count >> 8), (unsigned char)count, 0, 0,
        0, 28, 0, 0, 0, 28};
    assert_int_equal(fwrite(hdr, 1, 16, f), 16);
    uint8_t row[784];
    for (long i = 0; i < count; i++) {
        for (long j = 0; j < dim; j++)
            row[j] = s_pattern(i, j);
        row[0] = (uint8_t)(i & 0xff);
        row[1] = (uint8_t)(i >> 8);
        assert_int_equal(fwrite(row, 1, (size_t)dim, f), (size_t)dim);
    }
    assert_int_equal(fclose(f), 0);
    f = fopen(lab, "wb");
    assert_non_null(f);
    unsigned char lh[8] = {0, 0, 8, 1, 0, 0, (unsigned char)(count >> 8), (unsigned char)count};
    assert_int_equal(fwrite(lh, 1, 8, f), 8);
    for (long i = 0; i < count; i++)
        assert_int_equal(fputc((int)(i % 10), f), (int)(i % 10));
    assert_int_equal(fclose(f), 0);

    char *seen = calloc((size_t)count, 1);
    assert_non_null(seen);
    size_t base = s_heap_in_use(), peak = base;
    ed_loader *l = s_loader(img, lab, 0, -1, 256, 2048, 11, false);
    ed_batch b;
    ed_err e = {0};
    long total = 0;
    int rc;
    while ((rc = ed_loader_next(l, &b, &e)) > 0) {
        size_t now = s_heap_in_use();
        if (now > peak)
            peak = now;
        const uint8_t *x = b.x;
        for (int k = 0; k < b.n; k++) {
            long i = x[k * dim] | (long)x[k * dim + 1] << 8;
            assert_true(i < count && !seen[i]);
            seen[i] = 1;
            assert_int_equal(b.y[k], i % 10);
            assert_int_equal(x[k * dim + 500], s_pattern(i, 500));
        }
        total += b.n;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(total, count);
    ed_loader_destroy(&l);
    size_t used = peak - base;
    /* shuffle buffer 1.6 MB + batch 0.2 MB + zlib buffers; the file is 50 MB */
    const size_t bound = (size_t)8 << 20;
    fprintf(stderr, "bounded memory: peak heap %.2f MB above baseline while streaming %.1f MB\n",
            (double)used / 1048576.0, (double)(count * dim) / 1048576.0);
    assert_true(used < bound);
    free(seen);
    s_unlink_free(img);
    s_unlink_free(lab);
}

/* ---- real Fashion-MNIST --------------------------------------------------------------------- */

static void test_fashion_mnist(void **state)
{
    (void)state;
    char ti[512], tl[512], vi[512], vl[512];
    snprintf(ti, sizeof ti, "%s/train-images-idx3-ubyte.gz", EDISTILL_FMNIST_DIR);
    snprintf(tl, sizeof tl, "%s/train-labels-idx1-ubyte.gz", EDISTILL_FMNIST_DIR);
    snprintf(vi, sizeof vi, "%s/t10k-images-idx3-ubyte.gz", EDISTILL_FMNIST_DIR);
    snprintf(vl, sizeof vl, "%s/t10k-labels-idx1-ubyte.gz", EDISTILL_FMNIST_DIR);
    if (access(ti, R_OK) != 0 || access(tl, R_OK) != 0 || access(vi, R_OK) != 0 ||
        access(vl, R_OK) != 0) {
        fprintf(stderr, "Fashion-MNIST not found under %s; skipping\n", EDISTILL_FMNIST_DIR);
        skip();
    }
    ed_stream *s = s_open(ti, tl, 0, -1);
    assert_int_equal(ed_stream_count(s), 60000);
    assert_int_equal(ed_stream_dim(s), 784);
    assert_int_equal(ed_stream_dtype(s), ED_DTYPE_U8);
    uint8_t *x = malloc((size_t)1000 * 784);
    int32_t y[1000];
    long hist[10] = {0}, total = 0, r;
    ed_err e = {0};
    while ((r = ed_stream_read(s, x, y, 1000, &e)) > 0) {
        if (total == 0)
            assert_int_equal(y[0], 9);
        for (long i = 0; i < r; i++) {
            assert_true(y[i] >= 0 && y[i] < 10);
            hist[y[i]]++;
        }
        total += r;
    }
    assert_int_equal(r, 0);
    assert_int_equal(total, 60000);
    for (int c = 0; c < 10; c++)
        assert_int_equal(hist[c], 6000);
    ed_stream_destroy(&s);

    s = s_open(vi, vl, 0, -1);
    assert_int_equal(ed_stream_count(s), 10000);
    assert_int_equal(ed_stream_dim(s), 784);
    assert_int_equal(ed_stream_read(s, x, y, 1, &e), 1);
    assert_int_equal(y[0], 9);
    ed_stream_destroy(&s);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_raw_roundtrip),
        cmocka_unit_test(test_idx_gz_roundtrip),
        cmocka_unit_test(test_idx_rank1_and_unlabeled),
        cmocka_unit_test(test_npy_u8_with_i8_labels),
        cmocka_unit_test(test_npy_f32_with_i4_labels),
        cmocka_unit_test(test_npy_rejects),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_truncated_idx),
        cmocka_unit_test(test_bad_magic_and_type),
        cmocka_unit_test(test_label_mismatch_and_rank),
        cmocka_unit_test(test_label_values_out_of_range),
        cmocka_unit_test(test_huge_declared_sizes),
        cmocka_unit_test(test_loader_exactly_once_and_deterministic),
        cmocka_unit_test(test_loader_drop_last),
        cmocka_unit_test(test_sharded_input),
        cmocka_unit_test(test_loader_f32_npy_and_to_float),
        cmocka_unit_test(test_bounded_memory_50mb),
        cmocka_unit_test(test_fashion_mnist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
