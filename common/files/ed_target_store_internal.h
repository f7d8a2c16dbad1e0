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

/* A .npy 1.0 header for a C-order array of shape (d0, d1, d2) and dtype descr ("<f2", "<f4",
 * "<u2"), space-padded so the data starts at a multiple of 64. Returns its length (<= cap). */
size_t ed_ts_npy_header(char *buf, size_t cap, const char *descr, int64_t d0, int d1, int d2);

/* Adds key: "%016x" of v to o. */
void ed_ts_add_hex(cJSON *o, const char *key, uint64_t v);

/* The object an index (format ED_TS_FORMAT) or a progress record starts with: format, version,
 * shard, shards, start, end and the layout's fields. */
cJSON *ed_ts_json_head(const ed_ts_layout *lay, const char *format, int shard, int n_shards,
                       int64_t begin, int64_t end);

/* Writes o (consumed, may be NULL: ED_ENOMEM) pretty-printed to path atomically (ed_fs). */
int ed_ts_write_json(const char *path, cJSON *o, ed_err *err);

/* Writes dir/base.json, the shard's index, atomically: its arrays (logits, and indices when
 * n_arrays is 2) named base.logits.npy / base.indices.npy with their header sizes and FNV-1a 64
 * checksums. The arrays must be in place: the index's presence marks the shard complete. */
int ed_ts_write_index(const char *dir, const char *base, const ed_ts_layout *lay, int shard,
                      int n_shards, int64_t begin, int64_t end, int n_arrays,
                      const size_t *header_bytes, const uint64_t *hash, ed_err *err);

/* Hex "%016llx" parse: 0 on success. */
int ed_ts_parse_hex64(const char *s, uint64_t *out);

/* Element size and numpy descr of a store dtype. */
size_t ed_ts_dtype_size(ed_ts_dtype d);
const char *ed_ts_dtype_descr(ed_ts_dtype d);

/* Reads a whole (small) text file (a JSON index); ED_ENOTFOUND / ED_EIO / ED_ETOOBIG (> 64 MiB). */
char *ed_ts_read_text(const char *path, ed_err *err);

#endif
