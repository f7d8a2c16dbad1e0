/*
 * ed_data: streams of samples and labels over the format readers (ed_data_formats.c).
 *
 * A stream pairs a sample source with an optional label source and a [start, end) range, and reads
 * both sequentially with nothing proportional to the file size; labels are converted to int32 and
 * range-checked in chunks. A sharded input (a directory, glob or list of sample files, no labels)
 * is one sequence over its files, with one file open at a time.
 */
#include "ed_data.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ed_data_internal.h"
#include "ed_paths.h"
#include "ed_view.h"

#define S_LABEL_CHUNK 4096 /* labels converted per step */
#define S_VIEW_CHUNK 256   /* raw samples read per step under a view */

struct ed_stream {
    edd_src img; /* the (current) sample file */
    edd_src lab;
    char **files; /* sharded input: the sample files in order (n_files > 1), else NULL */
    int n_files;
    int cur;     /* the file open in img */
    long *first; /* [n_files + 1]: sequence number of each file's first sample */
    bool has_labels;
    long start;
    long end;
    ed_dtype dtype;
    unsigned char *lab_chunk; /* S_LABEL_CHUNK * lab.esize bytes, binary label files only */
    ed_view view;             /* ed_stream_set_view: reads deliver the view (float32) */
    unsigned char *view_raw;  /* S_VIEW_CHUNK raw samples under a view */
};

/* ---- sharded inputs ------------------------------------------------------------------------- */

/* Counts every file's samples (one file open at a time), checks they agree on dim and element
 * type, and leaves the first one open in s->img. */
static int s_shards_open(ed_stream *s, const char *list, ed_err *err)
{
    s->first = calloc((size_t)s->n_files + 1, sizeof *s->first);
    if (!s->first)
        return ed_err_set(err, ED_ENOMEM, "%s: out of memory", list);
    int dim = 0;
    edd_elem el = EDD_EL_U8;
    for (int i = 0; i < s->n_files; i++) {
        edd_src src;
        int rc = edd_src_open(&src, s->files[i], false, err);
        if (rc < 0) {
            edd_src_close(&src);
            return rc;
        }
        if (i == 0) {
            dim = src.dim;
            el = src.el;
        } else if (src.dim != dim || src.el != el) {
            rc = ed_err_set(err, ED_ESHAPE,
                            "%s has %d values of type %s per sample, %s has %d of %s: "
                            "the files of one input must agree",
                            s->files[i], src.dim, src.el == EDD_EL_U8 ? "u8" : "f32", s->files[0],
                            dim, el == EDD_EL_U8 ? "u8" : "f32");
        }
        s->first[i + 1] = s->first[i] + src.total;
        edd_src_close(&src);
        if (rc < 0)
            return rc;
    }
    s->cur = 0;
    return edd_src_open(&s->img, s->files[0], false, err);
}

/* Makes file f the open one (positioned at its start). */
static int s_shard_switch(ed_stream *s, int f, ed_err *err)
{
    if (f == s->cur && s->img.gz)
        return 0;
    edd_src_close(&s->img);
    s->cur = f;
    int rc = edd_src_open(&s->img, s->files[f], false, err);
    if (rc == 0 && s->img.total != s->first[f + 1] - s->first[f])
        rc = ed_err_set(err, ED_EFORMAT, "%s: now holds %ld samples, %ld when the input was opened",
                        s->files[f], s->img.total, s->first[f + 1] - s->first[f]);
    return rc;
}

/* Reads across file boundaries (no labels). */
static long s_shards_read(ed_stream *s, void *x, int32_t *y, long n, ed_err *err)
{
    const size_t sb = (size_t)s->img.dim * ed_dtype_size(s->dtype);
    long done = 0;
    while (done < n) {
        long pos = s->first[s->cur] + s->img.pos;
        if (pos >= s->end)
            break;
        if (pos >= s->first[s->cur + 1]) {
            int rc = s_shard_switch(s, s->cur + 1, err);
            if (rc < 0)
                return rc;
            continue;
        }
        long here = s->first[s->cur + 1] - pos, want = n - done;
        if (here > s->end - pos)
            here = s->end - pos;
        if (want > here)
            want = here;
        unsigned char *dst = (unsigned char *)x + (size_t)done * sb;
        int rc = s->img.fmt == EDD_FMT_CSV
                     ? edd_csv_read_samples(&s->img, (float *)(void *)dst, want, err)
                     : edd_read_records(&s->img, dst, want, err);
        if (rc < 0)
            return rc;
        for (long i = 0; y && i < want; i++)
            y[done + i] = -1;
        done += want;
    }
    return done;
}

