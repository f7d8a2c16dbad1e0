/*
 * fuzz_model_file: the safetensors reader and the edistill model loader on an arbitrary file (what
 * `teacher_worker serve --model` and `student_trainer eval` open).
 *
 * The input becomes an in-memory file (fuzz_file.h). ed_st_open must refuse it with an error record
 * or give tensors whose bytes lie inside the file and match dtype x shape (every byte is read, so
 * ASan sees any pointer outside the buffer); then ed_model_load must refuse it with an error record
 * or give a model whose fingerprint matches the file's. A model that loads is also saved (to a temp
 * file) and loaded again: the same fingerprint and member must come back. The loader keeps
 * provenance as text without parsing it while the writer insists on JSON, so a save refused with
 * ED_EINVAL is accepted.
 */
#define _GNU_SOURCE
#include "fuzz.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_model_file.h"
#include "ed_safetensors.h"
#include "fuzz_file.h"

static fz_file s_file;
static bool s_ready;

static void s_fail(const char *what, const ed_err *err)
{
    fprintf(stderr, "fuzz_model_file: invariant violated: %s (%s)\n", what, err ? err->msg : "");
    abort();
}

static void s_touch(const void *data, size_t n)
{
    volatile unsigned sum = 0;
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        sum += p[i];
    (void)sum;
}

static void s_safetensors(const char *path)
{
    ed_err err;
    ed_err_clear(&err);
    ed_st_file *f = ed_st_open(path, &err);
    if (!f) {
        if (err.code >= 0 || err.msg[0] == '\0')
            s_fail("ed_st_open failed without an error record", &err);
        return;
    }
    static const char *const keys[] = {"format",     "format_version", "arch",
                                       "classes",    "input_scale",    "member",
                                       "provenance", "fingerprint"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = ed_st_meta_get(f, keys[i]);
        if (v)
            s_touch(v, strlen(v));
    }
    int n = ed_st_tensor_count(f);
    if (n < 0)
        s_fail("negative tensor count", &err);
    static const char *const names[] = {
        "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "x", ""};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        ed_st_tensor t;
        if (ed_st_find(f, names[i], &t) != ED_OK)
            continue;
        if (!t.name || !t.dtype || t.ndim < 0 || t.ndim > ED_ST_MAX_DIMS)
            s_fail("found tensor with bad fields", &err);
        for (int d = 0; d < t.ndim; d++)
            if (t.shape[d] < 0)
                s_fail("found tensor with a negative dimension", &err);
        if (t.nbytes)
            s_touch(t.data, t.nbytes);
    }
    ed_st_close(&f);
    if (f)
        s_fail("ed_st_close did not clear the pointer", NULL);
}

static void s_model(const char *path)
{
    ed_err err;
    ed_err_clear(&err);
    ed_net *m = NULL;
    ed_model_meta meta;
    int rc = ed_model_load(path, &m, &meta, &err);
    if (rc < 0) {
        if (m || err.code != rc || err.msg[0] == '\0')
            s_fail("ed_model_load failed without a matching error record", &err);
        return;
    }
    if (!m)
        s_fail("ed_model_load succeeded without a model", &err);
    /* ed_model_save replaces its target atomically (rename), which a memfd cannot do: use a real
     * temp file, only for the rare inputs that load. */
    char tmp[] = "/tmp/fuzz_model_file.XXXXXX";
    int fd = mkstemp(tmp);
    if (fd >= 0) {
        close(fd);
        ed_model_meta m2 = meta;
        rc = ed_model_save(tmp, m, &m2, &err);
        if (rc == ED_EINVAL) {
            unlink(tmp);
            ed_net_destroy(&m);
            return;
        }
        if (rc != ED_OK)
            s_fail("a loaded model cannot be saved", &err);
        if (m2.fingerprint != meta.fingerprint)
            s_fail("saving changed the fingerprint", &err);
        ed_net *back = NULL;
        ed_model_meta meta_back;
        if (ed_model_load(tmp, &back, &meta_back, &err) != ED_OK)
            s_fail("a saved model does not load", &err);
        if (meta_back.fingerprint != meta.fingerprint || strcmp(meta_back.member, meta.member) != 0)
            s_fail("save/load changed the model", &err);
        ed_net_destroy(&back);
        unlink(tmp);
    }
    ed_net_destroy(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_ready) {
        fz_file_init(&s_file, "fuzz_model_file");
        s_ready = true;
    }
    fz_file_set(&s_file, data, size);
    s_safetensors(s_file.path);
    s_model(s_file.path);
    return 0;
}
