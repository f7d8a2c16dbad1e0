/*
 * ed_safetensors: the safetensors container, written and read without trusting the file.
 *
 * Layout: u64 little-endian N | N bytes of JSON header (space-padded so the data area starts on an
 * 8-byte boundary, as the reference implementation does) | data area. The header maps each tensor
 * name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data area) and
 * may hold "__metadata__": {string: string}. The writer emits "__metadata__" first and the tensors
 * in the caller's order, contiguously. The reader loads the whole file into memory and validates
 * every entry before handing out pointers into it.
 */
#include "ed_safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ed_fs.h"

/* Tensor bytes are written and read as the host lays them out; that is the file's byte order only
 * on little-endian hosts. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "edistill assumes a little-endian host");
#define S_HOST_IS_LE() 1
#else
static int s_host_is_le(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}
#define S_HOST_IS_LE() s_host_is_le()
#endif

#define S_MAX_EXACT_INT 9007199254740992.0 /* 2^53: larger JSON numbers are not exact doubles */

typedef struct {
    const char *name;
    size_t size;
} s_dtype;

/* The reference implementation's dtypes (minus sub-byte/FP8 kinds). */
static const s_dtype s_dtypes[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"I16", 2}, {"U16", 2}, {"F16", 2}, {"BF16", 2},
    {"I32", 4},  {"U32", 4}, {"F32", 4}, {"I64", 8}, {"U64", 8}, {"F64", 8},
};

static const s_dtype *s_dtype_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof s_dtypes / sizeof s_dtypes[0]; i++)
        if (strcmp(s_dtypes[i].name, name) == 0)
            return &s_dtypes[i];
    return NULL;
}

/* Number of bytes of a tensor of this dtype and shape; -1 on overflow. */
static int s_tensor_bytes(const s_dtype *dt, int ndim, const int64_t *shape, uint64_t *out)
{
    uint64_t n = dt->size;
    for (int i = 0; i < ndim; i++) {
        uint64_t d = (uint64_t)shape[i];
        if (d != 0 && n > UINT64_MAX / d)
            return -1;
        n *= d;
    }
    *out = n;
    return 0;
}

/* "(10, 784)" into buf. */
static void s_shape_str(int ndim, const int64_t *shape, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    used += (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && used < size; i++)
        used +=
            (size_t)snprintf(buf + used, size - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < size)
        snprintf(buf + used, size - used, ")");
}

/* ---------------------------------------------------------------------------------------------- */
/* Writer */

typedef struct {
    const char *header;
    size_t header_len; /* without padding */
    size_t padded_len;
    const ed_st_tensor *tensors;
    int n_tensors;
} s_write_ctx;

static int s_write_body(FILE *f, void *vctx, ed_err *err)
{
    const s_write_ctx *c = vctx;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)c->padded_len >> (8 * i));
    if (fwrite(len8, 1, 8, f) != 8 || fwrite(c->header, 1, c->header_len, f) != c->header_len)
        return ed_err_set(err, ED_EIO, "writing the header: %s", strerror(errno));
    for (size_t i = c->header_len; i < c->padded_len; i++)
        if (fputc(' ', f) == EOF)
            return ed_err_set(err, ED_EIO, "writing the header: %s", strerror(errno));
    for (int t = 0; t < c->n_tensors; t++) {
        const ed_st_tensor *x = &c->tensors[t];
        if (x->nbytes && fwrite(x->data, 1, x->nbytes, f) != x->nbytes)
            return ed_err_set(err, ED_EIO, "writing tensor %s: %s", x->name, strerror(errno));
    }
    return ED_OK;
}

/* Checks one tensor description given to the writer. */
static int s_check_out_tensor(const char *path, const ed_st_tensor *x, ed_err *err)
{
    if (!x->name || !x->name[0] || strcmp(x->name, "__metadata__") == 0)
        return ed_err_set(err, ED_EINVAL, "%s: tensor name '%s' is not allowed", path,
                          x->name ? x->name : "(null)");
    const s_dtype *dt = s_dtype_find(x->dtype);
    if (!dt)
        return ed_err_set(err, ED_EINVAL, "%s: tensor %s: unknown dtype '%s'", path, x->name,
                          x->dtype ? x->dtype : "(null)");
    if (x->ndim < 0 || x->ndim > ED_ST_MAX_DIMS)
        return ed_err_set(err, ED_EINVAL, "%s: tensor %s: %d dims, at most %d supported", path,
                          x->name, x->ndim, ED_ST_MAX_DIMS);
    for (int i = 0; i < x->ndim; i++)
        if (x->shape[i] < 0 || (double)x->shape[i] > S_MAX_EXACT_INT)
            return ed_err_set(err, ED_EINVAL, "%s: tensor %s: dimension %d is %lld", path, x->name,
                              i, (long long)x->shape[i]);
    uint64_t need = 0;
    if (s_tensor_bytes(dt, x->ndim, x->shape, &need) != 0 || need != (uint64_t)x->nbytes) {
        char sh[128];
        s_shape_str(x->ndim, x->shape, sh, sizeof sh);
        return ed_err_set(err, ED_EINVAL,
                          "%s: tensor %s: %zu bytes given, shape %s of %s needs %llu", path,
                          x->name, x->nbytes, sh, dt->name, (unsigned long long)need);
    }
    if (x->nbytes && !x->data)
        return ed_err_set(err, ED_EINVAL, "%s: tensor %s: no data", path, x->name);
    return ED_OK;
}

