/*
 * ed_fs: file helpers: atomic replacement of a file (temp file in the same directory, fsync,
 * rename, fsync of the directory) so a crash never leaves a half-written model or checkpoint, and
 * the output files (metrics lines) a resumed run continues.
 */
#ifndef ED_FS_H
#define ED_FS_H

#include <stdio.h>

#include "ed_error.h"

/* Calls write_fn(f, ctx) on a temporary file next to `path`, then flushes, fsyncs and renames it
 * over `path`. write_fn returns 0 or a negative ed_status (and may fill err; its message is
 * prefixed with "path: "). On any failure the temporary file is removed and `path` is untouched.
 * The new file keeps the mode of the file it replaces (0644 for a new file). Errors: write_fn's
 * code, or ED_EIO with "path: ...: strerror" (e.g. a missing directory: "No such file or
 * directory"). */
int ed_fs_write_atomic(const char *path, int (*write_fn)(FILE *f, void *ctx, ed_err *err),
                       void *ctx, ed_err *err);

/* Creates a directory and its parents (like mkdir -p); existing directories are fine. ED_EIO when a
 * component cannot be created or exists and is not a directory. */
int ed_fs_mkdirs(const char *path, ed_err *err);

/* Opens an output file for appending after cutting it back to `bytes` (its length when a
 * checkpoint was written, so a resumed run continues it without duplicate lines; a missing or
 * shorter file is warned about, naming `what`), or fresh ("wb") when bytes < 0. NULL if it cannot
 * be opened. */
FILE *ed_fs_reopen_cut(const char *path, long bytes, const char *what);

/* Length of an output file so far (flushed), -1 for none (NULL) or stdout. */
long ed_fs_file_bytes(FILE *f);

#endif
