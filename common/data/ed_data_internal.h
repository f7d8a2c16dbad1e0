/*
 * ed_data_internal: what the format readers (ed_data_formats.c) and the streams (ed_data.c) share:
 * one open source file and the functions that read it. Not a public API: only those two files
 * include it. Cross-file names carry the edd_ prefix.
 */
#ifndef ED_DATA_INTERNAL_H
#define ED_DATA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "ed_error.h"

typedef enum { EDD_FMT_IDX, EDD_FMT_NPY, EDD_FMT_CSV } edd_format;
typedef enum { EDD_EL_U8, EDD_EL_F32, EDD_EL_I32, EDD_EL_I64 } edd_elem;

/* One open file: its format, element type and the position of the next record. */
typedef struct {
    char *path;
    gzFile gz;
    bool labels; /* a label file: one integer per record */
    edd_format fmt;
    edd_elem el;
    size_t esize;     /* bytes per element on disk (binary formats) */
    bool swap;        /* file byte order differs from the host's */
    long total;       /* records in the file */
    int dim;          /* values per record */
    size_t rec_bytes; /* dim * esize (binary formats) */
    int64_t data_off; /* uncompressed byte offset of record 0 (binary formats) */
    long pos;         /* index of the next record */
    char *line;       /* CSV line buffer */
    size_t line_cap;
    long line_no; /* CSV: physical lines read so far */
} edd_src;

/* Opens path, detects its format from the first bytes (IDX, .npy, CSV; gzip or raw) and parses its
 * header; a label file (labels) must have one integer per record. On failure src may hold partial
 * state: edd_src_close it. Errors as ed_stream_open's. */
int edd_src_open(edd_src *src, const char *path, bool labels, ed_err *err);
/* Frees everything and zeroes *src; safe on a zeroed or half-opened source. */
void edd_src_close(edd_src *src);
/* Positions the source at record rec (forward skips on compressed files decompress and discard). */
int edd_src_seek(edd_src *src, long rec, ed_err *err);
/* Binary formats: reads n whole records at the current position into buf (host byte order). */
int edd_read_records(edd_src *src, void *buf, long n, ed_err *err);
/* CSV samples: reads n rows of dim floats into x. */
int edd_csv_read_samples(edd_src *src, float *x, long n, ed_err *err);
/* CSV: reads the next non-empty row into src->line; 1 read, 0 end of file, < 0 error. */
int edd_csv_next_row(edd_src *src, ed_err *err);
/* CSV labels: parses the current row (record `index`, for messages) as one class >= 0. */
int edd_csv_label(edd_src *src, long index, int32_t *out, ed_err *err);

#endif
