/*
 * st_target_cache: `distill --cache-targets`: which store the directory holds, and the st_targets
 * source that reads or fills it (see st_target_cache.h).
 */
#include "st_target_cache.h"

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_log.h"
#include "ed_paths.h"
#include "ed_target_store.h"
#include "st_label.h"

int st_target_cache_layout(const st_pool *pool, const ed_dataset_spec *lab, long lab_count,
                           const ed_dataset_spec *unl, long unl_count, int classes,
                           ed_ts_layout *lay, ed_err *err)
{
    ed_dataset_spec *parts[2] = {NULL, NULL}, *specs = NULL;
    char **files[2] = {NULL, NULL};
    int n[2] = {0, 0}, nf[2] = {0, 0};
    *lay = (ed_ts_layout){.classes = classes, .dtype = ED_TS_F32};
    int dim = 0;
    ed_dtype dtype = ED_DTYPE_U8;
    int rc = lab_count > 0
                 ? st_label_dataset_inputs(lab, lab_count, &parts[0], &n[0], &files[0], &nf[0], err)
                 : 0;
    if (!rc && unl && unl_count > 0)
        rc = st_label_dataset_inputs(unl, unl_count, &parts[1], &n[1], &files[1], &nf[1], err);
    if (!rc && !(specs = calloc((size_t)(n[0] + n[1] + 1), sizeof *specs)))
        rc = ed_err_set(err, ED_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < n[0] + n[1]; i++)
        specs[i] = i < n[0] ? parts[0][i] : parts[1][i - n[0]];
    if (!rc)
        rc = st_label_inputs(specs, n[0] + n[1], lay, &dim, &dtype, err);
    if (!rc)
        st_label_members(pool, lay);
    free(specs);
    for (int i = 0; i < 2; i++) {
        free(parts[i]);
        ed_paths_free(&files[i], nf[i]);
    }
    return rc;
}

/* Whether dir holds a file matching shard-*-of-*<suffix> other than a progress or fill record. */
static bool s_has(const char *dir, const char *suffix)
{
    char pattern[4200];
    snprintf(pattern, sizeof pattern, "%s/shard-*-of-*%s", dir, suffix);
    glob_t g;
    bool found = false;
    if (glob(pattern, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc && !found; i++) {
            const char *p = g.gl_pathv[i];
            size_t l = strlen(p);
            found = !(l > 14 && !strcmp(p + l - 14, ".progress.json")) &&
                    !(l > 10 && !strcmp(p + l - 10, ".fill.json"));
        }
        globfree(&g);
    }
    return found;
}

/* A complete store there: this run's (read from epoch 1) or another's (refused). */
static st_targets *s_open_complete(const char *dir, const ed_ts_layout *lay,
                                   const ed_dataset_spec *lab, long nl, const ed_dataset_spec *unl,
                                   long nu, int max_batch, int depth, ed_err *err)
{
    ed_ts_reader *r = ed_ts_open(dir, err);
    if (!r) {
        ed_err_wrap(err, "--cache-targets %s", dir);
        return NULL;
    }
    char what[512];
    const int diff = ed_ts_layout_diff(ed_ts_reader_layout(r), lay, what, sizeof what);
    ed_ts_close(&r);
    if (diff) {
        ed_err_set(err, ED_EINVAL,
                   "--cache-targets %s: the store there is for other data or members (%s; the "
                   "store's first): use another directory, or remove it",
                   dir, what);
        return NULL;
    }
    st_targets *t =
        st_targets_open(dir, lab, nl, unl, nu, lay->classes, max_batch, depth, false, err);
    if (t)
        ed_log_info("target cache %s is complete (%lld samples, float32): every epoch trains from "
                    "it, the teachers are not asked for targets",
                    dir, (long long)lay->total);
    return t;
}

st_targets *st_target_cache_open(const char *dir, st_pool *pool, const ed_dataset_spec *lab,
                                 long lab_count, const ed_dataset_spec *unl, long unl_count,
                                 int classes, int max_batch, int depth, ed_err *err)
{
    ed_ts_layout lay;
    st_targets *t = NULL;
    const long nl = lab_count > 0 ? lab_count : 0;
    const long nu = unl && unl_count > 0 ? unl_count : 0;
    if (st_target_cache_layout(pool, lab, nl, unl, nu, classes, &lay, err)) {
        ed_ts_layout_free(&lay);
        ed_err_wrap(err, "--cache-targets %s", dir);
        return NULL;
    }
    if (s_has(dir, ".partial")) {
        ed_err_set(err, ED_EINVAL,
                   "--cache-targets %s: an unfinished `student_trainer label` shard is there "
                   "(finish it with label --resume, or use another directory)",
                   dir);
    } else if (s_has(dir, ".json")) {
        t = s_open_complete(dir, &lay, lab, nl, nu ? unl : NULL, nu, max_batch, depth, err);
    } else {
        ed_ts_filler *fill = ed_ts_filler_open(dir, &lay, err);
        const int64_t offset[2] = {0, nl};
        const bool has[2] = {nl > 0, nu > 0};
        if (fill) {
            const int64_t have = ed_ts_filler_count(fill);
            t = st_targets_open_fill(&fill, dir, &lay, offset, has, max_batch, depth, err);
            if (t)
                ed_log_info("target cache %s: %lld of %lld samples stored; the teachers are asked "
                            "for the others (the first epoch) and their replies stored",
                            dir, (long long)have, (long long)lay.total);
        } else {
            ed_err_wrap(err, "--cache-targets");
        }
    }
    if (t && (st_targets_attach_pool(t, pool, err) || st_targets_fill_done(t, err)))
        st_targets_close(&t);
    ed_ts_layout_free(&lay);
    return t;
}
