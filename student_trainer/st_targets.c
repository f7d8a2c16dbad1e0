/*
 * st_targets: soft targets from a target store for the distillation loop (see st_targets.h).
 */
#include "st_targets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_log.h"
#include "ed_paths.h"
#include "ed_target_store.h"
#include "st_label.h"

#define ST_TARGETS_SYNC_ROWS 4096 /* --cache-targets: rows between fsyncs of the store */

typedef struct {
    int n;
    unsigned char *x; /* (max_batch, dim) raw samples */
    int32_t *y;
    int64_t *idx;
    float *z; /* (members, max_batch, classes) */
    const float *ptr[ED_TS_MAX_MEMBERS];
    int dim;
    ed_dtype dtype;
    int n_live;        /* rows sent to the pool (mixing) */
    int *live_rows;    /* (max_batch) their positions in the batch */
    unsigned char *lx; /* (max_batch, dim) the rows sent to the pool */
    int32_t *ly;
    const float
        *out[ED_TS_MAX_MEMBERS];    /* what wait hands out: ptr[k], NULL for a missing member */
    bool missed[ED_TS_MAX_MEMBERS]; /* member k did not answer the slot's live rows */
} s_slot;

struct st_targets {
    ed_ts_reader *r;
    int K, C, max_batch, depth;
    int64_t offset[2]; /* store number of the labeled / unlabeled range's first sample */
    bool has[2];
    s_slot *slots;
    float *row;         /* (K, C) one sample */
    st_pool *pool;      /* mixing: live teachers for the datasets the store lacks */
    ed_ts_filler *fill; /* --cache-targets: the store being filled (NULL: read r) */
    const char *dir;
    int64_t synced, total; /* fill count at the last sync; samples of the store */
    long from_store, from_teachers, uncached; /* rows since the last st_targets_epoch_log */
    char kind[32];
    char describe[ED_TS_MAX_MEMBERS][160];
    char fingerprint[ED_TS_MAX_MEMBERS][32];
};

/* Finds one dataset of the run among the store's inputs: one file and range, or the files of a
 * sharded input as consecutive inputs. */
static int s_find(st_targets *t, int which, const ed_dataset_spec *spec, long count, ed_err *err)
{
    ed_dataset_spec *parts = NULL;
    char **files = NULL;
    int n = 0, nf = 0;
    int rc = st_label_dataset_inputs(spec, count, &parts, &n, &files, &nf, err);
    for (int i = 0; i < n && !rc; i++) {
        ed_ts_input id = {
            .path = (char *)parts[i].images, .start = parts[i].start, .end = parts[i].end};
        int64_t off = 0;
        rc = ed_ts_file_identity(parts[i].images, &id, err);
        if (!rc)
            rc = ed_ts_find_input(t->r, &id, &off, err);
        if (!rc && i == 0)
            t->offset[which] = off;
        if (!rc && i > 0) {
            int64_t expect = t->offset[which];
            for (int j = 0; j < i; j++)
                expect += parts[j].end - parts[j].start;
            if (off != expect)
                rc = ed_err_set(err, ED_ENOTFOUND,
                                "%s: the store holds this file at sample %lld, "
                                "not right after %s (label the files in the same order)",
                                parts[i].images, (long long)off, parts[i - 1].images);
        }
    }
    free(parts);
    ed_paths_free(&files, nf);
    if (rc)
        return ed_err_wrap(err, "--targets: the %s data", which ? "unlabeled" : "labeled");
    t->has[which] = true;
    return 0;
}