/* ---- streams -------------------------------------------------------------------------------- */

ed_stream *ed_stream_open(const ed_dataset_spec *spec, ed_err *err)
{
    if (!spec || !spec->images) {
        ed_err_set(err, ED_EINVAL, "ed_stream_open: no sample file given");
        return NULL;
    }
    ed_stream *s = calloc(1, sizeof *s);
    if (!s) {
        ed_err_set(err, ED_ENOMEM, "%s: out of memory", spec->images);
        return NULL;
    }
    struct stat sb;
    const bool exists = stat(spec->images, &sb) == 0;
    if ((exists && S_ISDIR(sb.st_mode)) || (!exists && strpbrk(spec->images, ",*?["))) {
        /* a directory, a list or a glob: several files read as one sequence */
        if (ed_paths_expand(spec->images, &s->files, &s->n_files, err) < 0)
            goto fail;
        if (s->n_files == 1) {
            ed_paths_free(&s->files, s->n_files);
            s->n_files = 0;
        } else if (spec->labels) {
            ed_err_set(err, ED_EINVAL,
                       "%s: several sample files need an unlabeled set (no labels "
                       "file)",
                       spec->images);
            goto fail;
        }
    }
    if (s->files ? s_shards_open(s, spec->images, err) < 0
                 : edd_src_open(&s->img, spec->images, false, err) < 0)
        goto fail;
    s->dtype = s->img.el == EDD_EL_U8 ? ED_DTYPE_U8 : ED_DTYPE_F32;
    if (spec->labels) {
        s->has_labels = true;
        if (edd_src_open(&s->lab, spec->labels, true, err) < 0)
            goto fail;
        if (s->lab.total != s->img.total) {
            ed_err_set(err, ED_ESHAPE, "%s has %ld labels but %s has %ld samples", s->lab.path,
                       s->lab.total, s->img.path, s->img.total);
            goto fail;
        }
        if (s->lab.fmt != EDD_FMT_CSV) {
            s->lab_chunk = malloc((size_t)S_LABEL_CHUNK * s->lab.esize);
            if (!s->lab_chunk) {
                ed_err_set(err, ED_ENOMEM, "%s: out of memory", s->lab.path);
                goto fail;
            }
        }
    }
    const long total = s->files ? s->first[s->n_files] : s->img.total;
    s->start = spec->start;
    s->end = spec->end < 0 ? total : spec->end;
    if (s->start < 0 || s->start > s->end || s->end > total) {
        ed_err_set(err, ED_EINVAL, "%s: range [%ld, %ld) is outside the %s %ld samples",
                   s->files ? spec->images : s->img.path, spec->start, spec->end,
                   s->files ? "files'" : "file's", total);
        goto fail;
    }
    if (ed_stream_rewind(s, err) < 0)
        goto fail;
    return s;
fail:
    ed_stream_destroy(&s);
    return NULL;
}

void ed_stream_destroy(ed_stream **ps)
{
    if (!ps || !*ps)
        return;
    ed_stream *s = *ps;
    edd_src_close(&s->img);
    edd_src_close(&s->lab);
    ed_paths_free(&s->files, s->n_files);
    free(s->first);
    free(s->lab_chunk);
    free(s->view_raw);
    free(s);
    *ps = NULL;
}

long ed_stream_count(const ed_stream *s)
{
    return s->end - s->start;
}

int ed_stream_dim(const ed_stream *s)
{
    return ed_view_on(&s->view) ? s->view.out_dim : s->img.dim;
}

ed_dtype ed_stream_dtype(const ed_stream *s)
{
    return ed_view_on(&s->view) ? ED_DTYPE_F32 : s->dtype;
}

int ed_stream_set_view(ed_stream *s, const ed_view *view, ed_err *err)
{
    if (!ed_view_on(view))
        return 0;
    if (ed_view_on(&s->view))
        return ed_err_set(err, ED_EINVAL, "%s: the stream has a view already", s->img.path);
    ed_view v = *view;
    if (ed_view_bind(&v, s->img.dim, err))
        return ed_err_wrap(err, "%s", s->img.path);
    s->view_raw = malloc((size_t)S_VIEW_CHUNK * (size_t)s->img.dim * ed_dtype_size(s->dtype));
    if (!s->view_raw)
        return ed_err_set(err, ED_ENOMEM, "%s: out of memory", s->img.path);
    s->view = v;
    return 0;
}