int ed_st_write(const char *path, const ed_st_tensor *tensors, int n_tensors,
                const ed_st_meta *meta, int n_meta, ed_err *err)
{
    if (!path || n_tensors < 0 || n_meta < 0 || (n_tensors && !tensors) || (n_meta && !meta))
        return ed_err_set(err, ED_EINVAL, "ed_st_write: invalid arguments");
    if (!S_HOST_IS_LE())
        return ed_err_set(err, ED_EINVAL, "%s: safetensors needs a little-endian host", path);

    int rc = ED_OK;
    char *header = NULL;
    cJSON *root = cJSON_CreateObject();
    if (!root)
        goto oom;

    if (n_meta > 0) {
        cJSON *md = cJSON_AddObjectToObject(root, "__metadata__");
        if (!md)
            goto oom;
        for (int i = 0; i < n_meta; i++) {
            if (!meta[i].key || !meta[i].value) {
                rc = ed_err_set(err, ED_EINVAL, "%s: metadata entry %d has no key or value", path,
                                i);
                goto cleanup;
            }
            if (cJSON_GetObjectItemCaseSensitive(md, meta[i].key)) {
                rc = ed_err_set(err, ED_EINVAL, "%s: duplicate metadata key %s", path, meta[i].key);
                goto cleanup;
            }
            if (!cJSON_AddStringToObject(md, meta[i].key, meta[i].value))
                goto oom;
        }
    }

    uint64_t offset = 0;
    for (int t = 0; t < n_tensors; t++) {
        const ed_st_tensor *x = &tensors[t];
        rc = s_check_out_tensor(path, x, err);
        if (rc < 0)
            goto cleanup;
        if (cJSON_GetObjectItemCaseSensitive(root, x->name)) {
            rc = ed_err_set(err, ED_EINVAL, "%s: duplicate tensor name %s", path, x->name);
            goto cleanup;
        }
        cJSON *e = cJSON_AddObjectToObject(root, x->name);
        if (!e || !cJSON_AddStringToObject(e, "dtype", s_dtype_find(x->dtype)->name))
            goto oom;
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        if (!shape)
            goto oom;
        for (int i = 0; i < x->ndim; i++) {
            cJSON *d = cJSON_CreateNumber((double)x->shape[i]);
            if (!d || !cJSON_AddItemToArray(shape, d)) {
                cJSON_Delete(d);
                goto oom;
            }
        }
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        if (!offs)
            goto oom;
        uint64_t end = offset + (uint64_t)x->nbytes;
        cJSON *b = cJSON_CreateNumber((double)offset);
        cJSON *en = cJSON_CreateNumber((double)end);
        if (!b || !en || !cJSON_AddItemToArray(offs, b)) {
            cJSON_Delete(b);
            cJSON_Delete(en);
            goto oom;
        }
        if (!cJSON_AddItemToArray(offs, en)) {
            cJSON_Delete(en);
            goto oom;
        }
        offset = end;
    }
    if ((double)offset > S_MAX_EXACT_INT) {
        rc = ed_err_set(err, ED_ETOOBIG, "%s: %llu bytes of tensor data is too much", path,
                        (unsigned long long)offset);
        goto cleanup;
    }

    header = cJSON_PrintUnformatted(root);
    if (!header)
        goto oom;
    size_t hlen = strlen(header);
    size_t padded = hlen + (8 - hlen % 8) % 8;
    if (padded > ED_ST_MAX_HEADER) {
        rc = ed_err_set(err, ED_ETOOBIG, "%s: header would be %zu bytes, the limit is %u", path,
                        padded, ED_ST_MAX_HEADER);
        goto cleanup;
    }
    s_write_ctx ctx = {header, hlen, padded, tensors, n_tensors};
    rc = ed_fs_write_atomic(path, s_write_body, &ctx, err);
    goto cleanup;

oom:
    rc = ed_err_set(err, ED_ENOMEM, "%s: out of memory building the header", path);
cleanup:
    cJSON_free(header);
    cJSON_Delete(root);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* Reader */

typedef struct {
    char *name;
    const char *dtype; /* static, from s_dtypes */
    int ndim;
    int64_t shape[ED_ST_MAX_DIMS];
    uint64_t begin, end; /* relative to the data area */
} s_entry;

struct ed_st_file {
    char *path;
    unsigned char *buf;
    size_t size;
    const unsigned char *data; /* start of the data area inside buf */
    size_t data_size;
    s_entry *tensors;
    int n_tensors;
    char **keys;
    char **values;
    int n_meta;
};

void ed_st_close(ed_st_file **pf)
{
    if (!pf || !*pf)
        return;
    ed_st_file *f = *pf;
    for (int i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->keys[i]);
        free(f->values[i]);
    }
    free(f->tensors);
    free(f->keys);
    free(f->values);
    free(f->buf);
    free(f->path);
    free(f);
    *pf = NULL;
}

