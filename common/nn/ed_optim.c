/*
 * ed_optim: SGD with momentum and Adam over one flat parameter block, and the learning-rate
 * schedule (constant / cosine / step) behind a linear warm-up.
 *
 * The update loops are written over restrict-qualified flat arrays with the scalars hoisted out,
 * so gcc -O3 vectorizes them (AVX-512 / AVX2 clones). They are memory-bound (Adam streams four
 * arrays in and three out), so ed_par splits them over the process's BLAS threads, whose cores are
 * otherwise idle between sgemm calls; every element is updated the same way whatever the split.
 * Bias corrections and schedule values are computed in double once per step.
 */
#include "ed_optim.h"
#include "ed_mem.h"
#include "ed_par.h"
#include "ed_simd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S_PI 3.14159265358979323846
/* Below this many parameters per thread, waking a helper costs more than it saves. */
#define S_PAR_MIN_CHUNK ((size_t)1 << 15)

ed_opt_config ed_opt_config_default(void)
{
    ed_opt_config c;
    memset(&c, 0, sizeof c);
    c.kind = ED_OPT_ADAM;
    c.lr = 1e-3f;
    c.momentum = 0.9f;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.eps = 1e-8f;
    c.weight_decay = 0.0f;
    c.schedule = ED_LR_CONSTANT;
    c.total_steps = 0; /* cosine: 0 means no decay */
    c.step_size = 0;   /* step: 0 means no decay */
    c.gamma = 0.1f;
    c.lr_min = 0.0f;
    c.warmup_steps = 0;
    return c;
}

static const char *const s_kind_names[ED_OPT_KIND_COUNT] = {
    [ED_OPT_SGD] = "sgd",
    [ED_OPT_ADAM] = "adam",
};

static const char *const s_sched_names[ED_LR_SCHED_COUNT] = {
    [ED_LR_CONSTANT] = "constant",
    [ED_LR_COSINE] = "cosine",
    [ED_LR_STEP] = "step",
};

int ed_opt_kind_parse(const char *text)
{
    if (!text)
        return -1;
    for (int k = 0; k < ED_OPT_KIND_COUNT; k++)
        if (strcmp(text, s_kind_names[k]) == 0)
            return k;
    return -1;
}

int ed_lr_schedule_parse(const char *text)
{
    if (!text)
        return -1;
    for (int k = 0; k < ED_LR_SCHED_COUNT; k++)
        if (strcmp(text, s_sched_names[k]) == 0)
            return k;
    return -1;
}

const char *ed_opt_kind_name(ed_opt_kind kind)
{
    return ((int)kind >= 0 && kind < ED_OPT_KIND_COUNT) ? s_kind_names[kind] : "unknown";
}

const char *ed_lr_schedule_name(ed_lr_schedule schedule)
{
    return ((int)schedule >= 0 && schedule < ED_LR_SCHED_COUNT) ? s_sched_names[schedule]
                                                                : "unknown";
}

float ed_opt_lr_at(const ed_opt_config *cfg, long t)
{
    const double lr = cfg->lr;
    if (t < 0)
        t = 0;
    if (cfg->warmup_steps > 0) {
        if (t < cfg->warmup_steps)
            return (float)(lr * (double)(t + 1) / (double)cfg->warmup_steps);
        t -= cfg->warmup_steps;
    }
    switch (cfg->schedule) {
    case ED_LR_COSINE: {
        if (cfg->total_steps <= 0)
            return (float)lr;
        if (t >= cfg->total_steps)
            return cfg->lr_min;
        const double lo = cfg->lr_min;
        const double frac = (double)t / (double)cfg->total_steps;
        return (float)(lo + (lr - lo) * (1.0 + cos(S_PI * frac)) / 2.0);
    }
    case ED_LR_STEP:
        if (cfg->step_size <= 0)
            return (float)lr;
        return (float)(lr * pow((double)cfg->gamma, (double)(t / cfg->step_size)));
    case ED_LR_CONSTANT:
    default:
        return (float)lr;
    }
}

