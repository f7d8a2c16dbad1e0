/*
 * ed_mlp: a dense multilayer perceptron (ReLU hidden units, linear output logits).
 *
 * Memory follows llm.c: the parameters live in one block, the gradients in one block of the same
 * layout, and named per-layer views point into them. Layer l maps widths[l] -> widths[l+1]:
 *
 *     params = [ W_0 (w1, w0) | b_0 (w1) | W_1 (w2, w1) | b_1 (w2) | ... ]      row-major
 *
 * The model (ed_mlp) holds only the architecture and the parameters, so several threads may run
 * inference on one model, each with its own workspace (ed_mlp_ws). A workspace is sized once for a
 * maximum batch; a larger batch is refused (ED_ESHAPE), never silently reallocated.
 *
 * Worked example:
 *     ed_arch a; ed_arch_parse("784,256,10", &a, &err);
 *     ed_mlp *m = ed_mlp_new(&a);            ed_rng r; ed_rng_seed(&r, 1); ed_mlp_init(m, &r);
 *     ed_mlp_ws *ws = ed_mlp_ws_new(&a, 128, true);
 *     const float *z; ed_mlp_forward(m, ws, x, 128, true, &r, &z, &err);   // z: (128, 10)
 *     ... fill dz (128, 10) ...;  ed_mlp_backward(m, ws, dz, 128);        // ws->grads filled
 */
#ifndef ED_MLP_H
#define ED_MLP_H

#include <stdbool.h>
#include <stddef.h>

#include "ed_error.h"
#include "ed_rng.h"

#define ED_MLP_MAX_LAYERS 16 /* weight layers; widths has one more entry */

typedef struct {
    int n_layers;                      /* number of weight layers, >= 1 */
    int widths[ED_MLP_MAX_LAYERS + 1]; /* widths[0] = input dim, widths[n_layers] = classes */
} ed_arch;

/* Parses "784,1200,1200,10" (2..17 positive widths, each at most 1048576; blanks around an entry
 * are allowed). Errors (ED_EINVAL) name the offending entry; *out is untouched on error. */
int ed_arch_parse(const char *text, ed_arch *out, ed_err *err);

/* Writes "784,1200,1200,10" into buf (always NUL-terminated). */
void ed_arch_format(const ed_arch *arch, char *buf, size_t size);

bool ed_arch_equal(const ed_arch *a, const ed_arch *b);

static inline int ed_arch_in(const ed_arch *a)
{
    return a->widths[0];
}
static inline int ed_arch_out(const ed_arch *a)
{
    return a->widths[a->n_layers];
}

/* Number of floats in the parameter block. */
size_t ed_arch_param_count(const ed_arch *arch);

/* FLOPs of one forward pass of one sample (2 * multiply-adds of the weight layers). */
double ed_arch_forward_flops(const ed_arch *arch);

typedef struct {
    ed_arch arch;
    size_t n_params;
    float *params;               /* one block, layout above */
    float *W[ED_MLP_MAX_LAYERS]; /* (widths[l+1], widths[l]) views into params */
    float *b[ED_MLP_MAX_LAYERS]; /* (widths[l+1]) */
} ed_mlp;

/* Allocates a zeroed model; NULL on allocation failure or invalid arch. */
ed_mlp *ed_mlp_new(const ed_arch *arch);

/* Frees the model and sets *pm to NULL; accepts NULL and *pm == NULL. */
void ed_mlp_destroy(ed_mlp **pm);

/* He-normal weights (std sqrt(2 / fan_in)), zero biases. */
void ed_mlp_init(ed_mlp *m, ed_rng *rng);

typedef struct {
    ed_arch arch;
    int max_batch;
    float dropout_in;                  /* inverted dropout rate on the input, training only */
    float dropout_hidden;              /* inverted dropout rate on hidden activations */
                                       /* both start at 0: set them after ed_mlp_ws_new, and do not
                                          change them between a forward and its backward */
    float *act[ED_MLP_MAX_LAYERS + 1]; /* act[0]: (max_batch, w0) input as used (after dropout);
                                          act[l]: (max_batch, w_l) output of layer l (post-ReLU and
                                          post-dropout for hidden layers, i.e. the input layer l
                                          sees; logits for l = n_layers) */
    float *mask[ED_MLP_MAX_LAYERS];    /* mask[l]: (max_batch, w_l) dropout scale applied to the
                                          input of layer l (0 or 1/(1-p)); allocated for every layer
                                          of a `train` workspace, NULL otherwise; meaningful only
                                          when masks_used and that layer's rate is > 0 */
    float *dbuf[2];                    /* (max_batch, max width) backward ping-pong buffers */
    float *grads;                      /* (n_params) same layout as params; NULL if !train */
    float *dW[ED_MLP_MAX_LAYERS];      /* views into grads */
    float *db[ED_MLP_MAX_LAYERS];
    bool masks_used; /* last forward applied dropout masks */
    int last_batch;  /* batch of the last forward */
    float *block;    /* the single allocation behind all of the above */
} ed_mlp_ws;

/* Workspace for batches up to max_batch; `train` also allocates gradients, backward buffers and
 * dropout masks. Dropout rates start at 0. NULL on allocation failure, invalid arch or
 * max_batch < 1. */
ed_mlp_ws *ed_mlp_ws_new(const ed_arch *arch, int max_batch, bool train);

void ed_mlp_ws_destroy(ed_mlp_ws **pws);

/* Forward pass. x: (batch, w0) row-major, already scaled; x may be ws->act[0] (scaling straight
 * into it saves a copy). With `train`, dropout is applied using `rng` (which may be NULL when both
 * rates are 0); masks are drawn in order mask[0], mask[1], ... so the same rng state reproduces
 * them. Without `train`, neither masks nor rng are touched. On success *logits points to (batch,
 * w_L) inside ws, valid until the next forward. Errors: ED_ESHAPE when batch > max_batch or the
 * arch differs from the workspace's; ED_EINVAL for batch < 1, a rate outside [0, 1), or dropout
 * with a NULL rng or a workspace without `train`. */
int ed_mlp_forward(const ed_mlp *m, ed_mlp_ws *ws, const float *x, int batch, bool train,
                   ed_rng *rng, const float **logits, ed_err *err);

/* Backward pass for the last forward of this workspace. dlogits: (batch, w_L), the gradient of the
 * loss w.r.t. the logits. Overwrites ws->grads (not accumulated). Requires a `train` workspace and
 * the same batch as the last forward; returns ED_EINVAL otherwise. */
int ed_mlp_backward(const ed_mlp *m, ed_mlp_ws *ws, const float *dlogits, int batch);

#endif
