/*
 * ed_ts_writer: writes one shard of a soft-target store (docs/TARGET_STORE.md), streaming.
 *
 * While a shard is being written its arrays are "<base>.logits.npy.partial" (and
 * ".indices.npy.partial" for top-k) with their final .npy header already in place, and
 * "<base>.progress.json" records, every ED_TS_SYNC_EVERY samples after an fsync of the arrays, how
 * many samples are durable and the running checksums. A resume cuts the arrays back to that count
 * and continues. Commit renames the arrays to their final names, then writes "<base>.json" (the
 * index) atomically: a shard is complete exactly when its index exists.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ed_fs.h"
#include "ed_half.h"
#include "ed_hash.h"
#include "ed_log.h"
#include "ed_target_store.h"
#include "ed_target_store_internal.h"

enum { S_LOGITS = 0, S_INDICES = 1, S_ARRAYS = 2 };

struct ed_ts_writer {
    char *dir;
    char base[40];
    ed_ts_layout lay;
    int shard, n_shards;
    int64_t begin, end, next;   /* store numbers of the shard and of the next sample */
    int n_arrays;               /* 1, or 2 with top-k */
    FILE *f[S_ARRAYS];          /* the .partial arrays */
    uint64_t hash[S_ARRAYS];    /* FNV-1a 64 of the data bytes written so far */
    size_t row_bytes[S_ARRAYS]; /* bytes per sample */
    size_t header_bytes[S_ARRAYS];
    unsigned char *row[S_ARRAYS]; /* one sample, converted */
    int *order;                   /* top-k selection scratch (classes) */
    bool complete;
};

static const char *s_suffix[S_ARRAYS] = {"logits.npy", "indices.npy"};

static char *s_path(const ed_ts_writer *w, const char *suffix, const char *extra)
{
    size_t n = strlen(w->dir) + strlen(w->base) + strlen(suffix) + strlen(extra) + 4;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s.%s%s", w->dir, w->base, suffix, extra);
    return p;
}

static size_t s_header(const ed_ts_writer *w, int a, char *buf, size_t cap)
{
    const int K = w->lay.n_members;
    if (a == S_LOGITS)
        return ed_ts_npy_header(buf, cap, ed_ts_dtype_descr(w->lay.dtype), w->end - w->begin, K,
                                ed_ts_row_width(&w->lay));
    return ed_ts_npy_header(buf, cap, "<u2", w->end - w->begin, K, w->lay.top_k);
}

/* The object both the index and the progress record start with. */
static cJSON *s_json_head(const ed_ts_writer *w, const char *format)
{
    return ed_ts_json_head(&w->lay, format, w->shard, w->n_shards, w->begin, w->end);
}

/* fflush + fsync of the arrays, then the progress record: samples up to w->next are durable. */
static int s_sync(ed_ts_writer *w, ed_err *err)
{
    for (int a = 0; a < w->n_arrays; a++)
        if (fflush(w->f[a]) != 0 || fsync(fileno(w->f[a])) != 0)
            return ed_err_set(err, ED_EIO, "%s/%s.%s.partial: write failed: %s", w->dir, w->base,
                              s_suffix[a], strerror(errno));
    cJSON *o = s_json_head(w, "edistill-targets-progress");
    cJSON_AddNumberToObject(o, "done", (double)(w->next - w->begin));
    ed_ts_add_hex(o, "logits_fnv1a64", w->hash[S_LOGITS]);
    ed_ts_add_hex(o, "indices_fnv1a64", w->hash[S_INDICES]);
    char *path = s_path(w, "progress.json", "");
    int rc = path ? ed_ts_write_json(path, o, err)
                  : (cJSON_Delete(o), ed_err_set(err, ED_ENOMEM, "oom"));
    free(path);
    return rc;
}

/* Fresh .partial arrays with their headers. */
static int s_create(ed_ts_writer *w, ed_err *err)
{
    for (int a = 0; a < w->n_arrays; a++) {
        char hdr[256], *p = s_path(w, s_suffix[a], ".partial");
        size_t hl = s_header(w, a, hdr, sizeof hdr);
        w->f[a] = p ? fopen(p, "wb") : NULL;
        if (!w->f[a] || fwrite(hdr, 1, hl, w->f[a]) != hl) {
            int rc =
                ed_err_set(err, ED_EIO, "%s: cannot create: %s", p ? p : w->base, strerror(errno));
            free(p);
            return rc;
        }
        free(p);
        w->header_bytes[a] = hl;
        w->hash[a] = ED_FNV1A64_INIT;
    }
    w->next = w->begin;
    return 0;
}

