/*
 * ed_ts_reader: opens a soft-target store (docs/TARGET_STORE.md), checks the whole set of shards,
 * and reads one sample's logits at a time with pread (no sample data is held; one descriptor per
 * array). Only what the writer writes is accepted: the exact file names, .npy headers, dtypes and
 * shapes its index announces, and contents whose checksum matches.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ed_half.h"
#include "ed_hash.h"
#include "ed_target_store.h"
#include "ed_target_store_internal.h"

enum { S_LOGITS = 0, S_INDICES = 1, S_ARRAYS = 2 };

typedef struct {
    char base[40]; /* "shard-IIIII-of-NNNNN" */
    bool present;
    int64_t start, end; /* store numbers */
    int fd[S_ARRAYS];
    int64_t data_off[S_ARRAYS]; /* header bytes */
} s_shard;

struct ed_ts_reader {
    char *dir;
    ed_ts_layout lay;
    int n_shards;
    s_shard *shards; /* [n_shards], by shard number (= by range) */
    int n_arrays;
    size_t row_bytes[S_ARRAYS];
    unsigned char *row[S_ARRAYS];
};

static const char *s_suffix[S_ARRAYS] = {"logits.npy", "indices.npy"};

/* Shard number and count of an index file name, or -1 if the name is not one. */
static int s_index_name(const char *name, int *n_shards)
{
    int i, n;
    char back[64];
    if (strlen(name) != 25 || sscanf(name, "shard-%5d-of-%5d.json", &i, &n) != 2)
        return -1;
    ed_ts_base_name(back, sizeof back, i, n);
    strcat(back, ".json");
    if (strcmp(back, name) || n < 1 || n > ED_TS_MAX_SHARDS || i < 0 || i >= n)
        return -1;
    *n_shards = n;
    return i;
}

/* Checks one array of shard s against its index entry j, opens it and verifies its contents. */
static int s_open_array(ed_ts_reader *r, s_shard *s, int a, const cJSON *j, const char *ipath,
                        ed_err *err)
{
    const int64_t n = s->end - s->start;
    const int width = a == S_LOGITS ? ed_ts_row_width(&r->lay) : r->lay.top_k;
    const char *descr = a == S_LOGITS ? ed_ts_dtype_descr(r->lay.dtype) : "<u2";
    char want[64], hdr[256], got[256];
    snprintf(want, sizeof want, "%s.%s", s->base, s_suffix[a]);
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(j, "file");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    uint64_t expect_hash;
    if (!cJSON_IsString(file) || strcmp(file->valuestring, want) || !cJSON_IsString(dt) ||
        strcmp(dt->valuestring, descr) ||
        ed_ts_parse_hex64(cJSON_GetStringValue(cJSON_GetObjectItem(j, "fnv1a64")), &expect_hash))
        return ed_err_set(err, ED_EFORMAT,
                          "%s: array \"%s\": expected file \"%s\" of dtype %s with "
                          "an fnv1a64 checksum",
                          ipath, s_suffix[a], want, descr);
    size_t hl = ed_ts_npy_header(hdr, sizeof hdr, descr, n, r->lay.n_members, width);
    size_t plen = strlen(r->dir) + strlen(want) + 2;
    char *path = malloc(plen);
    if (!path)
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    snprintf(path, plen, "%s/%s", r->dir, want);
    int rc = 0;
    struct stat sb = {0};
    const uint64_t data = (uint64_t)n * r->row_bytes[a];
    if (r->row_bytes[a] && (uint64_t)n > (UINT64_C(1) << 62) / r->row_bytes[a]) {
        free(path);
        return ed_err_set(err, ED_EFORMAT, "%s: %lld samples of %zu bytes is implausibly large",
                          ipath, (long long)n, r->row_bytes[a]);
    }
    s->fd[a] = open(path, O_RDONLY | O_CLOEXEC);
    if (s->fd[a] < 0) {
        rc = ed_err_set(err, ED_ENOTFOUND, "%s: cannot open (named by %s): %s", path, ipath,
                        strerror(errno));
    } else if (fstat(s->fd[a], &sb) != 0 || pread(s->fd[a], got, hl, 0) != (ssize_t)hl ||
               memcmp(got, hdr, hl)) {
        rc = ed_err_set(err, (uint64_t)sb.st_size < hl ? ED_ETRUNC : ED_EFORMAT,
                        "%s: not the .npy header the index announces (%s, shape (%lld, %d, %d))",
                        path, descr, (long long)n, r->lay.n_members, width);
    } else if ((uint64_t)sb.st_size != hl + data) {
        rc = ed_err_set(err, (uint64_t)sb.st_size < hl + data ? ED_ETRUNC : ED_EFORMAT,
                        "%s: %s: %lld bytes, expected %llu for %lld samples", path,
                        (uint64_t)sb.st_size < hl + data ? "truncated"
                                                         : "longer than its index says",
                        (long long)sb.st_size, (unsigned long long)(hl + data), (long long)n);
    }
    s->data_off[a] = (int64_t)hl;
    free(path);
    return rc;
}

