/*
 * ed_target_store_internal: what the store's writer (ed_ts_writer.c) and reader (ed_ts_reader.c)
 * share with ed_target_store.c: file names, the layout as JSON, and the .npy headers they write and
 * accept. Not for other modules.
 */
#ifndef ED_TARGET_STORE_INTERNAL_H
#define ED_TARGET_STORE_INTERNAL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "ed_target_store.h"

#define ED_TS_SYNC_EVERY 4096 /* samples between durable progress records */

/* "shard-IIIII-of-NNNNN" into buf. */
void ed_ts_base_name(char *buf, size_t n, int shard, int n_shards);

/* Values per member and sample in the logits array: classes, or top_k + 1 (the remainder). */
int ed_ts_row_width(const ed_ts_layout *lay);

/* Adds the layout's fields (classes, dtype, top_k, members, inputs, total_samples) to object o. */
void ed_ts_layout_to_json(const ed_ts_layout *lay, cJSON *o);

/* Parses those fields of o into *lay (inputs allocated; free with ed_ts_layout_free). Errors
 * (ED_EFORMAT) name `where` and the field. */
int ed_ts_layout_from_json(const cJSON *o, ed_ts_layout *lay, const char *where, ed_err *err);

/* Deep copy (inputs and paths). ED_ENOMEM. */
int ed_ts_layout_copy(ed_ts_layout *dst, const ed_ts_layout *src, ed_err *err);

/* 0 when equal; else writes what differs ("member 1: fnv1a64:.. vs fnv1a64:..") into what. */
int ed_ts_layout_diff(const ed_ts_layout *a, const ed_ts_layout *b, char *what, size_t n);

/* A .npy 1.0 header for a C-order array of shape (d0, d1, d2) and dtype descr ("<f2", "<f4",
 * "<u2"), space-padded so the data starts at a multiple of 64. Returns its length (<= cap). */
size_t ed_ts_npy_header(char *buf, size_t cap, const char *descr, int64_t d0, int d1, int d2);

/* Hex "%016llx" parse: 0 on success. */
int ed_ts_parse_hex64(const char *s, uint64_t *out);

/* Element size and numpy descr of a store dtype. */
size_t ed_ts_dtype_size(ed_ts_dtype d);
const char *ed_ts_dtype_descr(ed_ts_dtype d);

/* Reads a whole (small) text file (a JSON index); ED_ENOTFOUND / ED_EIO / ED_ETOOBIG (> 64 MiB). */
char *ed_ts_read_text(const char *path, ed_err *err);

#endif