/* Reads the whole file into f->buf. */
static int s_read_all(ed_st_file *f, ed_err *err)
{
    FILE *fp = fopen(f->path, "rb");
    if (!fp) {
        int e = errno;
        return ed_err_set(err, e == ENOENT ? ED_ENOTFOUND : ED_EIO, "%s: cannot open: %s", f->path,
                          strerror(e));
    }
    int rc = ED_OK;
    struct stat st;
    if (fstat(fileno(fp), &st) != 0) {
        rc = ed_err_set(err, ED_EIO, "%s: cannot stat: %s", f->path, strerror(errno));
        goto cleanup;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = ed_err_set(err, ED_EIO, "%s: not a regular file", f->path);
        goto cleanup;
    }
    if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX - 1) {
        rc = ed_err_set(err, ED_ETOOBIG, "%s: file too large to load", f->path);
        goto cleanup;
    }
    f->size = (size_t)st.st_size;
    f->buf = malloc(f->size + 1);
    if (!f->buf) {
        rc = ed_err_set(err, ED_ENOMEM, "%s: out of memory for %zu bytes", f->path, f->size);
        goto cleanup;
    }
    size_t got = fread(f->buf, 1, f->size, fp);
    if (got != f->size) {
        if (ferror(fp))
            rc = ed_err_set(err, ED_EIO, "%s: read failed: %s", f->path, strerror(errno));
        else
            rc = ed_err_set(err, ED_ETRUNC, "%s: truncated while reading (%zu of %zu bytes)",
                            f->path, got, f->size);
        goto cleanup;
    }
cleanup:
    fclose(fp);
    return rc;
}

/* A JSON number that is an integer in [0, 2^53]. */
static int s_get_uint(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j))
        return -1;
    double d = j->valuedouble;
    if (!isfinite(d) || d < 0 || d != floor(d) || d > S_MAX_EXACT_INT)
        return -1;
    *out = (uint64_t)d;
    return 0;
}

