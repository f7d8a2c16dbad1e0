/*
 * test_target_store: the soft-target store (ed_target_store) and float16 conversion (ed_half):
 * float16 bit-exact against numpy (every half -> float, and random and tie-case floats -> half,
 * through a store read by tests/check_target_store.py with numpy alone); float32 and top-k round
 * trips over several shards; resume after an interrupted shard gives the same bytes as an
 * uninterrupted write; damaged stores (truncated, missing, other members, wrong count, flipped
 * byte, mixed shard counts) refused with messages naming the shard; input identity look-ups; a
 * store filled in a shuffled order, interrupted (with a torn row) and continued is the same bytes
 * as one written in order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ed_half.h"
#include "ed_rng.h"
#include "ed_target_store.h"
#include "tu.h"

#define S_PYTHON "/usr/bin/python3"
#define S_CHECK_SCRIPT EDISTILL_TEST_DATA "/../check_target_store.py"

static int s_have_numpy(void)
{
    static int have = -1;
    if (have < 0)
        have = access(S_PYTHON, X_OK) == 0 &&
               system(S_PYTHON " -c 'import numpy' >/dev/null 2>&1") == 0;
    return have;
}

/* Runs the Python checker; returns its exit status, its output in out. */
static int s_run_checker(const char *store, const char *input, const char *h2f, char *out, size_t n)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, S_PYTHON " '%s' '%s' %s%s%s %s%s%s 2>&1", S_CHECK_SCRIPT, store,
             input ? "'" : "", input ? input : "", input ? "'" : "", h2f ? "'" : "", h2f ? h2f : "",
             h2f ? "'" : "");
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t got = fread(out, 1, n - 1, p);
    out[got] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void s_expect_err(int rc, const ed_err *err, int code, const char *n1, const char *n2)
{
    if (rc != code)
        fprintf(stderr, "expected %s, got %s: %s\n", ed_err_name(code), ed_err_name(rc), err->msg);
    assert_int_equal(rc, code);
    if (n1 && !strstr(err->msg, n1))
        fail_msg("message '%s' lacks '%s'", err->msg, n1);
    if (n2 && !strstr(err->msg, n2))
        fail_msg("message '%s' lacks '%s'", err->msg, n2);
}

/* A layout of K members, C classes, one input of `total` samples (a fake identity). */
static ed_ts_layout s_layout(int K, int C, int64_t total, ed_ts_dtype dt, int top_k, uint64_t salt)
{
    ed_ts_layout lay = {.classes = C, .n_members = K, .dtype = dt, .top_k = top_k, .total = total};
    for (int k = 0; k < K; k++) {
        snprintf(lay.member[k].name, sizeof lay.member[k].name, "m%d", k);
        snprintf(lay.member[k].fingerprint, sizeof lay.member[k].fingerprint, "fnv1a64:%016llx",
                 (unsigned long long)(0x1234 + (uint64_t)k + salt));
    }
    lay.n_inputs = 1;
    lay.inputs = calloc(1, sizeof *lay.inputs);
    lay.inputs[0] = (ed_ts_input){.path = strdup("data.npy"),
                                  .size = 1000,
                                  .head_hash = 7,
                                  .tail_hash = 9,
                                  .start = 5,
                                  .end = 5 + total,
                                  .offset = 0};
    return lay;
}

