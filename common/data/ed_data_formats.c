/*
 * ed_data_formats: the sample/label file readers behind ed_data's streams: zlib-level reading,
 * IDX, NumPy .npy and CSV headers and records, and opening/seeking one source file.
 *
 * Every file goes through zlib's gzopen/gzread, which reads gzip-compressed and raw files alike, so
 * foo.idx, foo.idx.gz, foo.npy and foo.npy.gz all work. A source (one file) knows its format,
 * element type, record count and record size. CSV files are scanned once at open (constant memory)
 * to count and validate their rows. Every header field is checked before it is used: sizes that
 * overflow, ranks, dtypes, truncation; errors name the file.
 */
#include "ed_data_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_GZ_BUFFER (256u * 1024u)        /* zlib read buffer per open file */
#define S_NPY_MAX_HEADER (1u << 20)       /* refuse .npy dict headers larger than this */
#define S_CSV_MAX_LINE ((size_t)16 << 20) /* refuse CSV lines longer than this */
#define S_IDX_MAX_NDIM 255
#define S_NPY_MAX_NDIM 32

static bool s_host_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void s_swap_bytes(unsigned char *p, size_t count, size_t esize)
{
    for (size_t i = 0; i < count; i++, p += esize)
        for (size_t a = 0, b = esize - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

static const char *s_kind(const edd_src *src)
{
    return src->labels ? "label" : "sample";
}

/* ---- gz-level reading ------------------------------------------------------------------------ */

/* Turns the gz file's error state into an ed error naming the file. */
static int s_gz_error(edd_src *src, ed_err *err)
{
    int zerr = Z_OK;
    const char *msg = gzerror(src->gz, &zerr);
    switch (zerr) {
    case Z_ERRNO:
        return ed_err_set(err, ED_EIO, "%s: read error: %s", src->path, strerror(errno));
    case Z_MEM_ERROR:
        return ed_err_set(err, ED_ENOMEM, "%s: out of memory in zlib", src->path);
    case Z_DATA_ERROR:
        return ed_err_set(err, ED_EFORMAT, "%s: corrupt gzip data: %s", src->path, msg);
    default:
        return ed_err_set(err, ED_EIO, "%s: read error: %s", src->path, msg ? msg : "unknown");
    }
}

/* A short read's explanation: a gzip stream cut short, or plain end of file. */
static const char *s_eof_note(edd_src *src)
{
    int zerr = Z_OK;
    gzerror(src->gz, &zerr);
    return zerr == Z_BUF_ERROR ? " (gzip stream cut short)" : "";
}

/* Reads up to n bytes; *got gets the count. A short read at end of file is not an error here (the
 * caller knows what it expected); I/O and decompression errors are. */
static int s_gz_read(edd_src *src, void *buf, size_t n, size_t *got, ed_err *err)
{
    unsigned char *p = buf;
    size_t done = 0;
    while (done < n) {
        size_t want = n - done;
        if (want > ((size_t)1 << 30))
            want = (size_t)1 << 30;
        int r = gzread(src->gz, p + done, (unsigned)want);
        if (r < 0) {
            *got = done;
            return s_gz_error(src, err);
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    *got = done;
    if (done < n) {
        int zerr = Z_OK;
        gzerror(src->gz, &zerr);
        if (zerr != Z_OK && zerr != Z_BUF_ERROR)
            return s_gz_error(src, err);
    }
    return 0;
}

/* Reads exactly n header bytes or fails with ED_ETRUNC. */
static int s_read_header(edd_src *src, void *buf, size_t n, ed_err *err)
{
    size_t got = 0;
    int rc = s_gz_read(src, buf, n, &got, err);
    if (rc < 0)
        return rc;
    if (got < n)
        return ed_err_set(err, ED_ETRUNC, "%s: truncated: header cut short at byte %" PRId64 "%s",
                          src->path, (int64_t)gztell(src->gz), s_eof_note(src));
    return 0;
}

static int s_truncated(edd_src *src, long after, ed_err *err)
{
    return ed_err_set(
        err, ED_ETRUNC, "%s: truncated: header says %ld %ss of %zu bytes, data ends after %s %ld%s",
        src->path, src->total, s_kind(src), src->rec_bytes, s_kind(src), after, s_eof_note(src));
}

/* Reads n whole records of a binary source at its current position. */
int edd_read_records(edd_src *src, void *buf, long n, ed_err *err)
{
    size_t want = (size_t)n * src->rec_bytes;
    size_t got = 0;
    int rc = s_gz_read(src, buf, want, &got, err);
    if (rc < 0)
        return rc;
    if (got < want)
        return s_truncated(src, src->pos + (long)(got / src->rec_bytes), err);
    if (src->swap)
        s_swap_bytes(buf, (size_t)n * (size_t)src->dim, src->esize);
    src->pos += n;
    return 0;
}

/* ---- shape checks shared by IDX and .npy ----------------------------------------------------- */

/* Sets total/dim/rec_bytes from dims (dims[0] = record count) and refuses sizes that overflow or
 * that the file cannot address. data_off and esize must already be set. */
static int s_set_shape(edd_src *src, const uint64_t *dims, int ndim, ed_err *err)
{
    if (ndim < 1)
        return ed_err_set(err, ED_EFORMAT, "%s: array has rank 0; need at least one dimension",
                          src->path);
    if (src->labels && !(ndim == 1 || (ndim == 2 && dims[1] == 1)))
        return ed_err_set(
            err, ED_ESHAPE,
            "%s: a label file must have rank 1 (or shape (N, 1)); this one has rank %d"
            " with second dimension %" PRIu64,
            src->path, ndim, dims[1]);
    uint64_t dim = 1;
    for (int i = 1; i < ndim; i++) {
        if (dims[i] != 0 && dim > (uint64_t)INT_MAX / dims[i])
            return ed_err_set(
                err, ED_EFORMAT,
                "%s: header declares a sample size too large (dimension %d is %" PRIu64
                "; at most %d values per sample)",
                src->path, i, dims[i], INT_MAX);
        dim *= dims[i];
    }
    if (dim == 0)
        return ed_err_set(err, ED_EFORMAT, "%s: header declares zero values per sample", src->path);
    uint64_t rec = dim * src->esize;
    uint64_t room = (uint64_t)INT64_MAX - (uint64_t)src->data_off;
    if (dims[0] > (uint64_t)LONG_MAX || dims[0] > room / rec)
        return ed_err_set(err, ED_EFORMAT,
                          "%s: header declares %" PRIu64 " samples of %" PRIu64
                          " bytes, more than a file can hold",
                          src->path, dims[0], rec);
    src->total = (long)dims[0];
    src->dim = (int)dim;
    src->rec_bytes = (size_t)rec;
    return 0;
}

/* Raw (uncompressed) files: a data section shorter than the header says is caught at open. */
static int s_check_raw_size(edd_src *src, ed_err *err)
{
    struct stat st;
    if (!gzdirect(src->gz) || stat(src->path, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    int64_t avail = (int64_t)st.st_size - src->data_off;
    if (avail < 0)
        avail = 0;
    if ((uint64_t)avail / src->rec_bytes < (uint64_t)src->total)
        return s_truncated(src, (long)((uint64_t)avail / src->rec_bytes), err);
    return 0;
}

/* ---- IDX ------------------------------------------------------------------------------------ */

static int s_parse_idx(edd_src *src, ed_err *err)
{
    unsigned char h[4];
    int rc = s_read_header(src, h, sizeof h, err);
    if (rc < 0)
        return rc;
    if (h[2] != 0x08)
        return ed_err_set(err, ED_EFORMAT,
                          "%s: IDX element type 0x%02x is not supported (only 0x08, unsigned byte)",
                          src->path, h[2]);
    int ndim = h[3];
    if (ndim < 1)
        return ed_err_set(err, ED_EFORMAT, "%s: IDX header declares rank 0", src->path);
    unsigned char raw[4 * S_IDX_MAX_NDIM];
    rc = s_read_header(src, raw, 4 * (size_t)ndim, err);
    if (rc < 0)
        return rc;
    uint64_t dims[S_IDX_MAX_NDIM];
    for (int i = 0; i < ndim; i++) {
        const unsigned char *b = raw + 4 * i;
        dims[i] = ((uint64_t)b[0] << 24) | ((uint64_t)b[1] << 16) | ((uint64_t)b[2] << 8) | b[3];
    }
    src->fmt = EDD_FMT_IDX;
    src->el = EDD_EL_U8;
    src->esize = 1;
    src->swap = false;
    src->data_off = 4 + 4 * (int64_t)ndim;
    rc = s_set_shape(src, dims, ndim, err);
    return rc < 0 ? rc : s_check_raw_size(src, err);
}

/* ---- .npy ----------------------------------------------------------------------------------- */

static const char *s_skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    return p;
}

/* Finds 'key' (either quote style) in a .npy dict header; returns the start of its value. */
static const char *s_npy_value(const char *h, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = h; (p = strchr(p, key[0])) != NULL; p++) {
        if (p == h || (p[-1] != '\'' && p[-1] != '"') || strncmp(p, key, klen) != 0 ||
            p[klen] != p[-1])
            continue;
        const char *v = s_skip_ws(p + klen + 1);
        if (*v != ':')
            continue;
        return s_skip_ws(v + 1);
    }
    return NULL;
}

static int s_npy_descr(edd_src *src, const char *h, ed_err *err)
{
    const char *v = s_npy_value(h, "descr");
    if (!v || (*v != '\'' && *v != '"'))
        return ed_err_set(err, ED_EFORMAT, "%s: .npy header has no simple 'descr' string",
                          src->path);
    const char *close = strchr(v + 1, *v);
    size_t len = close ? (size_t)(close - v - 1) : 0;
    char d[16];
    if (!close || len == 0 || len >= sizeof d)
        return ed_err_set(err, ED_EFORMAT, "%s: .npy header has a malformed 'descr'", src->path);
    memcpy(d, v + 1, len);
    d[len] = '\0';
    char order = d[0];
    const char *t = (order == '<' || order == '>' || order == '|' || order == '=') ? d + 1 : d;
    if (strcmp(t, "u1") == 0) {
        src->el = EDD_EL_U8;
        src->esize = 1;
    } else if (strcmp(t, "f4") == 0 && !src->labels) {
        src->el = EDD_EL_F32;
        src->esize = 4;
    } else if (strcmp(t, "i4") == 0 && src->labels) {
        src->el = EDD_EL_I32;
        src->esize = 4;
    } else if (strcmp(t, "i8") == 0 && src->labels) {
        src->el = EDD_EL_I64;
        src->esize = 8;
    } else {
        return ed_err_set(err, ED_EFORMAT, "%s: .npy dtype '%s' is not supported for %s (use %s)",
                          src->path, d, src->labels ? "labels" : "samples",
                          src->labels ? "|u1, <i4 or <i8" : "|u1 or <f4");
    }
    bool file_le = order == '<' ? true : order == '>' ? false : s_host_little_endian();
    src->swap = src->esize > 1 && file_le != s_host_little_endian();
    return 0;
}

static int s_npy_shape(edd_src *src, const char *h, uint64_t *dims, int *ndim, ed_err *err)
{
    const char *p = s_npy_value(h, "shape");
    if (!p || *p != '(')
        return ed_err_set(err, ED_EFORMAT, "%s: .npy header has no 'shape' tuple", src->path);
    p = s_skip_ws(p + 1);
    int n = 0;
    while (*p != ')') {
        if (*p < '0' || *p > '9' || n == S_NPY_MAX_NDIM)
            return ed_err_set(err, ED_EFORMAT, "%s: .npy header has a malformed 'shape'",
                              src->path);
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno == ERANGE)
            return ed_err_set(err, ED_EFORMAT, "%s: .npy shape dimension %d is too large",
                              src->path, n);
        dims[n++] = (uint64_t)v;
        p = s_skip_ws(end);
        if (*p == ',')
            p = s_skip_ws(p + 1);
        else if (*p != ')')
            return ed_err_set(err, ED_EFORMAT, "%s: .npy header has a malformed 'shape'",
                              src->path);
    }
    *ndim = n;
    return 0;
}

static int s_parse_npy(edd_src *src, ed_err *err)
{
    unsigned char m[8];
    int rc = s_read_header(src, m, sizeof m, err);
    if (rc < 0)
        return rc;
    int major = m[6], minor = m[7];
    size_t hlen;
    int64_t pre;
    if (major == 1 && minor == 0) {
        unsigned char b[2];
        if ((rc = s_read_header(src, b, 2, err)) < 0)
            return rc;
        hlen = (size_t)b[0] | ((size_t)b[1] << 8);
        pre = 10;
    } else if ((major == 2 || major == 3) && minor == 0) {
        unsigned char b[4];
        if ((rc = s_read_header(src, b, 4, err)) < 0)
            return rc;
        hlen = (size_t)b[0] | ((size_t)b[1] << 8) | ((size_t)b[2] << 16) | ((size_t)b[3] << 24);
        pre = 12;
    } else {
        return ed_err_set(err, ED_EVERSION,
                          "%s: .npy format version %d.%d is not supported (1.0, 2.0, 3.0 are);"
                          " re-save with numpy.save",
                          src->path, major, minor);
    }
    if (hlen > S_NPY_MAX_HEADER)
        return ed_err_set(err, ED_EFORMAT, "%s: .npy header length %zu is implausibly large",
                          src->path, hlen);
    char *h = malloc(hlen + 1);
    if (!h)
        return ed_err_set(err, ED_ENOMEM, "%s: out of memory reading the .npy header", src->path);
    rc = s_read_header(src, h, hlen, err);
    if (rc < 0)
        goto done;
    h[hlen] = '\0';
    src->fmt = EDD_FMT_NPY;
    src->data_off = pre + (int64_t)hlen;
    if ((rc = s_npy_descr(src, h, err)) < 0)
        goto done;
    const char *fo = s_npy_value(h, "fortran_order");
    if (!fo || (strncmp(fo, "False", 5) != 0 && strncmp(fo, "True", 4) != 0)) {
        rc = ed_err_set(err, ED_EFORMAT, "%s: .npy header has no 'fortran_order'", src->path);
        goto done;
    }
    if (fo[0] == 'T') {
        rc = ed_err_set(err, ED_EFORMAT,
                        "%s: .npy fortran_order is True; only C-order arrays are supported"
                        " (save numpy.ascontiguousarray(a))",
                        src->path);
        goto done;
    }
    uint64_t dims[S_NPY_MAX_NDIM];
    int ndim = 0;
    if ((rc = s_npy_shape(src, h, dims, &ndim, err)) < 0)
        goto done;
    if ((rc = s_set_shape(src, dims, ndim, err)) < 0)
        goto done;
    rc = s_check_raw_size(src, err);
done:
    free(h);
    return rc;
}

/* ---- CSV ------------------------------------------------------------------------------------ */

/* Reads the next physical line into src->line. Returns 1, 0 at end of file, or a negative code. */
static int s_getline(edd_src *src, ed_err *err)
{
    size_t len = 0;
    for (;;) {
        if (src->line_cap - len < 2) {
            size_t cap = src->line_cap ? src->line_cap * 2 : 4096;
            if (cap > S_CSV_MAX_LINE)
                return ed_err_set(err, ED_EFORMAT, "%s:%ld: line longer than %zu bytes", src->path,
                                  src->line_no + 1, S_CSV_MAX_LINE);
            char *p = realloc(src->line, cap);
            if (!p)
                return ed_err_set(err, ED_ENOMEM, "%s: out of memory for a CSV line", src->path);
            src->line = p;
            src->line_cap = cap;
        }
        char *r = gzgets(src->gz, src->line + len, (int)(src->line_cap - len));
        if (!r) {
            int zerr = Z_OK;
            gzerror(src->gz, &zerr);
            if (zerr != Z_OK && zerr != Z_BUF_ERROR)
                return s_gz_error(src, err);
            if (len == 0)
                return 0;
            break;
        }
        len += strlen(src->line + len);
        if ((len > 0 && src->line[len - 1] == '\n') || gzeof(src->gz))
            break;
    }
    src->line[len] = '\0';
    src->line_no++;
    return 1;
}

/* Next non-blank line. Returns 1, 0 at end of file, or a negative code. */
int edd_csv_next_row(edd_src *src, ed_err *err)
{
    for (;;) {
        int rc = s_getline(src, err);
        if (rc <= 0)
            return rc;
        if (*s_skip_ws(src->line) != '\0')
            return 1;
    }
}

/* Parses a row of comma-separated numbers, storing up to `max` of them in out (may be NULL).
 * Returns the number of fields, or -(column) (1-based) of the first malformed field. */
static long s_csv_floats(const char *line, float *out, long max)
{
    const char *p = s_skip_ws(line);
    long n = 0;
    if (*p == '\0')
        return 0;
    for (;;) {
        char *end = NULL;
        float v = strtof(p, &end);
        if (end == p)
            return -(n + 1);
        if (out && n < max)
            out[n] = v;
        n++;
        p = s_skip_ws(end);
        if (*p == '\0')
            return n;
        if (*p != ',')
            return -n;
        p = s_skip_ws(p + 1);
    }
}

/* Parses and range-checks a label row; `index` is the record index for the message. */
int edd_csv_label(edd_src *src, long index, int32_t *out, ed_err *err)
{
    const char *p = s_skip_ws(src->line);
    char *end = NULL;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (end == p || *s_skip_ws(end) != '\0')
        return ed_err_set(err, ED_EFORMAT, "%s:%ld: a label row must hold one integer", src->path,
                          src->line_no);
    if (errno == ERANGE || v < 0 || v > INT32_MAX)
        return ed_err_set(err, ED_EFORMAT,
                          "%s: label at index %ld (line %ld) is out of range [0, %d]", src->path,
                          index, src->line_no, INT32_MAX);
    *out = (int32_t)v;
    return 0;
}

/* Positions a CSV source before its first row. */
static int s_csv_restart(edd_src *src, ed_err *err)
{
    if (gzrewind(src->gz) != 0)
        return s_gz_error(src, err);
    src->line_no = 0;
    src->pos = 0;
    return 0;
}

/* First pass: counts the rows and checks every one (width for samples, value for labels). */
static int s_parse_csv(edd_src *src, ed_err *err)
{
    src->fmt = EDD_FMT_CSV;
    src->el = src->labels ? EDD_EL_I32 : EDD_EL_F32;
    src->esize = 4;
    int rc = s_csv_restart(src, err);
    long rows = 0;
    long width = -1;
    while (rc == 0) {
        int got = edd_csv_next_row(src, err);
        if (got < 0)
            return got;
        if (got == 0)
            break;
        if (src->labels) {
            int32_t v;
            if ((rc = edd_csv_label(src, rows, &v, err)) < 0)
                return rc;
        } else {
            long n = s_csv_floats(src->line, NULL, 0);
            if (n < 0)
                return ed_err_set(err, ED_EFORMAT, "%s:%ld: column %ld is not a number", src->path,
                                  src->line_no, -n);
            if (width < 0) {
                if (n > INT_MAX)
                    return ed_err_set(err, ED_EFORMAT, "%s:%ld: too many columns", src->path,
                                      src->line_no);
                width = n;
            } else if (n != width) {
                return ed_err_set(err, ED_EFORMAT,
                                  "%s:%ld: row has %ld columns, the first row has %ld", src->path,
                                  src->line_no, n, width);
            }
        }
        if (rows == LONG_MAX)
            return ed_err_set(err, ED_EFORMAT, "%s: too many rows", src->path);
        rows++;
    }
    if (rc < 0)
        return rc;
    if (rows == 0)
        return ed_err_set(err, ED_EFORMAT, "%s: CSV file has no data rows", src->path);
    src->total = rows;
    src->dim = src->labels ? 1 : (int)width;
    src->rec_bytes = (size_t)src->dim * 4;
    return s_csv_restart(src, err);
}

/* Reads n float rows of a CSV sample source into x. */
int edd_csv_read_samples(edd_src *src, float *x, long n, ed_err *err)
{
    for (long i = 0; i < n; i++) {
        int rc = edd_csv_next_row(src, err);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return ed_err_set(err, ED_ETRUNC,
                              "%s: file ended after %ld of %ld rows (changed since open?)",
                              src->path, src->pos, src->total);
        long got = s_csv_floats(src->line, x + (size_t)i * (size_t)src->dim, src->dim);
        if (got != src->dim)
            return ed_err_set(err, ED_EFORMAT, "%s:%ld: bad row (expected %d numbers)", src->path,
                              src->line_no, src->dim);
        src->pos++;
    }
    return 0;
}

/* ---- sources -------------------------------------------------------------------------------- */

void edd_src_close(edd_src *src)
{
    if (src->gz)
        gzclose_r(src->gz);
    free(src->path);
    free(src->line);
    memset(src, 0, sizeof *src);
}

/* Opens a file, detects its format from the first bytes and parses its header. */
int edd_src_open(edd_src *src, const char *path, bool labels, ed_err *err)
{
    memset(src, 0, sizeof *src);
    src->labels = labels;
    src->path = malloc(strlen(path) + 1);
    if (!src->path)
        return ed_err_set(err, ED_ENOMEM, "%s: out of memory", path);
    strcpy(src->path, path);
    errno = 0;
    src->gz = gzopen(path, "rb");
    if (!src->gz)
        return ed_err_set(err, ED_EIO, "%s: cannot open: %s", path,
                          errno ? strerror(errno) : "out of memory");
    if (gzbuffer(src->gz, S_GZ_BUFFER) != 0)
        return ed_err_set(err, ED_EIO, "%s: cannot set the read buffer", path);

    unsigned char m[6] = {0};
    size_t got = 0;
    int rc = s_gz_read(src, m, sizeof m, &got, err);
    if (rc < 0)
        return rc;
    if (gzrewind(src->gz) != 0)
        return s_gz_error(src, err);
    if (got == 0)
        return ed_err_set(err, ED_ETRUNC, "%s: truncated: the file is empty", path);
    if (m[0] == 0x00 && (got < 2 || m[1] == 0x00))
        return s_parse_idx(src, err);
    static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (memcmp(m, npy_magic, got) == 0)
        return s_parse_npy(src, err);
    if (strchr("0123456789+-. \t\r\n", m[0]) && m[0] != '\0')
        return s_parse_csv(src, err);
    return ed_err_set(err, ED_EFORMAT,
                      "%s: not an IDX, .npy or CSV file (bad magic %02x %02x %02x %02x)", path,
                      m[0], m[1], m[2], m[3]);
}

/* Positions a source at record `rec`. Forward skips on compressed files decompress and discard,
 * so a file shorter than its header says is reported here with the exact record count. */
int edd_src_seek(edd_src *src, long rec, ed_err *err)
{
    if (src->fmt == EDD_FMT_CSV) {
        int rc = s_csv_restart(src, err);
        for (long i = 0; rc == 0 && i < rec; i++) {
            int got = edd_csv_next_row(src, err);
            if (got < 0)
                return got;
            if (got == 0)
                return ed_err_set(err, ED_ETRUNC,
                                  "%s: file ended after %ld of %ld rows (changed since open?)",
                                  src->path, i, src->total);
            src->pos++;
        }
        return rc;
    }
    int64_t target = src->data_off + (int64_t)rec * (int64_t)src->rec_bytes;
    if (gzdirect(src->gz)) {
        if (gzseek(src->gz, (z_off_t)target, SEEK_SET) < 0)
            return s_gz_error(src, err);
        src->pos = rec;
        return 0;
    }
    int64_t cur = (int64_t)gztell(src->gz);
    if (cur < 0 || target < cur) {
        if (gzrewind(src->gz) != 0)
            return s_gz_error(src, err);
        cur = 0;
    }
    unsigned char scratch[16384];
    while (cur < target) {
        size_t want =
            (size_t)(target - cur) < sizeof scratch ? (size_t)(target - cur) : sizeof scratch;
        size_t got = 0;
        int rc = s_gz_read(src, scratch, want, &got, err);
        if (rc < 0)
            return rc;
        cur += (int64_t)got;
        if (got < want) {
            int64_t data = cur - src->data_off;
            return s_truncated(src, data < 0 ? 0 : (long)(data / (int64_t)src->rec_bytes), err);
        }
    }
    src->pos = rec;
    return 0;
}