/* Continues a partial shard from its progress record (or from scratch when there is none). */
static int s_continue(ed_ts_writer *w, ed_err *err)
{
    char *ppath = s_path(w, "progress.json", "");
    char what[512];
    ed_err perr = {0};
    char *text = ppath ? ed_ts_read_text(ppath, &perr) : NULL;
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    free(text);
    int64_t done = 0;
    ed_ts_layout old;
    int rc = 0;
    if (o && !ed_ts_layout_from_json(o, &old, ppath, &perr)) {
        int diff = ed_ts_layout_diff(&old, &w->lay, what, sizeof what);
        ed_ts_layout_free(&old);
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "done");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "shards");
        if (diff || !cJSON_IsNumber(s) || s->valueint != w->n_shards) {
            rc = ed_err_set(err, ED_EINVAL,
                            "%s: --resume: the unfinished shard was written for "
                            "another store (%s): remove its files or use another directory",
                            ppath, diff ? what : "another shard count");
        } else if (cJSON_IsNumber(d) && d->valuedouble >= 0 &&
                   d->valuedouble <= (double)(w->end - w->begin) &&
                   !ed_ts_parse_hex64(
                       cJSON_GetStringValue(cJSON_GetObjectItem(o, "logits_fnv1a64")),
                       &w->hash[S_LOGITS]) &&
                   !ed_ts_parse_hex64(
                       cJSON_GetStringValue(cJSON_GetObjectItem(o, "indices_fnv1a64")),
                       &w->hash[S_INDICES])) {
            done = (int64_t)d->valuedouble;
        }
    }
    cJSON_Delete(o);
    free(ppath);
    if (rc)
        return rc;
    for (int a = 0; a < w->n_arrays && done > 0; a++) {
        char hdr[256], got[256], *p = s_path(w, s_suffix[a], ".partial");
        size_t hl = s_header(w, a, hdr, sizeof hdr);
        FILE *f = p ? fopen(p, "r+b") : NULL;
        struct stat sb;
        bool ok = f && fstat(fileno(f), &sb) == 0 && fread(got, 1, hl, f) == hl &&
                  !memcmp(got, hdr, hl) &&
                  (uint64_t)sb.st_size >= hl + (uint64_t)done * w->row_bytes[a] &&
                  ftruncate(fileno(f), (off_t)(hl + (uint64_t)done * w->row_bytes[a])) == 0 &&
                  fseek(f, 0, SEEK_END) == 0;
        free(p);
        if (!ok) {
            if (f)
                fclose(f);
            for (int b = 0; b < a; b++) {
                fclose(w->f[b]);
                w->f[b] = NULL;
            }
            done = 0; /* the arrays lost what the record says: start the shard again */
            break;
        }
        w->f[a] = f;
        w->header_bytes[a] = hl;
    }
    if (done == 0) {
        ed_log_info("%s/%s: no usable progress record: labeling the shard from its start", w->dir,
                    w->base);
        return s_create(w, err);
    }
    w->next = w->begin + done;
    ed_log_info("%s/%s: resuming after %lld of %lld samples", w->dir, w->base, (long long)done,
                (long long)(w->end - w->begin));
    return 0;
}

/* A complete shard already there: the same store (done) or another one (refused). */
static int s_check_complete(ed_ts_writer *w, const char *ipath, bool resume, ed_err *err)
{
    if (!resume)
        return ed_err_set(err, ED_EINVAL,
                          "%s already exists: this shard is complete (pass "
                          "--resume to accept it, or remove the store)",
                          ipath);
    char *text = ed_ts_read_text(ipath, err);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    free(text);
    ed_ts_layout old;
    char what[512];
    int rc = o ? ed_ts_layout_from_json(o, &old, ipath, err)
               : ed_err_set(err, ED_EFORMAT, "%s: not valid JSON", ipath);
    if (!rc) {
        if (ed_ts_layout_diff(&old, &w->lay, what, sizeof what))
            rc = ed_err_set(err, ED_EINVAL,
                            "%s: the complete shard there belongs to another store "
                            "(%s)",
                            ipath, what);
        ed_ts_layout_free(&old);
    }
    cJSON_Delete(o);
    if (!rc) {
        w->complete = true;
        w->next = w->end;
    }
    return rc;
}

