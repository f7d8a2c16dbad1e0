/*
 * fuzz_target_store: the soft-target store reader (ed_ts_open, ed_ts_read) on an arbitrary
 * one-shard store.
 *
 * The input is split into the shard's three files: a little-endian u16 length L, L bytes of index
 * JSON (shard-00000-of-00001.json), a u32 length M, M bytes of the logits array, and the rest as
 * the indices array (absent when empty). They are written into a private temporary directory (the
 * reader opens a directory, so an in-memory file will not do). Checks: no crash or sanitizer
 * report; a refused store sets err with a message; an accepted store reads every sample with finite
 * values (the reader verified them) and refuses the sample past the end. The same index and logits
 * bytes are then tried as a store being filled in any order (fill record + .filling array,
 * ed_ts_filler) for a fixed small layout: refused with a message, or only finite rows counted
 * as filled.
 */
#define _GNU_SOURCE
#include "fuzz.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ed_target_store.h"

static char s_dir[512];

static void s_fail(const char *what, const ed_err *err)
{
    fprintf(stderr, "fuzz_target_store: invariant violated: %s (%s)\n", what, err ? err->msg : "");
    abort();
}

static void s_put(const char *name, const uint8_t *data, size_t n, bool keep_empty)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    unlink(path);
    if (n == 0 && !keep_empty)
        return;
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        perror("fuzz_target_store: write");
        abort();
    }
    fclose(f);
}

static void s_setup(void)
{
    if (s_dir[0])
        return;
    const char *tmp = getenv("TMPDIR");
    snprintf(s_dir, sizeof s_dir, "%s/fuzz_target_store.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s_dir)) {
        perror("fuzz_target_store: mkdtemp");
        abort();
    }
}

/* The reader on the shard in s_dir: refuses with a message, or reads finite values. */
static void s_check_reader(void)
{
    ed_err err;
    ed_err_clear(&err);
    ed_ts_reader *r = ed_ts_open(s_dir, &err);
    if (!r) {
        if (err.code == 0 || !err.msg[0])
            s_fail("refused without an error", &err);
        return;
    }
    const ed_ts_layout *lay = ed_ts_reader_layout(r);
    size_t row = (size_t)lay->n_members * (size_t)lay->classes;
    float *out = malloc(sizeof(float) * row);
    if (!out)
        abort();
    for (int64_t g = 0; g < lay->total && g < 4096; g++) {
        if (ed_ts_read(r, g, out, &err))
            s_fail("an accepted store failed to read", &err);
        for (size_t i = 0; i < row; i++)
            if (!isfinite(out[i]))
                s_fail("an accepted store gave a non-finite logit", NULL);
    }
    if (ed_ts_read(r, lay->total, out, &err) == 0)
        s_fail("read past the end", NULL);
    free(out);
    ed_ts_close(&r);
}

/* The filler on a fill record + array in s_dir, for a fixed layout (2 members, 3 classes, 4
 * samples of input x.npy, as make_corpus.py's fill seeds): refuses with a message, or hands out
 * only finite rows for the samples it counts as filled. */
static void s_check_filler(void)
{
    ed_ts_layout lay = {
        .classes = 3, .n_members = 2, .dtype = ED_TS_F32, .total = 4, .n_inputs = 1};
    ed_ts_input in = {.path = (char *)"x.npy",
                      .size = 100,
                      .head_hash = 1,
                      .tail_hash = 2,
                      .start = 0,
                      .end = 4,
                      .offset = 0};
    lay.inputs = &in;
    for (int k = 0; k < 2; k++) {
        snprintf(lay.member[k].name, sizeof lay.member[k].name, "m%d", k);
        snprintf(lay.member[k].fingerprint, sizeof lay.member[k].fingerprint, "fnv1a64:%016x",
                 k + 1);
    }
    ed_err err;
    ed_err_clear(&err);
    ed_ts_filler *f = ed_ts_filler_open(s_dir, &lay, &err);
    if (!f) {
        if (err.code == 0 || !err.msg[0])
            s_fail("filler refused without an error", &err);
        return;
    }
    int64_t n = 0;
    float row[6];
    for (int64_t g = 0; g < 4; g++) {
        if (!ed_ts_filler_has(f, g))
            continue;
        n++;
        if (ed_ts_filler_get(f, g, row, &err))
            s_fail("a filled row failed to read", &err);
        for (int i = 0; i < 6; i++)
            if (!isfinite(row[i]))
                s_fail("a filled row has a non-finite logit", NULL);
    }
    if (n != ed_ts_filler_count(f))
        s_fail("the filled count differs from the rows", NULL);
    ed_ts_filler_destroy(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_setup();
    size_t pos = 0, l = 0, m = 0;
    if (size >= 2) {
        l = (size_t)data[0] | (size_t)data[1] << 8;
        pos = 2;
    }
    l = l < size - pos ? l : size - pos;
    const uint8_t *json = data + pos;
    pos += l;
    if (size - pos >= 4) {
        m = (size_t)data[pos] | (size_t)data[pos + 1] << 8 | (size_t)data[pos + 2] << 16 |
            (size_t)data[pos + 3] << 24;
        pos += 4;
    }
    m = m < size - pos ? m : size - pos;
    s_put("shard-00000-of-00001.json", json, l, true);
    s_put("shard-00000-of-00001.logits.npy", data + pos, m, false);
    s_put("shard-00000-of-00001.indices.npy", data + pos + m, size - pos - m, false);

    s_check_reader();
    /* The same bytes as a store being filled in any order (distill --cache-targets). */
    s_put("shard-00000-of-00001.json", NULL, 0, false);
    s_put("shard-00000-of-00001.indices.npy", NULL, 0, false);
    s_put("shard-00000-of-00001.logits.npy", NULL, 0, false);
    s_put("shard-00000-of-00001.fill.json", json, l, true);
    s_put("shard-00000-of-00001.logits.npy.filling", data + pos, m, true);
    s_check_filler();
    s_put("shard-00000-of-00001.fill.json", NULL, 0, false);
    s_put("shard-00000-of-00001.logits.npy.filling", NULL, 0, false);
    return 0;
}
