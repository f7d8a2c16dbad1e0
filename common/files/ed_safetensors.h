/*
 * ed_safetensors: reader and writer of the safetensors format (an 8-byte little-endian header
 * length, a JSON header, then raw little-endian tensor bytes), readable from Python without
 * edistill. The reader checks everything: header length within the file, valid JSON, every tensor's
 * dtype / shape / byte range consistent and inside the data area, no overlaps.
 */
#ifndef ED_SAFETENSORS_H
#define ED_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "ed_error.h"

#define ED_ST_MAX_DIMS 4
#define ED_ST_MAX_HEADER (16u << 20) /* refuse headers over 16 MiB */

typedef struct {
    const char *name;
    const char *dtype; /* "F32", "I32", "U8", "I64", "F64" */
    int ndim;
    int64_t shape[ED_ST_MAX_DIMS];
    const void *data; /* little-endian bytes */
    size_t nbytes;
} ed_st_tensor;

typedef struct {
    const char *key;
    const char *value;
} ed_st_meta;

/* Writes tensors (in the given order, contiguously) and string metadata ("__metadata__", written
 * first, omitted when n_meta == 0) atomically to path; the header is space-padded to a multiple of
 * 8 bytes. ED_EINVAL for an unknown dtype, more than ED_ST_MAX_DIMS dims, nbytes != product(shape)
 * * dtype size, or duplicate names; I/O errors as ed_fs_write_atomic. */
int ed_st_write(const char *path, const ed_st_tensor *tensors, int n_tensors,
                const ed_st_meta *meta, int n_meta, ed_err *err);

typedef struct ed_st_file ed_st_file;

/* Reads and validates the whole file. Errors name the path and the fault: ED_ETRUNC (file shorter
 * than the header or a tensor says), ED_EFORMAT (bad JSON, unknown dtype, inconsistent or
 * overlapping offsets, non-string metadata, header over ED_ST_MAX_HEADER), ED_ENOTFOUND (no such
 * file), ED_EIO (cannot read). The reader also accepts the other reference dtypes (BOOL, I8, I16,
 * U16, F16, BF16, U32, U64). */
ed_st_file *ed_st_open(const char *path, ed_err *err);
void ed_st_close(ed_st_file **pf);

/* Metadata value for key, or NULL. */
const char *ed_st_meta_get(const ed_st_file *f, const char *key);

/* Looks up a tensor by name; out->name/dtype/data point into the file's memory (valid until
 * ed_st_close). out->data is not necessarily aligned (files from other writers need not pad the
 * header): copy with memcpy. ED_ENOTFOUND if absent. */
int ed_st_find(const ed_st_file *f, const char *name, ed_st_tensor *out);

int ed_st_tensor_count(const ed_st_file *f);

#endif
