/*
 * ed_data: streaming sample readers (the formats are read by ed_data_formats.c; batches in shuffled
 * order come from ed_loader).
 *
 * Formats (detected from content, not from the file name):
 *   - IDX (the MNIST family): unsigned-byte data of any rank >= 1; the first dimension is the
 * sample count, the rest are flattened into the sample dimension. Gzip-compressed (.gz) or raw:
 * both go through zlib's gzread, which reads raw files transparently.
 *   - NumPy .npy (format 1.0/2.0/3.0): dtype |u1 or <f4 for samples, |u1 <i4 <i8 for labels, C
 * order.
 *   - CSV: one sample per line of comma-separated numbers (float32 samples); a label file in CSV
 * has one integer per line. A sample file yields `dim` values per sample (uint8 or float32, raw,
 * unscaled); a label file yields one integer class per sample.
 *
 * Memory: a stream reads sequentially and holds no more than its read buffer. Nothing is
 * proportional to the file size.
 */
#ifndef ED_DATA_H
#define ED_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ed_batch.h"
#include "ed_error.h"
#include "ed_view.h"

/* Where the programs look for Fashion-MNIST when no data file is given (the one definition; the
 * shell scripts take EDISTILL_FMNIST_DIR / EDISTILL_DATA with the same default). */
#define ED_DATA_DEFAULT_DIR "/usr/share/datasets/fashion-mnist/"

/* A dataset on disk: a sample file, an optional label file with the same count, and a range.
 * `images` may also name several sample files read as one sequence (a sharded input): a
 * directory (its files in name order), a glob, or a comma-separated list (ed_paths); only one file
 * is open at a time, the range counts over the whole sequence, and there is no label file. */
typedef struct {
    const char *images; /* required */
    const char *labels; /* NULL: unlabeled */
    long start;         /* first sample, >= 0 */
    long end;           /* one past the last sample; < 0 means the end of the file */
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

long ed_stream_count(const ed_stream *s); /* samples in the range */
int ed_stream_dim(const ed_stream *s);    /* values per sample */
ed_dtype ed_stream_dtype(const ed_stream *s);
bool ed_stream_has_labels(const ed_stream *s);
const char *ed_stream_path(const ed_stream *s);

/* Reads the stream through a view (ed_view, parsed, not yet bound): from now on ed_stream_dim and
 * ed_stream_dtype are the view's (float32) and ed_stream_read delivers viewed samples. A NONE view
 * changes nothing. ED_ESHAPE (naming the file) when the samples do not fit the view. */
int ed_stream_set_view(ed_stream *s, const ed_view *view, ed_err *err);

/* Back to the first sample of the range. */
int ed_stream_rewind(ed_stream *s, ed_err *err);

/* Reads up to n samples into x (n * dim elements of the stream's dtype) and, if y is non-NULL,
 * their labels (or -1 for an unlabeled stream). Returns the number read (0 at the end of the range)
 * or a negative code: ED_ETRUNC when the file ends before its header said, ED_EFORMAT for a bad
 * label value (negative or unparsable) or bad CSV row. After an error the position is unspecified;
 * ed_stream_rewind recovers. */
long ed_stream_read(ed_stream *s, void *x, int32_t *y, long n, ed_err *err);

#endif
