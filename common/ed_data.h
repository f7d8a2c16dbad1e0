/*
 * ed_data: streaming sample readers, a shuffle buffer, and batching.
 *
 * Formats (detected from content, not from the file name):
 *   - IDX (the MNIST family): unsigned-byte data of any rank >= 1; the first dimension is the sample
 *     count, the rest are flattened into the sample dimension. Gzip-compressed (.gz) or raw: both go
 *     through zlib's gzread, which reads raw files transparently.
 *   - NumPy .npy (format 1.0/2.0/3.0): dtype |u1 or <f4 for samples, |u1 <i4 <i8 for labels, C order.
 *   - CSV: one sample per line of comma-separated numbers (float32 samples); a label file in CSV has
 *     one integer per line.
 * A sample file yields `dim` values per sample (uint8 or float32, raw, unscaled); a label file yields
 * one integer class per sample.
 *
 * Memory: a stream reads sequentially and holds no more than its read buffer; a loader holds its
 * shuffle buffer (shuffle_buffer samples) and one batch. Nothing is proportional to the file size.
 */
#ifndef ED_DATA_H
#define ED_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ed_error.h"
#include "ed_rng.h"

/* Where the programs look for Fashion-MNIST when no data file is given (the one definition; the
 * shell scripts take EDISTILL_FMNIST_DIR / EDISTILL_DATA with the same default). */
#define ED_DATA_DEFAULT_DIR "/usr/share/datasets/fashion-mnist/"

typedef enum { ED_DTYPE_U8 = 0, ED_DTYPE_F32 = 1, ED_DTYPE_COUNT } ed_dtype;

/* Bytes per element of a dtype. */
size_t ed_dtype_size(ed_dtype dtype);
const char *ed_dtype_name(ed_dtype dtype);

/* A dataset on disk: a sample file, an optional label file with the same count, and a range. */
typedef struct {
    const char *images;  /* required */
    const char *labels;  /* NULL: unlabeled */
    long start;          /* first sample, >= 0 */
    long end;            /* one past the last sample; < 0 means the end of the file */
} ed_dataset_spec;

typedef struct ed_stream ed_stream;

/* Opens the files, parses and checks their headers: label count equals sample count, range within
 * the file, labels file of rank 1. Errors name the file and what is wrong (ED_EFORMAT bad magic,
 * dtype, malformed CSV row or CSV label, or a declared size too large to address; ED_EVERSION
 * unsupported .npy version; ED_ETRUNC header cut short, or an uncompressed file shorter than its
 * header says (compressed files are caught when read); ED_ESHAPE count mismatch or label file of
 * the wrong rank; ED_EINVAL range outside the file; ED_EIO cannot open). CSV files are scanned
 * once here to count and validate their rows. */
ed_stream *ed_stream_open(const ed_dataset_spec *spec, ed_err *err);
void ed_stream_destroy(ed_stream **ps);

long ed_stream_count(const ed_stream *s);   /* samples in the range */
int ed_stream_dim(const ed_stream *s);      /* values per sample */
ed_dtype ed_stream_dtype(const ed_stream *s);
bool ed_stream_has_labels(const ed_stream *s);
const char *ed_stream_path(const ed_stream *s);

/* Back to the first sample of the range. */
int ed_stream_rewind(ed_stream *s, ed_err *err);

/* Reads up to n samples into x (n * dim elements of the stream's dtype) and, if y is non-NULL, their
 * labels (or -1 for an unlabeled stream). Returns the number read (0 at the end of the range) or a
 * negative code: ED_ETRUNC when the file ends before its header said, ED_EFORMAT for a bad label
 * value (negative or unparsable) or bad CSV row. After an error the position is unspecified;
 * ed_stream_rewind recovers. */
long ed_stream_read(ed_stream *s, void *x, int32_t *y, long n, ed_err *err);

typedef struct {
    int batch_size;         /* >= 1 */
    long shuffle_buffer;    /* samples held for shuffling; 0 or 1 = file order */
    uint64_t seed;          /* shuffle seed; the same seed gives the same order */
    bool drop_last;         /* drop a final batch smaller than batch_size */
} ed_loader_config;

/* A batch of raw samples. x: (n, dim) of dtype; y: (n) labels, -1 = unlabeled. Points into the
 * loader's memory, valid until the next ed_loader_next. */
typedef struct {
    int n;
    int dim;
    ed_dtype dtype;
    const void *x;
    const int32_t *y;
} ed_batch;

typedef struct ed_loader ed_loader;

/* Takes ownership of *ps (sets it to NULL, also on failure). */
ed_loader *ed_loader_new(ed_stream **ps, const ed_loader_config *cfg, ed_err *err);
void ed_loader_destroy(ed_loader **pl);

const ed_stream *ed_loader_stream(const ed_loader *l);

/* Next batch of the current epoch: returns its size (> 0), 0 at the end of the epoch (every sample
 * of the range delivered exactly once), or a negative code from the stream (after which only
 * ed_loader_reset is meaningful). */
int ed_loader_next(ed_loader *l, ed_batch *out, ed_err *err);

/* Starts the next epoch: rewinds the stream; the shuffle RNG continues, so epochs differ but the
 * whole sequence is fixed by the seed. */
int ed_loader_reset(ed_loader *l, ed_err *err);

/* The shuffle RNG's state, for checkpoints. Taken right after ed_loader_new or ed_loader_reset
 * (before the first ed_loader_next of an epoch), it fixes that whole epoch's order: restoring it
 * with ed_loader_rng_set right after a reset replays the epoch exactly. Setting it mid-epoch
 * changes the order of the samples not yet delivered. */
void ed_loader_rng_get(const ed_loader *l, ed_rng *out);
void ed_loader_rng_set(ed_loader *l, const ed_rng *state);

/* out[i] = x[i] * scale + offset for a batch of either dtype. out: (n, dim). */
void ed_batch_to_float(const ed_batch *b, float scale, float offset, float *out);

#endif