/* Writes shards [first, last] of n_shards from z (total, K, C); returns 0 or the error code. */
static int s_write(const char *dir, const ed_ts_layout *lay, const float *z, int first, int last,
                   int n_shards, ed_err *err)
{
    const int K = lay->n_members, C = lay->classes;
    const float *ptr[ED_TS_MAX_MEMBERS];
    float *tmp = malloc(sizeof(float) * (size_t)K * (size_t)C * 7);
    for (int s = first; s <= last; s++) {
        ed_ts_writer *w = ed_ts_writer_open(dir, lay, s, n_shards, false, err);
        if (!w) {
            free(tmp);
            return err->code;
        }
        for (int64_t g = ed_ts_writer_next(w); g < ed_ts_writer_end(w);) {
            int n = (int)(ed_ts_writer_end(w) - g < 7 ? ed_ts_writer_end(w) - g : 7);
            for (int k = 0; k < K; k++) { /* member-major, as the pool hands them out */
                for (int i = 0; i < n; i++)
                    memcpy(tmp + ((size_t)k * 7 + (size_t)i) * (size_t)C,
                           z + ((size_t)(g + i) * (size_t)K + (size_t)k) * (size_t)C,
                           sizeof(float) * (size_t)C);
                ptr[k] = tmp + (size_t)k * 7 * (size_t)C;
            }
            /* the pool's logits have row stride C: rebuild as (n, C) per member */
            float *rows[ED_TS_MAX_MEMBERS];
            for (int k = 0; k < K; k++)
                rows[k] = (float *)ptr[k];
            assert_int_equal(ed_ts_writer_append(w, n, (const float *const *)rows, err), 0);
            g += n;
        }
        int rc = ed_ts_writer_commit(w, err);
        ed_ts_writer_destroy(&w);
        if (rc) {
            free(tmp);
            return rc;
        }
    }
    free(tmp);
    return 0;
}

static float *s_random_logits(int64_t total, int K, int C, uint64_t seed)
{
    ed_rng rng;
    ed_rng_seed(&rng, seed);
    float *z = malloc(sizeof(float) * (size_t)total * (size_t)K * (size_t)C);
    for (size_t i = 0; i < (size_t)total * (size_t)K * (size_t)C; i++)
        z[i] = (float)(ed_rng_uniform(&rng) * 20.0 - 10.0);
    return z;
}

static char *s_tempdir(void)
{
    char *d = tu_temp_path(".store");
    return d; /* the writer creates it */
}

