/*
 * ed_layer: the architecture of a sequential layer stack (ed_stack): input shape, layer list,
 * per-layer shapes, the parser of --arch strings, and the table of named tensors (PyTorch names and
 * shapes) that places every layer's parameters in the model's parameter and state blocks.
 *
 * Architecture strings (one per model; blanks around tokens are allowed):
 *
 *     1x28x28:conv32k3p1,bn,relu,maxpool2,conv64k3p1,bn,relu,maxpool2,flatten,dense128,relu,
 *             dropout0.3,dense10
 *     784:dense256,relu,dense10                        flat input, new syntax
 *     784,1200,1200,10                                 legacy MLP (the form of model files v1)
 *
 *   input   CxHxW or N (= Nx1x1)
 *   convC k K [s S] [p P]    conv2d, C output channels, KxK kernel, stride S (1), zero padding P
 * (0) maxpoolK [s S]           KxK max pool, stride S (default K), no padding avgpoolK [s S] KxK
 * average pool, stride S (default K), no padding gap                      global average pool: (C,
 * H, W) -> (C, 1, 1) flatten                  (C, H, W) -> (C*H*W, 1, 1), NCHW order as
 * torch.flatten(x, 1) denseN                   fully connected, N outputs; needs a flat input (H =
 * W = 1) relu                     max(x, 0) dropoutP                 inverted dropout with rate P
 * in [0, 1), training only bn                       batch norm per channel (BatchNorm2d /
 * BatchNorm1d), eps 1e-5, momentum 0.1, running statistics used at inference The output of the last
 * layer must be flat: its C is the number of classes.
 *
 * The legacy form "784,1200,1200,10" is the dense ReLU MLP of ed_mlp: it parses to
 * dense1200,relu,dense1200,relu,dense10 on a 784x1x1 input with `mlp` set. It keeps its meaning:
 * the same parameter layout and tensor names (layers.{weight layer}.weight), executed by ed_mlp's
 * fused kernels, with the input/hidden dropout rates of the trainer flags.
 *
 * Tensors, in file order (the order of the parameter block and of the fingerprint):
 *   dense   layers.{l}.weight (out, in)            layers.{l}.bias (out)
 *   conv    layers.{l}.weight (out, in, k, k)      layers.{l}.bias (out)
 *   bn      layers.{l}.weight (C) [gamma]  layers.{l}.bias (C) [beta]            -> param block
 *           layers.{l}.running_mean (C)    layers.{l}.running_var (C)            -> state block
 * where l is the layer's index in the stack (as in torch.nn.Sequential), or, for the legacy MLP,
 * the index of the weight layer (0, 1, 2, ...). Parameters (trained) and state (BN running
 * statistics, not trained, no weight decay) live in two blocks; each layer's tensors are contiguous
 * in its block.
 *
 * Worked example:
 *     ed_stack s; ed_err err;
 *     if (ed_stack_parse("1x28x28:conv8k3p1,relu,maxpool2,flatten,dense10", &s, &err)) ... err.msg
 *     // s.n_layers = 5, s.layers[2].out = {8, 14, 14}, ed_stack_classes(&s) = 10
 *     ed_tensor_desc t[ED_STACK_MAX_TENSORS]; int n = ed_stack_tensors(&s, t,
 * ED_STACK_MAX_TENSORS);
 *     // t[0] = {"layers.0.weight", ndim 4, (8, 1, 3, 3), ED_BLOCK_PARAM, offset 0, count 72}
 */
#ifndef ED_LAYER_H
#define ED_LAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ed_error.h"
#include "ed_mlp.h"

#define ED_STACK_MAX_LAYERS 64
#define ED_STACK_MAX_TENSORS (4 * ED_STACK_MAX_LAYERS)
#define ED_STACK_TEXT_MAX 1024 /* longest architecture string accepted or formatted */
#define ED_BN_EPS 1e-5f
#define ED_BN_MOMENTUM 0.1f

/* Values are append-only (they may be written to files by name, never by number, but keep them). */
typedef enum {
    ED_LAYER_DENSE = 0,
    ED_LAYER_CONV = 1,
    ED_LAYER_MAXPOOL = 2,
    ED_LAYER_AVGPOOL = 3,
    ED_LAYER_GAP = 4,
    ED_LAYER_FLATTEN = 5,
    ED_LAYER_RELU = 6,
    ED_LAYER_DROPOUT = 7,
    ED_LAYER_BN = 8,
    ED_LAYER_KIND_COUNT
} ed_layer_kind;

