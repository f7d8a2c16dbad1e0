/*
 * tw_train_ckpt: checkpoints and exact resume of `teacher_worker train`.
 *
 * A checkpoint (ed_checkpoint) holds the trainer after the last completed step (parameters,
 * optimizer moments, batch-norm statistics, step count, dropout RNG), the position (tw_train_pos:
 * epoch, steps, the loader's shuffle RNG as the epoch STARTED, the epoch's partial sums, the
 * metrics file's length) and, as its config, every setting that changes the trained weights; a
 * resumed run must match it. The resumed run replays the epoch's order from the start state and
 * skips the batches already trained on. Augmentation (--augment) needs nothing more: its draws are
 * keyed by the step count the trainer state carries.
 */
#ifndef TW_TRAIN_CKPT_H
#define TW_TRAIN_CKPT_H

#include "ed_checkpoint.h"
#include "ed_error.h"
#include "ed_rng.h"
#include "ed_train_flags.h"
#include "ed_trainer.h"

/* Where a run is: everything a checkpoint stores besides the trainer. */
typedef struct {
    int epoch;       /* the epoch in progress (1-based); epochs + 1 once the last one ended */
    long step;       /* steps done in all */
    long epoch_step; /* steps done in this epoch */
    double loss_sum; /* this epoch's sums so far: loss * samples, samples, correct */
    long seen, correct;
    double test_acc;    /* test accuracy after the last finished epoch, -1 without one */
    long metrics_bytes; /* length of the metrics file, -1 without one */
    ed_rng epoch_start; /* the loader's shuffle RNG when this epoch started */
} tw_train_pos;

/* The settings a resumed run must share (keys are flag names): the training flags
 * (ed_train_flags_to_json), the training files and range, and "train-count" (samples found).
 * Caller frees; NULL when out of memory. */
char *tw_train_ckpt_config(const ed_train_flags *f, const char *images, const char *labels,
                           long start, long end, long count);

/* Writes the checkpoint atomically: trainer t after pos->step steps and the position. */
int tw_train_ckpt_save(const char *path, const char *config, const ed_trainer *t,
                       const tw_train_pos *pos, ed_err *err);

/* Restores trainer and position from a checkpoint whose config matched and checks that the
 * position fits plan (and the trainer's step count). ED_EFORMAT naming path otherwise, or the
 * errors of ed_checkpoint_get_*. */
int tw_train_ckpt_restore(const ed_checkpoint *c, const char *path, ed_trainer *t,
                          const ed_train_plan *plan, tw_train_pos *pos, ed_err *err);

#endif
