/*
 * st_distill_internal: the state `student_trainer distill` shares between its files: the options
 * (st_distill_opts.c parses them), the epoch's running sums and the run's position (what a
 * checkpoint records besides the trainer: st_distill_ckpt.c). Not a public API.
 */
#ifndef ST_DISTILL_INTERNAL_H
#define ST_DISTILL_INTERNAL_H

#include <stdbool.h>

#include "ed_layer.h"
#include "ed_loss.h"
#include "ed_train_flags.h"
#include "st_mixer.h"
#include "st_pool_flags.h"
#include "st_student.h"

typedef struct {
    st_pool_flags pool;  /* --teachers, in flight, deadlines, quorum, CURVE (st_pool_flags) */
    const char *targets; /* --targets STORE: soft targets from a store (with --teachers: mixed) */
    const char *cache_targets; /* --cache-targets STORE: label into it once, then train from it */
    const char *labeled_images, *labeled_labels, *unlabeled, *test_images, *test_labels;
    long labeled_start, labeled_end, unlabeled_start, unlabeled_end;
    const char *member, *out, *metrics, *dump_targets;
    const char *checkpoint;
    long checkpoint_every;
    bool resume, resume_if_present;
    const char *combine, *soft_loss;
    float temperature, alpha;
    ed_train_flags train;    /* student architecture, optimizer, schedule, batching, seed, ... */
    st_student_opts student; /* privileged information: the student's own view (st_student) */
    bool quiet;
    const char *metrics_listen; /* HOST:PORT of /metrics /healthz /readyz (st_metrics), or NULL */
    float metrics_linger;       /* keep serving /metrics this long after the run (final scrape) */
    const char *inprocess_overlap; /* auto, on, off: parsed into pool.overlap */
    /* Derived by st_distill_opts_parse from the above: */
    ed_stack arch;       /* the student's architecture (--arch) */
    ed_loss_config loss; /* combine mode, T, alpha, soft-loss kind, label smoothing */
} st_distill_opts;

typedef struct {
    double loss, soft, hard;
    long samples, labeled, correct, steps;
    long degraded; /* batches averaged over fewer than all members */
    long *missing; /* [member] batches that member was missing from */
} st_epoch_sums;

/* Where the run is: what a checkpoint records besides the trainer. */
typedef struct {
    int epoch;                  /* the epoch under way (1-based; epochs + 1 when the run is done) */
    long step;                  /* steps completed in all */
    st_mixer_state epoch_start; /* the mixer's RNG states at the start of `epoch` */
    double test_acc;            /* last test accuracy, -1 if none */
    long metrics_bytes;         /* length of the metrics file, -1 when none or stdout */
    long dump_bytes;            /* length of the targets dump, -1 when none */
} st_position;

/* Parses distill's command line into o (defaults, the option table, the checks, the CURVE keys).
 * Returns true to run; false when the command ends here with exit status *rc (0 after --help, 2
 * after a usage error, reported through ed_log_error). o must outlive the run (the pool keeps
 * pointers into o->pool.curve). */
bool st_distill_opts_parse(st_distill_opts *o, int argc, char **argv, int *rc);

#endif
