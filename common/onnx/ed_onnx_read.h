/*
 * ed_onnx_read: reads an ONNX model (ModelProto, protobuf-c from proto/onnx/onnx.proto) into an
 * ed_graph, the neutral op chain that edistill maps onto its own layers.
 *
 * What is accepted (opsets 11-17 of the default domain; everything else is refused at load with the
 * op type, the node name and the reason, never served wrong):
 *   - one float input (N, D) or (N, C, H, W) with fixed non-batch dimensions, one output that ends
 *     up 2-D (N, classes), and a linear chain between them (a tensor feeding two nodes, or a node
 *     with two data inputs, is a branching graph and is refused);
 *   - Gemm (transA 0, alpha/beta folded), MatMul + Add (bias), Conv (2-D, group 1, dilations 1,
 *     explicit or VALID padding), Relu, MaxPool / AveragePool (2-D, ceil_mode 0, dilations 1),
 *     GlobalAveragePool, Flatten (axis 1), Reshape to (N, -1) with a constant shape whose batch
 *     entry is 0 or -1 (a fixed batch cannot be resolved for batch N and is refused);
 *   - BatchNormalization: folded into the directly preceding Gemm/MatMul/Conv; elsewhere kept as
 *     a per-channel affine op;
 *   - Dropout and Identity: dropped; a trailing Softmax/LogSoftmax: dropped (the worker serves
 *     logits), logged at info level;
 *   - scalar Mul/Div/Add/Sub by constants before the first weight layer: folded into
 *     graph->input_scale/input_offset (x * scale + offset), which the caller composes with its own
 *     raw-pixel scaling;
 *   - constants as initializers or Constant nodes; tensor data as raw_data (little-endian) or
 *     float_data / int64_data, element count checked against dims; external data is refused.
 * Metadata written by ed_onnx_write (edistill.fingerprint, edistill.member, edistill.input) is
 * copied into the graph.
 */
#ifndef ED_ONNX_READ_H
#define ED_ONNX_READ_H

#include <stddef.h>
#include <stdint.h>

#include "ed_error.h"
#include "ed_graph.h"

#define ED_ONNX_OPSET_MIN 11
#define ED_ONNX_OPSET_MAX 17

/* Decodes `size` bytes of a serialized ModelProto. `name` (the file name) prefixes every error
 * message: "x.onnx: node 'lstm_1' (LSTM): unsupported op". On success *out is a new finished
 * graph (ed_graph_finish passed) owned by the caller; on failure *out is NULL and the code is
 * ED_EFORMAT (not ONNX, bad field, unsupported op or attribute, branching graph), ED_EVERSION
 * (opset outside 11-17), ED_ESHAPE (sizes that do not agree, output not 2-D), ED_ETOOBIG
 * (limits: 65536 nodes and initializers, 2^28 elements per tensor) or ED_ENOMEM. */
int ed_onnx_read_buffer(const uint8_t *data, size_t size, const char *name, ed_graph **out,
                        ed_err *err);

/* Reads the file at `path` (at most 2 GiB) and decodes it as ed_onnx_read_buffer; I/O errors are
 * ED_EIO naming the path. */
int ed_onnx_read_file(const char *path, ed_graph **out, ed_err *err);

/* True when `path` ends in ".onnx" (case-insensitive): the file is read as ONNX. */
int ed_onnx_is_onnx_path(const char *path);

#endif
