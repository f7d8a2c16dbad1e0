/*
 * ed_target_store: the parts of the soft-target store that are neither writing nor reading: file
 * identities, shard ranges, the layout <-> JSON mapping both sides use, and the .npy header the
 * writer emits (format: docs/TARGET_STORE.md).
 */
#include "ed_target_store.h"

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
#include "ed_hash.h"
#include "ed_target_store_internal.h"

const char *ed_ts_dtype_name(ed_ts_dtype d)
{
    return d == ED_TS_F32 ? "float32" : "float16";
}

int ed_ts_dtype_parse(const char *s)
{
    if (s && !strcmp(s, "float16"))
        return ED_TS_F16;
    if (s && !strcmp(s, "float32"))
        return ED_TS_F32;
    return -1;
}

size_t ed_ts_dtype_size(ed_ts_dtype d)
{
    return d == ED_TS_F32 ? 4 : 2;
}

const char *ed_ts_dtype_descr(ed_ts_dtype d)
{
    return d == ED_TS_F32 ? "<f4" : "<f2";
}

void ed_ts_layout_free(ed_ts_layout *lay)
{
    if (!lay)
        return;
    for (int i = 0; lay->inputs && i < lay->n_inputs; i++)
        free(lay->inputs[i].path);
    free(lay->inputs);
    lay->inputs = NULL;
    lay->n_inputs = 0;
}

int ed_ts_layout_copy(ed_ts_layout *dst, const ed_ts_layout *src, ed_err *err)
{
    *dst = *src;
    dst->inputs = calloc((size_t)(src->n_inputs > 0 ? src->n_inputs : 1), sizeof *dst->inputs);
    if (!dst->inputs) {
        dst->n_inputs = 0;
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    }
    for (int i = 0; i < src->n_inputs; i++) {
        dst->inputs[i] = src->inputs[i];
        dst->inputs[i].path = strdup(src->inputs[i].path ? src->inputs[i].path : "");
        if (!dst->inputs[i].path) {
            dst->n_inputs = i;
            ed_ts_layout_free(dst);
            return ed_err_set(err, ED_ENOMEM, "out of memory");
        }
    }
    return 0;
}

static int s_hash_range(int fd, off_t off, size_t n, uint64_t *out)
{
    unsigned char buf[65536];
    uint64_t h = ED_FNV1A64_INIT;
    while (n > 0) {
        size_t want = n < sizeof buf ? n : sizeof buf;
        ssize_t got = pread(fd, buf, want, off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        h = ed_fnv1a64(h, buf, (size_t)got);
        off += got;
        n -= (size_t)got;
    }
    *out = h;
    return 0;
}

int ed_ts_file_identity(const char *path, ed_ts_input *id, ed_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ed_err_set(err, errno == ENOENT ? ED_ENOTFOUND : ED_EIO, "%s: cannot open: %s", path,
                          strerror(errno));
    struct stat sb;
    int rc = 0;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = ed_err_set(err, ED_EIO, "%s: not a regular file", path);
    } else {
        size_t n = (size_t)sb.st_size < ED_TS_ID_BYTES ? (size_t)sb.st_size : ED_TS_ID_BYTES;
        id->size = (int64_t)sb.st_size;
        if (s_hash_range(fd, 0, n, &id->head_hash) ||
            s_hash_range(fd, (off_t)(sb.st_size - (off_t)n), n, &id->tail_hash))
            rc = ed_err_set(err, ED_EIO, "%s: read error: %s", path, strerror(errno));
    }
    close(fd);
    return rc;
}

void ed_ts_shard_range(int64_t total, int shard, int n_shards, int64_t *start, int64_t *end)
{
    /* total * I / N without overflow for any realistic total (< 2^47 samples) */
    *start = total / n_shards * shard + total % n_shards * shard / n_shards;
    *end = total / n_shards * (shard + 1) + total % n_shards * (shard + 1) / n_shards;
}

