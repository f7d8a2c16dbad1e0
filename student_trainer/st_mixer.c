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
    uint64_t seed;
    ed_loader *sloader; /* the student's aligned file (st_mixer_set_student), or NULL */
    ed_batch scur;      /* its current batch: the same samples as cur */
} st_source;

struct st_mixer {
    st_source src[2]; /* [0] labeled, [1] unlabeled (loader NULL when absent) */
    int batch_size;
    int dim;
    ed_dtype dtype;
    size_t sample_bytes;
    ed_rng rng;
    long shuffle_buffer;
    uint8_t *x;   /* (batch_size, dim) of dtype */
    int32_t *y;   /* (batch_size) */
    int64_t *idx; /* (batch_size) sample numbers within their source's range */
    /* privileged information (st_mixer_set_student): the student's row of every sample */
    bool student;
    ed_view view; /* computed from the teacher rows when there are no student files */
    int sdim;
    ed_dtype sdtype;
    size_t s_sample_bytes;
    uint8_t *sx; /* (batch_size, sdim) of sdtype */
};

/* Opens a loader over spec (through view, may be NULL). The student's loader of a source gets the
 * same seed, batch size and shuffle buffer as the source's own: equal counts then give the same
 * order, which s_take checks sample by sample. */
static ed_loader *s_loader_open(const ed_dataset_spec *spec, const ed_view *view, int batch,
                                long shuffle, uint64_t seed, long *count, ed_err *err)
{
    ed_stream *st = ed_stream_open(spec, err);
    if (!st)
        return NULL;
    if (ed_stream_set_view(st, view, err)) {
        ed_stream_destroy(&st);
        return NULL;
    }
    *count = ed_stream_count(st);
    ed_loader_config lc = {
        .batch_size = batch, .shuffle_buffer = shuffle, .seed = seed, .drop_last = false};
    return ed_loader_new(&st, &lc, err);
}

