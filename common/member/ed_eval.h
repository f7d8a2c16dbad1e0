/*
 * ed_eval: accuracy, loss and confusion of one model or an ensemble on a labeled dataset.
 * An ensemble's prediction is the arithmetic mean of its members' probabilities softmax(z)
 * (T = 1); each member (ed_member) scales the raw inputs as its own model file records.
 */
#ifndef ED_EVAL_H
#define ED_EVAL_H

#include <stdio.h>

#include "ed_data.h"
#include "ed_error.h"
#include "ed_member.h"

typedef struct {
    int classes;
    long n; /* samples evaluated */
    long correct;
    double loss;     /* mean negative log-likelihood of the true class */
    long *confusion; /* (classes, classes): row = true class, column = predicted */
} ed_eval_result;

static inline double ed_eval_accuracy(const ed_eval_result *r)
{
    return r->n ? (double)r->correct / (double)r->n : 0.0;
}

/* Evaluates the mean-probability ensemble of K >= 1 members (same input dim and classes) on a
 * labeled dataset, in batches of batch_size (at most every member's max batch). Fills *res (free
 * with ed_eval_result_free). Errors: ED_ESHAPE members disagree with each other or with the data,
 * ED_EINVAL unlabeled data or a batch larger than a member's, and any read error of the data
 * files. */
int ed_eval_run(ed_member *const *members, int K, const ed_dataset_spec *data, int batch_size,
                ed_eval_result *res, ed_err *err);

/* ed_eval_run on a view of the data (ed_view, parsed; NULL or NONE: the samples as they are):
 * how a student that sees a derived view (avgpool:K) is evaluated on the original test files. */
int ed_eval_run_view(ed_member *const *members, int K, const ed_dataset_spec *data,
                     const ed_view *view, int batch_size, ed_eval_result *res, ed_err *err);

/* ed_eval_run of one model the caller holds (a model under training), scaled as given. */
int ed_eval_net(const ed_net *model, float input_scale, float input_offset,
                const ed_dataset_spec *data, int batch_size, ed_eval_result *res, ed_err *err);

/* ed_eval_net on a view of the data (as ed_eval_run_view). */
int ed_eval_net_view(const ed_net *model, float input_scale, float input_offset,
                     const ed_dataset_spec *data, const ed_view *view, int batch_size,
                     ed_eval_result *res, ed_err *err);

void ed_eval_result_free(ed_eval_result *res);

/* Per-class accuracy and the class each is most often mistaken for, as an aligned table. */
void ed_eval_print_confusion(const ed_eval_result *res, FILE *out);

#endif