ed_optim *ed_optim_new(const ed_opt_config *cfg, size_t n, ed_err *err)
{
    if (!cfg || (int)cfg->kind < 0 || cfg->kind >= ED_OPT_KIND_COUNT) {
        ed_err_set(err, ED_EINVAL, "optimizer: %s", cfg ? "unknown kind" : "no configuration");
        return NULL;
    }
    ed_optim *o = calloc(1, sizeof *o);
    if (!o)
        goto fail;
    o->cfg = *cfg;
    o->n = n;
    o->m = ed_mem_calloc(n ? n : 1, sizeof(float));
    if (!o->m)
        goto fail;
    if (cfg->kind == ED_OPT_ADAM) {
        o->v = ed_mem_calloc(n ? n : 1, sizeof(float));
        if (!o->v)
            goto fail;
    }
    return o;
fail:
    ed_optim_destroy(&o);
    ed_err_set(err, ED_ENOMEM, "optimizer: cannot allocate the state of %zu parameters", n);
    return NULL;
}

void ed_optim_destroy(ed_optim **po)
{
    if (!po || !*po)
        return;
    free((*po)->m);
    free((*po)->v);
    free(*po);
    *po = NULL;
}

/* g' = g + wd p;  m = mu m + g';  p -= lr m */
ED_VECTOR_CLONES
static void s_sgd(float *restrict p, const float *restrict g, float *restrict m, size_t n, float lr,
                  float mu, float wd)
{
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] + wd * p[i];
        const float mi = mu * m[i] + gi;
        m[i] = mi;
        p[i] -= lr * mi;
    }
}

/* m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= lr (m c1 / (sqrt(v c2) + eps) + wd p),
 * with c1 = 1 / (1 - b1^t), c2 = 1 / (1 - b2^t). */
ED_VECTOR_CLONES
static void s_adam(float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
                   size_t n, float lr, float b1, float b2, float c1, float c2, float eps, float wd)
{
    const float a1 = 1.0f - b1, a2 = 1.0f - b2;
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i];
        const float mi = b1 * m[i] + a1 * gi;
        const float vi = b2 * v[i] + a2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= lr * ((mi * c1) / (sqrtf(vi * c2) + eps) + wd * p[i]);
    }
}

typedef struct {
    float *p;
    const float *g;
    float *m, *v;
    float lr, b1, b2, c1, c2, eps, mu, wd;
} s_update;

static void s_sgd_range(size_t lo, size_t hi, void *ctx)
{
    const s_update *u = ctx;
    s_sgd(u->p + lo, u->g + lo, u->m + lo, hi - lo, u->lr, u->mu, u->wd);
}

static void s_adam_range(size_t lo, size_t hi, void *ctx)
{
    const s_update *u = ctx;
    s_adam(u->p + lo, u->g + lo, u->m + lo, u->v + lo, hi - lo, u->lr, u->b1, u->b2, u->c1, u->c2,
           u->eps, u->wd);
}

void ed_optim_step(ed_optim *opt, float *params, const float *grads)
{
    const ed_opt_config *c = &opt->cfg;
    s_update u = {.p = params,
                  .g = grads,
                  .m = opt->m,
                  .v = opt->v,
                  .lr = ed_opt_lr_at(c, opt->t),
                  .b1 = c->beta1,
                  .b2 = c->beta2,
                  .eps = c->eps,
                  .mu = c->momentum,
                  .wd = c->weight_decay};
    if (c->kind == ED_OPT_SGD) {
        ed_par_for(opt->n, S_PAR_MIN_CHUNK, s_sgd_range, &u);
    } else {
        const double t1 = (double)(opt->t + 1);
        u.c1 = (float)(1.0 / (1.0 - pow((double)c->beta1, t1)));
        u.c2 = (float)(1.0 / (1.0 - pow((double)c->beta2, t1)));
        ed_par_for(opt->n, S_PAR_MIN_CHUNK, s_adam_range, &u);
    }
    opt->t++;
}
