/*
 * ed_paths: expands a list of input files given on the command line into a stable, ordered list of
 * paths: comma-separated entries, each a file, a directory (its regular files, not hidden ones,
 * sorted by name) or a glob pattern (its matches, sorted). The order is part of a run's identity
 * (sample numbers follow it), so it never depends on the directory listing order.
 */
#ifndef ED_PATHS_H
#define ED_PATHS_H

#include "ed_error.h"

#define ED_PATHS_MAX 100000

/* Fills *out with n newly allocated paths (free with ed_paths_free). ED_ENOTFOUND naming the entry
 * for a missing file, an empty directory or a pattern without matches; ED_ETOOBIG past
 * ED_PATHS_MAX paths. */
int ed_paths_expand(const char *list, char ***out, int *n, ed_err *err);
void ed_paths_free(char ***paths, int n);

#endif