ed_ts_writer *ed_ts_writer_open(const char *dir, const ed_ts_layout *lay, int shard, int n_shards,
                                bool resume, ed_err *err)
{
    if (lay->n_members < 1 || lay->n_members > ED_TS_MAX_MEMBERS || lay->classes < 1 ||
        lay->classes > ED_TS_MAX_CLASSES || lay->top_k < 0 || lay->top_k > lay->classes ||
        lay->total < 1 || n_shards < 1 || shard < 0 || shard >= n_shards) {
        ed_err_set(err, ED_EINVAL,
                   "%s: invalid store layout (members %d, classes %d, top-k %d, "
                   "%lld samples, shard %d of %d)",
                   dir, lay->n_members, lay->classes, lay->top_k, (long long)lay->total, shard,
                   n_shards);
        return NULL;
    }
    ed_ts_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir)) || ed_ts_layout_copy(&w->lay, lay, err)) {
        if (w)
            free(w->dir);
        free(w);
        ed_err_set(err, ED_ENOMEM, "out of memory");
        return NULL;
    }
    w->shard = shard;
    w->n_shards = n_shards;
    ed_ts_base_name(w->base, sizeof w->base, shard, n_shards);
    ed_ts_shard_range(lay->total, shard, n_shards, &w->begin, &w->end);
    w->n_arrays = lay->top_k > 0 ? 2 : 1;
    w->row_bytes[S_LOGITS] =
        (size_t)lay->n_members * (size_t)ed_ts_row_width(lay) * ed_ts_dtype_size(lay->dtype);
    w->row_bytes[S_INDICES] = (size_t)lay->n_members * (size_t)lay->top_k * 2;
    for (int a = 0; a < w->n_arrays; a++)
        w->row[a] = malloc(w->row_bytes[a]);
    w->order = malloc(sizeof(int) * (size_t)lay->classes);
    char *ipath = s_path(w, "json", ""), *ppath = s_path(w, s_suffix[0], ".partial");
    struct stat sb;
    int rc = (!w->row[0] || (w->n_arrays > 1 && !w->row[1]) || !w->order || !ipath || !ppath)
                 ? ed_err_set(err, ED_ENOMEM, "out of memory")
                 : ed_fs_mkdirs(dir, err);
    if (rc) {
    } else if (w->begin == w->end) {
        rc = ed_err_set(err, ED_EINVAL,
                        "%s: shard %d of %d of %lld samples is empty: use fewer "
                        "shards",
                        dir, shard, n_shards, (long long)lay->total);
    } else if (stat(ipath, &sb) == 0) {
        rc = s_check_complete(w, ipath, resume, err);
    } else if (stat(ppath, &sb) == 0) {
        rc = resume ? s_continue(w, err)
                    : ed_err_set(err, ED_EINVAL,
                                 "%s: an unfinished shard is there: pass --resume "
                                 "to continue it, or remove it to start over",
                                 ppath);
    } else {
        rc = s_create(w, err);
    }
    free(ipath);
    free(ppath);
    if (rc)
        ed_ts_writer_destroy(&w);
    return w;
}

int64_t ed_ts_writer_next(const ed_ts_writer *w)
{
    return w->next;
}

int64_t ed_ts_writer_end(const ed_ts_writer *w)
{
    return w->end;
}

int64_t ed_ts_writer_begin(const ed_ts_writer *w)
{
    return w->begin;
}

size_t ed_ts_writer_sample_bytes(const ed_ts_writer *w)
{
    size_t n = 0;
    for (int a = 0; a < w->n_arrays; a++)
        n += w->row_bytes[a];
    return n;
}

static void s_put_value(const ed_ts_writer *w, unsigned char *dst, size_t i, float v)
{
    if (w->lay.dtype == ED_TS_F32) {
        memcpy(dst + 4 * i, &v, 4); /* little-endian hosts only (checked by the build) */
    } else {
        uint16_t h = ed_half_from_float(v);
        memcpy(dst + 2 * i, &h, 2);
    }
}

/* One member's row: every logit, or the top-k (descending, ties to the lower class) + remainder. */
static void s_convert_member(ed_ts_writer *w, int k, const float *z)
{
    const int C = w->lay.classes, W = ed_ts_row_width(&w->lay), kk = w->lay.top_k;
    unsigned char *vals = w->row[S_LOGITS] + (size_t)k * (size_t)W * ed_ts_dtype_size(w->lay.dtype);
    if (kk == 0) {
        for (int c = 0; c < C; c++)
            s_put_value(w, vals, (size_t)c, z[c]);
        return;
    }
    int *ord = w->order;
    for (int c = 0; c < C; c++)
        ord[c] = c;
    for (int i = 0; i < kk; i++) { /* partial selection sort: k passes */
        int best = i;
        for (int c = i + 1; c < C; c++)
            if (z[ord[c]] > z[ord[best]] || (z[ord[c]] == z[ord[best]] && ord[c] < ord[best]))
                best = c;
        int tmp = ord[i];
        ord[i] = ord[best];
        ord[best] = tmp;
    }
    double rest = 0.0;
    for (int c = kk; c < C; c++)
        rest += z[ord[c]];
    unsigned char *idx = w->row[S_INDICES] + (size_t)k * (size_t)kk * 2;
    for (int i = 0; i < kk; i++) {
        s_put_value(w, vals, (size_t)i, z[ord[i]]);
        uint16_t u = (uint16_t)ord[i];
        memcpy(idx + 2 * i, &u, 2);
    }
    s_put_value(w, vals, (size_t)kk, C > kk ? (float)(rest / (C - kk)) : 0.0f);
}