int ed_ts_shard_parse(const char *s, int *shard, int *n_shards, ed_err *err)
{
    char *e1, *e2;
    long i = s ? strtol(s, &e1, 10) : -1;
    if (!s || e1 == s || *e1 != '/')
        return ed_err_set(err, ED_EINVAL, "--shard '%s': expected I/N (e.g. 0/4)", s ? s : "");
    long n = strtol(e1 + 1, &e2, 10);
    if (e2 == e1 + 1 || *e2 || n < 1 || n > ED_TS_MAX_SHARDS || i < 0 || i >= n)
        return ed_err_set(err, ED_EINVAL, "--shard '%s': expected I/N with 0 <= I < N <= %d", s,
                          ED_TS_MAX_SHARDS);
    *shard = (int)i;
    *n_shards = (int)n;
    return 0;
}

void ed_ts_base_name(char *buf, size_t n, int shard, int n_shards)
{
    snprintf(buf, n, "shard-%05d-of-%05d", shard, n_shards);
}

int ed_ts_row_width(const ed_ts_layout *lay)
{
    return lay->top_k > 0 ? lay->top_k + 1 : lay->classes;
}

int ed_ts_parse_hex64(const char *s, uint64_t *out)
{
    if (!s || strlen(s) != 16 || strspn(s, "0123456789abcdef") != 16)
        return -1;
    *out = strtoull(s, NULL, 16);
    return 0;
}

void ed_ts_add_hex(cJSON *o, const char *key, uint64_t v)
{
    char hex[24];
    snprintf(hex, sizeof hex, "%016" PRIx64, v);
    cJSON_AddStringToObject(o, key, hex);
}

void ed_ts_layout_to_json(const ed_ts_layout *lay, cJSON *o)
{
    cJSON_AddNumberToObject(o, "classes", lay->classes);
    cJSON_AddStringToObject(o, "dtype", ed_ts_dtype_name(lay->dtype));
    cJSON_AddNumberToObject(o, "top_k", lay->top_k);
    cJSON_AddNumberToObject(o, "total_samples", (double)lay->total);
    cJSON *members = cJSON_AddArrayToObject(o, "members");
    for (int k = 0; k < lay->n_members; k++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "name", lay->member[k].name);
        cJSON_AddStringToObject(m, "fingerprint", lay->member[k].fingerprint);
        cJSON_AddItemToArray(members, m);
    }
    cJSON *inputs = cJSON_AddArrayToObject(o, "inputs");
    for (int i = 0; i < lay->n_inputs; i++) {
        const ed_ts_input *in = &lay->inputs[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "path", in->path ? in->path : "");
        cJSON_AddNumberToObject(j, "size", (double)in->size);
        ed_ts_add_hex(j, "head_fnv1a64", in->head_hash);
        ed_ts_add_hex(j, "tail_fnv1a64", in->tail_hash);
        cJSON_AddNumberToObject(j, "start", (double)in->start);
        cJSON_AddNumberToObject(j, "end", (double)in->end);
        cJSON_AddNumberToObject(j, "offset", (double)in->offset);
        cJSON_AddItemToArray(inputs, j);
    }
}

/* An integer field in [lo, hi]; exact (JSON numbers are doubles: integers up to 2^53). */
static int s_get_int(const cJSON *o, const char *key, int64_t lo, int64_t hi, int64_t *out,
                     const char *where, ed_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
        v->valuedouble != floor(v->valuedouble) || v->valuedouble < (double)lo ||
        v->valuedouble > (double)hi)
        return ed_err_set(err, ED_EFORMAT,
                          "%s: field \"%s\" is missing or not an integer in [%lld, "
                          "%lld]",
                          where, key, (long long)lo, (long long)hi);
    *out = (int64_t)v->valuedouble;
    return 0;
}

static const char *s_get_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

#define S_MAX_SAMPLES (INT64_C(1) << 50)

