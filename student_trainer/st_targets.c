/*
 * st_targets: soft targets from a target store for the distillation loop (see st_targets.h).
 */
#include "st_targets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_paths.h"
#include "ed_target_store.h"
#include "st_label.h"

typedef struct {
    int n;
    unsigned char *x;           /* (max_batch, dim) raw samples */
    int32_t *y;
    int64_t *idx;
    float *z;                   /* (members, max_batch, classes) */
    const float *ptr[ED_TS_MAX_MEMBERS];
    int dim;
    ed_dtype dtype;
} s_slot;

struct st_targets {
    ed_ts_reader *r;
    int K, C, max_batch, depth;
    int64_t offset[2];          /* store number of the labeled / unlabeled range's first sample */
    bool has[2];
    s_slot *slots;
    float *row;                 /* (K, C) one sample */
    char kind[32];
    char describe[ED_TS_MAX_MEMBERS][160];
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
        ed_ts_input id = {.path = (char *)parts[i].images, .start = parts[i].start,
                          .end = parts[i].end};
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
                rc = ed_err_set(err, ED_ENOTFOUND, "%s: the store holds this file at sample %lld, "
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

st_targets *st_targets_open(const char *dir, const ed_dataset_spec *labeled, long labeled_count,
                            const ed_dataset_spec *unlabeled, long unlabeled_count, int classes,
                            int max_batch, int depth, ed_err *err)
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
    if ((labeled_count > 0 && s_find(t, 0, labeled, labeled_count, err)) ||
        (unlabeled && unlabeled_count > 0 && s_find(t, 1, unlabeled, unlabeled_count, err)))
        goto fail;
    if (lay->top_k)
        snprintf(t->kind, sizeof t->kind, "%s top-%d", ed_ts_dtype_name(lay->dtype), lay->top_k);
    else
        snprintf(t->kind, sizeof t->kind, "%s", ed_ts_dtype_name(lay->dtype));
    for (int k = 0; k < t->K; k++)
        snprintf(t->describe[k], sizeof t->describe[k], "%s (%s) from the %s store %.80s",
                 lay->member[k].name, lay->member[k].fingerprint, t->kind, dir);
    t->slots = calloc((size_t)depth, sizeof *t->slots);
    t->row = malloc(sizeof(float) * (size_t)t->K * (size_t)t->C);
    if (!t->slots || !t->row)
        goto oom;
    for (int s = 0; s < depth; s++) {
        s_slot *sl = &t->slots[s];
        sl->y = malloc(sizeof(int32_t) * (size_t)max_batch);
        sl->idx = malloc(sizeof(int64_t) * (size_t)max_batch);
        sl->z = malloc(sizeof(float) * (size_t)t->K * (size_t)max_batch * (size_t)t->C);
        if (!sl->y || !sl->idx || !sl->z)
            goto oom;
        for (int k = 0; k < t->K; k++)
            sl->ptr[k] = sl->z + (size_t)k * (size_t)max_batch * (size_t)t->C;
    }
    return t;
oom:
    ed_err_set(err, ED_ENOMEM, "out of memory");
fail:
    st_targets_close(&t);
    return NULL;
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
    }
    free(t->slots);
    free(t->row);
    ed_ts_close(&t->r);
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
    return ed_ts_reader_layout(t->r)->member[k].fingerprint;
}

const char *st_targets_kind(const st_targets *t)
{
    return t->kind;
}

int st_targets_submit(st_targets *t, int slot, const ed_batch *b, ed_err *err)
{
    if (slot < 0 || slot >= t->depth || b->n > t->max_batch || !b->idx)
        return ed_err_set(err, ED_EINVAL, "st_targets_submit: bad slot %d or batch of %d", slot, b->n);
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
    for (int i = 0; i < b->n; i++) {
        const int src = b->y[i] >= 0 ? 0 : 1;
        if (!t->has[src])
            return ed_err_set(err, ED_EINVAL, "--targets: the store has no targets for the %s data",
                              src ? "unlabeled" : "labeled");
        int rc = ed_ts_read(t->r, t->offset[src] + b->idx[i], t->row, err);
        if (rc)
            return rc;
        for (int k = 0; k < t->K; k++)
            memcpy((float *)sl->ptr[k] + (size_t)i * (size_t)t->C, t->row + (size_t)k * (size_t)t->C,
                   sizeof(float) * (size_t)t->C);
    }
    return 0;
}

int st_targets_wait(st_targets *t, int slot, ed_batch *batch, const float *const **logits,
                    ed_err *err)
{
    if (slot < 0 || slot >= t->depth)
        return ed_err_set(err, ED_EINVAL, "st_targets_wait: bad slot %d", slot);
    s_slot *sl = &t->slots[slot];
    *batch = (ed_batch){.n = sl->n, .dim = sl->dim, .dtype = sl->dtype, .x = sl->x, .y = sl->y,
                        .idx = sl->idx};
    *logits = sl->ptr;
    return 0;
}
