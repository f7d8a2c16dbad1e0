/*
 * st_distill_ckpt: checkpoints and resume of `student_trainer distill`, and its student model file.
 *
 * A checkpoint (ed_checkpoint) holds the trainer after the last completed step, the position
 * (st_position: epoch, steps, the RNG states the epoch STARTED from, the output files' lengths) and
 * the epoch's partial sums; its `config` is the JSON of every setting that changes the trained
 * student, and a resumed run must match it. Batches in flight are not saved: the resumed run
 * replays its epoch from the start states and skips the steps already done.
 */
#ifndef ST_DISTILL_CKPT_H
#define ST_DISTILL_CKPT_H

#include <stdio.h>

#include "ed_checkpoint.h"
#include "ed_error.h"
#include "ed_train_flags.h"
#include "ed_trainer.h"
#include "st_distill_internal.h"
#include "st_pool.h"
#include "st_targets.h"

/* Checks the --checkpoint/--resume flags against what is on disk, before anything connects (a bad
 * checkpoint fails fast). *ck: the checkpoint to resume from (caller destroys), or NULL for a new
 * run. ED_EINVAL / ED_ENOTFOUND / the read error, with err saying what to do. */
int st_distill_ckpt_open(const st_distill_opts *o, ed_checkpoint **ck, ed_err *err);

/* The settings a resumed run must share with the run that wrote the checkpoint, as JSON (caller
 * frees; NULL when out of memory). Keys are the flag names; "labeled-count"/"unlabeled-count" are
 * the samples found in the files, "teachers" the members' weight fingerprints, sorted. Settings
 * that do not change the trained student (inflight, timeouts, test files, output paths, BLAS
 * threads) may change. The members come from the target store tg when it is set (else the pool);
 * a lossy store (float16, top-k) adds "targets", since it trains another student. */
char *st_distill_ckpt_config(const st_distill_opts *o, const st_mixer *mix, const st_pool *pool,
                             const st_targets *tg);

/* Writes the checkpoint (atomically): trainer t after pos->step steps, the position and the epoch's
 * sums of K members. */
int st_distill_ckpt_save(const char *path, const char *config, const ed_trainer *t,
                         const st_position *pos, const st_epoch_sums *sums, int K, ed_err *err);

/* Restores trainer, position and sums (sums->missing has K entries) from a checkpoint whose config
 * matched, and checks that the position fits this run's plan. ED_EFORMAT naming path otherwise. */
int st_distill_ckpt_restore(const ed_checkpoint *c, const char *path, ed_trainer *t, int K,
                            const ed_train_plan *plan, st_position *pos, st_epoch_sums *sums,
                            ed_err *err);

/* Writes the student model file --out: trainer t's model with the input scaling, and a provenance
 * (the training settings, the teachers, steps done and the test accuracy acc when >= 0). */
int st_distill_save_student(const st_distill_opts *o, const ed_trainer *t, const st_pool *pool,
                            const st_targets *tg, long steps, double acc, ed_err *err);

#endif