static int s_input_from_json(const cJSON *j, ed_ts_input *in, int i, const char *where, ed_err *err)
{
    int64_t v[4] = {0};
    const char *keys[4] = {"size", "start", "end", "offset"};
    for (int f = 0; f < 4; f++)
        if (s_get_int(j, keys[f], 0, S_MAX_SAMPLES, &v[f], where, err))
            return ed_err_wrap(err, "input %d", i);
    const char *path = s_get_str(j, "path");
    if (!path || ed_ts_parse_hex64(s_get_str(j, "head_fnv1a64"), &in->head_hash) ||
        ed_ts_parse_hex64(s_get_str(j, "tail_fnv1a64"), &in->tail_hash))
        return ed_err_set(err, ED_EFORMAT,
                          "%s: input %d: \"path\", \"head_fnv1a64\" or "
                          "\"tail_fnv1a64\" missing or malformed",
                          where, i);
    if (v[2] <= v[1])
        return ed_err_set(err, ED_EFORMAT, "%s: input %d: empty range [%lld, %lld)", where, i,
                          (long long)v[1], (long long)v[2]);
    in->path = strdup(path);
    if (!in->path)
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    in->size = v[0];
    in->start = v[1];
    in->end = v[2];
    in->offset = v[3];
    return 0;
}

static int s_members_from_json(const cJSON *o, ed_ts_layout *lay, const char *where, ed_err *err)
{
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(o, "members");
    int n = cJSON_IsArray(members) ? cJSON_GetArraySize(members) : -1;
    if (n < 1 || n > ED_TS_MAX_MEMBERS)
        return ed_err_set(err, ED_EFORMAT, "%s: \"members\" must be an array of 1 to %d members",
                          where, ED_TS_MAX_MEMBERS);
    lay->n_members = n;
    for (int k = 0; k < n; k++) {
        const cJSON *m = cJSON_GetArrayItem(members, k);
        const char *name = s_get_str(m, "name"), *fp = s_get_str(m, "fingerprint");
        if (!name || !fp || strlen(name) >= sizeof lay->member[k].name ||
            strlen(fp) >= sizeof lay->member[k].fingerprint)
            return ed_err_set(err, ED_EFORMAT,
                              "%s: member %d: \"name\" or \"fingerprint\" missing "
                              "or too long",
                              where, k);
        snprintf(lay->member[k].name, sizeof lay->member[k].name, "%s", name);
        snprintf(lay->member[k].fingerprint, sizeof lay->member[k].fingerprint, "%s", fp);
    }
    return 0;
}

int ed_ts_layout_from_json(const cJSON *o, ed_ts_layout *lay, const char *where, ed_err *err)
{
    memset(lay, 0, sizeof *lay);
    int64_t classes = 0, top_k = 0, total = 0;
    int rc;
    if ((rc = s_get_int(o, "classes", 1, ED_TS_MAX_CLASSES, &classes, where, err)) ||
        (rc = s_get_int(o, "top_k", 0, classes, &top_k, where, err)) ||
        (rc = s_get_int(o, "total_samples", 1, S_MAX_SAMPLES, &total, where, err)))
        return rc;
    int dt = ed_ts_dtype_parse(s_get_str(o, "dtype"));
    if (dt < 0)
        return ed_err_set(err, ED_EFORMAT, "%s: \"dtype\" must be \"float16\" or \"float32\"",
                          where);
    lay->classes = (int)classes;
    lay->top_k = (int)top_k;
    lay->total = total;
    lay->dtype = (ed_ts_dtype)dt;
    if ((rc = s_members_from_json(o, lay, where, err)))
        return rc;
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(o, "inputs");
    int n = cJSON_IsArray(inputs) ? cJSON_GetArraySize(inputs) : -1;
    if (n < 1 || n > ED_TS_MAX_INPUTS)
        return ed_err_set(err, ED_EFORMAT, "%s: \"inputs\" must be an array of 1 to %d inputs",
                          where, ED_TS_MAX_INPUTS);
    lay->inputs = calloc((size_t)n, sizeof *lay->inputs);
    if (!lay->inputs)
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    int64_t offset = 0;
    for (int i = 0; i < n; i++) {
        lay->n_inputs = i + 1;
        if ((rc = s_input_from_json(cJSON_GetArrayItem(inputs, i), &lay->inputs[i], i, where, err)))
            goto fail;
        if (lay->inputs[i].offset != offset) {
            rc = ed_err_set(err, ED_EFORMAT,
                            "%s: input %d: offset %lld, expected %lld (the sum of "
                            "the previous ranges)",
                            where, i, (long long)lay->inputs[i].offset, (long long)offset);
            goto fail;
        }
        offset += lay->inputs[i].end - lay->inputs[i].start;
    }
    if (offset != total) {
        rc = ed_err_set(err, ED_EFORMAT,
                        "%s: \"total_samples\" is %lld but the input ranges sum to "
                        "%lld",
                        where, (long long)total, (long long)offset);
        goto fail;
    }
    return 0;
fail:
    ed_ts_layout_free(lay);
    return rc;
}