/* Streams shard s once: checksums, and every value finite / every index < classes. */
static int s_verify(ed_ts_reader *r, s_shard *s, const cJSON *arrays, ed_err *err)
{
    for (int a = 0; a < r->n_arrays; a++) {
        uint64_t h = ED_FNV1A64_INIT, expect = 0;
        ed_ts_parse_hex64(cJSON_GetStringValue(cJSON_GetObjectItem(
                              cJSON_GetObjectItem(arrays, a ? "indices" : "logits"), "fnv1a64")),
                          &expect);
        const size_t rb = r->row_bytes[a];
        const size_t esize = a == S_LOGITS ? ed_ts_dtype_size(r->lay.dtype) : 2;
        for (int64_t i = 0; i < s->end - s->start; i++) {
            unsigned char *row = r->row[a];
            if (pread(s->fd[a], row, rb, (off_t)(s->data_off[a] + i * (int64_t)rb)) != (ssize_t)rb)
                return ed_err_set(err, ED_EIO, "%s/%s.%s: read error at sample %lld", r->dir,
                                  s->base, s_suffix[a], (long long)i);
            h = ed_fnv1a64(h, row, rb);
            for (size_t e = 0; e < rb / esize; e++) {
                bool ok;
                if (a == S_INDICES) {
                    uint16_t u;
                    memcpy(&u, row + 2 * e, 2);
                    ok = u < r->lay.classes;
                } else if (esize == 2) {
                    uint16_t u;
                    memcpy(&u, row + 2 * e, 2);
                    ok = (u & 0x7c00u) != 0x7c00u;
                } else {
                    float f;
                    memcpy(&f, row + 4 * e, 4);
                    ok = isfinite(f);
                }
                if (!ok)
                    return ed_err_set(err, ED_EFORMAT, "%s/%s.%s: sample %lld holds %s", r->dir,
                                      s->base, s_suffix[a], (long long)(s->start + i),
                                      a ? "a class index out of range" : "a NaN or infinite logit");
            }
        }
        if (h != expect)
            return ed_err_set(err, ED_ECHECKSUM,
                              "%s/%s.%s: checksum mismatch (the index says "
                              "%016llx, the contents hash to %016llx): the file is damaged",
                              r->dir, s->base, s_suffix[a], (unsigned long long)expect,
                              (unsigned long long)h);
    }
    return 0;
}