/* The part of opening both sources share: names, and the slots' buffers. */
static int s_setup(st_targets *t, const ed_ts_layout *lay, const char *dir, const char *how,
                   ed_err *err)
{
    t->dir = dir;
    if (lay->top_k)
        snprintf(t->kind, sizeof t->kind, "%s top-%d", ed_ts_dtype_name(lay->dtype), lay->top_k);
    else
        snprintf(t->kind, sizeof t->kind, "%s", ed_ts_dtype_name(lay->dtype));
    for (int k = 0; k < t->K; k++) {
        snprintf(t->describe[k], sizeof t->describe[k], "%s (%s) %s %s store %.80s",
                 lay->member[k].name, lay->member[k].fingerprint, how, t->kind, dir);
        memcpy(t->fingerprint[k], lay->member[k].fingerprint, sizeof t->fingerprint[k]);
    }
    t->slots = calloc((size_t)t->depth, sizeof *t->slots);
    t->row = malloc(sizeof(float) * (size_t)t->K * (size_t)t->C);
    if (!t->slots || !t->row)
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    const size_t mb = (size_t)t->max_batch;
    for (int s = 0; s < t->depth; s++) {
        s_slot *sl = &t->slots[s];
        sl->y = malloc(sizeof(int32_t) * mb);
        sl->idx = malloc(sizeof(int64_t) * mb);
        sl->z = malloc(sizeof(float) * (size_t)t->K * mb * (size_t)t->C);
        sl->live_rows = malloc(sizeof(int) * mb);
        sl->ly = malloc(sizeof(int32_t) * mb);
        if (!sl->y || !sl->idx || !sl->z || !sl->live_rows || !sl->ly)
            return ed_err_set(err, ED_ENOMEM, "out of memory");
        for (int k = 0; k < t->K; k++)
            sl->ptr[k] = sl->z + (size_t)k * mb * (size_t)t->C;
    }
    return 0;
}

st_targets *st_targets_open(const char *dir, const ed_dataset_spec *labeled, long labeled_count,
                            const ed_dataset_spec *unlabeled, long unlabeled_count, int classes,
                            int max_batch, int depth, bool allow_partial, ed_err *err)
{
    st_targets *t = calloc(1, sizeof *t);
    if (!t) {
        ed_err_set(err, ED_ENOMEM, "out of memory");
        return NULL;
    }
    if (!(t->r = ed_ts_open(dir, err)))
        goto fail;
    const ed_ts_layout *lay = ed_ts_reader_layout(t->r);
    t->K = lay->n_members;
    t->C = lay->classes;
    t->max_batch = max_batch;
    t->depth = depth;
    if (t->C != classes) {
        ed_err_set(err, ED_ESHAPE, "--targets %s: the store holds %d classes, the student has %d",
                   dir, t->C, classes);
        goto fail;
    }
    ed_err miss = {0};
    for (int which = 0; which < 2; which++) {
        const ed_dataset_spec *spec = which ? unlabeled : labeled;
        const long count = which ? unlabeled_count : labeled_count;
        if (!spec || count <= 0)
            continue;
        if (s_find(t, which, spec, count, err)) {
            if (!allow_partial || err->code != ED_ENOTFOUND)
                goto fail;
            miss = *err;
            ed_log_info("%s: not in the store, its targets come from the live teachers", err->msg);
        }
    }
    if (!t->has[0] && !t->has[1]) {
        if (miss.code)
            *err = miss;
        else
            ed_err_set(err, ED_ENOTFOUND, "--targets %s: the run has no data", dir);
        goto fail;
    }
    if (s_setup(t, lay, dir, "from the", err))
        goto fail;
    return t;
fail:
    st_targets_close(&t);
    return NULL;
}

st_targets *st_targets_open_fill(ed_ts_filler **fill, const char *dir, const ed_ts_layout *lay,
                                 const int64_t offset[2], const bool has[2], int max_batch,
                                 int depth, ed_err *err)
{
    st_targets *t = calloc(1, sizeof *t);
    if (!t) {
        ed_ts_filler_destroy(fill);
        ed_err_set(err, ED_ENOMEM, "out of memory");
        return NULL;
    }
    t->fill = *fill;
    *fill = NULL;
    t->K = lay->n_members;
    t->C = lay->classes;
    t->max_batch = max_batch;
    t->depth = depth;
    t->synced = ed_ts_filler_count(t->fill);
    t->total = lay->total;
    for (int i = 0; i < 2; i++) {
        t->offset[i] = offset[i];
        t->has[i] = has[i];
    }
    if (s_setup(t, lay, dir, "cached in the", err))
        st_targets_close(&t);
    return t;
}

void st_targets_close(st_targets **pt)
{
    if (!pt || !*pt)
        return;
    st_targets *t = *pt;
    for (int s = 0; t->slots && s < t->depth; s++) {
        free(t->slots[s].x);
        free(t->slots[s].y);
        free(t->slots[s].idx);
        free(t->slots[s].z);
        free(t->slots[s].live_rows);
        free(t->slots[s].lx);
        free(t->slots[s].ly);
    }
    free(t->slots);
    free(t->row);
    ed_ts_close(&t->r);
    ed_ts_filler_destroy(&t->fill);
    free(t);
    *pt = NULL;
}

