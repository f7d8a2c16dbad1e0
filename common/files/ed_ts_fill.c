/*
 * ed_ts_fill: a one-shard float32 target store filled in ANY sample order (the shuffled first epoch
 * of `distill --cache-targets`), then finished into an ordinary store (docs/TARGET_STORE.md,
 * "Filling in any order").
 *
 * While filling, the directory holds
 *   shard-00000-of-00001.fill.json          the layout (written once, atomically, before any row)
 *   shard-00000-of-00001.logits.npy.filling the final .npy file, preallocated: header, then one
 *                                           (members, classes) float32 row per sample, every
 *                                           unfilled row NaN
 * A row is written with one pwrite at its sample's position. A row is FILLED exactly when all its
 * values are finite (teachers' logits always are; put refuses others), so the array is its own fill
 * bitmap: opening an interrupted fill scans it, and a torn or lost write (crash, power loss) only
 * leaves a row that has a NaN, i.e. unfilled, to be filled again. No separate record can disagree
 * with the data. Commit (every row filled): fsync, checksum, rename to .logits.npy, then the shard
 * index, atomically, last: from then on it is a complete store any reader (and numpy) accepts; the
 * fill record is removed. The array is locked (flock) while open: one run per store.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ed_fs.h"
#include "ed_hash.h"
#include "ed_log.h"
#include "ed_target_store.h"
#include "ed_target_store_internal.h"

#define S_FILL_FORMAT "edistill-targets-fill"
#define S_CHUNK_ROWS 4096

struct ed_ts_filler {
    char *dir;
    char base[40];
    ed_ts_layout lay;
    int fd;
    size_t header_bytes, row_bytes;
    unsigned char *bits; /* (total + 7) / 8: filled rows */
    int64_t count;       /* filled rows */
    bool complete;       /* committed: the index is written */
};

static char *s_path(const ed_ts_filler *f, const char *suffix)
{
    size_t n = strlen(f->dir) + strlen(f->base) + strlen(suffix) + 4;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s.%s", f->dir, f->base, suffix);
    return p;
}

static bool s_row_filled(const float *row, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(row[i]))
            return false;
    return true;
}

/* Writes header + NaN rows into a fresh .filling file, then the fill record. */
static int s_create(ed_ts_filler *f, const char *apath, const char *fpath, ed_err *err)
{
    unlink(fpath);
    if (ftruncate(f->fd, 0) != 0 || lseek(f->fd, 0, SEEK_SET) != 0)
        return ed_err_set(err, ED_EIO, "%s: cannot create: %s", apath, strerror(errno));
    char hdr[256];
    f->header_bytes =
        ed_ts_npy_header(hdr, sizeof hdr, "<f4", f->lay.total, f->lay.n_members, f->lay.classes);
    const size_t vals = f->row_bytes / 4 * S_CHUNK_ROWS;
    float *nan = malloc(vals * sizeof(float));
    if (!nan)
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    for (size_t i = 0; i < vals; i++)
        nan[i] = NAN;
    int rc = write(f->fd, hdr, f->header_bytes) == (ssize_t)f->header_bytes
                 ? 0
                 : ed_err_set(err, ED_EIO, "%s: write failed: %s", apath, strerror(errno));
    for (int64_t g = 0; !rc && g < f->lay.total; g += S_CHUNK_ROWS) {
        const int64_t n = f->lay.total - g < S_CHUNK_ROWS ? f->lay.total - g : S_CHUNK_ROWS;
        const size_t bytes = (size_t)n * f->row_bytes;
        if (write(f->fd, nan, bytes) != (ssize_t)bytes)
            rc = ed_err_set(err, ED_EIO, "%s: write failed: %s", apath, strerror(errno));
    }
    free(nan);
    if (!rc && fsync(f->fd) != 0)
        rc = ed_err_set(err, ED_EIO, "%s: fsync failed: %s", apath, strerror(errno));
    if (!rc)
        rc = ed_ts_write_json(fpath, ed_ts_json_head(&f->lay, S_FILL_FORMAT, 0, 1, 0, f->lay.total),
                              err);
    memset(f->bits, 0, (size_t)(f->lay.total + 7) / 8);
    f->count = 0;
    return rc;
}

