/*
 * ed_loader: batches from a stream through a shuffle buffer (see ed_loader.h).
 *
 * The loader is tf.data's shuffle buffer: it holds up to shuffle_buffer samples, emits a uniformly
 * chosen slot and refills that slot from the stream; when the stream is exhausted it drains the
 * buffer in random order. Each sample of the range comes out exactly once per epoch, and the whole
 * sequence of epochs is fixed by the seed. Memory is allocated once in ed_loader_new.
 */
#include "ed_loader.h"
#include "ed_mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct ed_loader {
    ed_stream *s;
    ed_loader_config cfg;
    ed_rng rng;
    size_t sb;             /* bytes per sample */
    long cap;              /* shuffle slots; 0 = file order, no shuffle buffer */
    unsigned char *slot_x; /* (cap, dim) samples */
    int32_t *slot_y;       /* (cap) labels */
    int64_t *slot_i;       /* (cap) sample numbers within the range */
    long filled;           /* occupied slots */
    long fed;              /* samples of this epoch read from the stream */
    bool started;          /* the shuffle buffer was filled for this epoch */
    unsigned char *bx;     /* (batch_size, dim) */
    int32_t *by;           /* (batch_size) */
    int64_t *bi;           /* (batch_size) sample numbers within the range */
};

/* ---- loader --------------------------------------------------------------------------------- */

ed_loader *ed_loader_new(ed_stream **ps, const ed_loader_config *cfg, ed_err *err)
{
    ed_stream *s = ps ? *ps : NULL;
    if (ps)
        *ps = NULL;
    ed_loader *l = NULL;
    if (!s || !cfg || cfg->batch_size < 1 || cfg->shuffle_buffer < 0) {
        ed_err_set(err, ED_EINVAL,
                   "ed_loader_new: need a stream, batch_size >= 1 and shuffle_buffer >= 0");
        goto fail;
    }
    l = calloc(1, sizeof *l);
    if (!l) {
        ed_err_set(err, ED_ENOMEM, "%s: out of memory for the loader", ed_stream_path(s));
        goto fail;
    }
    l->s = s;
    s = NULL;
    l->cfg = *cfg;
    ed_rng_seed(&l->rng, cfg->seed);
    l->sb = (size_t)ed_stream_dim(l->s) * ed_dtype_size(ed_stream_dtype(l->s));
    long count = ed_stream_count(l->s);
    l->cap = cfg->shuffle_buffer < count ? cfg->shuffle_buffer : count;
    if (cfg->shuffle_buffer <= 1 || l->cap < 1)
        l->cap = 0;
    if ((size_t)l->cap > SIZE_MAX / l->sb || (size_t)cfg->batch_size > SIZE_MAX / l->sb) {
        ed_err_set(err, ED_ETOOBIG, "%s: shuffle buffer or batch too large", ed_stream_path(l->s));
        goto fail;
    }
    if (l->cap > 0) {
        l->slot_x = ed_mem_alloc((size_t)l->cap * l->sb);
        l->slot_y = malloc((size_t)l->cap * sizeof *l->slot_y);
        l->slot_i = malloc((size_t)l->cap * sizeof *l->slot_i);
        if (!l->slot_x || !l->slot_y || !l->slot_i) {
            ed_err_set(err, ED_ENOMEM,
                       "%s: cannot allocate a shuffle buffer of %ld samples (%zu bytes)",
                       ed_stream_path(l->s), l->cap, (size_t)l->cap * l->sb);
            goto fail;
        }
    }
    l->bx = malloc((size_t)cfg->batch_size * l->sb);
    l->by = malloc((size_t)cfg->batch_size * sizeof *l->by);
    l->bi = malloc((size_t)cfg->batch_size * sizeof *l->bi);
    if (!l->bx || !l->by || !l->bi) {
        ed_err_set(err, ED_ENOMEM, "%s: cannot allocate a batch of %d samples",
                   ed_stream_path(l->s), cfg->batch_size);
        goto fail;
    }
    return l;
fail:
    ed_stream_destroy(&s);
    ed_loader_destroy(&l);
    return NULL;
}

void ed_loader_destroy(ed_loader **pl)
{
    if (!pl || !*pl)
        return;
    ed_loader *l = *pl;
    ed_stream_destroy(&l->s);
    free(l->slot_x);
    free(l->slot_y);
    free(l->slot_i);
    free(l->bx);
    free(l->by);
    free(l->bi);
    free(l);
    *pl = NULL;
}

const ed_stream *ed_loader_stream(const ed_loader *l)
{
    return l->s;
}

int ed_loader_next(ed_loader *l, ed_batch *out, ed_err *err)
{
    if (!l || !out)
        return ed_err_set(err, ED_EINVAL, "ed_loader_next: NULL argument");
    long bs = l->cfg.batch_size;
    long n = 0;
    if (l->cap == 0) {
        long r = ed_stream_read(l->s, l->bx, l->by, bs, err);
        if (r < 0)
            return (int)r;
        for (long i = 0; i < r; i++)
            l->bi[i] = l->fed + i;
        l->fed += r;
        n = r;
    } else {
        long count = ed_stream_count(l->s);
        if (!l->started) {
            long r = ed_stream_read(l->s, l->slot_x, l->slot_y, l->cap, err);
            if (r < 0)
                return (int)r;
            l->filled = r;
            l->fed = r;
            for (long i = 0; i < r; i++)
                l->slot_i[i] = i;
            l->started = true;
        }
        size_t sb = l->sb;
        while (n < bs && l->filled > 0) {
            long j = (long)ed_rng_below(&l->rng, (uint64_t)l->filled);
            unsigned char *slot = l->slot_x + (size_t)j * sb;
            memcpy(l->bx + (size_t)n * sb, slot, sb);
            l->by[n] = l->slot_y[j];
            l->bi[n] = l->slot_i[j];
            n++;
            if (l->fed < count) {
                long r = ed_stream_read(l->s, slot, l->slot_y + j, 1, err);
                if (r < 0)
                    return (int)r;
                if (r != 1)
                    return ed_err_set(err, ED_ETRUNC, "%s: stream ended early",
                                      ed_stream_path(l->s));
                l->slot_i[j] = l->fed++;
            } else {
                long last = --l->filled;
                if (j != last) {
                    memcpy(slot, l->slot_x + (size_t)last * sb, sb);
                    l->slot_y[j] = l->slot_y[last];
                    l->slot_i[j] = l->slot_i[last];
                }
            }
        }
    }
    if (n < bs && l->cfg.drop_last)
        n = 0;
    out->n = (int)n;
    out->dim = ed_stream_dim(l->s);
    out->dtype = ed_stream_dtype(l->s);
    out->x = l->bx;
    out->y = l->by;
    out->idx = l->bi;
    return (int)n;
}

int ed_loader_reset(ed_loader *l, ed_err *err)
{
    if (!l)
        return ed_err_set(err, ED_EINVAL, "ed_loader_reset: NULL loader");
    l->started = false;
    l->filled = 0;
    l->fed = 0;
    return ed_stream_rewind(l->s, err);
}

void ed_loader_rng_get(const ed_loader *l, ed_rng *out)
{
    *out = l->rng;
}

void ed_loader_rng_set(ed_loader *l, const ed_rng *state)
{
    l->rng = *state;
}
