/*
 * st_mixer: one stream of training batches drawn from a labeled and an optional unlabeled dataset.
 *
 * Each epoch delivers every labeled and every unlabeled sample exactly once (each source shuffled
 * through its own loader's shuffle buffer); each position of a batch is taken from the labeled
 * source with probability remaining_labeled / remaining_total, so labels are spread evenly over the
 * epoch. Unlabeled samples carry label -1. Deterministic for a seed. Memory: two loaders and one
 * batch buffer, independent of the file sizes.
 */
#ifndef ST_MIXER_H
#define ST_MIXER_H

#include "ed_data.h"
#include "ed_error.h"
#include "ed_rng.h"
#include "ed_view.h"

typedef struct st_mixer st_mixer;

/* unlabeled may be NULL. Both datasets must have the same dim and dtype; the labeled one labels. */
st_mixer *st_mixer_open(const ed_dataset_spec *labeled, const ed_dataset_spec *unlabeled,
                        int batch_size, long shuffle_buffer, uint64_t seed, ed_err *err);
void st_mixer_destroy(st_mixer **pm);

long st_mixer_labeled_count(const st_mixer *m);
long st_mixer_unlabeled_count(const st_mixer *m);
int st_mixer_dim(const st_mixer *m);
int st_mixer_batch_size(const st_mixer *m);
ed_dtype st_mixer_dtype(const st_mixer *m);

/* Privileged information: the student gets its own row of every sample, aligned with the
 * teachers' rows. With student files (labeled, and unlabeled when the mixer has an unlabeled
 * source: the same count and order as the teachers' files, the same ranges) each is read by its
 * own loader in step with its source's (same seed: the same shuffle); through `view` when it is
 * on. Without files (both NULL) the student's rows are `view` (on) of the teachers' rows. Call
 * once, right after st_mixer_open. ED_ESHAPE when a file's count in range differs from the
 * teachers' (naming the file and both counts) or the student files disagree on shape. */
int st_mixer_set_student(st_mixer *m, const ed_dataset_spec *labeled,
                         const ed_dataset_spec *unlabeled, const ed_view *view, ed_err *err);
bool st_mixer_has_student(const st_mixer *m);
/* Values per sample of the student's rows (the teachers' dim without a student). */
int st_mixer_student_dim(const st_mixer *m);
ed_dtype st_mixer_student_dtype(const st_mixer *m);
/* The student's batch of b, the batch the last st_mixer_next returned: the same n, labels and
 * sample numbers; valid until the next st_mixer_next. */
void st_mixer_student(const st_mixer *m, const ed_batch *b, ed_batch *out);

/* Next batch of the epoch (size, 0 at the end, < 0 on a read error); valid until the next call.
 * out->idx[i] is row i's sample number within its source's range: the labeled source for rows
 * with y >= 0, the unlabeled one for rows with y == -1 (labels are never negative). */
int st_mixer_next(st_mixer *m, ed_batch *out, ed_err *err);

/* Starts the next epoch. */
int st_mixer_reset(st_mixer *m, ed_err *err);

/* Checkpoint support. The RNG states that decide an epoch: the mixer's labeled/unlabeled draw and
 * both loaders' shuffles ([1] is unused, and restored as is, without an unlabeled source). */
typedef struct {
    ed_rng mix;
    ed_rng loader[2];
} st_mixer_state;

/* The current RNG states. Taken at the start of an epoch (right after st_mixer_open or
 * st_mixer_reset, before the first st_mixer_next) they fix that whole epoch. */
void st_mixer_state_get(const st_mixer *m, st_mixer_state *out);

/* Restarts the current epoch from states taken at an epoch start: rewinds both sources and
 * restores the RNGs, so the following st_mixer_next calls replay that epoch's batches exactly. */
int st_mixer_restart(st_mixer *m, const st_mixer_state *state, ed_err *err);

/* Draws and discards n batches (fast-forward after st_mixer_restart). ED_ETRUNC if the epoch has
 * fewer than n batches left; read errors as st_mixer_next. */
int st_mixer_skip(st_mixer *m, long n, ed_err *err);

#endif
