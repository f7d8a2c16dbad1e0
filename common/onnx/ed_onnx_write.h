/*
 * ed_onnx_write: writes an ed_graph as an ONNX model (opset 13, IR version 7) that other runtimes
 * (onnxruntime, OpenCV's dnn module, PyTorch's onnx tools) load without edistill.
 *
 * The model takes RAW PIXELS: input "input" float32 (N, D) or (N, C, H, W), values as stored in
 * the data files (0..255 for Fashion-MNIST), with a dynamic batch dimension "N". The model's input
 * scaling is baked in as its first two nodes, Mul(input_scale) then Add(input_offset), so a user
 * feeds the same numbers edistill reads and no one has to know the scaling. (A uint8 input with a
 * Cast was the other option; float32 input is what cv2.dnn.blobFromImage and most pipelines
 * produce, and it keeps the graph free of a type conversion.) Output "logits" float32
 * (N, classes): the worker's logits, no softmax.
 * Ops: Dense -> Gemm (transB 1), Conv, Relu, MaxPool, AveragePool, GlobalAveragePool,
 * Flatten (axis 1), an unfolded batch norm -> BatchNormalization (mean 0, var 1, epsilon 0).
 * producer_name "edistill", producer_version ed_version(); metadata_props:
 *   edistill.fingerprint  the model's weight fingerprint ("fnv1a64:...")
 *   edistill.member       member / student name
 *   edistill.input        "raw-pixels" (the input convention above)
 *   edistill.input_scale, edistill.input_offset   the baked-in scaling, as text
 *   edistill.provenance   the model file's provenance JSON (when given)
 */
#ifndef ED_ONNX_WRITE_H
#define ED_ONNX_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "ed_error.h"
#include "ed_graph.h"

#define ED_ONNX_WRITE_OPSET 13

typedef struct {
    float input_scale; /* x_model = x_raw * input_scale + input_offset, baked in */
    float input_offset;
    const char *member;      /* may be NULL */
    const char *fingerprint; /* may be NULL */
    const char *provenance;  /* may be NULL */
} ed_onnx_write_meta;

/* Serializes a finished graph (ed_graph_finish passed) into a new buffer (*out, caller frees, *size
 * bytes). ED_EINVAL for an unfinished graph or non-finite scaling, ED_ENOMEM. */
int ed_onnx_write_buffer(const ed_graph *g, const ed_onnx_write_meta *meta, uint8_t **out,
                         size_t *size, ed_err *err);

/* Writes the model to `path` atomically (ed_fs_write_atomic). Errors as ed_onnx_write_buffer, plus
 * ED_EIO naming the path. */
int ed_onnx_write_file(const char *path, const ed_graph *g, const ed_onnx_write_meta *meta,
                       ed_err *err);

#endif