/* Validates one tensor entry (everything except overlaps) into *e. */
static int s_parse_entry(ed_st_file *f, const cJSON *j, s_entry *e, ed_err *err)
{
    const char *name = j->string;
    if (!cJSON_IsObject(j))
        return ed_err_set(err, ED_EFORMAT, "%s: tensor %s: entry is not an object", f->path, name);

    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    if (!cJSON_IsString(dtype))
        return ed_err_set(err, ED_EFORMAT, "%s: tensor %s: dtype missing or not a string", f->path,
                          name);
    const s_dtype *dt = s_dtype_find(dtype->valuestring);
    if (!dt)
        return ed_err_set(err, ED_EFORMAT, "%s: tensor %s: unknown dtype '%s'", f->path, name,
                          dtype->valuestring);
    e->dtype = dt->name;

    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(j, "shape");
    if (!cJSON_IsArray(shape))
        return ed_err_set(err, ED_EFORMAT, "%s: tensor %s: shape missing or not an array", f->path,
                          name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > ED_ST_MAX_DIMS)
        return ed_err_set(err, ED_EFORMAT, "%s: tensor %s: %d dims, at most %d supported", f->path,
                          name, nd, ED_ST_MAX_DIMS);
    e->ndim = nd;
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape)
    {
        uint64_t v;
        if (s_get_uint(d, &v) != 0)
            return ed_err_set(err, ED_EFORMAT,
                              "%s: tensor %s: shape entry %d is not a non-negative integer",
                              f->path, name, i);
        e->shape[i++] = (int64_t)v;
    }

    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
    uint64_t b, en;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        s_get_uint(cJSON_GetArrayItem(offs, 0), &b) != 0 ||
        s_get_uint(cJSON_GetArrayItem(offs, 1), &en) != 0)
        return ed_err_set(err, ED_EFORMAT,
                          "%s: tensor %s: data_offsets must be [begin, end] non-negative integers",
                          f->path, name);
    if (en < b)
        return ed_err_set(err, ED_EFORMAT,
                          "%s: tensor %s: data_offsets [%llu, %llu] end before begin", f->path,
                          name, (unsigned long long)b, (unsigned long long)en);
    uint64_t need;
    char sh[128];
    s_shape_str(e->ndim, e->shape, sh, sizeof sh);
    if (s_tensor_bytes(dt, e->ndim, e->shape, &need) != 0)
        return ed_err_set(err, ED_EFORMAT, "%s: tensor %s: shape %s is too large", f->path, name,
                          sh);
    if (en - b != need)
        return ed_err_set(
            err, ED_EFORMAT,
            "%s: tensor %s: data_offsets [%llu, %llu] hold %llu bytes, shape %s of %s "
            "needs %llu",
            f->path, name, (unsigned long long)b, (unsigned long long)en,
            (unsigned long long)(en - b), sh, dt->name, (unsigned long long)need);
    if (en > f->data_size)
        return ed_err_set(err, ED_ETRUNC,
                          "%s: truncated: tensor %s ends at data byte %llu, the data area has %zu",
                          f->path, name, (unsigned long long)en, f->data_size);
    e->begin = b;
    e->end = en;
    return ED_OK;
}

