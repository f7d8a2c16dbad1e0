/*
 * ed_member: one ensemble member run in this process: a model file loaded and validated, the input
 * scaling it records, and an inference workspace of its own.
 *
 * This is the one place that turns a raw batch (uint8 or float32 samples as read from a data file
 * or received in a LogitRequest, unscaled) into a member's logits. teacher_worker's compute
 * threads, the trainer's in-process replicas, evaluation and the bench all go through it.
 *
 * Behind the API sits a backend: the layer stack (ed_net: MLPs and CNNs) of an edistill model
 * file (ed_model_file) or of an ONNX file mapped onto it (ed_onnx_model); no caller changes.
 * Callers only see names, shapes and forward.
 *
 * Threads: a member is used by one thread at a time (the workspace is its own). To run one model
 * on several threads, open it once and ed_member_share it once per thread: the shares read the
 * same weights (read-only, loaded once) and each has its own workspace. The weights are freed with
 * the last member that uses them, whatever the order of the destroys.
 *
 * Example:
 *     ed_member *m = ed_member_open("m1.safetensors", 256, &err);       // NULL: err says why
 *     float *z = malloc(sizeof(float) * 256 * ed_member_classes(m));
 *     ed_member_forward(m, pixels, ED_DTYPE_U8, 256, z, &err);           // z: (256, classes)
 *     ed_member_destroy(&m);
 */
#ifndef ED_MEMBER_H
#define ED_MEMBER_H

#include "ed_batch.h"
#include "ed_error.h"
#include "ed_net.h"
#include "ed_onnx_model.h"

typedef struct ed_member ed_member;

/* Loads and validates the model file at path (everything ed_model_load checks) and allocates a
 * workspace for batches of up to max_batch samples. NULL on failure with err naming the file and
 * the fault: the codes of ed_model_load, ED_EINVAL for max_batch < 1, ED_ENOMEM when the workspace
 * cannot be allocated. */
ed_member *ed_member_open(const char *path, int max_batch, ed_err *err);

/* ed_member_open for any model file: an ONNX file (*.onnx, imported onto the layer stack with
 * `onnx` options, NULL = defaults: see ed_onnx_model.h) or an edistill model file. Errors as
 * ed_member_open plus ed_onnx_model_load's. */
ed_member *ed_member_open_with(const char *path, const ed_onnx_import_opts *onnx, int max_batch,
                               ed_err *err);

/* A member that runs the same weights as m (shared, not copied) with a new workspace for
 * max_batch samples, for another thread. m may be destroyed before the share. NULL on failure
 * (ED_EINVAL max_batch < 1, ED_ENOMEM). */
ed_member *ed_member_share(const ed_member *m, int max_batch, ed_err *err);

/* A member over a model the caller keeps (e.g. a student under training): borrowed, never freed
 * here, and it must outlive the member; it is read at each forward, so it sees updates. x_model =
 * x_raw * input_scale + input_offset; name is copied (NULL: ""). Its fingerprint is "" (the weights
 * change). NULL on failure (ED_EINVAL bad arguments, ED_ENOMEM). */
ed_member *ed_member_wrap_net(const ed_net *model, float input_scale, float input_offset,
                              const char *name, int max_batch, ed_err *err);

/* Frees the workspace (and the weights with their last user). Accepts NULL; clears *pm. */
void ed_member_destroy(ed_member **pm);

/* Raw batch -> logits. x: (n, input_dim) values of dtype, unscaled: the member applies the scaling
 * its file records. logits: (n, classes), owned by the caller. Errors (nothing written to logits):
 * ED_EINVAL n < 1 or an unknown dtype, ED_ESHAPE n > max_batch; messages name the member. */
int ed_member_forward(ed_member *m, const void *x, ed_dtype dtype, int n, float *logits,
                      ed_err *err);

const char *ed_member_name(const ed_member *m);        /* as recorded in the file ("" if none) */
const char *ed_member_fingerprint(const ed_member *m); /* "fnv1a64:0123456789abcdef" ("" wrapped) */
const char *ed_member_arch(const ed_member *m); /* "784,1200,1200,10", "1x28x28:conv8k3,..." */
const char *ed_member_path(const ed_member *m); /* the file it came from ("" wrapped) */
const char *ed_member_provenance(const ed_member *m); /* JSON text, "{}" when unknown */
int ed_member_input_dim(const ed_member *m);          /* C*H*W of one sample */
ed_shape ed_member_input_shape(const ed_member *m);   /* (C, H, W); (N, 1, 1) for flat inputs */
int ed_member_classes(const ed_member *m);
int ed_member_max_batch(const ed_member *m);
float ed_member_input_scale(const ed_member *m);
float ed_member_input_offset(const ed_member *m);

/* FLOPs of one sample's forward pass (for throughput reports). */
double ed_member_forward_flops(const ed_member *m);

#endif
