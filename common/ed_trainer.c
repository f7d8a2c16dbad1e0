/* ed_trainer: the training step shared by member training and distillation (see ed_trainer.h). */
#include "ed_trainer.h"

#include <stdlib.h>
#include <string.h>

#include "ed_loss.h"

int ed_soft_loss_parse(const char *text)
{
    if (!strcmp(text, "ce"))
        return ED_SOFT_CE;
    if (!strcmp(text, "l2"))
        return ED_SOFT_L2;
    return -1;
}

const char *ed_soft_loss_name(ed_soft_loss kind)
{
    return kind == ED_SOFT_L2 ? "l2" : "ce";
}

ed_trainer *ed_trainer_new(ed_mlp **model, const ed_opt_config *opt, int max_batch, float dropout_in,
                           float dropout_hidden, float input_scale, float input_offset, uint64_t seed,
                           ed_err *err)
{
    ed_mlp *m = *model;
    *model = NULL;
    ed_trainer *t = calloc(1, sizeof *t);
    if (!t || max_batch < 1)
        goto fail;
    t->model = m;
    t->max_batch = max_batch;
    t->input_scale = input_scale;
    t->input_offset = input_offset;
    ed_rng_seed(&t->rng, seed);
    t->ws = ed_mlp_ws_new(&m->arch, max_batch, true);
    t->opt = ed_optim_new(opt, m->n_params);
    t->x = malloc(sizeof(float) * (size_t)max_batch * (size_t)ed_arch_in(&m->arch));
    t->dz = malloc(sizeof(float) * (size_t)max_batch * (size_t)ed_arch_out(&m->arch));
    if (!t->ws || !t->opt || !t->x || !t->dz)
        goto fail;
    t->ws->dropout_in = dropout_in;
    t->ws->dropout_hidden = dropout_hidden;
    return t;
fail:
    if (!t)
        ed_mlp_destroy(&m);
    ed_trainer_destroy(&t);
    ed_err_set(err, ED_ENOMEM, "cannot allocate a trainer for batch %d", max_batch);
    return NULL;
}

void ed_trainer_destroy(ed_trainer **pt)
{
    if (!pt || !*pt)
        return;
    ed_trainer *t = *pt;
    ed_mlp_destroy(&t->model);
    ed_mlp_ws_destroy(&t->ws);
    ed_optim_destroy(&t->opt);
    free(t->x);
    free(t->dz);
    free(t);
    *pt = NULL;
}

int ed_trainer_step(ed_trainer *t, const ed_batch *b, const float *targets, const ed_loss_config *lc,
                    ed_step_stats *st, ed_err *err)
{
    const ed_arch *a = &t->model->arch;
    const int C = ed_arch_out(a);
    const int B = b->n;
    if (b->dim != ed_arch_in(a))
        return ed_err_set(err, ED_ESHAPE, "batch has %d values per sample, model input is %d", b->dim,
                          ed_arch_in(a));
    if (B < 1 || B > t->max_batch)
        return ed_err_set(err, ED_ESHAPE, "batch of %d samples outside 1..%d", B, t->max_batch);
    int n_labeled = 0;
    for (int i = 0; i < B; i++) {
        if (b->y[i] >= C)
            return ed_err_set(err, ED_EFORMAT, "label %d of sample %d is not a class (model has %d)",
                              (int)b->y[i], i, C);
        n_labeled += b->y[i] >= 0;
    }

    ed_batch_to_float(b, t->input_scale, t->input_offset, t->x);
    const float *z = NULL;
    int rc = ed_mlp_forward(t->model, t->ws, t->x, B, true, &t->rng, &z, err);
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
    rc = ed_mlp_backward(t->model, t->ws, t->dz, B);
    if (rc)
        return ed_err_set(err, rc, "backward pass failed");
    ed_optim_step(t->opt, t->model->params, t->ws->grads);
    return 0;
}
