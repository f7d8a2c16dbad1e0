/*
 * fuzz_data_reader: the IDX / .npy / CSV readers (raw or gzip) and the shuffle-buffer loader on an
 * arbitrary file, as a training or distillation run would open it.
 *
 * The input becomes an in-memory file (fuzz_file.h) that is opened three ways: as a sample file
 * read through a loader with a small shuffle buffer for two epochs; as both the sample and the
 * label file of one dataset (a rank-1 IDX / .npy or a one-column CSV is valid as both) in file
 * order; and with a [1, 3) range. Checks: no crash or sanitizer report; an open either fails with
 * an error record or gives a sane count/dim; each epoch delivers exactly ed_stream_count samples
 * (unless a read error is reported), labels are >= 0 for a labeled stream and -1 otherwise; a
 * refused open sets err.
 *
 * Harness limit (not a reader limit): loaders whose buffers would exceed 64 MiB are not built,
 * since a gzip file may declare samples of up to INT_MAX values that exist only once read.
 */
#define _GNU_SOURCE
#include "fuzz.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "ed_data.h"
#include "ed_loader.h"
#include "fuzz_file.h"

#define S_MAX_LOADER_BYTES ((size_t)64 << 20)

static fz_file s_file;
static bool s_ready;

static void s_fail(const char *what, const ed_err *err)
{
    fprintf(stderr, "fuzz_data_reader: invariant violated: %s (%s)\n", what, err ? err->msg : "");
    abort();
}

/* Opens spec, reads `epochs` epochs through a loader, checks the counts. */
static void s_run(const ed_dataset_spec *spec, int batch, long shuffle, int epochs)
{
    ed_err err;
    ed_err_clear(&err);
    ed_stream *s = ed_stream_open(spec, &err);
    if (!s) {
        if (err.code >= 0 || err.msg[0] == '\0')
            s_fail("ed_stream_open failed without an error record", &err);
        return;
    }
    long count = ed_stream_count(s);
    int dim = ed_stream_dim(s);
    ed_dtype dtype = ed_stream_dtype(s);
    bool labeled = ed_stream_has_labels(s);
    if (count < 0 || dim < 1 || (dtype != ED_DTYPE_U8 && dtype != ED_DTYPE_F32))
        s_fail("opened stream with a bad count, dim or dtype", &err);
    if (labeled != (spec->labels != NULL))
        s_fail("has_labels does not match the spec", &err);
    size_t per = (size_t)dim * ed_dtype_size(dtype);
    if (per > S_MAX_LOADER_BYTES / (size_t)(batch + shuffle + 1)) {
        ed_stream_destroy(&s);
        return;
    }
    ed_loader_config cfg = {
        .batch_size = batch, .shuffle_buffer = shuffle, .seed = 7, .drop_last = false};
    ed_loader *l = ed_loader_new(&s, &cfg, &err);
    if (s)
        s_fail("ed_loader_new did not take the stream", &err);
    if (!l) {
        if (err.code >= 0)
            s_fail("ed_loader_new failed without an error record", &err);
        return;
    }
    float *fx = malloc((size_t)batch * (size_t)dim * sizeof(float));
    if (!fx)
        abort();
    for (int e = 0; e < epochs; e++) {
        long seen = 0;
        int n;
        ed_batch b;
        while ((n = ed_loader_next(l, &b, &err)) > 0) {
            if (n > batch || b.n != n || b.dim != dim || b.dtype != dtype || !b.x || !b.y)
                s_fail("batch does not match the stream", &err);
            for (int i = 0; i < n; i++)
                if (labeled ? b.y[i] < 0 : b.y[i] != -1)
                    s_fail("bad label in a batch", &err);
            ed_batch_to_float(&b, 1.0f / 255.0f, 0.0f, fx);
            seen += n;
        }
        if (n < 0) {
            if (err.code >= 0 || err.msg[0] == '\0')
                s_fail("loader error without an error record", &err);
            break; /* truncated / corrupt data reported: fine */
        }
        if (seen != count)
            s_fail("an epoch did not deliver every sample exactly once", &err);
        if (e + 1 < epochs && ed_loader_reset(l, &err) < 0)
            break;
    }
    free(fx);
    ed_loader_destroy(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_ready) {
        fz_file_init(&s_file, "fuzz_data_reader");
        s_ready = true;
    }
    fz_file_set(&s_file, data, size);
    const char *p = s_file.path;

    ed_dataset_spec samples = {.images = p, .labels = NULL, .start = 0, .end = -1};
    s_run(&samples, 3, 5, 2);
    ed_dataset_spec both = {.images = p, .labels = p, .start = 0, .end = -1};
    s_run(&both, 4, 0, 1);
    ed_dataset_spec range = {.images = p, .labels = NULL, .start = 1, .end = 3};
    s_run(&range, 1, 2, 1);
    return 0;
}
