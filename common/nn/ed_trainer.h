/*
 * ed_trainer: one model under training: the model, its workspace, optimizer and dropout RNG, and
 * the step that turns a batch (+ optional teacher targets) into an update.
 *
 * The objective of a step, over a batch of B samples of which L carry a label (y >= 0):
 *     alpha * soft(T)  +  (1 - alpha) * hard
 *   soft = T^2 * mean over all B rows of CE(q_i, softmax(s_i / T))        (ED_SOFT_CE), or
 *          mean over all B rows of 0.5 * |s_i - t_i|^2 (t = mean teacher logits)  (ED_SOFT_L2)
 *   hard = mean over the L labeled rows of CE(onehot(y_i) smoothed, softmax(s_i))
 * Without teachers (plain supervised training, ed_trainer_step) the objective is `hard` alone.
 * Unlabeled rows therefore only ever receive the soft term. The soft targets q / t are built from
 * the members' raw logits inside ed_trainer_distill_step (ed_loss_targets), so the loss
 * configuration (combine mode, T, alpha, soft-loss kind, label smoothing) is read in one place.
 */
#ifndef ED_TRAINER_H
#define ED_TRAINER_H

#include <stdbool.h>
#include <stdint.h>

#include "ed_augment.h"
#include "ed_batch.h"
#include "ed_error.h"
#include "ed_loss.h"
#include "ed_net.h"
#include "ed_optim.h"
#include "ed_rng.h"

typedef struct {
    int n; /* samples in the step */
    int n_labeled;
    int correct;      /* argmax == label over labeled rows */
    double loss;      /* the objective */
    double soft_loss; /* soft term before alpha (0 when no targets) */
    double hard_loss; /* hard term before (1 - alpha) (0 when no labels) */
} ed_step_stats;

typedef struct {
    ed_opt_config opt;
    int max_batch;    /* >= 1: largest batch a step takes */
    float dropout_in; /* inverted dropout rates in [0, 1); legacy MLP archs only (0 else) */
    float dropout_hidden;
    float input_scale; /* x_model = x_raw * input_scale + input_offset */
    float input_offset;
    uint64_t seed;      /* of the dropout RNG and of the augmentation draws */
    ed_augment augment; /* training-time augmentation of image inputs (zeroed: none) */
} ed_trainer_config;

typedef struct {
    ed_net *model; /* owned */
    ed_net_ws *ws; /* training workspace, max_batch rows */
    ed_optim *opt;
    ed_rng rng; /* dropout masks */
    int max_batch;
    float input_scale; /* x_model = x_raw * input_scale + input_offset */
    float input_offset;
    float *x;       /* (max_batch, in) scaled input */
    float *dz;      /* (max_batch, classes) gradient w.r.t. the logits */
    float *targets; /* (max_batch, classes) soft targets of the last distill step */
    float *scratch; /* (max_batch, classes) */
    ed_augment augment;
    uint64_t augment_seed;
    float *aug_sample; /* (in) one sample, the augmentation's scratch; NULL without augmentation */
} ed_trainer;

/* Takes ownership of *model (sets it to NULL, also on failure: the model is freed then). NULL on
 * failure with err set: ED_EINVAL no model, no config, max_batch < 1, an unknown optimizer, or
 * dropout_in/hidden on a layer-stack arch (dropout is a layer there); ED_ESHAPE when cfg->augment
 * does not fit the model's input shape (ed_augment_check: e.g. a flat 784x1x1 input); ED_ENOMEM.
 * After each step the model's batch-norm running statistics are updated (ed_net_commit_stats).
 * With cfg->augment on, every training step (both kinds below) augments its scaled input batch:
 * row i of the step taken after `t` steps (the optimizer's count, which checkpoints keep) gets
 * ed_augment_draw_at(augment, seed, t, i), with pixels shifted in set to input_offset (a raw 0). */
ed_trainer *ed_trainer_new(ed_net **model, const ed_trainer_config *cfg, ed_err *err);
void ed_trainer_destroy(ed_trainer **pt);

/* One supervised step on batch b: the hard term alone (cfg->label_smoothing; the soft settings are
 * not read). Errors: ED_ESHAPE when the batch dimension or size does not fit the model, ED_EFORMAT
 * for a label >= classes, ED_EINVAL when no row is labeled (the batch is not trained on). */
int ed_trainer_step(ed_trainer *t, const ed_batch *b, const ed_loss_config *cfg, ed_step_stats *st,
                    ed_err *err);

/* One distillation step on batch b from K >= 1 members' raw logits (member_logits[k]: (b->n,
 * classes)): builds the soft targets under cfg (ed_loss_targets) and trains on the objective above.
 * The targets stay readable with ed_trainer_targets until the next step. Errors as ed_trainer_step
 * (ED_EINVAL also for K < 1). */
int ed_trainer_distill_step(ed_trainer *t, const ed_batch *b, const float *const *member_logits,
                            int K, const ed_loss_config *cfg, ed_step_stats *st, ed_err *err);

/* The soft targets of the last ed_trainer_distill_step: (n, classes) probabilities (ED_SOFT_CE) or
 * mean logits (ED_SOFT_L2), n that step's batch. */
const float *ed_trainer_targets(const ed_trainer *t);

#endif
