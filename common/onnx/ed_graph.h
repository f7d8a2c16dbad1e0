/*
 * ed_graph: a neutral description of an inference network as a linear chain of ops with their
 * weights. It is the meeting point of the ONNX reader (ed_onnx_read), the ONNX writer
 * (ed_onnx_write) and edistill's own models: an importer fills a graph from a file, a converter
 * maps the graph onto edistill's layer stack (ed_graph_net.h), and an exporter goes the other
 * way. Nothing here runs a forward pass: the graph only carries what is needed
 * to build one and the per-sample shapes, checked op by op when the graph is finished.
 *
 * Shapes are per sample (the batch dimension is implicit and dynamic): rank 1 (D) or rank 3
 * (C, H, W). Weights are owned by the op (one malloc each) and use ONNX's layouts:
 *     DENSE   w (out, in)            b (out)          y = x w^T + b
 *     CONV    w (out, in, kh, kw)    b (out)          cross-correlation, stride, zero padding
 *     AFFINE  w (C) scale            b (C) shift      y[c] = x[c] * w[c] + b[c] (unfolded batch
 * norm) RELU, MAXPOOL, AVGPOOL, GLOBAL_AVGPOOL, FLATTEN: no weights
 *
 * Worked example (an MLP 784-64-10):
 *     ed_graph *g = ed_graph_new();  ed_graph_set_input(g, 1, (int[]){784});
 *     ed_gop *d = ed_graph_add(g, ED_GOP_DENSE, "fc1", &err);  d->out_ch = 64;  ... weights ...
 *     ed_graph_add(g, ED_GOP_RELU, "relu1", &err);  ... fc2 ...
 *     ed_graph_finish(g, &err);   // shapes: (784) -> (64) -> (64) -> (10); g->classes = 10
 */
#ifndef ED_GRAPH_H
#define ED_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ed_error.h"

#define ED_GRAPH_MAX_OPS 256
#define ED_GRAPH_NAME_LEN 96

typedef enum {
    ED_GOP_DENSE,
    ED_GOP_CONV,
    ED_GOP_AFFINE,
    ED_GOP_RELU,
    ED_GOP_MAXPOOL,
    ED_GOP_AVGPOOL,
    ED_GOP_GLOBAL_AVGPOOL,
    ED_GOP_FLATTEN,
    ED_GOP_COUNT
} ed_gop_kind;

/* Per-sample shape: rank 1 (d[0]) or rank 3 (d[0], d[1], d[2]) = (C, H, W). */
typedef struct {
    int rank;
    int d[3];
} ed_gshape;

typedef struct {
    ed_gop_kind kind;
    char name[ED_GRAPH_NAME_LEN];   /* the source node's name (for messages), may be "" */
    int out_ch;                     /* DENSE: out features; CONV: out channels */
    int in_ch;                      /* DENSE: in features; CONV / AFFINE: in channels (checked) */
    int kh, kw;                     /* CONV / pools: kernel */
    int stride_h, stride_w;         /* CONV / pools: >= 1 */
    int pad_t, pad_l, pad_b, pad_r; /* CONV / pools: zero (max: -inf) padding */
    bool count_include_pad;         /* AVGPOOL: padded cells count in the divisor */
    float *w;                       /* layouts in the file comment; NULL for ops without weights */
    float *b;                       /* (out) or (C); DENSE/CONV always have one (zeros if absent) */
    ed_gshape in, out;              /* filled by ed_graph_finish */
} ed_gop;

typedef struct {
    ed_gshape input;    /* per-sample input shape */
    float input_scale;  /* leading scalar ops folded into x * input_scale + input_offset */
    float input_offset; /* (1, 0 when the file has none); applied before ops[0] */
    int classes;        /* out features of the last op, set by ed_graph_finish */
    int n_ops;
    ed_gop ops[ED_GRAPH_MAX_OPS];
    char producer[128];            /* ONNX producer_name + " " + producer_version ("" if none) */
    char edistill_fingerprint[64]; /* ONNX metadata "edistill.fingerprint" if present, else "" */
    char edistill_member[128];     /* ONNX metadata "edistill.member" if present, else "" */
    bool raw_pixel_input;          /* ONNX metadata "edistill.input" == "raw-pixels" */
} ed_graph;

/* Human name of an op kind ("Dense", "Conv", ...). */
const char *ed_gop_name(ed_gop_kind kind);

/* A new empty graph (input rank 0, scale 1, offset 0); NULL on allocation failure. */
ed_graph *ed_graph_new(void);

/* Frees the graph, its ops' weights, and sets *pg to NULL; accepts NULL. */
void ed_graph_destroy(ed_graph **pg);

/* Appends an op of `kind` named `name` (truncated; NULL = ""), strides 1, no padding, no weights.
 * Returns it, or NULL with ED_ETOOBIG when the graph already has ED_GRAPH_MAX_OPS ops. */
ed_gop *ed_graph_add(ed_graph *g, ed_gop_kind kind, const char *name, ed_err *err);

/* Removes op i (frees its weights) and shifts the following ones down. */
void ed_graph_remove(ed_graph *g, int i);

/* Computes every op's in/out shape from g->input (see ed_graph_finish for the checks) and returns
 * the last op's output shape (the input shape when there are no ops) in *out; does not require
 * logits at the end. Errors as ed_graph_finish. */
int ed_graph_infer(ed_graph *g, ed_gshape *out, ed_err *err);

/* Computes every op's in/out shape from g->input and checks them: DENSE needs rank 1 and w/b,
 * CONV rank 3, in_ch equal to the input's features / channels, a kernel within the padded input and
 * w/b, pools likewise, AFFINE a matching C, the last op's output rank 1 (logits). Sets g->classes.
 * Errors (ED_ESHAPE, ED_EFORMAT) name the op kind and its name: "Conv 'conv1': kernel 5x5 larger
 * than the padded input 3x3". */
int ed_graph_finish(ed_graph *g, ed_err *err);

/* Number of weight floats in the graph (w and b of every op). */
size_t ed_graph_param_count(const ed_graph *g);

#endif