int st_targets_member_count(const st_targets *t)
{
    return t->K;
}

const char *st_targets_member_describe(const st_targets *t, int k)
{
    return t->describe[k];
}

const char *st_targets_member_fingerprint(const st_targets *t, int k)
{
    return t->fingerprint[k];
}

const char *st_targets_kind(const st_targets *t)
{
    return t->kind;
}

int st_targets_attach_pool(st_targets *t, st_pool *pool, ed_err *err)
{
    const int K = st_pool_member_count(pool);
    if (K != t->K)
        return ed_err_set(err, ED_EFORMAT,
                          "--targets with --teachers: the store holds %d members, "
                          "the teachers are %d",
                          t->K, K);
    for (int k = 0; k < K; k++) {
        const char *d = st_pool_member_describe(pool, k), *f = strstr(d, "fnv1a64:");
        if (!f || strncmp(f, st_targets_member_fingerprint(t, k), 24))
            return ed_err_set(err, ED_EFORMAT,
                              "--targets with --teachers: member %d is %s in the "
                              "store but %s live (give the teachers in the store's order)",
                              k, st_targets_member_fingerprint(t, k), d);
    }
    t->pool = pool;
    return 0;
}

/* Mixing: sends the rows of datasets the store lacks to the pool as one sub-batch. */
static int s_submit_live(st_targets *t, s_slot *sl, int slot, size_t sb, ed_err *err)
{
    if (sl->n_live == 0)
        return 0;
    if (!t->pool)
        return ed_err_set(err, ED_EINVAL,
                          "--targets: the store has no targets for the %s data "
                          "(give --teachers too, to ask live teachers for them)",
                          sl->y[sl->live_rows[0]] >= 0 ? "labeled" : "unlabeled");
    if (!sl->lx && !(sl->lx = malloc(sb * (size_t)t->max_batch)))
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    for (int i = 0; i < sl->n_live; i++) {
        memcpy(sl->lx + (size_t)i * sb, sl->x + (size_t)sl->live_rows[i] * sb, sb);
        sl->ly[i] = sl->y[sl->live_rows[i]];
    }
    ed_batch sub = {.n = sl->n_live, .dim = sl->dim, .dtype = sl->dtype, .x = sl->lx, .y = sl->ly};
    return st_pool_submit(t->pool, slot, &sub, err);
}

int st_targets_submit(st_targets *t, int slot, const ed_batch *b, ed_err *err)
{
    if (slot < 0 || slot >= t->depth || b->n > t->max_batch || !b->idx)
        return ed_err_set(err, ED_EINVAL, "st_targets_submit: bad slot %d or batch of %d", slot,
                          b->n);
    s_slot *sl = &t->slots[slot];
    const size_t sb = (size_t)b->dim * ed_dtype_size(b->dtype);
    if (!sl->x && !(sl->x = malloc(sb * (size_t)t->max_batch)))
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    memcpy(sl->x, b->x, sb * (size_t)b->n);
    memcpy(sl->y, b->y, sizeof(int32_t) * (size_t)b->n);
    memcpy(sl->idx, b->idx, sizeof(int64_t) * (size_t)b->n);
    sl->n = b->n;
    sl->dim = b->dim;
    sl->dtype = b->dtype;
    sl->n_live = 0;
    for (int k = 0; k < t->K; k++) {
        sl->out[k] = sl->ptr[k];
        sl->missed[k] = false;
    }
    for (int i = 0; i < b->n; i++) {
        const int src = b->y[i] >= 0 ? 0 : 1;
        const int64_t g = t->offset[src] + b->idx[i];
        if (!t->has[src] || (t->fill && !ed_ts_filler_has(t->fill, g))) {
            sl->live_rows[sl->n_live++] = i;
            continue;
        }
        int rc =
            t->fill ? ed_ts_filler_get(t->fill, g, t->row, err) : ed_ts_read(t->r, g, t->row, err);
        if (rc)
            return rc;
        for (int k = 0; k < t->K; k++)
            memcpy((float *)sl->ptr[k] + (size_t)i * (size_t)t->C,
                   t->row + (size_t)k * (size_t)t->C, sizeof(float) * (size_t)t->C);
    }
    t->from_store += b->n - sl->n_live;
    t->from_teachers += sl->n_live;
    return s_submit_live(t, sl, slot, sb, err);
}

