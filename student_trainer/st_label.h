/*
 * st_label: labeling input files with the ensemble into a target store, for `student_trainer
 * label`; st_target_cache (`distill --cache-targets`) builds its layout with the same helpers.
 */
#ifndef ST_LABEL_H
#define ST_LABEL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "ed_data.h"
#include "ed_target_store.h"
#include "st_metrics.h"
#include "st_pool.h"

/* One labeling job: which shard of which store, and how to drive the pool. */
typedef struct {
    const char *store;
    int shard, n_shards;
    bool resume;                       /* continue a partial shard, accept a complete one */
    int batch_size, inflight;          /* <= the pool's max_batch and depth */
    bool quiet;                        /* no progress lines */
    size_t sample_bytes;               /* raw bytes per sample of the inputs */
    const volatile sig_atomic_t *stop; /* non-zero: stop after the batches in flight */
    const char *metrics;               /* append one JSON line (samples/s, RSS) on success */
    st_metrics *om;                    /* --metrics-listen series, or NULL */
} st_label_run;

/* lay->inputs and lay->total from datasets (images path and range; labels ignored), in order,
 * with each file's identity; *dim / *dtype of the samples (every input must agree). */
int st_label_inputs(const ed_dataset_spec *specs, int n, ed_ts_layout *lay, int *dim,
                    ed_dtype *dtype, ed_err *err);

/* The files a run's dataset stands for, as store inputs: itself (images and range; `count` samples
 * from spec->start), or, when spec->images is a list, directory or glob of several files, each
 * whole file in order (a range other than all of them is refused). *out (n entries) and *files
 * (nf paths, ed_paths_free) are the caller's. */
int st_label_dataset_inputs(const ed_dataset_spec *spec, long count, ed_dataset_spec **out, int *n,
                            char ***files, int *nf, ed_err *err);

/* lay->n_members and lay->member[] from the pool (name, weights fingerprint). */
void st_label_members(const st_pool *pool, ed_ts_layout *lay);

/* Streams the shard's samples through the pool in order and writes them; commits at the end.
 * ED_ESTOPPED when *run->stop became non-zero (the shard stays partial: resume continues it);
 * ED_EPEER when a member did not answer a batch. */
int st_label_store(st_pool *pool, const ed_ts_layout *lay, const st_label_run *run, ed_err *err);

#endif
