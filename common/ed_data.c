/*
 * ed_data: streams of samples and labels over the format readers (ed_data_formats.c).
 *
 * A stream pairs a sample source with an optional label source and a [start, end) range, and reads
 * both sequentially with nothing proportional to the file size; labels are converted to int32 and
 * range-checked in chunks.
 */
#include "ed_data.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ed_data_internal.h"

#define S_LABEL_CHUNK 4096                /* labels converted per step */

struct ed_stream {
    edd_src img;
    edd_src lab;
    bool has_labels;
    long start;
    long end;
    ed_dtype dtype;
    unsigned char *lab_chunk; /* S_LABEL_CHUNK * lab.esize bytes, binary label files only */
};

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
    if (edd_src_open(&s->img, spec->images, false, err) < 0)
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
    s->start = spec->start;
    s->end = spec->end < 0 ? s->img.total : spec->end;
    if (s->start < 0 || s->start > s->end || s->end > s->img.total) {
        ed_err_set(err, ED_EINVAL, "%s: range [%ld, %ld) is outside the file's %ld samples",
                   s->img.path, spec->start, spec->end, s->img.total);
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
    free(s->lab_chunk);
    free(s);
    *ps = NULL;
}

long ed_stream_count(const ed_stream *s)
{
    return s->end - s->start;
}

int ed_stream_dim(const ed_stream *s)
{
    return s->img.dim;
}

ed_dtype ed_stream_dtype(const ed_stream *s)
{
    return s->dtype;
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
                rc = ed_err_set(err, ED_ETRUNC, "%s: file ended after %ld of %ld rows (changed since open?)",
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

long ed_stream_read(ed_stream *s, void *x, int32_t *y, long n, ed_err *err)
{
    if (!s || n < 0 || (!x && n > 0))
        return ed_err_set(err, ED_EINVAL, "ed_stream_read: bad arguments");
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