/* Parses and checks one shard index; the first one sets the layout and the shard count. */
static int s_load_shard(ed_ts_reader *r, int idx, int n_shards, const char *ipath,
                        const char *first, ed_err *err)
{
    char *text = ed_ts_read_text(ipath, err);
    if (!text)
        return err->code;
    cJSON *o = cJSON_Parse(text);
    free(text);
    ed_ts_layout lay = {0};
    char what[512];
    int rc = 0;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(o, "format");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(o, "format_version");
    if (!o || !cJSON_IsString(fmt) || strcmp(fmt->valuestring, ED_TS_FORMAT) ||
        !cJSON_IsNumber(ver)) {
        rc = ed_err_set(err, ED_EFORMAT,
                        "%s: not an edistill target-store index (\"format\": \"%s\" "
                        "and \"format_version\" expected)",
                        ipath, ED_TS_FORMAT);
        goto done;
    }
    if (ver->valuedouble != ED_TS_FORMAT_VERSION) {
        rc = ed_err_set(err, ED_EVERSION, "%s: format version %g; this build reads version %d%s",
                        ipath, ver->valuedouble, ED_TS_FORMAT_VERSION,
                        ver->valuedouble > ED_TS_FORMAT_VERSION ? " (upgrade edistill)" : "");
        goto done;
    }
    if ((rc = ed_ts_layout_from_json(o, &lay, ipath, err)))
        goto done;
    if (!r->shards) {
        r->lay = lay;
        lay = (ed_ts_layout){0};
        r->n_shards = n_shards;
        r->shards = calloc((size_t)n_shards, sizeof *r->shards);
        if (!r->shards) {
            rc = ed_err_set(err, ED_ENOMEM, "out of memory");
            goto done;
        }
        for (int i = 0; i < n_shards; i++)
            r->shards[i].fd[0] = r->shards[i].fd[1] = -1;
        r->n_arrays = r->lay.top_k > 0 ? 2 : 1;
        r->row_bytes[S_LOGITS] = (size_t)r->lay.n_members * (size_t)ed_ts_row_width(&r->lay) *
                                 ed_ts_dtype_size(r->lay.dtype);
        r->row_bytes[S_INDICES] = (size_t)r->lay.n_members * (size_t)r->lay.top_k * 2;
        for (int a = 0; a < r->n_arrays; a++)
            if (!(r->row[a] = malloc(r->row_bytes[a]))) {
                rc = ed_err_set(err, ED_ENOMEM, "out of memory");
                goto done;
            }
    } else if (n_shards != r->n_shards) {
        rc = ed_err_set(err, ED_EFORMAT,
                        "%s: a shard of %d, but %s is a shard of %d: shards of "
                        "two labelings are mixed in %s",
                        ipath, n_shards, first, r->n_shards, r->dir);
        goto done;
    } else if (ed_ts_layout_diff(&r->lay, &lay, what, sizeof what)) {
        rc = ed_err_set(err, ED_EFORMAT, "%s: a shard of another store than %s (%s)", ipath, first,
                        what);
        goto done;
    }
    s_shard *s = &r->shards[idx];
    ed_ts_base_name(s->base, sizeof s->base, idx, n_shards);
    ed_ts_shard_range(r->lay.total, idx, n_shards, &s->start, &s->end);
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(o, "start");
    const cJSON *je = cJSON_GetObjectItemCaseSensitive(o, "end");
    const cJSON *jn = cJSON_GetObjectItemCaseSensitive(o, "shard");
    if (!cJSON_IsNumber(js) || !cJSON_IsNumber(je) || !cJSON_IsNumber(jn) ||
        jn->valuedouble != idx || js->valuedouble != (double)s->start ||
        je->valuedouble != (double)s->end) {
        rc = ed_err_set(err, ED_EFORMAT,
                        "%s: wrong sample range: shard %d of %d of %lld samples "
                        "holds [%lld, %lld), the index says [%g, %g)",
                        ipath, idx, n_shards, (long long)r->lay.total, (long long)s->start,
                        (long long)s->end, cJSON_IsNumber(js) ? js->valuedouble : -1.0,
                        cJSON_IsNumber(je) ? je->valuedouble : -1.0);
        goto done;
    }
    const cJSON *arrays = cJSON_GetObjectItemCaseSensitive(o, "arrays");
    for (int a = 0; a < r->n_arrays && !rc; a++)
        rc = s_open_array(r, s, a,
                          cJSON_GetObjectItemCaseSensitive(arrays, a ? "indices" : "logits"), ipath,
                          err);
    if (!rc)
        rc = s_verify(r, s, arrays, err);
    s->present = rc == 0;
done:
    ed_ts_layout_free(&lay);
    cJSON_Delete(o);
    return rc;
}