static void s_rm_rf(const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- float16 against numpy ----------------------------------------------------------------- */

static void test_half_numpy(void **state)
{
    (void)state;
    /* Hand-checked cases first: ties to even, subnormals, the largest half. */
    assert_int_equal(ed_half_from_float(1.0f), 0x3c00);
    assert_int_equal(ed_half_from_float(1.0f + ldexpf(1, -11)), 0x3c00);     /* tie -> even */
    assert_int_equal(ed_half_from_float(1.0f + 3 * ldexpf(1, -11)), 0x3c02); /* tie -> even */
    assert_int_equal(ed_half_from_float(ldexpf(1, -25)), 0x0000);            /* tie -> 0 */
    assert_int_equal(ed_half_from_float(3 * ldexpf(1, -25)), 0x0002);
    assert_int_equal(ed_half_from_float(65504.0f), 0x7bff);
    assert_int_equal(ed_half_from_float(65519.0f), 0x7bff);
    assert_int_equal(ed_half_from_float(65520.0f), 0x7c00);
    assert_int_equal(ed_half_from_float(-2.0f), 0xc000);
    for (uint32_t h = 0; h < 0x7c00; h++) /* every finite half survives the round trip */
        assert_int_equal(ed_half_from_float(ed_half_to_float((uint16_t)h)), h);
    if (!s_have_numpy()) {
        fprintf(stderr, "skipping the numpy half: " S_PYTHON " with numpy not available\n");
        skip();
    }
    /* Random bit patterns within float16's range (all exponents, tie cases included) through a
     * float16 store, checked against numpy's astype(float16) by the Python reader. */
    const int K = 3, C = 11;
    const int64_t total = 400;
    float *z = malloc(sizeof(float) * (size_t)total * K * C);
    ed_rng rng;
    ed_rng_seed(&rng, 42);
    for (size_t i = 0; i < (size_t)total * K * C; i++) {
        uint32_t bits = (uint32_t)ed_rng_next(&rng);
        int e = (int)(ed_rng_next(&rng) % 40) + 127 - 30; /* 2^-30 .. 2^9 */
        if (i % 7 == 0)
            bits &= ~0xfffu, bits |= 0x1000u; /* exact ties */
        bits = (bits & 0x807fffffu) | ((uint32_t)e << 23);
        memcpy(&z[i], &bits, 4);
    }
    z[0] = 65504.0f;
    z[1] = -65504.0f;
    z[2] = 0.0f;
    z[3] = -0.0f;
    char *dir = s_tempdir(), *input = tu_temp_path(".f32"), *h2f = tu_temp_path(".h2f");
    ed_ts_layout lay = s_layout(K, C, total, ED_TS_F16, 0, 0);
    ed_err err;
    if (s_write(dir, &lay, z, 0, 1, 2, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(tu_write_file(input, z, sizeof(float) * (size_t)total * K * C), 0);
    float *table = malloc(sizeof(float) * 65536);
    for (uint32_t h = 0; h < 65536; h++)
        table[h] = ed_half_to_float((uint16_t)h);
    assert_int_equal(tu_write_file(h2f, table, sizeof(float) * 65536), 0);
    char out[4096];
    int st = s_run_checker(dir, input, h2f, out, sizeof out);
    if (st)
        fail_msg("check_target_store.py exited %d: %s", st, out);
    /* The checker must be able to fail: an input that is not what the store holds. */
    z[5] = nextafterf(z[5], 1e9f);
    z[5] = nextafterf(z[5], 1e9f);
    for (int i = 0; i < 20 && ed_half_from_float(z[5]) == ed_half_from_float(z[5] - 0.0f); i++)
        z[5] = z[5] * 1.01f + 0.01f;
    assert_int_equal(tu_write_file(input, z, sizeof(float) * (size_t)total * K * C), 0);
    st = s_run_checker(dir, input, NULL, out, sizeof out);
    if (st == 0)
        fail_msg("check_target_store.py accepted a wrong input: %s", out);
    s_rm_rf(dir);
    ed_ts_layout_free(&lay);
    unlink(input);
    unlink(h2f);
    free(table);
    free(z);
    free(dir);
    free(input);
    free(h2f);
}

/* ---- round trips ---------------------------------------------------------------------------- */

static void s_round_trip(ed_ts_dtype dt, int top_k, int n_shards, const char *what)
{
    const int K = 4, C = 10;
    const int64_t total = 101;
    float *z = s_random_logits(total, K, C, 7);
    char *dir = s_tempdir(), *input = tu_temp_path(".f32");
    ed_ts_layout lay = s_layout(K, C, total, dt, top_k, 0);
    ed_err err;
    if (s_write(dir, &lay, z, 0, n_shards - 1, n_shards, &err))
        fail_msg("%s", err.msg);
    ed_ts_reader *r = ed_ts_open(dir, &err);
    if (!r)
        fail_msg("%s", err.msg);
    assert_int_equal(ed_ts_reader_shards(r), n_shards);
    float row[4 * 10];
    for (int64_t g = 0; g < total; g++) {
        assert_int_equal(ed_ts_read(r, g, row, &err), 0);
        for (int k = 0; k < K; k++) {
            const float *src = z + ((size_t)g * K + (size_t)k) * C;
            float expect[10];
            if (top_k == 0) {
                for (int c = 0; c < C; c++)
                    expect[c] =
                        dt == ED_TS_F32 ? src[c] : ed_half_to_float(ed_half_from_float(src[c]));
            } else { /* the documented rule, by brute force */
                bool kept[10] = {0};
                double rest = 0;
                for (int i = 0; i < top_k; i++) {
                    int best = -1;
                    for (int c = 0; c < C; c++)
                        if (!kept[c] && (best < 0 || src[c] > src[best]))
                            best = c;
                    kept[best] = true;
                }
                for (int c = 0; c < C; c++)
                    rest += kept[c] ? 0 : src[c];
                float rf = (float)(rest / (C - top_k));
                for (int c = 0; c < C; c++) {
                    float v = kept[c] ? src[c] : rf;
                    expect[c] = dt == ED_TS_F32 ? v : ed_half_to_float(ed_half_from_float(v));
                }
            }
            if (!tu_allclose(what, row + k * C, expect, (size_t)C, 0, 0))
                fail_msg("%s: sample %lld member %d differs", what, (long long)g, k);
        }
    }
    s_expect_err(ed_ts_read(r, total, row, &err), &err, ED_EINVAL, "outside", NULL);
    ed_ts_close(&r);
    if (s_have_numpy()) {
        char out[4096];
        assert_int_equal(tu_write_file(input, z, sizeof(float) * (size_t)total * K * C), 0);
        int st = s_run_checker(dir, input, NULL, out, sizeof out);
        if (st)
            fail_msg("%s: check_target_store.py exited %d: %s", what, st, out);
    }
    s_rm_rf(dir);
    unlink(input);
    ed_ts_layout_free(&lay);
    free(dir);
    free(input);
    free(z);
}

static void test_round_trip_f32(void **state)
{
    (void)state;
    s_round_trip(ED_TS_F32, 0, 3, "float32, 3 shards");
}

static void test_round_trip_f16(void **state)
{
    (void)state;
    s_round_trip(ED_TS_F16, 0, 1, "float16, 1 shard");
}

static void test_round_trip_topk(void **state)
{
    (void)state;
    s_round_trip(ED_TS_F32, 3, 2, "float32 top-3, 2 shards");
    s_round_trip(ED_TS_F16, 10, 1, "float16 top-10 of 10");
}

/* ---- filling in any order (distill --cache-targets) ------------------------------------------
 */

/* Same bytes in two files (a store written in order and one filled in any order). */
static void s_same_file(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    void *da = tu_read_file(a, &na), *db = tu_read_file(b, &nb);
    assert_non_null(da);
    assert_non_null(db);
    if (na != nb || memcmp(da, db, na))
        fail_msg("%s and %s differ", a, b);
    free(da);
    free(db);
}

static void test_fill(void **state)
{
    (void)state;
    const int K = 2, C = 3;
    const int64_t total = 9000; /* > 2 chunks of the scan */
    float *z = s_random_logits(total, K, C, 5);
    char *a = s_tempdir(), *b = s_tempdir();
    ed_ts_layout lay = s_layout(K, C, total, ED_TS_F32, 0, 0);
    ed_ts_layout other = s_layout(K, C, total, ED_TS_F32, 0, 1);
    ed_err err;
    if (s_write(a, &lay, z, 0, 0, 1, &err))
        fail_msg("%s", err.msg);
    /* 5000 samples in a shuffled order (g = i * 7919 mod total), then interrupted. */
    ed_ts_filler *f = ed_ts_filler_open(b, &lay, &err);
    if (!f)
        fail_msg("%s", err.msg);
    s_expect_err(ed_ts_filler_open(b, &lay, &err) ? 0 : err.code, &err, ED_EBUSY, "another run",
                 NULL);
    for (int64_t i = 0; i < 5000; i++)
        assert_int_equal(
            ed_ts_filler_put(f, i * 7919 % total, z + (i * 7919 % total) * K * C, &err), 0);
    assert_int_equal(ed_ts_filler_count(f), 5000);
    float row[6], bad[6] = {1, 2, NAN, 4, 5, 6};
    int64_t hole = 0;
    while (ed_ts_filler_has(f, hole))
        hole++;
    s_expect_err(ed_ts_filler_put(f, hole, bad, &err), &err, ED_EINVAL, "NaN", NULL);
    s_expect_err(ed_ts_filler_get(f, hole, row, &err), &err, ED_EINVAL, "not filled", NULL);
    s_expect_err(ed_ts_filler_commit(f, &err), &err, ED_EINVAL, "5000 of 9000", NULL);
    ed_ts_filler_destroy(&f);
    /* A torn write (a crash in the middle of a row): that row reads as unfilled. */
    char *arr = malloc(strlen(b) + 64);
    sprintf(arr, "%s/shard-00000-of-00001.logits.npy.filling", b);
    FILE *fp = fopen(arr, "r+b");
    assert_non_null(fp);
    const float nan = NAN;
    assert_int_equal(fseek(fp, 128 + (long)(7919 * K * C + 4) * 4, SEEK_SET), 0);
    assert_int_equal(fwrite(&nan, 4, 1, fp), 1);
    fclose(fp);
    s_expect_err(ed_ts_filler_open(b, &other, &err) ? 0 : err.code, &err, ED_EINVAL,
                 "other data or members", "member 0");
    f = ed_ts_filler_open(b, &lay, &err);
    if (!f)
        fail_msg("%s", err.msg);
    assert_int_equal(ed_ts_filler_count(f), 4999);
    assert_false(ed_ts_filler_has(f, 7919));
    assert_true(ed_ts_filler_has(f, 2 * 7919 % total));
    assert_int_equal(ed_ts_filler_get(f, 2 * 7919 % total, row, &err), 0);
    assert_memory_equal(row, z + (2 * 7919 % total) * K * C, sizeof row);
    for (int64_t g = total - 1; g >= 0; g--) /* the rest, and the ones filled again (no-ops) */
        assert_int_equal(ed_ts_filler_put(f, g, z + g * K * C, &err), 0);
    assert_int_equal(ed_ts_filler_commit(f, &err), 0);
    assert_true(ed_ts_filler_complete(f));
    assert_int_equal(ed_ts_filler_get(f, 7919, row, &err), 0);
    assert_memory_equal(row, z + 7919 * K * C, sizeof row);
    ed_ts_filler_destroy(&f);
    /* The same store, byte for byte, as one written in order: index and array. */
    char pa[4096], pb[4096];
    for (int i = 0; i < 2; i++) {
        const char *suffix = i ? "json" : "logits.npy";
        snprintf(pa, sizeof pa, "%s/shard-00000-of-00001.%s", a, suffix);
        snprintf(pb, sizeof pb, "%s/shard-00000-of-00001.%s", b, suffix);
        s_same_file(pa, pb);
    }
    snprintf(pb, sizeof pb, "%s/shard-00000-of-00001.fill.json", b);
    assert_int_not_equal(access(pb, F_OK), 0);
    ed_ts_reader *r = ed_ts_open(b, &err);
    if (!r)
        fail_msg("%s", err.msg);
    ed_ts_close(&r);
    s_rm_rf(a);
    s_rm_rf(b);
    ed_ts_layout_free(&lay);
    ed_ts_layout_free(&other);
    free(arr);
    free(a);
    free(b);
    free(z);
}

/* ---- resume ------------------------------------------------------------------------------------
 */

static void test_resume(void **state)
{
    (void)state;
    const int K = 2, C = 3;
    const int64_t total = 9000; /* > 2 progress records */
    float *z = s_random_logits(total, K, C, 3);
    char *a = s_tempdir(), *b = s_tempdir();
    ed_ts_layout lay = s_layout(K, C, total, ED_TS_F16, 0, 0);
    ed_err err;
    if (s_write(a, &lay, z, 0, 0, 1, &err))
        fail_msg("%s", err.msg);
    /* Interrupted after 5000 samples (no commit), then resumed. */
    ed_ts_writer *w = ed_ts_writer_open(b, &lay, 0, 1, false, &err);
    assert_non_null(w);
    float *m0 = malloc(sizeof(float) * (size_t)total * C),
          *m1 = malloc(sizeof(float) * (size_t)total * C);
    for (int64_t g = 0; g < total; g++) {
        memcpy(m0 + g * C, z + (g * K + 0) * C, sizeof(float) * C);
        memcpy(m1 + g * C, z + (g * K + 1) * C, sizeof(float) * C);
    }
    const float *ptr[2] = {m0, m1};
    assert_int_equal(ed_ts_writer_append(w, 5000, ptr, &err), 0);
    ed_ts_writer_destroy(&w);
    assert_null(ed_ts_open(b, &err));
    s_expect_err(err.code, &err, ED_ENOTFOUND, "unfinished", "--resume");
    assert_null(ed_ts_writer_open(b, &lay, 0, 1, false, &err));
    s_expect_err(err.code, &err, ED_EINVAL, "unfinished shard", "--resume");
    ed_ts_layout other = s_layout(K, C, total, ED_TS_F16, 0, 99);
    assert_null(ed_ts_writer_open(b, &other, 0, 1, true, &err));
    s_expect_err(err.code, &err, ED_EINVAL, "another store", "member 0");
    ed_ts_layout_free(&other);
    w = ed_ts_writer_open(b, &lay, 0, 1, true, &err);
    if (!w)
        fail_msg("%s", err.msg);
    assert_int_equal(ed_ts_writer_next(w), 4096);
    const float *rest[2] = {m0 + 4096 * C, m1 + 4096 * C};
    assert_int_equal(ed_ts_writer_append(w, (int)(total - 4096), rest, &err), 0);
    assert_int_equal(ed_ts_writer_commit(w, &err), 0);
    ed_ts_writer_destroy(&w);
    const char *names[] = {"shard-00000-of-00001.logits.npy", "shard-00000-of-00001.json"};
    for (int i = 0; i < 2; i++) {
        char pa[1024], pb[1024];
        snprintf(pa, sizeof pa, "%s/%s", a, names[i]);
        snprintf(pb, sizeof pb, "%s/%s", b, names[i]);
        size_t na, nb;
        char *da = tu_read_file(pa, &na), *db = tu_read_file(pb, &nb);
        assert_non_null(da);
        assert_non_null(db);
        assert_int_equal(na, nb);
        assert_memory_equal(da, db, na);
        free(da);
        free(db);
    }
    /* Resuming a complete shard is a no-op; without --resume it is refused. */
    w = ed_ts_writer_open(b, &lay, 0, 1, true, &err);
    assert_non_null(w);
    assert_int_equal(ed_ts_writer_next(w), ed_ts_writer_end(w));
    assert_int_equal(ed_ts_writer_commit(w, &err), 0);
    ed_ts_writer_destroy(&w);
    assert_null(ed_ts_writer_open(b, &lay, 0, 1, false, &err));
    s_expect_err(err.code, &err, ED_EINVAL, "already exists", NULL);
    s_rm_rf(a);
    s_rm_rf(b);
    ed_ts_layout_free(&lay);
    free(a);
    free(b);
    free(m0);
    free(m1);
    free(z);
}

/* ---- damaged stores -----------------------------------------------------------------------------
 */

static void s_cp(const char *from_dir, const char *to_dir, const char *name)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp '%s/%s' '%s/%s'", from_dir, name, to_dir, name);
    assert_int_equal(system(cmd), 0);
}

static void test_damaged(void **state)
{
    (void)state;
    const int K = 2, C = 5;
    const int64_t total = 60;
    float *z = s_random_logits(total, K, C, 11);
    char *dir = s_tempdir(), *other = s_tempdir();
    ed_ts_layout lay = s_layout(K, C, total, ED_TS_F16, 0, 0);
    ed_ts_layout lay2 = s_layout(K, C, total, ED_TS_F16, 0, 5);
    ed_err err;
    char path[1024];
    assert_int_equal(s_write(dir, &lay, z, 0, 2, 3, &err), 0);
    assert_int_equal(s_write(other, &lay2, z, 0, 2, 3, &err), 0);
    ed_ts_reader *r = ed_ts_open(dir, &err);
    assert_non_null(r);
    ed_ts_close(&r);

    /* truncated shard */
    snprintf(path, sizeof path, "%s/shard-00001-of-00003.logits.npy", dir);
    assert_int_equal(truncate(path, 200), 0);
    assert_null(ed_ts_open(dir, &err));
    s_expect_err(err.code, &err, ED_ETRUNC, "shard-00001-of-00003.logits.npy", "truncated");
    s_cp(other, dir, "shard-00001-of-00003.logits.npy");

    /* a shard from other members (its index and array copied from another store) */
    s_cp(other, dir, "shard-00001-of-00003.json");
    assert_null(ed_ts_open(dir, &err));
    s_expect_err(err.code, &err, ED_EFORMAT, "shard-00001-of-00003.json", "another store");

    /* the other store's array under this store's index: the checksum catches it */
    assert_int_equal(s_write(dir, &lay, z, 1, 1, 3, &err) == ED_EINVAL, 1); /* exists */
    snprintf(path, sizeof path, "%s/shard-00001-of-00003.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/shard-00001-of-00003.logits.npy", dir);
    unlink(path);
    /* missing shard */
    assert_null(ed_ts_open(dir, &err));
    s_expect_err(err.code, &err, ED_ENOTFOUND, "shard 1 of 3", "missing");
    assert_int_equal(s_write(dir, &lay, z, 1, 1, 3, &err), 0);
    r = ed_ts_open(dir, &err);
    assert_non_null(r);
    ed_ts_close(&r);

    /* flipped byte */
    size_t n;
    snprintf(path, sizeof path, "%s/shard-00002-of-00003.logits.npy", dir);
    unsigned char *raw = tu_read_file(path, &n);
    raw[n - 3] ^= 0x01;
    assert_int_equal(tu_write_file(path, raw, n), 0);
    assert_null(ed_ts_open(dir, &err));
    s_expect_err(err.code, &err, ED_ECHECKSUM, "shard-00002-of-00003.logits.npy", "damaged");
    raw[n - 3] ^= 0x01;
    assert_int_equal(tu_write_file(path, raw, n), 0);
    free(raw);

    /* wrong sample count: an index claiming another range */
    snprintf(path, sizeof path, "%s/shard-00000-of-00003.json", dir);
    char *text = tu_read_file(path, &n);
    text = realloc(text, n + 1);
    text[n] = '\0';
    char *e = strstr(text, "\"end\":\t20");
    assert_non_null(e);
    e[8] = '1'; /* 20 -> 21 */
    assert_int_equal(tu_write_file(path, text, n), 0);
    assert_null(ed_ts_open(dir, &err));
    s_expect_err(err.code, &err, ED_EFORMAT, "shard-00000-of-00003.json", "wrong sample range");
    e[8] = '0';
    assert_int_equal(tu_write_file(path, text, n), 0);
    free(text);

    /* a shard of another shard count mixed in */
    assert_int_equal(s_write(dir, &lay, z, 0, 0, 2, &err), 0);
    assert_null(ed_ts_open(dir, &err));
    s_expect_err(err.code, &err, ED_EFORMAT, "a shard of", "mixed");

    assert_null(ed_ts_open("/nonexistent/store", &err));
    s_expect_err(err.code, &err, ED_ENOTFOUND, "/nonexistent/store", NULL);
    s_rm_rf(dir);
    s_rm_rf(other);
    ed_ts_layout_free(&lay);
    ed_ts_layout_free(&lay2);
    free(dir);
    free(other);
    free(z);
}

/* ---- identities -------------------------------------------------------------------------------
 */

static void test_find_input(void **state)
{
    (void)state;
    char *file = tu_temp_path(".bin"), *dir = s_tempdir();
    unsigned char *bytes = malloc(3u << 20);
    for (size_t i = 0; i < (3u << 20); i++)
        bytes[i] = (unsigned char)(i * 31 + (i >> 11));
    assert_int_equal(tu_write_file(file, bytes, 3u << 20), 0);
    ed_ts_layout lay = s_layout(1, 2, 10, ED_TS_F32, 0, 0);
    ed_err err;
    ed_ts_input id = {.path = file, .start = 5, .end = 15};
    assert_int_equal(ed_ts_file_identity(file, &id, &err), 0);
    assert_int_equal(id.size, 3 << 20);
    lay.inputs[0].size = id.size;
    lay.inputs[0].head_hash = id.head_hash;
    lay.inputs[0].tail_hash = id.tail_hash;
    float *z = s_random_logits(10, 1, 2, 1);
    assert_int_equal(s_write(dir, &lay, z, 0, 0, 1, &err), 0);
    ed_ts_reader *r = ed_ts_open(dir, &err);
    assert_non_null(r);
    int64_t off = -1;
    assert_int_equal(ed_ts_find_input(r, &id, &off, &err), 0);
    assert_int_equal(off, 0);
    id.end = 16;
    s_expect_err(ed_ts_find_input(r, &id, &off, &err), &err, ED_ENOTFOUND, "[5, 15)", "[5, 16)");
    id.end = 15;
    bytes[(3u << 20) - 10] ^= 1; /* same size, other tail */
    assert_int_equal(tu_write_file(file, bytes, 3u << 20), 0);
    assert_int_equal(ed_ts_file_identity(file, &id, &err), 0);
    s_expect_err(ed_ts_find_input(r, &id, &off, &err), &err, ED_ENOTFOUND, file, "no input");
    const char *fps[1] = {"fnv1a64:0000000000001234"};
    assert_int_equal(ed_ts_check_members(r, 1, fps, &err), 0);
    fps[0] = "fnv1a64:0000000000009999";
    s_expect_err(ed_ts_check_members(r, 1, fps, &err), &err, ED_EFORMAT, "member 0", "9999");
    ed_ts_close(&r);
    s_rm_rf(dir);
    unlink(file);
    ed_ts_layout_free(&lay);
    free(bytes);
    free(file);
    free(dir);
    free(z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half_numpy),     cmocka_unit_test(test_round_trip_f32),
        cmocka_unit_test(test_round_trip_f16), cmocka_unit_test(test_round_trip_topk),
        cmocka_unit_test(test_resume),         cmocka_unit_test(test_damaged),
        cmocka_unit_test(test_find_input),     cmocka_unit_test(test_fill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
