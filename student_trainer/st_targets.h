/*
 * st_targets: soft targets for `distill --targets STORE`, read from a target store
 * (ed_target_store) instead of asked of live teachers. It mirrors the pool's pipeline calls
 * (submit a batch into a slot, wait for that slot's members' raw logits) so the distillation loop
 * treats both sources alike; a batch's rows are looked up by their dataset and sample number
 * (ed_batch.idx), so any shuffling and mixing of the run works, and the logits are the ones the
 * teachers returned when the store was labeled (bit for bit with a float32 store).
 * Rows the store lacks (a dataset it does not hold, or with --cache-targets a sample not filled
 * yet: st_targets_open_fill) go to an attached pool as one sub-batch of the same slot; when
 * filling, their replies are stored (st_target_cache.h).
 */
#ifndef ST_TARGETS_H
#define ST_TARGETS_H

#include "ed_data.h"
#include "ed_error.h"
#include "ed_target_store.h"
#include "st_pool.h"

typedef struct st_targets st_targets;

/* Opens the store in dir and finds the run's datasets among its inputs: `labeled` (count samples
 * in its range) and, when non-NULL, `unlabeled`. Refuses a store whose inputs do not include them
 * (same file by size and hashes, same sample range), naming what differs, or whose classes are not
 * `classes`. `depth` slots of up to max_batch rows. With allow_partial, a dataset the store does
 * not hold is left to live teachers (st_targets_attach_pool), but at least one must be found. */
st_targets *st_targets_open(const char *dir, const ed_dataset_spec *labeled, long labeled_count,
                            const ed_dataset_spec *unlabeled, long unlabeled_count, int classes,
                            int max_batch, int depth, bool allow_partial, ed_err *err);
/* --cache-targets: targets from a store being filled (ed_ts_filler, ownership taken: *fill is
 * cleared, and destroyed on failure) with the layout lay; dataset i (0 labeled, 1 unlabeled) is
 * present when has[i], at store number offset[i]. Rows not filled yet go to the attached pool
 * (st_targets_attach_pool, required); its replies are stored when every member answered. */
st_targets *st_targets_open_fill(ed_ts_filler **fill, const char *dir, const ed_ts_layout *lay,
                                 const int64_t offset[2], const bool has[2], int max_batch,
                                 int depth, ed_err *err);
void st_targets_close(st_targets **pt);

int st_targets_member_count(const st_targets *t);
/* "name (fnv1a64:...) from the float16 store DIR" */
const char *st_targets_member_describe(const st_targets *t, int k);
const char *st_targets_member_fingerprint(const st_targets *t, int k);
/* "float32", "float16", "float16 top-5": what the store keeps (recorded in checkpoints). */
const char *st_targets_kind(const st_targets *t);

/* Mixing: rows of a dataset the store does not hold go to `pool` (live teachers), the others are
 * read from the store. Only for a store opened with allow_partial; the pool's members must be the
 * store's, in the same order (ED_EFORMAT naming the first that differs). The pool's depth and
 * max_batch must be at least the targets'. */
int st_targets_attach_pool(st_targets *t, st_pool *pool, ed_err *err);

/* Copies batch b (with b->idx) into slot and reads its rows' logits from the store (rows of a
 * dataset it does not hold are sent to the attached pool). */
int st_targets_submit(st_targets *t, int slot, const ed_batch *b, ed_err *err);

/* The batch of slot and logits[k], member k's (n, classes) raw logits; valid until the slot is
 * submitted again. When a member did not answer the slot's live rows (a degraded batch),
 * logits[k] is NULL for the whole batch (averaged over the others, like a live batch) and, when
 * filling, those rows are not stored. Filling: stores the live rows, and finishes the store
 * (st_targets_fill_done) when its last row is in. */
int st_targets_wait(st_targets *t, int slot, ed_batch *batch, const float *const **logits,
                    ed_err *err);

/* Member k did not answer slot's live rows (the batch is degraded). */
bool st_targets_missed(const st_targets *t, int slot, int k);

/* Filling: commits the store once every row is in (logs that the teachers are no longer asked);
 * 0 otherwise. */
int st_targets_fill_done(st_targets *t, ed_err *err);

/* Logs where epoch's rows' targets came from (store / teachers, rows not stored, fill state) and
 * resets the counts; silent for a plain --targets run. */
void st_targets_epoch_log(st_targets *t, int epoch);

#endif