/* Scans an existing .filling file for its filled rows. ED_ETRUNC when its size or header is not the
 * layout's (the caller starts over). */
static int s_scan(ed_ts_filler *f, const char *apath, ed_err *err)
{
    char hdr[256], got[256];
    f->header_bytes =
        ed_ts_npy_header(hdr, sizeof hdr, "<f4", f->lay.total, f->lay.n_members, f->lay.classes);
    struct stat sb;
    if (fstat(f->fd, &sb) != 0 ||
        (uint64_t)sb.st_size != f->header_bytes + (uint64_t)f->lay.total * f->row_bytes ||
        pread(f->fd, got, f->header_bytes, 0) != (ssize_t)f->header_bytes ||
        memcmp(got, hdr, f->header_bytes))
        return ed_err_set(err, ED_ETRUNC, "%s: not the size or header of this store's array",
                          apath);
    float *buf = malloc(f->row_bytes * S_CHUNK_ROWS);
    if (!buf)
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    const size_t per_row = f->row_bytes / 4;
    int rc = 0;
    for (int64_t g = 0; !rc && g < f->lay.total; g += S_CHUNK_ROWS) {
        const int64_t n = f->lay.total - g < S_CHUNK_ROWS ? f->lay.total - g : S_CHUNK_ROWS;
        const size_t bytes = (size_t)n * f->row_bytes;
        if (pread(f->fd, buf, bytes, (off_t)(f->header_bytes + (uint64_t)g * f->row_bytes)) !=
            (ssize_t)bytes) {
            rc = ed_err_set(err, ED_EIO, "%s: read error", apath);
            break;
        }
        for (int64_t i = 0; i < n; i++)
            if (s_row_filled(buf + (size_t)i * per_row, per_row)) {
                f->bits[(g + i) >> 3] |= (unsigned char)(1u << ((g + i) & 7));
                f->count++;
            }
    }
    free(buf);
    return rc;
}

/* The fill record there: the same layout (0), another one (ED_EINVAL naming it) or unreadable. */
static int s_check_record(const ed_ts_filler *f, const char *fpath, ed_err *err)
{
    char *text = ed_ts_read_text(fpath, err);
    if (!text)
        return err->code;
    cJSON *o = cJSON_Parse(text);
    free(text);
    ed_ts_layout old;
    char what[512];
    const char *format = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "format"));
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(o, "format_version");
    int rc = 0;
    if (!o || !format || strcmp(format, S_FILL_FORMAT))
        rc = ed_err_set(err, ED_EFORMAT,
                        "%s: not a fill record (remove the directory to start over)", fpath);
    else if (!cJSON_IsNumber(version) || version->valuedouble != ED_TS_FORMAT_VERSION)
        rc = ed_err_set(err, ED_EVERSION,
                        "%s: fill record of format version %g, this edistill reads %d (use the "
                        "edistill that started the fill, or remove the directory)",
                        fpath, cJSON_IsNumber(version) ? version->valuedouble : -1.0,
                        ED_TS_FORMAT_VERSION);
    else
        rc = ed_ts_layout_from_json(o, &old, fpath, err);
    cJSON_Delete(o);
    if (rc)
        return rc;
    if (ed_ts_layout_diff(&old, &f->lay, what, sizeof what))
        rc = ed_err_set(err, ED_EINVAL,
                        "%s: the store being filled there is for other data or members (%s; "
                        "the store's first): use another directory, or remove it",
                        f->dir, what);
    ed_ts_layout_free(&old);
    return rc;
}

/* Opens the .filling array (or, with a fill record, the final array of a commit interrupted
 * before its index: the record is removed only after the index is written). */
