/*
 * ed_optim: optimizers over one flat parameter block: SGD with (Nesterov-free) momentum and Adam,
 * optional weight decay (L2 added to the gradient for SGD, decoupled AdamW-style for Adam), and a
 * learning-rate schedule with linear warm-up.
 *
 * State (momentum / first and second moments) is one block per moment, the same layout as the
 * parameters, so a checkpoint saves it as flat tensors.
 */
#ifndef ED_OPTIM_H
#define ED_OPTIM_H

#include <stddef.h>

#include "ed_error.h"

typedef enum { ED_OPT_SGD = 0, ED_OPT_ADAM = 1, ED_OPT_KIND_COUNT } ed_opt_kind;

typedef enum {
    ED_LR_CONSTANT = 0, /* lr */
    ED_LR_COSINE = 1,   /* lr_min + (lr - lr_min) * (1 + cos(pi * t / total)) / 2 */
    ED_LR_STEP = 2,     /* lr * gamma^floor(t / step_size) */
    ED_LR_SCHED_COUNT
} ed_lr_schedule;

typedef struct {
    ed_opt_kind kind;
    float lr;
    float momentum;     /* SGD */
    float beta1, beta2; /* Adam */
    float eps;          /* Adam */
    float weight_decay;
    ed_lr_schedule schedule;
    long total_steps;  /* cosine: steps over which lr decays (after warm-up) */
    long step_size;    /* step schedule */
    float gamma;       /* step schedule */
    float lr_min;      /* cosine floor */
    long warmup_steps; /* linear warm-up from 0 to lr over these first steps */
} ed_opt_config;

/* Defaults: Adam, lr 1e-3, betas (0.9, 0.999), eps 1e-8, momentum 0.9, no decay, constant lr
 * (gamma 0.1, lr_min 0, no warm-up; total_steps and step_size 0). */
ed_opt_config ed_opt_config_default(void);

/* Parses "sgd"/"adam" and "constant"/"cosine"/"step"; -1 on anything else. */
int ed_opt_kind_parse(const char *text);
int ed_lr_schedule_parse(const char *text);
const char *ed_opt_kind_name(ed_opt_kind kind);
const char *ed_lr_schedule_name(ed_lr_schedule schedule);

/* Learning rate used at step t (0-based) under cfg. During warm-up (t < warmup_steps) it is
 * lr * (t + 1) / warmup_steps; afterwards the schedule runs on t - warmup_steps. Cosine with
 * total_steps <= 0 and step with step_size <= 0 give the constant lr; cosine past total_steps
 * stays at lr_min. */
float ed_opt_lr_at(const ed_opt_config *cfg, long t);

typedef struct {
    ed_opt_config cfg;
    size_t n;
    long t;   /* steps taken so far */
    float *m; /* (n) SGD momentum buffer, or Adam first moment */
    float *v; /* (n) Adam second moment; NULL for SGD */
} ed_optim;

/* State starts at zero, t = 0. NULL on failure with err set: ED_EINVAL no config or an unknown
 * optimizer kind, ED_ENOMEM the state for n parameters cannot be allocated. */
ed_optim *ed_optim_new(const ed_opt_config *cfg, size_t n, ed_err *err);
void ed_optim_destroy(ed_optim **po);

/* One update of params (n) from grads (n) at the scheduled lr, then t++.
 *   SGD:  g' = g + wd * p;  m = momentum * m + g';  p -= lr * m
 *   Adam: m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  mh = m / (1-b1^t);  vh = v / (1-b2^t);
 *         p -= lr * (mh / (sqrt(vh) + eps) + wd * p)          (t counted from 1 here) */
void ed_optim_step(ed_optim *opt, float *params, const float *grads);

#endif
