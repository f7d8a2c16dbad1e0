/*
 * ed_augment: training-time data augmentation of image samples: random translations (zero-padded
 * shifts of up to +-S pixels in each direction, i.e. a random crop with padding S), random
 * horizontal flips and random erasing (a rectangle set to the fill value), applied sample by sample
 * to a training batch (never at evaluation, labeling or serving).
 *
 * Where: on the float NCHW batch AFTER the model's input scaling (x = raw * scale + offset), so it
 * works for uint8 and float32 samples alike. A pixel shifted in from outside the image gets the
 * value a raw 0 pixel has after scaling: `fill` = offset (0 with the default scaling).
 *
 * What one sample gets: a draw {dy, dx, flip}, dy and dx uniform in [-S, S] (independently), flip
 * with probability 1/2. With src = the input, mirrored left-right when flip is set
 * (src(c, y, x) = in(c, y, W-1-x)):
 *     out(c, y, x) = src(c, y - dy, x - dx)   when 0 <= y-dy < H and 0 <= x-dx < W, else fill
 * (dx > 0 moves the content right, dy > 0 down). This is torchvision's
 * RandomHorizontalFlip + RandomCrop(H, padding=S, fill=0) with top = S - dy, left = S - dx.
 * With erase:P, then, with probability P, the rectangle rows [ey, ey+eh) x columns [ex, ex+ew) of
 * every channel is set to fill, drawn as torchvision's RandomErasing(p=P, scale=(0.02, 0.33),
 * ratio=(0.3, 3.3), value=0) draws it: up to 10 tries of an area (0.02..0.33 of H*W) and a
 * log-uniform aspect ratio until the rectangle fits, then a uniform position; no erasing when no
 * try fits (Zhong et al. 2020, "Random Erasing Data Augmentation").
 *
 * Determinism: a draw is a pure function of (seed, step, row): the run's seed, the index of the
 * training step (steps taken before it, as the optimizer counts them) and the sample's row in that
 * step's batch. There is no generator state to carry, so a run resumed from a checkpoint (which
 * stores the step count) draws exactly what the uninterrupted run draws.
 *
 * Option text (`--augment`): comma-separated tokens, each at most once, any order:
 *     shift:S     random shifts of up to S pixels (S in 1..ED_AUGMENT_MAX_SHIFT)
 *     flip        random horizontal flips
 *     erase:P     random erasing with probability P (a decimal in (0, 1], e.g. 0.5)
 *     none        (alone, or an empty/NULL text) no augmentation
 * e.g. "shift:2,flip" or "shift:1,flip,erase:0.5". The input must be an image, H >= 2 and W >= 2
 * with S < H and S < W (checked by ed_augment_check against the model's input shape).
 *
 *     ed_augment a;
 *     if (ed_augment_parse("shift:2,flip", &a, err) || ed_augment_check(&a, 1, 28, 28, err)) ...;
 *     ed_augment_batch(&a, seed, step, x, n, 1, 28, 28, offset, scratch);   // x: (n, 1*28*28)
 */
#ifndef ED_AUGMENT_H
#define ED_AUGMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "ed_batch.h"
#include "ed_error.h"

#define ED_AUGMENT_MAX_SHIFT 16

typedef struct {
    int shift;     /* S: largest |dy|, |dx|; 0 = no shifts */
    bool flip;     /* random horizontal flips */
    double erase;  /* probability of erasing a rectangle; 0 = never */
    char text[40]; /* canonical text ("shift:2,flip", "flip,erase:0.5", "none") */
} ed_augment;

/* One sample's transform. */
typedef struct {
    int dy, dx; /* in [-shift, shift] */
    bool flip;
    int ey, ex, eh, ew; /* erased rectangle: rows [ey, ey+eh), columns [ex, ex+ew); eh 0 = none */
} ed_augment_draw;

/* Parses option text (see top) into *a. NULL, "" and "none" give no augmentation. ED_EINVAL for
 * anything else that is not a list of known tokens, with a message quoting the text and pointing
 * at the offending token: `"shift:2,flop": token 2 "flop" is not known (shift:S, flip, erase:P,
 * none)`. *a is untouched on error. */
int ed_augment_parse(const char *text, ed_augment *a, ed_err *err);

/* True when a does something (a shift, a flip or erasing). */
static inline bool ed_augment_on(const ed_augment *a)
{
    return a && (a->shift > 0 || a->flip || a->erase > 0);
}

/* Checks that a fits samples of shape (c, h, w): nothing to check when a is off; else ED_ESHAPE
 * unless c >= 1, h >= 2, w >= 2 and shift < h, shift < w. The message names the shape. */
int ed_augment_check(const ed_augment *a, int c, int h, int w, ed_err *err);

/* The draw of sample `row` of training step `step` under `seed` (see top): a pure function of
 * them and of (h, w), the image size the erased rectangle must fit. With a off: all zero. Adding
 * erase:P to a leaves the shift and flip of every draw as they were without it. */
ed_augment_draw ed_augment_draw_at(const ed_augment *a, uint64_t seed, uint64_t step, uint64_t row,
                                   int h, int w);

/* Applies draw d to one sample: out (c, h, w) from in (c, h, w); in and out must not overlap. */
void ed_augment_apply(const float *restrict in, float *restrict out, int c, int h, int w,
                      ed_augment_draw d, float fill);

/* Augments a batch of raw samples (before any input scaling: what the teachers and the student of
 * `student_trainer distill --augment` both receive): row i of out (in->n, in->dim, in->dtype) is
 * row i of in->x under ed_augment_draw_at(a, seed, step, i), pixels shifted in a raw 0 (0 for
 * uint8 and float32 alike). in->dim must be c*h*w and a checked for (c, h, w); out must not
 * overlap in->x. With a off, out is a copy. */
void ed_augment_raw_batch(const ed_augment *a, uint64_t seed, uint64_t step, const ed_batch *in,
                          int c, int h, int w, void *out);

/* Augments a batch in place: row i of x (n, c*h*w) gets ed_augment_draw_at(a, seed, step, i).
 * scratch holds c*h*w floats. a must have passed ed_augment_check for (c, h, w); no-op when off. */
void ed_augment_batch(const ed_augment *a, uint64_t seed, uint64_t step, float *x, int n, int c,
                      int h, int w, float fill, float *scratch);

#endif
