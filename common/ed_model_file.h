/*
 * ed_model_file: edistill model files: an MLP's parameters plus everything needed to use it,
 * stored as safetensors.
 *
 * Tensors: "layers.{l}.weight" F32 (w_{l+1}, w_l) and "layers.{l}.bias" F32 (w_{l+1}).
 * __metadata__ (all strings):
 *   format          "edistill-mlp"        (the magic: anything else is not an edistill model)
 *   format_version  "1"                   (refused if newer than this build understands)
 *   arch            "784,1200,1200,10"
 *   classes         "10"
 *   input_scale     "0.00392156886"       x_model = x_raw * input_scale + input_offset
 *   input_offset    "0"
 *   member          "member-0"            name of the ensemble member / student
 *   provenance      JSON text: how it was trained (command, seed, epochs, optimizer, data, ...)
 *   fingerprint     "fnv1a64:0123456789abcdef"  FNV-1a 64 of the parameter bytes in tensor order;
 *                   checked on load (it is the weights' checksum) and used to recognise replicas.
 */
#ifndef ED_MODEL_FILE_H
#define ED_MODEL_FILE_H

#include <stdint.h>

#include "ed_error.h"
#include "ed_mlp.h"

#define ED_MODEL_FORMAT "edistill-mlp"
#define ED_MODEL_FORMAT_VERSION 1

typedef struct {
    char member[128];
    float input_scale;
    float input_offset;
    char provenance[4096];  /* JSON text, "{}" when unknown */
    uint64_t fingerprint;   /* filled by save and load */
} ed_model_meta;

/* FNV-1a 64 over the little-endian bytes of n floats. */
uint64_t ed_fingerprint(const float *params, size_t n);

/* "fnv1a64:%016llx" into buf (at least 25 bytes). */
void ed_fingerprint_format(uint64_t fp, char *buf, size_t size);

/* Saves atomically; computes meta->fingerprint (set only on success). An empty provenance is
 * written as "{}". ED_EINVAL if provenance is not valid JSON or input_scale/offset is not finite. */
int ed_model_save(const char *path, const ed_mlp *m, ed_model_meta *meta, ed_err *err);

/* Loads and validates: format magic, version, arch parse, tensor names/shapes against the arch,
 * truncation, fingerprint. On success *out is a new model owned by the caller. Errors name the path
 * and the fault, e.g. "m.safetensors: tensor layers.1.weight has shape (10, 64), arch needs
 * (10, 128)" or "m.safetensors: fingerprint mismatch (file says ..., weights hash to ...): the
 * weights are corrupted". meta may be NULL; a missing member / provenance loads as "" / "{}".
 * Codes: ED_EFORMAT (not an edistill model, bad field, missing or extra tensor), ED_EVERSION,
 * ED_ESHAPE (tensor shape or classes vs arch), ED_ECHECKSUM, plus ed_st_open's codes. On failure
 * *out is NULL. */
int ed_model_load(const char *path, ed_mlp **out, ed_model_meta *meta, ed_err *err);

#endif