static int s_cmp_begin(const void *a, const void *b)
{
    const s_entry *x = *(const s_entry *const *)a;
    const s_entry *y = *(const s_entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

static int s_check_overlaps(ed_st_file *f, ed_err *err)
{
    if (f->n_tensors < 2)
        return ED_OK;
    s_entry **order = malloc((size_t)f->n_tensors * sizeof *order);
    if (!order)
        return ed_err_set(err, ED_ENOMEM, "%s: out of memory", f->path);
    int n = 0;
    for (int i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].end > f->tensors[i].begin) /* empty tensors occupy nothing */
            order[n++] = &f->tensors[i];
    qsort(order, (size_t)n, sizeof *order, s_cmp_begin);
    int rc = ED_OK;
    for (int i = 1; i < n; i++) {
        if (order[i - 1]->end > order[i]->begin) {
            rc = ed_err_set(err, ED_EFORMAT,
                            "%s: tensors %s [%llu, %llu] and %s [%llu, %llu] overlap", f->path,
                            order[i - 1]->name, (unsigned long long)order[i - 1]->begin,
                            (unsigned long long)order[i - 1]->end, order[i]->name,
                            (unsigned long long)order[i]->begin, (unsigned long long)order[i]->end);
            break;
        }
    }
    free(order);
    return rc;
}

static int s_parse_metadata(ed_st_file *f, const cJSON *md, ed_err *err)
{
    if (!cJSON_IsObject(md))
        return ed_err_set(err, ED_EFORMAT, "%s: __metadata__ is not an object", f->path);
    int n = cJSON_GetArraySize(md);
    f->keys = calloc((size_t)n + 1, sizeof *f->keys);
    f->values = calloc((size_t)n + 1, sizeof *f->values);
    if (!f->keys || !f->values)
        return ed_err_set(err, ED_ENOMEM, "%s: out of memory", f->path);
    const cJSON *kv;
    cJSON_ArrayForEach(kv, md)
    {
        if (!cJSON_IsString(kv))
            return ed_err_set(err, ED_EFORMAT, "%s: metadata %s is not a string", f->path,
                              kv->string);
        for (int i = 0; i < f->n_meta; i++)
            if (strcmp(f->keys[i], kv->string) == 0)
                return ed_err_set(err, ED_EFORMAT, "%s: duplicate metadata key %s", f->path,
                                  kv->string);
        f->keys[f->n_meta] = strdup(kv->string);
        f->values[f->n_meta] = strdup(kv->valuestring);
        f->n_meta++;
        if (!f->keys[f->n_meta - 1] || !f->values[f->n_meta - 1])
            return ed_err_set(err, ED_ENOMEM, "%s: out of memory", f->path);
    }
    return ED_OK;
}

static int s_parse_header(ed_st_file *f, ed_err *err)
{
    if (f->size < 8)
        return ed_err_set(err, ED_ETRUNC,
                          "%s: truncated: file has %zu bytes, fewer than the 8-byte header length",
                          f->path, f->size);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n |= (uint64_t)f->buf[i] << (8 * i);
    if (n > (uint64_t)(f->size - 8))
        return ed_err_set(err, ED_ETRUNC, "%s: truncated: header says %llu bytes, file has %zu",
                          f->path, (unsigned long long)n, f->size);
    if (n > ED_ST_MAX_HEADER)
        return ed_err_set(err, ED_EFORMAT, "%s: header is %llu bytes, more than the limit of %u",
                          f->path, (unsigned long long)n, ED_ST_MAX_HEADER);
    const char *text = (const char *)f->buf + 8;
    f->data = f->buf + 8 + n;
    f->data_size = f->size - 8 - (size_t)n;

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)n, &end, 0);
    if (!root)
        return ed_err_set(err, ED_EFORMAT, "%s: header is not valid JSON", f->path);
    int rc = ED_OK;
    for (const char *p = end; p && p < text + n; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            rc = ed_err_set(err, ED_EFORMAT,
                            "%s: header is not valid JSON (trailing bytes at header offset %ld)",
                            f->path, (long)(p - text));
            goto cleanup;
        }
    }
    if (!cJSON_IsObject(root)) {
        rc = ed_err_set(err, ED_EFORMAT, "%s: header is not a JSON object", f->path);
        goto cleanup;
    }

    int count = cJSON_GetArraySize(root);
    f->tensors = calloc((size_t)count + 1, sizeof *f->tensors);
    if (!f->tensors) {
        rc = ed_err_set(err, ED_ENOMEM, "%s: out of memory", f->path);
        goto cleanup;
    }
    int seen_meta = 0;
    const cJSON *j;
    cJSON_ArrayForEach(j, root)
    {
        if (strcmp(j->string, "__metadata__") == 0) {
            if (seen_meta++) {
                rc = ed_err_set(err, ED_EFORMAT, "%s: duplicate __metadata__", f->path);
                goto cleanup;
            }
            rc = s_parse_metadata(f, j, err);
            if (rc < 0)
                goto cleanup;
            continue;
        }
        for (int i = 0; i < f->n_tensors; i++) {
            if (strcmp(f->tensors[i].name, j->string) == 0) {
                rc = ed_err_set(err, ED_EFORMAT, "%s: duplicate tensor %s", f->path, j->string);
                goto cleanup;
            }
        }
        s_entry *e = &f->tensors[f->n_tensors];
        rc = s_parse_entry(f, j, e, err);
        if (rc < 0)
            goto cleanup;
        e->name = strdup(j->string);
        if (!e->name) {
            rc = ed_err_set(err, ED_ENOMEM, "%s: out of memory", f->path);
            goto cleanup;
        }
        f->n_tensors++;
    }
    rc = s_check_overlaps(f, err);

cleanup:
    cJSON_Delete(root);
    return rc;
}

ed_st_file *ed_st_open(const char *path, ed_err *err)
{
    if (!path) {
        ed_err_set(err, ED_EINVAL, "ed_st_open: no path");
        return NULL;
    }
    ed_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        ed_err_set(err, ED_ENOMEM, "%s: out of memory", path);
        free(f);
        return NULL;
    }
    int rc = s_read_all(f, err);
    if (rc == ED_OK)
        rc = s_parse_header(f, err);
    if (rc < 0)
        ed_st_close(&f);
    return f;
}

const char *ed_st_meta_get(const ed_st_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->keys[i], key) == 0)
            return f->values[i];
    return NULL;
}

int ed_st_find(const ed_st_file *f, const char *name, ed_st_tensor *out)
{
    if (!f || !name || !out)
        return ED_EINVAL;
    for (int i = 0; i < f->n_tensors; i++) {
        const s_entry *e = &f->tensors[i];
        if (strcmp(e->name, name) != 0)
            continue;
        memset(out, 0, sizeof *out);
        out->name = e->name;
        out->dtype = e->dtype;
        out->ndim = e->ndim;
        memcpy(out->shape, e->shape, sizeof e->shape);
        out->data = f->data + e->begin;
        out->nbytes = (size_t)(e->end - e->begin);
        return ED_OK;
    }
    return ED_ENOTFOUND;
}

int ed_st_tensor_count(const ed_st_file *f)
{
    return f ? f->n_tensors : 0;
}