int ed_ts_layout_diff(const ed_ts_layout *a, const ed_ts_layout *b, char *what, size_t n)
{
    if (a->n_members != b->n_members)
        return snprintf(what, n, "%d members vs %d", a->n_members, b->n_members), 1;
    for (int k = 0; k < a->n_members; k++)
        if (strcmp(a->member[k].fingerprint, b->member[k].fingerprint))
            return snprintf(what, n, "member %d: %s (%s) vs %s (%s)", k, a->member[k].fingerprint,
                            a->member[k].name, b->member[k].fingerprint, b->member[k].name),
                   1;
    if (a->classes != b->classes)
        return snprintf(what, n, "%d classes vs %d", a->classes, b->classes), 1;
    if (a->dtype != b->dtype || a->top_k != b->top_k)
        return snprintf(what, n, "%s top-k %d vs %s top-k %d", ed_ts_dtype_name(a->dtype), a->top_k,
                        ed_ts_dtype_name(b->dtype), b->top_k),
               1;
    if (a->n_inputs != b->n_inputs)
        return snprintf(what, n, "%d inputs vs %d", a->n_inputs, b->n_inputs), 1;
    for (int i = 0; i < a->n_inputs; i++) {
        const ed_ts_input *x = &a->inputs[i], *y = &b->inputs[i];
        if (x->size != y->size || x->head_hash != y->head_hash || x->tail_hash != y->tail_hash)
            return snprintf(what, n,
                            "input %d: %s (%lld bytes) vs %s (%lld bytes, or other "
                            "contents)",
                            i, x->path, (long long)x->size, y->path, (long long)y->size),
                   1;
        if (x->start != y->start || x->end != y->end)
            return snprintf(what, n, "input %d (%s): samples [%lld, %lld) vs [%lld, %lld)", i,
                            x->path, (long long)x->start, (long long)x->end, (long long)y->start,
                            (long long)y->end),
                   1;
    }
    if (a->total != b->total)
        return snprintf(what, n, "%lld samples vs %lld", (long long)a->total, (long long)b->total),
               1;
    return 0;
}

size_t ed_ts_npy_header(char *buf, size_t cap, const char *descr, int64_t d0, int d1, int d2)
{
    char dict[160];
    int dl = snprintf(dict, sizeof dict,
                      "{'descr': '%s', 'fortran_order': False, 'shape': (%lld, %d, "
                      "%d), }",
                      descr, (long long)d0, d1, d2);
    size_t total = 10 + (size_t)dl + 1; /* magic, version, length, dict, '\n' */
    total = (total + 63) / 64 * 64;
    if (total > cap)
        return 0;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)((total - 10) & 0xff);
    buf[9] = (char)((total - 10) >> 8);
    memcpy(buf + 10, dict, (size_t)dl);
    memset(buf + 10 + dl, ' ', total - 10 - (size_t)dl - 1);
    buf[total - 1] = '\n';
    return total;
}

