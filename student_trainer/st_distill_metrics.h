/*
 * st_distill_metrics: the per-epoch record of `student_trainer distill` (one JSON object per line
 * of
 * --metrics), written with cJSON so that member names that came over the wire (quotes, newlines,
 * anything) stay valid JSON. The keys and their order are documented in README.md.
 */
#ifndef ST_DISTILL_METRICS_H
#define ST_DISTILL_METRICS_H

#include <stdbool.h>
#include <stdio.h>

#include "ed_error.h"
#include "st_pool.h"

/* What one epoch's record holds. */
typedef struct {
    int epoch, epochs; /* this epoch (1-based) of `epochs` */
    long step;         /* steps completed in all */
    long samples, labeled, correct, steps, degraded;
    double loss_sum, soft_sum, hard_sum; /* summed over samples (hard: over labeled samples) */
    double seconds, samples_per_s;
    const st_pool_stats *pool; /* the epoch's teacher statistics */
    const st_pool *members;    /* for the member names and count */
    const long *missing;       /* [K] batches each member was missing from */
    int K;                     /* members at the start of the run (missing has K entries) */
    bool have_test;
    double test_loss, test_accuracy;
    long resumed_at_step; /* < 0: not the epoch a resumed run started in */
} st_epoch_record;

/* Logs the epoch's summary line (losses, accuracy, rate, teacher latency, time blocked). */
void st_distill_metrics_log(const st_epoch_record *r);

/* Writes r (with this process's peak RSS) as one JSON line to f and flushes it. ED_EIO (naming
 * `path`) if the write fails, ED_ENOMEM if the record cannot be built. */
int st_distill_metrics_write(FILE *f, const char *path, const st_epoch_record *r, ed_err *err);

#endif