static int s_cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The index file names in dir, sorted. */
static int s_list(const char *dir, char ***names, int *n, ed_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return ed_err_set(err, errno == ENOENT ? ED_ENOTFOUND : ED_EIO,
                          "%s: cannot open the store: "
                          "%s",
                          dir, strerror(errno));
    int cap = 0, rc = 0;
    bool partial = false, filling = false;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        int ns;
        if (strstr(e->d_name, ".partial"))
            partial = true;
        if (strstr(e->d_name, ".filling"))
            filling = true;
        if (s_index_name(e->d_name, &ns) < 0)
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown =
                cap <= ED_TS_MAX_SHARDS * 2 ? realloc(*names, sizeof(char *) * (size_t)cap) : NULL;
            if (!grown) {
                rc = ed_err_set(err, ED_ENOMEM, "%s: too many shard indexes", dir);
                break;
            }
            *names = grown;
        }
        if (!((*names)[*n] = strdup(e->d_name)))
            rc = ed_err_set(err, ED_ENOMEM, "out of memory");
        else
            (*n)++;
    }
    closedir(d);
    if (!rc && *n == 0)
        rc = ed_err_set(err, ED_ENOTFOUND,
                        "%s: no shard index (shard-IIIII-of-NNNNN.json) in the "
                        "store%s",
                        dir,
                        filling   ? ": it is being filled by `distill --cache-targets` "
                                    "(its first epoch; rerun or resume that run to finish it)"
                        : partial ? ": its labeling is unfinished (continue it with "
                                    "`student_trainer label ... --resume`)"
                                  : "");
    if (!rc)
        qsort(*names, (size_t)*n, sizeof **names, s_cmp_name);
    return rc;
}

/* After every index is loaded: each shard number present exactly once. */
static int s_check_complete(const ed_ts_reader *r, ed_err *err)
{
    for (int i = 0; i < r->n_shards; i++)
        if (!r->shards[i].present) {
            char base[40];
            int64_t a, b;
            ed_ts_base_name(base, sizeof base, i, r->n_shards);
            ed_ts_shard_range(r->lay.total, i, r->n_shards, &a, &b);
            return ed_err_set(err, ED_ENOTFOUND,
                              "%s: shard %d of %d (%s.json, samples [%lld, %lld)) "
                              "is missing: the store has a gap there",
                              r->dir, i, r->n_shards, base, (long long)a, (long long)b);
        }
    return 0;
}

ed_ts_reader *ed_ts_open(const char *dir, ed_err *err)
{
    ed_ts_reader *r = calloc(1, sizeof *r);
    char **names = NULL;
    int n = 0, rc;
    if (!r || !(r->dir = strdup(dir))) {
        free(r);
        ed_err_set(err, ED_ENOMEM, "out of memory");
        return NULL;
    }
    rc = s_list(dir, &names, &n, err);
    size_t plen = strlen(dir) + 64;
    char *ipath = malloc(plen), *first = malloc(plen);
    if (!rc && (!ipath || !first))
        rc = ed_err_set(err, ED_ENOMEM, "out of memory");
    for (int i = 0; i < n && !rc; i++) {
        int ns, idx = s_index_name(names[i], &ns);
        snprintf(ipath, plen, "%s/%s", dir, names[i]);
        if (i == 0)
            snprintf(first, plen, "%s", ipath);
        rc = s_load_shard(r, idx, ns, ipath, first, err);
    }
    if (!rc)
        rc = s_check_complete(r, err);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(ipath);
    free(first);
    if (rc)
        ed_ts_close(&r);
    return r;
}

void ed_ts_close(ed_ts_reader **pr)
{
    if (!pr || !*pr)
        return;
    ed_ts_reader *r = *pr;
    for (int i = 0; r->shards && i < r->n_shards; i++)
        for (int a = 0; a < S_ARRAYS; a++)
            if (r->shards[i].fd[a] >= 0)
                close(r->shards[i].fd[a]);
    free(r->shards);
    for (int a = 0; a < S_ARRAYS; a++)
        free(r->row[a]);
    ed_ts_layout_free(&r->lay);
    free(r->dir);
    free(r);
    *pr = NULL;
}

const ed_ts_layout *ed_ts_reader_layout(const ed_ts_reader *r)
{
    return &r->lay;
}

int ed_ts_reader_shards(const ed_ts_reader *r)
{
    return r->n_shards;
}

