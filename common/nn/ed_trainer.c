/* ed_trainer: the training step shared by member training and distillation (see ed_trainer.h). */
#include "ed_trainer.h"

#include <stdlib.h>
#include <string.h>

#include "ed_loss.h"

ed_trainer *ed_trainer_new(ed_net **model, const ed_trainer_config *cfg, ed_err *err)
{
    ed_net *m = model ? *model : NULL;
    if (model)
        *model = NULL;
    if (!m || !cfg || cfg->max_batch < 1) {
        ed_err_set(err, ED_EINVAL, "a trainer needs a model and a max batch >= 1 (got %d)",
                   cfg ? cfg->max_batch : 0);
        ed_net_destroy(&m);
        return NULL;
    }
    if (!m->arch.mlp && (cfg->dropout_in != 0.0f || cfg->dropout_hidden != 0.0f)) {
        ed_err_set(err, ED_EINVAL,
                   "input/hidden dropout flags apply to MLP archs (784,1200,10) only: put dropoutP "
                   "layers in a layer-stack arch");
        ed_net_destroy(&m);
        return NULL;
    }
    ed_trainer *t = calloc(1, sizeof *t);
    if (!t) {
        ed_net_destroy(&m);
        goto fail;
    }
    t->model = m;
    t->max_batch = cfg->max_batch;
    t->input_scale = cfg->input_scale;
    t->input_offset = cfg->input_offset;
    ed_rng_seed(&t->rng, cfg->seed);
    const size_t rows = (size_t)cfg->max_batch, C = (size_t)ed_stack_classes(&m->arch);
    t->opt = ed_optim_new(&cfg->opt, m->n_params, err);
    if (!t->opt) { /* err says why */
        ed_trainer_destroy(&t);
        return NULL;
    }
    const ed_shape in = m->arch.input;
    if (ed_augment_check(&cfg->augment, in.c, in.h, in.w, err)) {
        ed_err_wrap(err, "the model's input");
        ed_trainer_destroy(&t);
        return NULL;
    }
    t->augment = cfg->augment;
    t->augment_seed = cfg->seed;
    if (ed_augment_on(&t->augment) &&
        !(t->aug_sample = malloc(sizeof(float) * ed_stack_in_size(&m->arch))))
        goto fail;
    t->ws = ed_net_ws_new(&m->arch, cfg->max_batch, true);
    t->x = malloc(sizeof(float) * rows * ed_stack_in_size(&m->arch));
    t->dz = malloc(sizeof(float) * rows * C);
    t->targets = malloc(sizeof(float) * rows * C);
    t->scratch = malloc(sizeof(float) * rows * C);
    if (!t->ws || !t->x || !t->dz || !t->targets || !t->scratch)
        goto fail;
    t->ws->dropout_in = cfg->dropout_in;
    t->ws->dropout_hidden = cfg->dropout_hidden;
    return t;
fail:
    ed_trainer_destroy(&t);
    ed_err_set(err, ED_ENOMEM, "cannot allocate a trainer for batch %d", cfg->max_batch);
    return NULL;
}

void ed_trainer_destroy(ed_trainer **pt)
{
    if (!pt || !*pt)
        return;
    ed_trainer *t = *pt;
    ed_net_destroy(&t->model);
    ed_net_ws_destroy(&t->ws);
    ed_optim_destroy(&t->opt);
    free(t->x);
    free(t->dz);
    free(t->targets);
    free(t->scratch);
    free(t->aug_sample);
    free(t);
    *pt = NULL;
}

/* The step: targets NULL (hard labels only) or (B, classes) built by ed_loss_targets under lc. */
static int s_step(ed_trainer *t, const ed_batch *b, const float *targets, const ed_loss_config *lc,
                  ed_step_stats *st, ed_err *err)
{
    const ed_stack *a = &t->model->arch;
    const int C = ed_stack_classes(a);
    const int B = b->n;
    if ((size_t)b->dim != ed_stack_in_size(a))
        return ed_err_set(err, ED_ESHAPE, "batch has %d values per sample, model input is %zu",
                          b->dim, ed_stack_in_size(a));
    if (B < 1 || B > t->max_batch)
        return ed_err_set(err, ED_ESHAPE, "batch of %d samples outside 1..%d", B, t->max_batch);
    int n_labeled = 0;
    for (int i = 0; i < B; i++) {
        if (b->y[i] >= C)
            return ed_err_set(err, ED_EFORMAT,
                              "label %d of sample %d is not a class (model has %d)", (int)b->y[i],
                              i, C);
        n_labeled += b->y[i] >= 0;
    }

    ed_batch_to_float(b, t->input_scale, t->input_offset, t->x);
    const ed_shape in = a->input;
    ed_augment_batch(&t->augment, t->augment_seed, (uint64_t)t->opt->t, t->x, B, in.c, in.h, in.w,
                     t->input_offset, t->aug_sample);
    const float *z = NULL;
    int rc = ed_net_forward(t->model, t->ws, t->x, B, true, &t->rng, &z, err);
    if (rc)
        return rc;

    memset(t->dz, 0, sizeof(float) * (size_t)B * (size_t)C);
    double soft = 0.0, hard = 0.0, loss;
    if (targets) {
        float ws = lc->alpha, wh = 1.0f - lc->alpha;
        if (lc->soft_loss == ED_SOFT_L2)
            soft = ed_loss_l2_logits(z, targets, B, C, ws, t->dz);
        else
            soft = ed_loss_soft_ce(z, targets, B, C, lc->temperature, ws, t->dz);
        if (n_labeled > 0)
            hard = ed_loss_hard_ce(z, b->y, B, C, lc->label_smoothing, wh, t->dz);
        loss = ws * soft + wh * hard;
    } else {
        if (n_labeled == 0)
            return ed_err_set(err, ED_EINVAL, "batch has no labels and no teacher targets");
        hard = ed_loss_hard_ce(z, b->y, B, C, lc->label_smoothing, 1.0f, t->dz);
        loss = hard;
    }

    if (st) {
        st->n = B;
        st->n_labeled = n_labeled;
        st->correct = ed_count_correct(z, b->y, B, C);
        st->loss = loss;
        st->soft_loss = soft;
        st->hard_loss = hard;
    }
    rc = ed_net_backward(t->model, t->ws, t->dz, B, err);
    if (rc)
        return rc;
    ed_optim_step(t->opt, t->model->params, t->ws->grads);
    ed_net_commit_stats(t->model, t->ws);
    return 0;
}

int ed_trainer_step(ed_trainer *t, const ed_batch *b, const ed_loss_config *cfg, ed_step_stats *st,
                    ed_err *err)
{
    return s_step(t, b, NULL, cfg, st, err);
}

int ed_trainer_distill_step(ed_trainer *t, const ed_batch *b, const float *const *member_logits,
                            int K, const ed_loss_config *cfg, ed_step_stats *st, ed_err *err)
{
    if (K < 1)
        return ed_err_set(err, ED_EINVAL, "a distillation step needs at least one member's logits");
    if (b->n < 1 || b->n > t->max_batch)
        return ed_err_set(err, ED_ESHAPE, "batch of %d samples outside 1..%d", b->n, t->max_batch);
    ed_loss_targets(cfg, member_logits, K, b->n, ed_stack_classes(&t->model->arch), t->targets,
                    t->scratch);
    return s_step(t, b, t->targets, cfg, st, err);
}

const float *ed_trainer_targets(const ed_trainer *t)
{
    return t->targets;
}