int ed_ts_writer_append(ed_ts_writer *w, int n, const float *const *logits, ed_err *err)
{
    const int K = w->lay.n_members, C = w->lay.classes;
    if (n < 0 || n > w->end - w->next)
        return ed_err_set(err, ED_EINVAL, "%s/%s: %d more samples do not fit (%lld left)", w->dir,
                          w->base, n, (long long)(w->end - w->next));
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < K; k++) {
            const float *z = logits[k] + (size_t)i * (size_t)C;
            for (int c = 0; c < C; c++)
                if (!isfinite(z[c]) || (w->lay.dtype == ED_TS_F16 && fabsf(z[c]) > 65504.0f))
                    return ed_err_set(err, ED_EINVAL,
                                      "sample %lld, member %d (%s), class %d: logit "
                                      "%g cannot be stored%s",
                                      (long long)(w->next), k, w->lay.member[k].name, c,
                                      (double)z[c],
                                      isfinite(z[c]) ? " as float16 (use --dtype float32)" : "");
            s_convert_member(w, k, z);
        }
        for (int a = 0; a < w->n_arrays; a++) {
            if (fwrite(w->row[a], 1, w->row_bytes[a], w->f[a]) != w->row_bytes[a])
                return ed_err_set(err, ED_EIO, "%s/%s.%s.partial: write failed: %s", w->dir,
                                  w->base, s_suffix[a], strerror(errno));
            w->hash[a] = ed_fnv1a64(w->hash[a], w->row[a], w->row_bytes[a]);
        }
        w->next++;
        if ((w->next - w->begin) % ED_TS_SYNC_EVERY == 0 && w->next < w->end) {
            int rc = s_sync(w, err);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int s_write_index(ed_ts_writer *w, ed_err *err)
{
    return ed_ts_write_index(w->dir, w->base, &w->lay, w->shard, w->n_shards, w->begin, w->end,
                             w->n_arrays, w->header_bytes, w->hash, err);
}

int ed_ts_writer_sync(ed_ts_writer *w, ed_err *err)
{
    return w->complete ? 0 : s_sync(w, err);
}

int ed_ts_writer_commit(ed_ts_writer *w, ed_err *err)
{
    if (w->complete)
        return 0;
    if (w->next != w->end)
        return ed_err_set(err, ED_EINVAL, "%s/%s: cannot commit after %lld of %lld samples", w->dir,
                          w->base, (long long)(w->next - w->begin), (long long)(w->end - w->begin));
    for (int a = 0; a < w->n_arrays; a++) {
        char *from = s_path(w, s_suffix[a], ".partial"), *to = s_path(w, s_suffix[a], "");
        int rc = 0;
        if (!from || !to)
            rc = ed_err_set(err, ED_ENOMEM, "out of memory");
        else {
            bool bad = fflush(w->f[a]) != 0 || fsync(fileno(w->f[a])) != 0;
            bad = fclose(w->f[a]) != 0 || bad;
            w->f[a] = NULL;
            if (bad)
                rc = ed_err_set(err, ED_EIO, "%s: write failed: %s", from, strerror(errno));
            else if (rename(from, to) != 0)
                rc = ed_err_set(err, ED_EIO, "%s: cannot rename to %s: %s", from, to,
                                strerror(errno));
        }
        free(from);
        free(to);
        if (rc)
            return rc;
    }
    int rc = s_write_index(w, err); /* atomic, and fsyncs the directory (the renames too) */
    if (rc)
        return rc;
    char *ppath = s_path(w, "progress.json", "");
    if (ppath)
        unlink(ppath);
    free(ppath);
    w->complete = true;
    return 0;
}

void ed_ts_writer_destroy(ed_ts_writer **pw)
{
    if (!pw || !*pw)
        return;
    ed_ts_writer *w = *pw;
    for (int a = 0; a < S_ARRAYS; a++) {
        if (w->f[a])
            fclose(w->f[a]);
        free(w->row[a]);
    }
    free(w->order);
    ed_ts_layout_free(&w->lay);
    free(w->dir);
    free(w);
    *pw = NULL;
}