static float s_value(const ed_ts_reader *r, const unsigned char *p, size_t i)
{
    if (r->lay.dtype == ED_TS_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return ed_half_to_float(h);
}

int ed_ts_read(ed_ts_reader *r, int64_t g, float *out, ed_err *err)
{
    if (g < 0 || g >= r->lay.total)
        return ed_err_set(err, ED_EINVAL, "%s: sample %lld is outside the store's %lld", r->dir,
                          (long long)g, (long long)r->lay.total);
    int lo = 0, hi = r->n_shards - 1;
    while (lo < hi) { /* the shard whose [start, end) holds g */
        int mid = (lo + hi + 1) / 2;
        if (r->shards[mid].start <= g)
            lo = mid;
        else
            hi = mid - 1;
    }
    const s_shard *s = &r->shards[lo];
    for (int a = 0; a < r->n_arrays; a++) {
        off_t off = (off_t)(s->data_off[a] + (g - s->start) * (int64_t)r->row_bytes[a]);
        if (pread(s->fd[a], r->row[a], r->row_bytes[a], off) != (ssize_t)r->row_bytes[a])
            return ed_err_set(err, ED_EIO, "%s/%s.%s: read error at sample %lld", r->dir, s->base,
                              s_suffix[a], (long long)g);
    }
    const int K = r->lay.n_members, C = r->lay.classes, W = ed_ts_row_width(&r->lay);
    const int kk = r->lay.top_k;
    for (int k = 0; k < K; k++) {
        float *o = out + (size_t)k * (size_t)C;
        const size_t base = (size_t)k * (size_t)W;
        if (kk == 0) {
            for (int c = 0; c < C; c++)
                o[c] = s_value(r, r->row[S_LOGITS], base + (size_t)c);
            continue;
        }
        const float rest = s_value(r, r->row[S_LOGITS], base + (size_t)kk);
        for (int c = 0; c < C; c++)
            o[c] = rest;
        for (int i = 0; i < kk; i++) {
            uint16_t u;
            memcpy(&u, r->row[S_INDICES] + 2 * ((size_t)k * (size_t)kk + (size_t)i), 2);
            if (u >= C)
                return ed_err_set(err, ED_EFORMAT,
                                  "%s/%s.indices.npy: sample %lld: class %u out of "
                                  "range",
                                  r->dir, s->base, (long long)g, u);
            o[u] = s_value(r, r->row[S_LOGITS], base + (size_t)i);
        }
    }
    return 0;
}

int ed_ts_find_input(const ed_ts_reader *r, const ed_ts_input *id, int64_t *offset, ed_err *err)
{
    const ed_ts_input *same_file = NULL;
    for (int i = 0; i < r->lay.n_inputs; i++) {
        const ed_ts_input *in = &r->lay.inputs[i];
        if (in->size != id->size || in->head_hash != id->head_hash ||
            in->tail_hash != id->tail_hash)
            continue;
        if (in->start == id->start && in->end == id->end) {
            *offset = in->offset;
            return 0;
        }
        same_file = in;
    }
    if (same_file)
        return ed_err_set(err, ED_ENOTFOUND,
                          "%s: the store %s labeled samples [%lld, %lld) of this "
                          "file, this run uses [%lld, %lld)",
                          id->path, r->dir, (long long)same_file->start, (long long)same_file->end,
                          (long long)id->start, (long long)id->end);
    char list[256] = "";
    for (int i = 0; i < r->lay.n_inputs && strlen(list) < 200; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 r->lay.inputs[i].path);
    return ed_err_set(err, ED_ENOTFOUND,
                      "%s (%lld bytes): no input of the store %s is this file "
                      "(size and hashes of its first and last MiB differ; the store labeled %s)",
                      id->path, (long long)id->size, r->dir, list);
}

int ed_ts_check_members(const ed_ts_reader *r, int n, const char *const *fingerprints, ed_err *err)
{
    if (n != r->lay.n_members)
        return ed_err_set(err, ED_EFORMAT, "%s: the store holds %d members, the run has %d", r->dir,
                          r->lay.n_members, n);
    for (int k = 0; k < n; k++)
        if (strcmp(fingerprints[k], r->lay.member[k].fingerprint))
            return ed_err_set(err, ED_EFORMAT, "%s: member %d is %s (%s) in the store, %s here",
                              r->dir, k, r->lay.member[k].fingerprint, r->lay.member[k].name,
                              fingerprints[k]);
    return 0;
}
