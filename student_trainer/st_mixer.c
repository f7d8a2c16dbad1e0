/* st_mixer: labeled + unlabeled batches in proportion (see st_mixer.h). */
#include "st_mixer.h"

#include <stdlib.h>
#include <string.h>

#include "ed_loader.h"
#include "ed_rng.h"

typedef struct {
    ed_loader *loader;
    long count;   /* samples per epoch */
    long left;    /* not yet delivered this epoch */
    ed_batch cur; /* the loader's current batch */
    int pos;      /* next sample of cur */
} st_source;

struct st_mixer {
    st_source src[2]; /* [0] labeled, [1] unlabeled (loader NULL when absent) */
    int batch_size;
    int dim;
    ed_dtype dtype;
    size_t sample_bytes;
    ed_rng rng;
    uint8_t *x;   /* (batch_size, dim) of dtype */
    int32_t *y;   /* (batch_size) */
    int64_t *idx; /* (batch_size) sample numbers within their source's range */
};

static int s_source_open(st_source *s, const ed_dataset_spec *spec, int batch, long shuffle,
                         uint64_t seed, ed_err *err)
{
    ed_stream *st = ed_stream_open(spec, err);
    if (!st)
        return err ? err->code : ED_EIO;
    s->count = s->left = ed_stream_count(st);
    ed_loader_config lc = {
        .batch_size = batch, .shuffle_buffer = shuffle, .seed = seed, .drop_last = false};
    s->loader = ed_loader_new(&st, &lc, err);
    return s->loader ? 0 : (err ? err->code : ED_ENOMEM);
}

st_mixer *st_mixer_open(const ed_dataset_spec *labeled, const ed_dataset_spec *unlabeled,
                        int batch_size, long shuffle_buffer, uint64_t seed, ed_err *err)
{
    st_mixer *m = calloc(1, sizeof *m);
    if (!m) {
        ed_err_set(err, ED_ENOMEM, "out of memory");
        return NULL;
    }
    m->batch_size = batch_size;
    ed_rng_seed(&m->rng, seed ^ 0x4d4958ULL);
    if (s_source_open(&m->src[0], labeled, batch_size, shuffle_buffer, seed * 2 + 1, err))
        goto fail;
    const ed_stream *ls = ed_loader_stream(m->src[0].loader);
    if (!ed_stream_has_labels(ls)) {
        ed_err_set(err, ED_EINVAL, "%s: the labeled set needs a labels file", labeled->images);
        goto fail;
    }
    m->dim = ed_stream_dim(ls);
    m->dtype = ed_stream_dtype(ls);
    if (unlabeled) {
        if (s_source_open(&m->src[1], unlabeled, batch_size, shuffle_buffer, seed * 2 + 2, err))
            goto fail;
        const ed_stream *us = ed_loader_stream(m->src[1].loader);
        if (ed_stream_dim(us) != m->dim || ed_stream_dtype(us) != m->dtype) {
            ed_err_set(err, ED_ESHAPE, "%s has %d %s values per sample, the labeled %s has %d %s",
                       unlabeled->images, ed_stream_dim(us), ed_dtype_name(ed_stream_dtype(us)),
                       labeled->images, m->dim, ed_dtype_name(m->dtype));
            goto fail;
        }
    }
    m->sample_bytes = (size_t)m->dim * ed_dtype_size(m->dtype);
    m->x = malloc(m->sample_bytes * (size_t)batch_size);
    m->y = malloc(sizeof(int32_t) * (size_t)batch_size);
    m->idx = malloc(sizeof(int64_t) * (size_t)batch_size);
    if (!m->x || !m->y || !m->idx) {
        ed_err_set(err, ED_ENOMEM, "out of memory");
        goto fail;
    }
    return m;
fail:
    st_mixer_destroy(&m);
    return NULL;
}

void st_mixer_destroy(st_mixer **pm)
{
    if (!pm || !*pm)
        return;
    st_mixer *m = *pm;
    for (int i = 0; i < 2; i++)
        ed_loader_destroy(&m->src[i].loader);
    free(m->x);
    free(m->y);
    free(m->idx);
    free(m);
    *pm = NULL;
}

long st_mixer_labeled_count(const st_mixer *m)
{
    return m->src[0].count;
}

long st_mixer_unlabeled_count(const st_mixer *m)
{
    return m->src[1].loader ? m->src[1].count : 0;
}

int st_mixer_dim(const st_mixer *m)
{
    return m->dim;
}

ed_dtype st_mixer_dtype(const st_mixer *m)
{
    return m->dtype;
}

/* Copies the next sample of source s into row i of the batch. */
static int s_take(st_mixer *m, st_source *s, bool labeled, int i, ed_err *err)
{
    if (s->pos >= s->cur.n) {
        int n = ed_loader_next(s->loader, &s->cur, err);
        if (n < 0)
            return n;
        if (n == 0)
            return ed_err_set(err, ED_ETRUNC, "%s ended before its declared count",
                              ed_stream_path(ed_loader_stream(s->loader)));
        s->pos = 0;
    }
    memcpy(m->x + (size_t)i * m->sample_bytes,
           (const uint8_t *)s->cur.x + (size_t)s->pos * m->sample_bytes, m->sample_bytes);
    m->y[i] = labeled ? s->cur.y[s->pos] : -1;
    m->idx[i] = s->cur.idx[s->pos];
    s->pos++;
    s->left--;
    return 0;
}

int st_mixer_next(st_mixer *m, ed_batch *out, ed_err *err)
{
    int n = 0;
    while (n < m->batch_size) {
        long l = m->src[0].left, u = m->src[1].loader ? m->src[1].left : 0;
        if (l + u == 0)
            break;
        bool take_labeled = ed_rng_below(&m->rng, (uint64_t)(l + u)) < (uint64_t)l;
        int rc = s_take(m, &m->src[take_labeled ? 0 : 1], take_labeled, n, err);
        if (rc)
            return rc;
        n++;
    }
    *out =
        (ed_batch){.n = n, .dim = m->dim, .dtype = m->dtype, .x = m->x, .y = m->y, .idx = m->idx};
    return n;
}

int st_mixer_reset(st_mixer *m, ed_err *err)
{
    for (int i = 0; i < 2; i++) {
        st_source *s = &m->src[i];
        if (!s->loader)
            continue;
        int rc = ed_loader_reset(s->loader, err);
        if (rc)
            return rc;
        s->left = s->count;
        s->pos = s->cur.n = 0;
    }
    return 0;
}

void st_mixer_state_get(const st_mixer *m, st_mixer_state *out)
{
    *out = (st_mixer_state){.mix = m->rng};
    for (int i = 0; i < 2; i++)
        if (m->src[i].loader)
            ed_loader_rng_get(m->src[i].loader, &out->loader[i]);
}

int st_mixer_restart(st_mixer *m, const st_mixer_state *state, ed_err *err)
{
    int rc = st_mixer_reset(m, err);
    if (rc)
        return rc;
    m->rng = state->mix;
    for (int i = 0; i < 2; i++)
        if (m->src[i].loader)
            ed_loader_rng_set(m->src[i].loader, &state->loader[i]);
    return 0;
}

int st_mixer_skip(st_mixer *m, long n, ed_err *err)
{
    for (long i = 0; i < n; i++) {
        ed_batch b;
        int got = st_mixer_next(m, &b, err);
        if (got < 0)
            return got;
        if (got == 0)
            return ed_err_set(err, ED_ETRUNC,
                              "the epoch ended after %ld of the %ld batches to skip", i, n);
    }
    return 0;
}
