/*
 * ed_checkpoint: training checkpoints: a safetensors file holding everything a run needs to carry
 * on exactly where it stopped, and the check that a resuming run is the same run.
 *
 * File layout (readable from Python with json + numpy, like model files):
 *   tensors        flat F32 blocks named by the caller, in the order they were put. The trainer
 *                  helpers below write "params" (the model's parameter block), "adam_m" and
 *                  "adam_v" (Adam moments) or "sgd_momentum" (SGD), all in the parameter layout,
 * and "bn_state" (batch-norm running statistics, state block) for stacks with BN.
 *   __metadata__   (all strings)
 *     format          "edistill-checkpoint"   (the magic)
 *     format_version  "1"                     (refused if newer than this build understands)
 *     config          JSON object: the settings a resume must match, compared key by key
 *     state           JSON object: {"tensors": [names in file order],
 *                                   "ints":  {key: "decimal int64"},
 *                                   "reals": {key: "0x<16 hex digits: the IEEE-754 bits>"},
 *                                   "rngs":  {key: "<4 x 16 hex digits: xoshiro256** state>"}}
 *                     reals and RNG states are stored as bits, so a restore is bit-exact.
 *     checksum        "fnv1a64:<16 hex>" over the tensor bytes (file order), then config, then
 *                     state; checked on read, so a corrupted checkpoint is refused, not resumed.
 * Writes are atomic (ed_st_write -> ed_fs_write_atomic): a crash mid-write leaves the previous
 * checkpoint intact.
 *
 * One object serves both directions: build it with ed_checkpoint_new + put_*, then write; or read
 * it from a file and get_*.
 */
#ifndef ED_CHECKPOINT_H
#define ED_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ed_error.h"
#include "ed_rng.h"
#include "ed_trainer.h"

#define ED_CHECKPOINT_FORMAT "edistill-checkpoint"
#define ED_CHECKPOINT_FORMAT_VERSION 1
#define ED_CHECKPOINT_MAX_TENSORS 8

typedef struct ed_checkpoint ed_checkpoint;

/* A new, empty checkpoint for writing. config_json must be a JSON object (copied). NULL on failure
 * with err set (ED_EINVAL not a JSON object, ED_ENOMEM). */
ed_checkpoint *ed_checkpoint_new(const char *config_json, ed_err *err);
void ed_checkpoint_destroy(ed_checkpoint **pc);

/* Adds a tensor of n floats. The data is borrowed: it must stay valid until ed_checkpoint_write.
 * ED_EINVAL for a duplicate name or more than ED_CHECKPOINT_MAX_TENSORS tensors. */
int ed_checkpoint_put_tensor(ed_checkpoint *c, const char *name, const float *data, size_t n,
                             ed_err *err);
/* Adds (or replaces) a named counter, real or RNG state. ED_ENOMEM only. */
int ed_checkpoint_put_int(ed_checkpoint *c, const char *key, int64_t value, ed_err *err);
int ed_checkpoint_put_real(ed_checkpoint *c, const char *key, double value, ed_err *err);
int ed_checkpoint_put_rng(ed_checkpoint *c, const char *key, const ed_rng *rng, ed_err *err);

/* Writes the checkpoint atomically to path. Errors as ed_st_write. */
int ed_checkpoint_write(const ed_checkpoint *c, const char *path, ed_err *err);

/* Reads and validates a checkpoint: safetensors structure, format magic, version, config and state
 * JSON, the tensor list against the file, and the checksum. Errors name the path and the fault:
 * ED_ENOTFOUND (no such file), ED_ETRUNC (cut short), ED_EFORMAT (not a checkpoint, malformed
 * field), ED_EVERSION (newer format), ED_ECHECKSUM (contents do not match the checksum). */
ed_checkpoint *ed_checkpoint_read(const char *path, ed_err *err);

/* The --checkpoint FILE / --resume / --resume-if-present decision of a training command, before the
 * run starts (so a bad checkpoint fails fast). *out: the checkpoint to resume from (caller
 * destroys), or NULL for a new run. Refusals, with what to do: --resume without a path (ED_EINVAL);
 * an existing file without a resume flag (ED_EINVAL: it is never overwritten by a new run);
 * --resume and no file (ED_ENOTFOUND; --resume-if-present starts a new run then); the read errors
 * of ed_checkpoint_read, prefixed "cannot resume". No path and no resume flag: 0, *out NULL. */
int ed_checkpoint_open_resume(const char *path, bool resume, bool resume_if_present,
                              ed_checkpoint **out, ed_err *err);

/* The config JSON text the checkpoint was written with. */
const char *ed_checkpoint_config(const ed_checkpoint *c);

/* Compares config_json (a JSON object) with the checkpoint's config key by key: 0 when every key
 * is present in both with equal values; otherwise ED_EINVAL with a message naming the first
 * differing key (in the checkpoint's key order, then keys only the new config has) and both values:
 *   config field "temperature" differs: the checkpoint has 4, this run has 2 */
int ed_checkpoint_match_config(const ed_checkpoint *c, const char *config_json, ed_err *err);

/* Copies tensor `name` (F32, n elements) into out. ED_ENOTFOUND if absent, ED_ESHAPE if it does not
 * hold exactly n floats. */
int ed_checkpoint_get_tensor(const ed_checkpoint *c, const char *name, float *out, size_t n,
                             ed_err *err);
/* Named values put by the writer. ED_ENOTFOUND if absent, ED_EFORMAT if malformed. */
int ed_checkpoint_get_int(const ed_checkpoint *c, const char *key, int64_t *out, ed_err *err);
/* ed_checkpoint_get_int for keys[0..n) into out[0..n), stopping at the first error. */
int ed_checkpoint_get_ints(const ed_checkpoint *c, const char *const *keys, int n, int64_t *out,
                           ed_err *err);
int ed_checkpoint_get_real(const ed_checkpoint *c, const char *key, double *out, ed_err *err);
int ed_checkpoint_get_rng(const ed_checkpoint *c, const char *key, ed_rng *out, ed_err *err);
/* 1 if the checkpoint holds a tensor / int named so, else 0. */
int ed_checkpoint_has_tensor(const ed_checkpoint *c, const char *name);

/* Puts a trainer's state: tensors "params" and the optimizer's moments ("adam_m", "adam_v" or
 * "sgd_momentum"), "bn_state" when the model has batch norm, int "optim.t" (steps taken) and rng
 * "trainer.dropout". Borrows the trainer's buffers until ed_checkpoint_write. */
int ed_checkpoint_put_trainer(ed_checkpoint *c, const ed_trainer *t, ed_err *err);

/* Restores that state into a trainer built with the same architecture and optimizer kind, bit for
 * bit. ED_ESHAPE (parameter count differs), ED_EFORMAT (optimizer kind differs: moments missing or
 * extra), ED_ENOTFOUND (a field is missing). On failure the trainer may be partly restored. */
int ed_checkpoint_get_trainer(const ed_checkpoint *c, ed_trainer *t, ed_err *err);

#endif
