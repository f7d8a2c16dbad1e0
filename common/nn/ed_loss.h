/*
 * ed_loss: softmax with temperature, the distillation losses and their gradients, and the
 * combination of ensemble members' outputs.
 *
 * All matrices are row-major (B, C): B samples, C classes. Every loss returns the *mean* loss over
 * the rows it covers and, when `dz` is non-NULL, ADDS `weight * d(mean loss)/dz` into dz, so the
 * terms of a combined objective can be accumulated into one gradient buffer:
 *
 *     total = alpha * soft(T) + (1 - alpha) * hard
 *     memset(dz, 0, ...);
 *     ls = ed_loss_soft_ce(z, q, B, C, T, alpha, dz);      // includes the T^2 factor
 *     lh = ed_loss_hard_ce(z, y, B, C, eps, 1 - alpha, dz); // rows with y < 0 are skipped
 *
 * Numerics: softmax and log-softmax subtract the row max (log-sum-exp), so large logits and small
 * temperatures do not overflow.
 */
#ifndef ED_LOSS_H
#define ED_LOSS_H

#include <stdint.h>

/* p = softmax(z / T) row-wise; p and z may alias. T > 0. */
void ed_softmax_temp(const float *z, float *p, int B, int C, float T);

/* lp = log softmax(z / T) row-wise; lp and z may alias. */
void ed_log_softmax_temp(const float *z, float *lp, int B, int C, float T);

/* Hard-label cross-entropy with optional label smoothing eps in [0, 1): the target is
 * (1 - eps) * onehot(y) + eps / C. Rows with y[i] < 0 (unlabeled) are skipped; the mean is over the
 * labeled rows (returns 0 and adds nothing when there are none). Labels must be < C; a label >= C
 * is a caller bug and is skipped like an unlabeled row (never read out of bounds). */
float ed_loss_hard_ce(const float *z, const int32_t *y, int B, int C, float eps, float weight,
                      float *dz);

/* Soft-target cross-entropy at temperature T, with the T^2 factor (Hinton et al. 2015):
 *     loss = T^2 * mean_i sum_c -q_ic log softmax(z_i / T)_c
 *     dloss/dz_i = T * (softmax(z_i / T) - q_i) / B
 * q: (B, C) target distributions (rows sum to 1). */
float ed_loss_soft_ce(const float *z, const float *q, int B, int C, float T, float weight,
                      float *dz);

/* KL(q || softmax(z / T)) * T^2, mean over rows: the soft CE minus the targets' entropy. Same
 * gradient as ed_loss_soft_ce; reported alongside it. */
float ed_loss_soft_kl(const float *z, const float *q, int B, int C, float T, float weight,
                      float *dz);

/* L2 logit matching (Caruana / Ba): loss = mean_i 0.5 * sum_c (z_ic - t_ic)^2. t: (B, C). */
float ed_loss_l2_logits(const float *z, const float *t, int B, int C, float weight, float *dz);

/* Number of rows whose argmax equals y (rows with y < 0 are not counted). */
int ed_count_correct(const float *z, const int32_t *y, int B, int C);

/* Index of the largest entry of one row (first on ties). */
int ed_argmax(const float *row, int C);

typedef enum {
    ED_COMBINE_PROB = 0,  /* q = mean_k softmax(z_k / T)    (Hinton et al., the default) */
    ED_COMBINE_LOGIT = 1, /* q = softmax(mean_k z_k / T) */
    ED_COMBINE_COUNT
} ed_combine_mode;

/* Parses "prob" / "logit"; returns -1 for anything else. */
int ed_combine_parse(const char *text);
const char *ed_combine_name(ed_combine_mode mode);

/* Combines K members' logits for the same B samples into target distributions q (B, C).
 * logits[k]: (B, C). `scratch` must hold B * C floats (used by ED_COMBINE_PROB). */
void ed_combine(ed_combine_mode mode, const float *const *logits, int K, int B, int C, float T,
                float *q, float *scratch);

/* Mean of the K members' logits (B, C): the target of L2 logit matching. */
void ed_combine_mean_logits(const float *const *logits, int K, int B, int C, float *out);

/* ---- the distillation loss, configured in one place ------------------------------------------ */

typedef enum {
    ED_SOFT_CE = 0, /* T^2 * CE(q, softmax(s / T)), q combined from the members (combine) */
    ED_SOFT_L2 = 1, /* 0.5 * |s - t|^2, t = the members' mean logits (combine, T unused) */
    ED_SOFT_LOSS_COUNT
} ed_soft_loss;

/* "ce" / "l2"; -1 otherwise. */
int ed_soft_loss_parse(const char *text);
const char *ed_soft_loss_name(ed_soft_loss kind);

/* Everything that decides a step's objective (see ed_trainer.h for the formula). */
typedef struct {
    ed_combine_mode combine; /* how the members' logits become q (ED_SOFT_CE only) */
    float temperature;       /* T > 0 (ED_SOFT_CE only) */
    float alpha;             /* weight of the soft term in [0, 1] */
    ed_soft_loss soft_loss;
    float label_smoothing; /* eps for the hard term */
} ed_loss_config;

/* The soft targets of K >= 1 members' logits (each (B, C)) under cfg, into targets (B, C):
 * probabilities q (ED_SOFT_CE, combined by cfg->combine at cfg->temperature) or the mean logits
 * (ED_SOFT_L2). scratch: B * C floats. This is the only function that builds targets. */
void ed_loss_targets(const ed_loss_config *cfg, const float *const *logits, int K, int B, int C,
                     float *targets, float *scratch);

#endif
