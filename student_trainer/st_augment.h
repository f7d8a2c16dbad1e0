/*
 * st_augment: `student_trainer distill --augment`: random shifts and flips of each raw batch
 * before it is sent to the teachers, so that the teachers label the very images the student then
 * trains on ("consistent teaching": Beyer et al. 2022, "Knowledge distillation: A good teacher is
 * patient and consistent"). The student sees more distinct images than the dataset holds, each
 * with its ensemble's soft targets, not the targets of the unshifted original.
 *
 * The image shape (CxHxW) is the student's input shape when that is an image, else a square
 * single-channel image (dim = S*S, the Fashion-MNIST case for an MLP student). The draw of row i
 * of step t is ed_augment_draw_at(augment, seed, t, i): a resumed run draws what the
 * uninterrupted run drew. Soft targets from a store (looked up by sample) and a student view
 * (privileged information) cannot follow the images: distill refuses them with --augment.
 *
 *     st_augment *aug;   // NULL when --augment is off
 *     if (st_augment_open(&aug, &o->train, &o->arch, dim, dtype, max_batch, err)) ...;
 *     st_augment_batch(aug, step, &b);   // b.x now points at the augmented copy
 */
#ifndef ST_AUGMENT_H
#define ST_AUGMENT_H

#include <stdint.h>

#include "ed_batch.h"
#include "ed_error.h"
#include "ed_layer.h"
#include "ed_train_flags.h"

typedef struct st_augment st_augment;

/* *out = NULL when f's --augment is off; else the augmenter of batches of up to max_batch samples
 * of dim values of dtype. ED_ESHAPE (naming --augment, the student's --arch and dim) when the
 * samples are not images of a shape the augmentation fits; ED_ENOMEM. */
int st_augment_open(st_augment **out, const ed_train_flags *f, const ed_stack *student, int dim,
                    ed_dtype dtype, int max_batch, ed_err *err);
void st_augment_destroy(st_augment **pa);

/* Replaces b->x by the augmented copy of b's samples for training step `step` (valid until the
 * next call). No-op when a is NULL. */
void st_augment_batch(st_augment *a, uint64_t step, ed_batch *b);

/* The canonical text ("shift:1,flip") and the image shape, for the log; "none" when a is NULL. */
const char *st_augment_describe(const st_augment *a, char *buf, size_t size);

#endif
