/*
 * tu: helpers shared by the unit tests: numeric comparison that prints the worst element,
 * temporary paths, and small file writers for building fixtures on the fly.
 */
#ifndef ED_TU_H
#define ED_TU_H

#include <stddef.h>
#include <stdint.h>

/* Max |a-b| / (atol + rtol*|b|) over n elements; prints the worst index and both values to stderr
 * when it exceeds 1 (i.e. the arrays are not close). Returns 1 if close, 0 otherwise. */
int tu_allclose(const char *what, const float *a, const float *b, size_t n, double atol,
                double rtol);

/* A fresh path under $TMPDIR (or /tmp) ending in `suffix`, unique per call. Caller frees. */
char *tu_temp_path(const char *suffix);

/* Writes `n` bytes to path; returns 0 on success. */
int tu_write_file(const char *path, const void *data, size_t n);

/* Reads the whole file; *n gets the size. Caller frees. NULL on failure. */
void *tu_read_file(const char *path, size_t *n);

#endif