static int s_open_array(ed_ts_filler *f, const char *apath, bool have_record, ed_err *err)
{
    char *final = s_path(f, "logits.npy");
    if (!final)
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    struct stat sb;
    if (have_record && stat(apath, &sb) != 0 && stat(final, &sb) == 0 && rename(final, apath) != 0)
        ed_log_warn("%s: cannot rename back to %s: %s", final, apath, strerror(errno));
    free(final);
    f->fd = open(apath, O_RDWR | O_CREAT, 0644);
    if (f->fd < 0)
        return ed_err_set(err, ED_EIO, "%s: cannot open: %s", apath, strerror(errno));
    if (flock(f->fd, LOCK_EX | LOCK_NB) != 0)
        return ed_err_set(err, ED_EBUSY, "%s: another run is filling this store (%s)", apath,
                          strerror(errno));
    return 0;
}

ed_ts_filler *ed_ts_filler_open(const char *dir, const ed_ts_layout *lay, ed_err *err)
{
    if (lay->n_members < 1 || lay->n_members > ED_TS_MAX_MEMBERS || lay->classes < 1 ||
        lay->dtype != ED_TS_F32 || lay->top_k != 0 || lay->total < 1) {
        ed_err_set(err, ED_EINVAL, "%s: a store filled in any order is float32, every logit", dir);
        return NULL;
    }
    ed_ts_filler *f = calloc(1, sizeof *f);
    if (!f || !(f->dir = strdup(dir)) || ed_ts_layout_copy(&f->lay, lay, err)) {
        if (f)
            free(f->dir);
        free(f);
        ed_err_set(err, ED_ENOMEM, "out of memory");
        return NULL;
    }
    f->fd = -1;
    ed_ts_base_name(f->base, sizeof f->base, 0, 1);
    f->row_bytes = (size_t)lay->n_members * (size_t)lay->classes * 4;
    f->bits = calloc((size_t)(lay->total + 7) / 8, 1);
    char *apath = s_path(f, "logits.npy.filling"), *fpath = s_path(f, "fill.json");
    struct stat sb;
    int rc = !f->bits || !apath || !fpath ? ed_err_set(err, ED_ENOMEM, "out of memory")
                                          : ed_fs_mkdirs(dir, err);
    bool have_record = !rc && stat(fpath, &sb) == 0;
    if (!rc && have_record)
        rc = s_check_record(f, fpath, err);
    if (!rc)
        rc = s_open_array(f, apath, have_record, err);
    if (!rc && have_record) {
        ed_err scan = {0};
        if (s_scan(f, apath, &scan) == ED_ETRUNC) {
            ed_log_warn("%s: filling it from the start", scan.msg);
            have_record = false;
        } else if (scan.code) {
            rc = ed_err_set(err, scan.code, "%s", scan.msg);
        }
    }
    if (!rc && !have_record)
        rc = s_create(f, apath, fpath, err);
    free(apath);
    free(fpath);
    if (rc)
        ed_ts_filler_destroy(&f);
    return f;
}

int64_t ed_ts_filler_count(const ed_ts_filler *f)
{
    return f->count;
}

bool ed_ts_filler_has(const ed_ts_filler *f, int64_t g)
{
    return g >= 0 && g < f->lay.total && (f->bits[g >> 3] >> (g & 7) & 1);
}

bool ed_ts_filler_complete(const ed_ts_filler *f)
{
    return f->complete;
}

int ed_ts_filler_get(ed_ts_filler *f, int64_t g, float *row, ed_err *err)
{
    if (!ed_ts_filler_has(f, g))
        return ed_err_set(err, ED_EINVAL, "%s: sample %lld is not filled", f->dir, (long long)g);
    if (pread(f->fd, row, f->row_bytes, (off_t)(f->header_bytes + (uint64_t)g * f->row_bytes)) !=
        (ssize_t)f->row_bytes)
        return ed_err_set(err, ED_EIO, "%s/%s.logits.npy: read error at sample %lld", f->dir,
                          f->base, (long long)g);
    return 0;
}