/* The shape of one sample, NCHW without N. A flat vector of n features is (n, 1, 1). */
typedef struct {
    int c, h, w;
} ed_shape;

static inline size_t ed_shape_size(ed_shape s)
{
    return (size_t)s.c * (size_t)s.h * (size_t)s.w;
}

/* One layer. The parser fills every field; shapes are derived from the input shape. */
typedef struct {
    ed_layer_kind kind;
    int units;        /* dense: outputs; conv: output channels; 0 otherwise */
    int k;            /* conv, maxpool, avgpool: kernel size; 0 otherwise */
    int stride;       /* conv, maxpool, avgpool: stride (>= 1); 0 otherwise */
    int pad;          /* conv: zero padding on each side; 0 otherwise */
    float rate;       /* dropout: rate in [0, 1); 0 otherwise */
    ed_shape in;      /* input shape of one sample */
    ed_shape out;     /* output shape of one sample */
    size_t n_params;  /* floats in the parameter block (weight + bias, or gamma + beta) */
    size_t n_state;   /* floats in the state block (bn: running mean + running var) */
    size_t param_off; /* offset of this layer's parameters in the parameter block */
    size_t state_off; /* offset of this layer's state in the state block */
} ed_layer;

typedef struct {
    ed_shape input; /* shape of one input sample (after the input scaling) */
    int n_layers;   /* 1..ED_STACK_MAX_LAYERS */
    ed_layer layers[ED_STACK_MAX_LAYERS];
    bool mlp;         /* written in the legacy form: run by ed_mlp (see top) */
    ed_arch mlp_arch; /* the ed_mlp arch when `mlp`; zeroed otherwise */
    size_t n_params;  /* floats in the parameter block */
    size_t n_state;   /* floats in the state block */
} ed_stack;

/* Parses an architecture string (either form above) into *out and derives every shape, size and
 * offset. Errors (ED_EINVAL, or ED_ESHAPE for a layer that does not fit its input, e.g. a kernel
 * larger than the padded input or dense on an unflattened input) point at the offending token:
 * `arch "...": token 4 "maxpool9": kernel 9 exceeds the input 7x7`. *out is untouched on error. */
int ed_stack_parse(const char *text, ed_stack *out, ed_err *err);

/* Builds the stack of a legacy MLP arch (mlp = true). ED_EINVAL for an invalid arch. */
int ed_stack_from_mlp(const ed_arch *arch, ed_stack *out, ed_err *err);

/* Writes the canonical string (legacy form when `mlp`; defaults omitted otherwise, e.g. conv32k3p1)
 * into buf (always NUL-terminated; ED_STACK_TEXT_MAX is always enough). Parsing the result gives an
 * equal stack. */
void ed_stack_format(const ed_stack *s, char *buf, size_t size);

/* Same input, same layers with the same hyper-parameters, same form. */
bool ed_stack_equal(const ed_stack *a, const ed_stack *b);

/* Floats of one input sample, C*H*W. */
size_t ed_stack_in_size(const ed_stack *s);

/* Number of classes: C of the last layer's (flat) output. */
int ed_stack_classes(const ed_stack *s);

/* FLOPs of one forward pass of one sample (2 * multiply-adds of dense and conv layers). */
double ed_stack_forward_flops(const ed_stack *s);

/* Lower-case token of a kind: "dense", "conv", "maxpool", ..., "bn"; "?" when out of range. */
const char *ed_layer_kind_name(ed_layer_kind kind);

/* Removes layer l when it keeps the shape (bn, relu, dropout) and recomputes the offsets; ED_EINVAL
 * otherwise (or for the last remaining layer, or a legacy MLP stack). */
int ed_stack_remove_layer(ed_stack *s, int l);

typedef enum { ED_BLOCK_PARAM = 0, ED_BLOCK_STATE = 1 } ed_tensor_block;

/* One named tensor of a stack's model, placed in the parameter or state block. */
typedef struct {
    char name[48];    /* "layers.3.weight", "layers.1.running_var" */
    int layer;        /* index into ed_stack.layers */
    int ndim;         /* 1, 2 or 4 */
    int64_t shape[4]; /* PyTorch shape */
    ed_tensor_block block;
    size_t offset; /* in floats, into the block */
    size_t count;  /* product of shape */
} ed_tensor_desc;

/* Fills out[0..n) with the stack's tensors in file order and returns n (<= max; a larger count is
 * truncated to max, so pass ED_STACK_MAX_TENSORS). */
int ed_stack_tensors(const ed_stack *s, ed_tensor_desc *out, int max);

#endif