char *ed_ts_read_text(const char *path, ed_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        ed_err_set(err, errno == ENOENT ? ED_ENOTFOUND : ED_EIO, "%s: cannot open: %s", path,
                   strerror(errno));
        return NULL;
    }
    char *text = NULL;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size > (64 << 20)) {
        ed_err_set(err, ED_ETOOBIG, "%s: not a readable index of at most 64 MiB", path);
    } else if (!(text = malloc((size_t)sb.st_size + 1))) {
        ed_err_set(err, ED_ENOMEM, "%s: out of memory", path);
    } else if (fread(text, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size) {
        ed_err_set(err, ED_EIO, "%s: read error", path);
        free(text);
        text = NULL;
    } else {
        text[sb.st_size] = '\0';
    }
    fclose(f);
    return text;
}

cJSON *ed_ts_json_head(const ed_ts_layout *lay, const char *format, int shard, int n_shards,
                       int64_t begin, int64_t end)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", format);
    cJSON_AddNumberToObject(o, "format_version", ED_TS_FORMAT_VERSION);
    cJSON_AddNumberToObject(o, "shard", shard);
    cJSON_AddNumberToObject(o, "shards", n_shards);
    cJSON_AddNumberToObject(o, "start", (double)begin);
    cJSON_AddNumberToObject(o, "end", (double)end);
    ed_ts_layout_to_json(lay, o);
    return o;
}

static int s_write_text(FILE *f, void *ctx, ed_err *err)
{
    const char *text = ctx;
    if (fputs(text, f) < 0 || fputc('\n', f) < 0)
        return ed_err_set(err, ED_EIO, "write failed");
    return 0;
}

int ed_ts_write_json(const char *path, cJSON *o, ed_err *err)
{
    char *text = o ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (!text)
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    int rc = ed_fs_write_atomic(path, s_write_text, text, err);
    free(text);
    return rc;
}

int ed_ts_write_index(const char *dir, const char *base, const ed_ts_layout *lay, int shard,
                      int n_shards, int64_t begin, int64_t end, int n_arrays,
                      const size_t *header_bytes, const uint64_t *hash, ed_err *err)
{
    static const char *suffix[2] = {"logits.npy", "indices.npy"};
    cJSON *o = ed_ts_json_head(lay, ED_TS_FORMAT, shard, n_shards, begin, end);
    cJSON *arrays = cJSON_AddObjectToObject(o, "arrays");
    for (int a = 0; a < n_arrays && a < 2; a++) {
        char file[64];
        snprintf(file, sizeof file, "%s.%s", base, suffix[a]);
        cJSON *j = cJSON_AddObjectToObject(arrays, a == 0 ? "logits" : "indices");
        cJSON_AddStringToObject(j, "file", file);
        cJSON_AddStringToObject(j, "dtype", a == 0 ? ed_ts_dtype_descr(lay->dtype) : "<u2");
        double shape[3] = {(double)(end - begin), lay->n_members,
                           a == 0 ? ed_ts_row_width(lay) : lay->top_k};
        cJSON_AddItemToObject(j, "shape", cJSON_CreateDoubleArray(shape, 3));
        cJSON_AddNumberToObject(j, "header_bytes", (double)header_bytes[a]);
        ed_ts_add_hex(j, "fnv1a64", hash[a]);
    }
    size_t n = strlen(dir) + strlen(base) + 8;
    char *ipath = malloc(n);
    if (!ipath) {
        cJSON_Delete(o);
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    }
    snprintf(ipath, n, "%s/%s.json", dir, base);
    int rc = ed_ts_write_json(ipath, o, err);
    free(ipath);
    return rc;
}