static int s_source_open(st_source *s, const ed_dataset_spec *spec, int batch, long shuffle,
                         uint64_t seed, ed_err *err)
{
    s->seed = seed;
    s->loader = s_loader_open(spec, NULL, batch, shuffle, seed, &s->count, err);
    s->left = s->count;
    return s->loader ? 0 : (err && err->code ? err->code : ED_EIO);
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
    m->shuffle_buffer = shuffle_buffer;
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
    for (int i = 0; i < 2; i++) {
        ed_loader_destroy(&m->src[i].loader);
        ed_loader_destroy(&m->src[i].sloader);
    }
    free(m->sx);
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

int st_mixer_batch_size(const st_mixer *m)
{
    return m->batch_size;
}

int st_mixer_dim(const st_mixer *m)
{
    return m->dim;
}

ed_dtype st_mixer_dtype(const st_mixer *m)
{
    return m->dtype;
}

/* The next batch of loader l into *b; the end of the epoch here is a truncated file. */
static int s_refill(ed_loader *l, ed_batch *b, ed_err *err)
{
    int n = ed_loader_next(l, b, err);
    if (n == 0)
        return ed_err_set(err, ED_ETRUNC, "%s ended before its declared count",
                          ed_stream_path(ed_loader_stream(l)));
    return n < 0 ? n : 0;
}

/* Copies the student's row of the sample at s->pos into row i of the student batch. */
static int s_take_student(st_mixer *m, st_source *s, int i, ed_err *err)
{
    uint8_t *row = m->sx + (size_t)i * m->s_sample_bytes;
    if (!s->sloader) {
        ed_view_apply(&m->view, (const uint8_t *)s->cur.x + (size_t)s->pos * m->sample_bytes,
                      m->dtype, 1, (float *)(void *)row);
        return 0;
    }
    if (s->scur.n != s->cur.n || s->scur.idx[s->pos] != s->cur.idx[s->pos])
        return ed_err_set(
            err, ED_EINVAL, "%s is out of step with %s at sample %lld (internal error)",
            ed_stream_path(ed_loader_stream(s->sloader)),
            ed_stream_path(ed_loader_stream(s->loader)), (long long)s->cur.idx[s->pos]);
    memcpy(row, (const uint8_t *)s->scur.x + (size_t)s->pos * m->s_sample_bytes, m->s_sample_bytes);
    return 0;
}

/* Copies the next sample of source s into row i of the batch (and of the student's batch). */
static int s_take(st_mixer *m, st_source *s, bool labeled, int i, ed_err *err)
{
    if (s->pos >= s->cur.n) {
        int rc = s_refill(s->loader, &s->cur, err);
        if (rc == 0 && s->sloader)
            rc = s_refill(s->sloader, &s->scur, err);
        if (rc)
            return rc;
        s->pos = 0;
    }
    if (m->student) {
        int rc = s_take_student(m, s, i, err);
        if (rc)
            return rc;
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
        if (rc == 0 && s->sloader)
            rc = ed_loader_reset(s->sloader, err);
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
    for (int i = 0; i < 2; i++) {
        if (m->src[i].loader)
            ed_loader_rng_set(m->src[i].loader, &state->loader[i]);
        if (m->src[i].sloader) /* in step with its source: the same states */
            ed_loader_rng_set(m->src[i].sloader, &state->loader[i]);
    }
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

int st_mixer_set_student(st_mixer *m, const ed_dataset_spec *labeled,
                         const ed_dataset_spec *unlabeled, const ed_view *view, ed_err *err)
{
    const bool unl = m->src[1].loader != NULL;
    if (m->student || (!labeled && (unlabeled || !ed_view_on(view))) ||
        (labeled && unl != (unlabeled != NULL)))
        return ed_err_set(err, ED_EINVAL,
                          "st_mixer_set_student: student files for every source (or none, and "
                          "a view)");
    m->view = *view;
    if (!labeled && ed_view_bind(&m->view, m->dim, err))
        return err->code;
    const ed_dataset_spec *specs[2] = {labeled, unlabeled};
    for (int i = 0; labeled && i < 2; i++) {
        st_source *s = &m->src[i];
        if (!s->loader)
            continue;
        long count = 0;
        s->sloader =
            s_loader_open(specs[i], view, m->batch_size, m->shuffle_buffer, s->seed, &count, err);
        if (!s->sloader)
            return err && err->code ? err->code : ED_EIO;
        if (count != s->count)
            return ed_err_set(err, ED_ESHAPE, "%s: %ld samples in range, the teachers' have %ld",
                              specs[i]->images, count, s->count);
        const ed_stream *st = ed_loader_stream(s->sloader);
        const int dim = ed_stream_dim(st);
        const ed_dtype dt = ed_stream_dtype(st);
        if (i == 1 && (dim != m->sdim || dt != m->sdtype))
            return ed_err_set(err, ED_ESHAPE, "%s has %d %s values per sample, %s has %d %s",
                              specs[1]->images, dim, ed_dtype_name(dt), specs[0]->images, m->sdim,
                              ed_dtype_name(m->sdtype));
        m->sdim = dim;
        m->sdtype = dt;
    }
    if (!labeled) {
        m->sdim = m->view.out_dim;
        m->sdtype = ED_DTYPE_F32;
    }
    m->s_sample_bytes = (size_t)m->sdim * ed_dtype_size(m->sdtype);
    if (!(m->sx = malloc(m->s_sample_bytes * (size_t)m->batch_size)))
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    m->student = true;
    return 0;
}

bool st_mixer_has_student(const st_mixer *m)
{
    return m->student;
}

ed_dtype st_mixer_student_dtype(const st_mixer *m)
{
    return m->student ? m->sdtype : m->dtype;
}

int st_mixer_student_dim(const st_mixer *m)
{
    return m->student ? m->sdim : m->dim;
}

void st_mixer_student(const st_mixer *m, const ed_batch *b, ed_batch *out)
{
    *out = (ed_batch){
        .n = b->n, .dim = m->sdim, .dtype = m->sdtype, .x = m->sx, .y = m->y, .idx = m->idx};
}