int ed_ts_filler_put(ed_ts_filler *f, int64_t g, const float *row, ed_err *err)
{
    if (g < 0 || g >= f->lay.total)
        return ed_err_set(err, ED_EINVAL, "%s: sample %lld outside [0, %lld)", f->dir, (long long)g,
                          (long long)f->lay.total);
    if (ed_ts_filler_has(f, g))
        return 0;
    if (!s_row_filled(row, f->row_bytes / 4))
        return ed_err_set(err, ED_EINVAL, "%s: sample %lld: a logit is NaN or infinite", f->dir,
                          (long long)g);
    if (pwrite(f->fd, row, f->row_bytes, (off_t)(f->header_bytes + (uint64_t)g * f->row_bytes)) !=
        (ssize_t)f->row_bytes)
        return ed_err_set(err, ED_EIO, "%s/%s.logits.npy.filling: write failed: %s", f->dir,
                          f->base, strerror(errno));
    f->bits[g >> 3] |= (unsigned char)(1u << (g & 7));
    f->count++;
    return 0;
}

int ed_ts_filler_sync(ed_ts_filler *f, ed_err *err)
{
    if (f->fd >= 0 && !f->complete && fdatasync(f->fd) != 0)
        return ed_err_set(err, ED_EIO, "%s/%s.logits.npy.filling: fsync failed: %s", f->dir,
                          f->base, strerror(errno));
    return 0;
}

int ed_ts_filler_commit(ed_ts_filler *f, ed_err *err)
{
    if (f->complete)
        return 0;
    if (f->count != f->lay.total)
        return ed_err_set(err, ED_EINVAL, "%s: %lld of %lld samples filled", f->dir,
                          (long long)f->count, (long long)f->lay.total);
    if (fsync(f->fd) != 0)
        return ed_err_set(err, ED_EIO, "%s: fsync failed: %s", f->dir, strerror(errno));
    uint64_t hash[2] = {ED_FNV1A64_INIT, ED_FNV1A64_INIT};
    const size_t header[2] = {f->header_bytes, 0};
    unsigned char *buf = malloc(f->row_bytes * S_CHUNK_ROWS);
    if (!buf)
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    int rc = 0;
    for (int64_t g = 0; !rc && g < f->lay.total; g += S_CHUNK_ROWS) {
        const int64_t n = f->lay.total - g < S_CHUNK_ROWS ? f->lay.total - g : S_CHUNK_ROWS;
        const size_t bytes = (size_t)n * f->row_bytes;
        if (pread(f->fd, buf, bytes, (off_t)(f->header_bytes + (uint64_t)g * f->row_bytes)) !=
            (ssize_t)bytes)
            rc = ed_err_set(err, ED_EIO, "%s: read error", f->dir);
        else
            hash[0] = ed_fnv1a64(hash[0], buf, bytes);
    }
    free(buf);
    char *from = s_path(f, "logits.npy.filling"), *to = s_path(f, "logits.npy"),
         *fpath = s_path(f, "fill.json");
    if (!rc && (!from || !to || !fpath))
        rc = ed_err_set(err, ED_ENOMEM, "out of memory");
    if (!rc && rename(from, to) != 0)
        rc = ed_err_set(err, ED_EIO, "%s: cannot rename to %s: %s", from, to, strerror(errno));
    if (!rc) /* atomic, last, and fsyncs the directory (the rename too) */
        rc = ed_ts_write_index(f->dir, f->base, &f->lay, 0, 1, 0, f->lay.total, 1, header, hash,
                               err);
    if (!rc) {
        unlink(fpath);
        f->complete = true;
    }
    free(from);
    free(to);
    free(fpath);
    return rc;
}

void ed_ts_filler_destroy(ed_ts_filler **pf)
{
    if (!pf || !*pf)
        return;
    ed_ts_filler *f = *pf;
    if (f->fd >= 0) {
        if (!f->complete)
            (void)fdatasync(f->fd);
        close(f->fd);
    }
    free(f->bits);
    ed_ts_layout_free(&f->lay);
    free(f->dir);
    free(f);
    *pf = NULL;
}