/* --cache-targets: stores the live rows' logits (when every member answered; the rows of a degraded
 * batch stay unfilled and are asked again when they next come), syncs every ST_TARGETS_SYNC_ROWS
 * rows and finishes the store when its last row is in. */
static int s_fill(st_targets *t, s_slot *sl, bool all, ed_err *err)
{
    if (!all) {
        t->uncached += sl->n_live;
        return 0;
    }
    for (int i = 0; i < sl->n_live; i++) {
        const int r = sl->live_rows[i];
        for (int k = 0; k < t->K; k++)
            memcpy(t->row + (size_t)k * (size_t)t->C, sl->ptr[k] + (size_t)r * (size_t)t->C,
                   sizeof(float) * (size_t)t->C);
        int rc =
            ed_ts_filler_put(t->fill, t->offset[sl->y[r] >= 0 ? 0 : 1] + sl->idx[r], t->row, err);
        if (rc == ED_EINVAL) { /* a non-finite logit: trained on as live, never stored */
            ed_log_warn("%s: not stored", err->msg);
            t->uncached++;
        } else if (rc) {
            return rc;
        }
    }
    const int64_t n = ed_ts_filler_count(t->fill);
    if (n - t->synced >= ST_TARGETS_SYNC_ROWS && !ed_ts_filler_complete(t->fill)) {
        int rc = ed_ts_filler_sync(t->fill, err);
        if (rc)
            return rc;
        t->synced = n;
    }
    return st_targets_fill_done(t, err);
}

int st_targets_fill_done(st_targets *t, ed_err *err)
{
    if (!t->fill || ed_ts_filler_complete(t->fill) || ed_ts_filler_count(t->fill) < t->total)
        return 0;
    int rc = ed_ts_filler_commit(t->fill, err);
    if (rc)
        return ed_err_wrap(err, "--cache-targets %s", t->dir);
    ed_log_info("target cache %s complete: %lld samples (float32); the teachers are no longer "
                "asked for targets",
                t->dir, (long long)ed_ts_filler_count(t->fill));
    return 0;
}

int st_targets_wait(st_targets *t, int slot, ed_batch *batch, const float *const **logits,
                    ed_err *err)
{
    if (slot < 0 || slot >= t->depth)
        return ed_err_set(err, ED_EINVAL, "st_targets_wait: bad slot %d", slot);
    s_slot *sl = &t->slots[slot];
    if (sl->n_live > 0) { /* mixing: the live rows' logits into their places */
        ed_batch sub;
        const float *const *live;
        int rc = st_pool_wait(t->pool, slot, &sub, &live, err);
        if (rc)
            return rc;
        bool all = true;
        for (int k = 0; k < t->K; k++) {
            if (!live[k]) { /* degraded: the whole batch is averaged without member k */
                sl->missed[k] = true;
                sl->out[k] = NULL;
                all = false;
                continue;
            }
            for (int i = 0; i < sl->n_live; i++)
                memcpy((float *)sl->ptr[k] + (size_t)sl->live_rows[i] * (size_t)t->C,
                       live[k] + (size_t)i * (size_t)t->C, sizeof(float) * (size_t)t->C);
        }
        if (t->fill && (rc = s_fill(t, sl, all, err)))
            return rc;
    }
    *batch = (ed_batch){
        .n = sl->n, .dim = sl->dim, .dtype = sl->dtype, .x = sl->x, .y = sl->y, .idx = sl->idx};
    *logits = sl->out;
    return 0;
}

bool st_targets_missed(const st_targets *t, int slot, int k)
{
    return slot >= 0 && slot < t->depth && k >= 0 && k < t->K && t->slots[slot].missed[k];
}

void st_targets_epoch_log(st_targets *t, int epoch)
{
    if (t->fill || t->pool) {
        char state[160] = "";
        if (t->fill)
            snprintf(state, sizeof state, "; %s: %lld samples stored%s", t->dir,
                     (long long)ed_ts_filler_count(t->fill),
                     ed_ts_filler_complete(t->fill) ? ", complete" : "");
        char uncached[96] = "";
        if (t->uncached)
            snprintf(uncached, sizeof uncached,
                     " (%ld not stored: degraded batches or non-finite logits; asked again later)",
                     t->uncached);
        ed_log_info("epoch %d targets: %ld rows from the store, %ld from the teachers%s%s", epoch,
                    t->from_store, t->from_teachers, uncached, state);
    }
    t->from_store = t->from_teachers = t->uncached = 0;
}
