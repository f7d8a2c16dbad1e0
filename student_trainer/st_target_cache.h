/*
 * st_target_cache: `distill --cache-targets STORE`: the live teachers' replies of the first epoch
 * fill a float32 target store (in the shuffled order the epoch visits the samples), and the
 * following epochs read it instead of asking the teachers (docs/TARGET_STORE.md, "Filling in any
 * order"). This module decides what the directory holds and opens the matching st_targets source:
 *   - a complete store of exactly this run's data and members: read from epoch 1 (no teacher
 *     requests for targets);
 *   - nothing, or a fill interrupted earlier (a killed or stopped run, resumed or not): filled
 *     from where it is, the rows already stored are read from it;
 *   - a store (complete or being filled) of other data, ranges, members or dtype: refused, naming
 *     the first difference.
 */
#ifndef ST_TARGET_CACHE_H
#define ST_TARGET_CACHE_H

#include "ed_data.h"
#include "ed_error.h"
#include "st_pool.h"
#include "st_targets.h"

/* The store's layout for a run: the labeled range (when lab_count > 0), then the unlabeled file(s)
 * (when unl is non-NULL and unl_count > 0), members from the pool (weights fingerprints, in the
 * pool's order), float32 every logit. Free with ed_ts_layout_free. */
int st_target_cache_layout(const st_pool *pool, const ed_dataset_spec *lab, long lab_count,
                           const ed_dataset_spec *unl, long unl_count, int classes,
                           ed_ts_layout *lay, ed_err *err);

/* Opens the target source of a --cache-targets run on store `dir` (see the top of this file), with
 * the pool attached for the rows not stored yet. ED_EINVAL naming the difference for a store of
 * another run; ED_EBUSY when another run fills it. */
st_targets *st_target_cache_open(const char *dir, st_pool *pool, const ed_dataset_spec *lab,
                                 long lab_count, const ed_dataset_spec *unl, long unl_count,
                                 int classes, int max_batch, int depth, ed_err *err);

#endif
