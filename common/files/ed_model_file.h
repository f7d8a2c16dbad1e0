/*
 * ed_model_file: edistill model files: a layer stack's parameters plus everything needed to use it,
 * stored as safetensors.
 *
 * Tensors: those of ed_stack_tensors (ed_layer.h), F32, in that order, with PyTorch names and
 * shapes: "layers.{l}.weight" (out, in) or (out, in, k, k), "layers.{l}.bias", and for batch norm
 * also "layers.{l}.running_mean" / "running_var". A legacy MLP arch names its weight layers 0, 1,
 * ...
 * __metadata__ (all strings):
 *   format          "edistill-mlp"        (the magic: anything else is not an edistill model)
 *   format_version  "1" for a legacy MLP arch (byte-identical to files of earlier builds, which
 *                   read them), "2" for any other stack (earlier builds refuse it: "newer than this
 *                   build supports"); refused if newer than this build understands
 *   arch            "784,1200,1200,10" or "1x28x28:conv32k3p1,...,dense10" (authoritative)
 *   layers          (version 2 only) JSON array, one object per layer for other tools:
 *                   {"type": "conv", "units": 32, "k": 3, "stride": 1, "pad": 1, "rate": 0,
 *                    "in": [1, 28, 28], "out": [32, 28, 28]}; informational, not read back
 *   classes         "10"
 *   input_scale     "0.00392156886"       x_model = x_raw * input_scale + input_offset
 *   input_offset    "0"
 *   member          "member-0"            name of the ensemble member / student
 *   provenance      JSON text: how it was trained (command, seed, epochs, optimizer, data, ...)
 *   fingerprint     "fnv1a64:0123456789abcdef"  FNV-1a 64 of all tensor bytes in file order;
 *                   checked on load (it is the weights' checksum) and used to recognise replicas.
 */
#ifndef ED_MODEL_FILE_H
#define ED_MODEL_FILE_H

#include <stdint.h>

#include "ed_error.h"
#include "ed_net.h"

#define ED_MODEL_FORMAT "edistill-mlp"
#define ED_MODEL_FORMAT_VERSION 2 /* newest understood; legacy MLP archs are written as 1 */

typedef struct {
    char member[128];
    float input_scale;
    float input_offset;
    char provenance[4096]; /* JSON text, "{}" when unknown */
    uint64_t fingerprint;  /* filled by save and load */
} ed_model_meta;

/* FNV-1a 64 over the little-endian bytes of n floats. */
uint64_t ed_fingerprint(const float *params, size_t n);

/* "fnv1a64:%016llx" into buf (at least 25 bytes). */
void ed_fingerprint_format(uint64_t fp, char *buf, size_t size);

/* Saves atomically; computes meta->fingerprint (set only on success). An empty provenance is
 * written as "{}". ED_EINVAL if provenance is not valid JSON or input_scale/offset is not finite.
 */
int ed_model_save(const char *path, const ed_net *m, ed_model_meta *meta, ed_err *err);

/* FNV-1a 64 of the model's tensors in file order (what the fingerprint field holds). For a legacy
 * MLP this is ed_fingerprint(m->params, m->n_params). */
uint64_t ed_model_fingerprint(const ed_net *m);

/* Loads and validates: format magic, version, arch parse, tensor names/shapes against the arch,
 * truncation, fingerprint. On success *out is a new model owned by the caller. Errors name the path
 * and the fault, e.g. "m.safetensors: tensor layers.1.weight has shape (10, 64), arch needs
 * (10, 128)" or "m.safetensors: fingerprint mismatch (file says ..., weights hash to ...): the
 * weights are corrupted". A version-1 file must have a legacy MLP arch (ED_EFORMAT). meta may be
 * NULL; a missing member / provenance loads as "" / "{}". Codes: ED_EFORMAT (not an edistill model,
 * bad field, missing or extra tensor), ED_EVERSION, ED_ESHAPE (tensor shape or classes vs arch),
 * ED_ECHECKSUM, plus ed_st_open's codes. On failure *out is NULL. */
int ed_model_load(const char *path, ed_net **out, ed_model_meta *meta, ed_err *err);

#endif
