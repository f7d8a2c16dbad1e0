/*
 * ed_trainer: one model under training: the model, its workspace, optimizer and dropout RNG, and the
 * step that turns a batch (+ optional teacher targets) into an update.
 *
 * The objective of a step, over a batch of B samples of which L carry a label (y >= 0):
 *     alpha * soft(T)  +  (1 - alpha) * hard
 *   soft = T^2 * mean over all B rows of CE(q_i, softmax(s_i / T))        (ED_SOFT_CE), or
 *          mean over all B rows of 0.5 * |s_i - t_i|^2 (t = mean teacher logits)  (ED_SOFT_L2)
 *   hard = mean over the L labeled rows of CE(onehot(y_i) smoothed, softmax(s_i))
 * Without teacher targets (plain supervised training) the objective is `hard` alone. Unlabeled rows
 * therefore only ever receive the soft term.
 */
#ifndef ED_TRAINER_H
#define ED_TRAINER_H

#include <stdbool.h>
#include <stdint.h>

#include "ed_data.h"
#include "ed_error.h"
#include "ed_mlp.h"
#include "ed_optim.h"
#include "ed_rng.h"

typedef enum { ED_SOFT_CE = 0, ED_SOFT_L2 = 1, ED_SOFT_LOSS_COUNT } ed_soft_loss;

/* "ce" / "l2"; -1 otherwise. */
int ed_soft_loss_parse(const char *text);
const char *ed_soft_loss_name(ed_soft_loss kind);

typedef struct {
    float alpha;            /* weight of the soft term in [0, 1] */
    float temperature;      /* T > 0 */
    ed_soft_loss soft_loss;
    float label_smoothing;  /* eps for the hard term */
} ed_loss_config;

typedef struct {
    int n;                  /* samples in the step */
    int n_labeled;
    int correct;            /* argmax == label over labeled rows */
    double loss;            /* the objective */
    double soft_loss;       /* soft term before alpha (0 when no targets) */
    double hard_loss;       /* hard term before (1 - alpha) (0 when no labels) */
} ed_step_stats;

typedef struct {
    ed_mlp *model;          /* owned */
    ed_mlp_ws *ws;          /* training workspace, max_batch rows */
    ed_optim *opt;
    ed_rng rng;             /* dropout masks */
    int max_batch;
    float input_scale;      /* x_model = x_raw * input_scale + input_offset */
    float input_offset;
    float *x;               /* (max_batch, in) scaled input */
    float *dz;              /* (max_batch, classes) gradient w.r.t. the logits */
} ed_trainer;

/* Takes ownership of *model (sets it to NULL, also on failure). NULL on failure with err set. */
ed_trainer *ed_trainer_new(ed_mlp **model, const ed_opt_config *opt, int max_batch, float dropout_in,
                           float dropout_hidden, float input_scale, float input_offset, uint64_t seed,
                           ed_err *err);
void ed_trainer_destroy(ed_trainer **pt);

/* One optimization step on batch b. targets: NULL for hard labels only; otherwise (b->n, classes)
 * probabilities (ED_SOFT_CE) or mean teacher logits (ED_SOFT_L2). Errors: ED_ESHAPE when the batch
 * dimension or size does not fit the model, ED_EFORMAT for a label >= classes (the batch is not
 * trained on). */
int ed_trainer_step(ed_trainer *t, const ed_batch *b, const float *targets, const ed_loss_config *lc,
                    ed_step_stats *st, ed_err *err);

#endif
