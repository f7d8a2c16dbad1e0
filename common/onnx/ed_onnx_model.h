/*
 * ed_onnx_model: ONNX files as edistill models. Import reads an ONNX file (ed_onnx_read), maps
 * its op chain onto edistill's own layer stack (ed_graph_to_net) and fills
 * the same metadata a model file carries, so an ONNX member is served and distilled exactly like
 * a native one; nothing downstream knows where it came from. Export goes the other way for any
 * edistill model file (ed_graph_from_net + ed_onnx_write).
 *
 * Input scaling of an imported model: the worker turns raw pixels into the ONNX model's input as
 * x * input_scale + input_offset (default 1/255 and 0, or 1 and 0 for a model written by
 * ed_onnx_write, which takes raw pixels); scalar Mul/Div/Add/Sub at the start of the ONNX graph
 * are composed into that. The recorded meta.input_scale/offset is the composition.
 */
#ifndef ED_ONNX_MODEL_H
#define ED_ONNX_MODEL_H

#include <stdbool.h>

#include "ed_error.h"
#include "ed_net.h"
#include "ed_model_file.h"

#define ED_ONNX_DEFAULT_INPUT_SCALE (1.0f / 255.0f)

typedef struct {
    float input_scale;  /* raw pixel -> ONNX input; NAN = default (see above) */
    float input_offset; /* NAN = default 0 */
    const char *member; /* member name; NULL/"" = the file's edistill.member or its base name */
} ed_onnx_import_opts;

/* Default options: NANs and no member name. */
ed_onnx_import_opts ed_onnx_import_defaults(void);

/* Imports the ONNX model at `path`: on success *out is a new model and *meta is filled (member,
 * composed input scaling, provenance {"imported_from": {"file", "producer", "input_scale",
 * "input_offset"}}, fingerprint of the imported weights). Errors are ed_onnx_read's (naming the
 * file, node, op and reason) or ED_EFORMAT when the chain has a layer the model type cannot hold;
 * ED_EINVAL for a non-finite scale/offset. *out is NULL on failure. */
int ed_onnx_model_load(const char *path, const ed_onnx_import_opts *opts, ed_net **out,
                       ed_model_meta *meta, ed_err *err);

/* Loads any model file: an .onnx path through ed_onnx_model_load with `opts` (NULL: defaults),
 * anything else through ed_model_load. What ed_member_open uses. */
int ed_onnx_model_load_any(const char *path, const ed_onnx_import_opts *opts, ed_net **out,
                           ed_model_meta *meta, ed_err *err);

/* Writes `m` (with its metadata: scaling, member, fingerprint, provenance) as an ONNX model at
 * onnx_path (ed_onnx_write conventions: raw-pixel float input, scaling baked in). */
int ed_onnx_model_export(const ed_net *m, const ed_model_meta *meta, const char *onnx_path,
                         ed_err *err);

#endif
