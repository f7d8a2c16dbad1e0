/*
 * ed_net: a model whose architecture is an ed_stack: its parameter and state blocks, a workspace,
 * and the forward/backward pass over the layers (kernels in ed_layer_ops.c).
 *
 * Memory follows llm.c and ed_mlp: one parameter block (weights, biases, BN gamma/beta), one
 * gradient block of the same layout in the workspace, one state block (BN running mean/var), and
 * per-layer named views into them; the tensor table of ed_layer.h says where each tensor lives.
 * A legacy MLP stack (`mlp`) is run by ed_mlp on the same parameter block, so MLP numbers and speed
 * are exactly those of ed_mlp.
 *
 * The model holds no per-call state: several threads may run inference on one model, each with its
 * own workspace. Training-mode batch norm uses batch statistics and records them in the workspace;
 * ed_net_commit_stats folds them into the model's running statistics (the trainer calls it once per
 * step), so the forward pass never writes the model.
 *
 * Worked example:
 *     ed_stack s; ed_stack_parse("1x28x28:conv8k3p1,bn,relu,maxpool2,flatten,dense10", &s, &err);
 *     ed_net *m = ed_net_new(&s);            ed_rng r; ed_rng_seed(&r, 1); ed_net_init(m, &r);
 *     ed_net_ws *ws = ed_net_ws_new(&s, 128, true);
 *     const float *z; ed_net_forward(m, ws, x, 128, true, &r, &z, &err);  // x: (128,1,28,28) z:
 * (128,10)
 *     ... fill dz (128, 10) ...;  ed_net_backward(m, ws, dz, 128, &err);  // ws->grads filled
 *     ed_net_commit_stats(m, ws);                                        // BN running statistics
 */
#ifndef ED_NET_H
#define ED_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ed_error.h"
#include "ed_layer.h"
#include "ed_mlp.h"
#include "ed_rng.h"

typedef struct {
    ed_stack arch;
    size_t n_params;
    float *params; /* one block, layout of ed_stack_tensors */
    size_t n_state;
    float *state;                     /* BN running statistics; NULL when n_state == 0 */
    float *W[ED_STACK_MAX_LAYERS];    /* dense (out, in); conv (out, in, k, k); bn gamma (C) */
    float *b[ED_STACK_MAX_LAYERS];    /* dense/conv bias (out); bn beta (C) */
    float *mean[ED_STACK_MAX_LAYERS]; /* bn running mean (C) */
    float *var[ED_STACK_MAX_LAYERS];  /* bn running variance (C), unbiased as in PyTorch */
    ed_mlp *mlp;                      /* legacy stacks only: shares `params` (not a copy) */
} ed_net;

/* Allocates a model with zeroed parameters and BN running mean 0, variance 1. NULL on allocation
 * failure or an invalid stack. */
ed_net *ed_net_new(const ed_stack *arch);

/* Frees the model and sets *pm to NULL; accepts NULL and *pm == NULL. */
void ed_net_destroy(ed_net **pm);

/* He-normal dense and conv weights (std sqrt(2 / fan_in), fan_in = in * k * k), zero biases, BN
 * gamma 1 and beta 0. A legacy MLP draws exactly what ed_mlp_init draws. */
void ed_net_init(ed_net *m, ed_rng *rng);

typedef struct {
    ed_stack arch;
    int max_batch;
    bool train;
    float dropout_in;                    /* legacy MLP only: ed_mlp_ws rates (see ed_mlp.h); */
    float dropout_hidden;                /* must stay 0 for other stacks (dropout is a layer) */
    float *act[ED_STACK_MAX_LAYERS + 1]; /* act[0]: (max_batch, input) input as given; act[l+1]:
                                            (max_batch, out of layer l). In an inference (!train)
                                            workspace the act[l >= 1] share two ping-pong buffers:
                                            after a forward only act[0] and the logits are valid */
    float *grads;                        /* (n_params) same layout as params; NULL if !train */
    float *dW[ED_STACK_MAX_LAYERS];      /* views into grads */
    float *db[ED_STACK_MAX_LAYERS];
    float *aux[ED_STACK_MAX_LAYERS];      /* per layer, training: dropout mask (max_batch, size);
                                             bn normalized input x_hat (max_batch, size) */
    int32_t *argmax[ED_STACK_MAX_LAYERS]; /* maxpool, training: (max_batch, out size) input index */
    float *bn_mean[ED_STACK_MAX_LAYERS];  /* bn, training: batch mean (C) of the last forward */
    float *bn_var[ED_STACK_MAX_LAYERS];   /* bn, training: biased batch variance (C) */
    float *bn_istd[ED_STACK_MAX_LAYERS];  /* bn, training: 1 / sqrt(var + eps) (C) */
    float *dbuf[2];                       /* (max_batch, largest activation) backward ping-pong */
    float *col;                           /* conv lowering: im2col / dcol (ed_layer_ops.h) */
    float *gemm;                          /* conv lowering: [W | b] (forward) / dY (backward) */
    int conv_chunk;                       /* samples per conv lowering step */
    bool last_train;                      /* last forward was in training mode */
    int last_batch;                       /* batch of the last forward */
    ed_mlp_ws *mlp;                       /* legacy stacks only */
    float *block;                         /* the single allocation behind the float buffers */
    int32_t *iblock;                      /* the allocation behind argmax */
} ed_net_ws;

/* Workspace for batches up to max_batch; `train` also allocates gradients, backward buffers, masks
 * and BN statistics. NULL on allocation failure, invalid stack or max_batch < 1. */
ed_net_ws *ed_net_ws_new(const ed_stack *arch, int max_batch, bool train);

void ed_net_ws_destroy(ed_net_ws **pws);

/* Forward pass. x: (batch, C, H, W) row-major, already scaled. `train`: dropout draws masks from
 * `rng` in layer order (rng may be NULL when no dropout rate is > 0) and batch norm uses batch
 * statistics (recorded in ws); otherwise dropout is the identity and batch norm uses the running
 * statistics. On success *logits points to (batch, classes) inside ws, valid until the next
 * forward. Errors: ED_ESHAPE when batch > max_batch or the stacks differ; ED_EINVAL for batch < 1,
 * training on a workspace without `train`, dropout without an rng, or a training batch of 1 through
 * batch norm with H = W = 1 (the variance is undefined). */
int ed_net_forward(const ed_net *m, ed_net_ws *ws, const float *x, int batch, bool train,
                   ed_rng *rng, const float **logits, ed_err *err);

/* Backward pass of the last (training) forward of this workspace. dlogits: (batch, classes).
 * Overwrites ws->grads (not accumulated). ED_EINVAL without a `train` workspace, when the last
 * forward was not a training forward, or for a batch other than the last forward's. */
int ed_net_backward(const ed_net *m, ed_net_ws *ws, const float *dlogits, int batch, ed_err *err);

/* Updates the model's BN running statistics from the last training forward of ws, as PyTorch does:
 * r = (1 - momentum) r + momentum * batch stat, variance unbiased (n / (n - 1)). No-op without BN
 * or when the last forward was not a training forward. */
void ed_net_commit_stats(ed_net *m, const ed_net_ws *ws);

/* A new model for serving: every bn that directly follows a conv or dense is folded into it
 * (W' = W gamma / sqrt(var + eps), b' = (b - mean) gamma / sqrt(var + eps) + beta) and removed;
 * other layers are copied. Inference logits equal the original's up to rounding. NULL on allocation
 * failure. */
ed_net *ed_net_fold_bn(const ed_net *m);

#endif
