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

typedef struct st_mixer st_mixer;

/* unlabeled may be NULL. Both datasets must have the same dim and dtype; the labeled one labels. */
st_mixer *st_mixer_open(const ed_dataset_spec *labeled, const ed_dataset_spec *unlabeled,
                        int batch_size, long shuffle_buffer, uint64_t seed, ed_err *err);
void st_mixer_destroy(st_mixer **pm);

long st_mixer_labeled_count(const st_mixer *m);
long st_mixer_unlabeled_count(const st_mixer *m);
int st_mixer_dim(const st_mixer *m);
ed_dtype st_mixer_dtype(const st_mixer *m);

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