bool ed_stream_has_labels(const ed_stream *s)
{
    return s->has_labels;
}

const char *ed_stream_path(const ed_stream *s)
{
    return s->img.path;
}

int ed_stream_rewind(ed_stream *s, ed_err *err)
{
    if (!s)
        return ed_err_set(err, ED_EINVAL, "ed_stream_rewind: NULL stream");
    if (s->files) {
        int f = 0;
        while (f + 1 < s->n_files && s->first[f + 1] <= s->start)
            f++;
        int rc = s_shard_switch(s, f, err);
        if (rc == 0)
            rc = edd_src_seek(&s->img, s->start - s->first[f], err);
        return rc;
    }
    int rc = edd_src_seek(&s->img, s->start, err);
    if (rc == 0 && s->has_labels)
        rc = edd_src_seek(&s->lab, s->start, err);
    return rc;
}

/* Reads n labels (converted to int32, range-checked) into y (may be NULL: skip). */
static int s_read_labels(ed_stream *s, int32_t *y, long n, ed_err *err)
{
    edd_src *src = &s->lab;
    if (src->fmt == EDD_FMT_CSV) {
        for (long i = 0; i < n; i++) {
            int rc = edd_csv_next_row(src, err);
            if (rc == 0)
                rc = ed_err_set(err, ED_ETRUNC,
                                "%s: file ended after %ld of %ld rows (changed since open?)",
                                src->path, src->pos, src->total);
            int32_t v = -1;
            if (rc < 0 || (rc = edd_csv_label(src, src->pos, &v, err)) < 0)
                return rc;
            if (y)
                y[i] = v;
            src->pos++;
        }
        return 0;
    }
    for (long done = 0; done < n;) {
        long c = n - done < S_LABEL_CHUNK ? n - done : S_LABEL_CHUNK;
        long base = src->pos;
        int rc = edd_read_records(src, s->lab_chunk, c, err);
        if (rc < 0)
            return rc;
        for (long i = 0; i < c; i++) {
            int64_t v;
            const unsigned char *p = s->lab_chunk + (size_t)i * src->esize;
            if (src->el == EDD_EL_U8) {
                v = p[0];
            } else if (src->el == EDD_EL_I32) {
                int32_t t;
                memcpy(&t, p, 4);
                v = t;
            } else {
                memcpy(&v, p, 8);
            }
            if (v < 0 || v > INT32_MAX)
                return ed_err_set(err, ED_EFORMAT,
                                  "%s: label at index %ld is %" PRId64 ", outside [0, %d]",
                                  src->path, base + i, v, INT32_MAX);
            if (y)
                y[done + i] = (int32_t)v;
        }
        done += c;
    }
    return 0;
}

/* ed_stream_read without the view: the file's own samples. */
static long s_read_raw(ed_stream *s, void *x, int32_t *y, long n, ed_err *err)
{
    if (s->files)
        return s_shards_read(s, x, y, n, err);
    long left = s->end - s->img.pos;
    if (n > left)
        n = left;
    if (n <= 0)
        return 0;
    int rc;
    if (s->img.fmt == EDD_FMT_CSV)
        rc = edd_csv_read_samples(&s->img, x, n, err);
    else
        rc = edd_read_records(&s->img, x, n, err);
    if (rc < 0)
        return rc;
    if (s->has_labels) {
        if ((rc = s_read_labels(s, y, n, err)) < 0)
            return rc;
    } else if (y) {
        for (long i = 0; i < n; i++)
            y[i] = -1;
    }
    return n;
}

long ed_stream_read(ed_stream *s, void *x, int32_t *y, long n, ed_err *err)
{
    if (!s || n < 0 || (!x && n > 0))
        return ed_err_set(err, ED_EINVAL, "ed_stream_read: bad arguments");
    if (!ed_view_on(&s->view))
        return s_read_raw(s, x, y, n, err);
    long done = 0;
    while (done < n) {
        const long want = n - done < S_VIEW_CHUNK ? n - done : S_VIEW_CHUNK;
        const long got = s_read_raw(s, s->view_raw, y ? y + done : NULL, want, err);
        if (got < 0)
            return got;
        if (got == 0)
            break;
        ed_view_apply(&s->view, s->view_raw, s->dtype, got,
                      (float *)x + (size_t)done * (size_t)s->view.out_dim);
        done += got;
    }
    return done;
}
