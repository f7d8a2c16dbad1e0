/*
 * ed_loader: batches of a stream in shuffled order (a shuffle buffer, as tf.data's), epoch after
 * epoch, the whole sequence fixed by the seed. Memory: the shuffle buffer (shuffle_buffer samples)
 * and one batch, allocated once; nothing proportional to the file size.
 */
#ifndef ED_LOADER_H
#define ED_LOADER_H

#include <stdbool.h>
#include <stdint.h>

#include "ed_batch.h"
#include "ed_data.h"
#include "ed_error.h"
#include "ed_rng.h"

typedef struct {
    int batch_size;      /* >= 1 */
    long shuffle_buffer; /* samples held for shuffling; 0 or 1 = file order */
    uint64_t seed;       /* shuffle seed; the same seed gives the same order */
    bool drop_last;      /* drop a final batch smaller than batch_size */
} ed_loader_config;

typedef struct ed_loader ed_loader;

/* Takes ownership of *ps (sets it to NULL, also on failure). */
ed_loader *ed_loader_new(ed_stream **ps, const ed_loader_config *cfg, ed_err *err);
void ed_loader_destroy(ed_loader **pl);

const ed_stream *ed_loader_stream(const ed_loader *l);

/* Next batch of the current epoch: returns its size (> 0), 0 at the end of the epoch (every sample
 * of the range delivered exactly once), or a negative code from the stream (after which only
 * ed_loader_reset is meaningful). */
int ed_loader_next(ed_loader *l, ed_batch *out, ed_err *err);

/* Starts the next epoch: rewinds the stream; the shuffle RNG continues, so epochs differ but the
 * whole sequence is fixed by the seed. */
int ed_loader_reset(ed_loader *l, ed_err *err);

/* The shuffle RNG's state, for checkpoints. Taken right after ed_loader_new or ed_loader_reset
 * (before the first ed_loader_next of an epoch), it fixes that whole epoch's order: restoring it
 * with ed_loader_rng_set right after a reset replays the epoch exactly. Setting it mid-epoch
 * changes the order of the samples not yet delivered. */
void ed_loader_rng_get(const ed_loader *l, ed_rng *out);
void ed_loader_rng_set(ed_loader *l, const ed_rng *state);

#endif
