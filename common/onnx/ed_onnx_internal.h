/*
 * ed_onnx_internal: what the two halves of the ONNX reader share (ed_onnx_read.c walks the graph,
 * ed_onnx_ops.c translates one node). Not for other modules: it exposes the generated onnx__ types.
 */
#ifndef ED_ONNX_INTERNAL_H
#define ED_ONNX_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ed_error.h"
#include "ed_graph.h"
#include "onnx.pb-c.h"

typedef struct {
    const char *name; /* file name for messages */
    ed_graph *g;      /* the graph being built */
    ed_err *err;
    const char **const_names; /* constants: initializers and Constant node outputs */
    Onnx__TensorProto **const_vals;
    size_t n_const;
    int last_weight_node;     /* index of the Dense/Conv op the previous node emitted, or -1 */
    int last_matmul;          /* index of a bias-less MatMul emitted just before, or -1 */
    int64_t declared_classes; /* the output's declared dim 1, or -1 when not given */
} ed_onnx_ctx;

/* Error about one node: "<file>: node '<name>' (<op>): <why>"; returns code. */
int ed_onnx_node_err(ed_onnx_ctx *c, int code, const Onnx__NodeProto *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The constant (initializer or Constant node output) called `name`, or NULL. */
Onnx__TensorProto *ed_onnx_const(const ed_onnx_ctx *c, const char *name);

/* Translates node n of the chain into zero or one op of c->g (folding BatchNormalization, biases
 * and input scaling into earlier ops). data_idx: which input carries the chain's tensor; last:
 * the node's output is the graph output. Errors name the node and the reason. */
int ed_onnx_node(ed_onnx_ctx *c, const Onnx__NodeProto *n, size_t data_idx, bool last);

#endif
