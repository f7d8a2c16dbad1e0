/*
 * ed_target_store: a store of the ensemble's raw logits ("soft targets") for a fixed sequence of
 * input samples, so that training can read them instead of asking the teachers again. Format:
 * docs/TARGET_STORE.md (a directory of shards; per shard one JSON index and .npy arrays, readable
 * with json + numpy alone).
 *
 * The samples of a store are the concatenation of its inputs (each a file and a sample range), in
 * order: sample g (0 <= g < total) is sample `start + g - offset` of the input whose
 * [offset, offset + end - start) holds g. Shard I of N holds the contiguous range
 * ed_ts_shard_range(total, I, N). Per sample and member the store keeps the raw logits, as float16
 * (default) or float32, or only the top_k largest of them with their class indices and the mean of
 * the others (the reader fills the classes not kept with that mean).
 *
 * Worked example (label, then read):
 *
 *     ed_ts_layout lay = {.classes = 10, .n_members = 2, .dtype = ED_TS_F16};
 *     ... fill lay.member[k], lay.inputs (ed_ts_file_identity + range), lay.total ...
 *     ed_ts_writer *w = ed_ts_writer_open("store", &lay, 0, 1, false, &err);
 *     for (g = ed_ts_writer_next(w); g < ed_ts_writer_end(w); g += n)
 *         ed_ts_writer_append(w, n, logits, &err);      // logits[k]: (n, classes) of member k
 *     ed_ts_writer_commit(w, &err); ed_ts_writer_destroy(&w);
 *
 *     ed_ts_reader *r = ed_ts_open("store", &err);      // checks the whole set of shards
 *     ed_ts_read(r, g, row, &err);                      // row: (n_members, classes) float32
 *     ed_ts_close(&r);
 */
#ifndef ED_TARGET_STORE_H
#define ED_TARGET_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ed_error.h"

#define ED_TS_FORMAT "edistill-targets"
#define ED_TS_FORMAT_VERSION 1
#define ED_TS_MAX_MEMBERS 64
#define ED_TS_MAX_INPUTS 65536
#define ED_TS_MAX_CLASSES 65535 /* indices are stored as uint16 */
#define ED_TS_MAX_SHARDS 100000
#define ED_TS_ID_BYTES (1u << 20) /* a file's identity hashes its first and last MiB */

typedef enum { ED_TS_F16 = 0, ED_TS_F32 = 1, ED_TS_DTYPE_COUNT } ed_ts_dtype;

/* "float16" / "float32"; parse returns -1 for anything else. */
const char *ed_ts_dtype_name(ed_ts_dtype d);
int ed_ts_dtype_parse(const char *s);

typedef struct {
    char name[64];        /* member name (informational) */
    char fingerprint[32]; /* "fnv1a64:<16 hex>": what identifies the member */
} ed_ts_member;

/* One input file and the range of it that was labeled. Identity = size + head/tail hashes. */
typedef struct {
    char *path;         /* as given when labeling (informational; owned by the layout) */
    int64_t size;       /* bytes */
    uint64_t head_hash; /* FNV-1a 64 of the first min(size, 1 MiB) bytes */
    uint64_t tail_hash; /* FNV-1a 64 of the last min(size, 1 MiB) bytes */
    int64_t start, end; /* sample range [start, end) of the file */
    int64_t offset;     /* store number of its first sample (sum of the previous ranges) */
} ed_ts_input;

/* What a store holds; equal layouts are required of every shard of a store. */
typedef struct {
    int classes; /* logits per member */
    int n_members;
    ed_ts_member member[ED_TS_MAX_MEMBERS]; /* in the order of the average */
    ed_ts_dtype dtype;
    int top_k; /* 0: every logit; else the k largest (1 <= k <= classes) */
    int n_inputs;
    ed_ts_input *inputs; /* n_inputs, offsets consecutive */
    int64_t total;       /* samples in all (sum of the ranges) */
} ed_ts_layout;

/* Frees the layout's inputs (and their paths); the struct itself is the caller's. */
void ed_ts_layout_free(ed_ts_layout *lay);

/* 0 when the layouts are equal (members, classes, dtype, top-k, inputs by identity and range,
 * total); else writes the first difference, a's value first ("member 1: fnv1a64:.. (m2) vs
 * fnv1a64:.. (m3)", "input 1 (train.gz): samples [500, 3000) vs [500, 2900)") into what. */
int ed_ts_layout_diff(const ed_ts_layout *a, const ed_ts_layout *b, char *what, size_t n);

/* Fills id->size, head_hash and tail_hash of the file at path (path, range and offset untouched).
 * ED_ENOTFOUND / ED_EIO naming the path. */
int ed_ts_file_identity(const char *path, ed_ts_input *id, ed_err *err);

/* Shard I of N of `total` samples: [total*I/N, total*(I+1)/N). */
void ed_ts_shard_range(int64_t total, int shard, int n_shards, int64_t *start, int64_t *end);

/* Parses "I/N" (0 <= I < N <= ED_TS_MAX_SHARDS). ED_EINVAL otherwise. */
int ed_ts_shard_parse(const char *s, int *shard, int *n_shards, ed_err *err);

/* ---- writer --------------------------------------------------------------------------------- */

typedef struct ed_ts_writer ed_ts_writer;

/* Starts (or, with resume, continues) shard `shard` of `n_shards` of a store in directory dir
 * (created if needed) for layout lay (copied). Without resume, refuses a shard whose files already
 * exist (complete or partial). With resume: a complete shard with the same layout is done
 * (next == end); a partial one continues after the last durably written sample; a shard with
 * another layout is refused naming what differs (members, inputs, classes, dtype, top-k).
 * Memory: one conversion buffer, independent of the shard size. */
ed_ts_writer *ed_ts_writer_open(const char *dir, const ed_ts_layout *lay, int shard, int n_shards,
                                bool resume, ed_err *err);

/* Store numbers: the next sample to append, and one past the shard's last. */
int64_t ed_ts_writer_next(const ed_ts_writer *w);
int64_t ed_ts_writer_end(const ed_ts_writer *w);
int64_t ed_ts_writer_begin(const ed_ts_writer *w); /* the shard's first sample */
/* Bytes one sample takes in the shard's arrays (logits, plus indices with top-k). */
size_t ed_ts_writer_sample_bytes(const ed_ts_writer *w);

/* Appends n samples: logits[k] points to member k's (n, classes) raw logits. ED_EINVAL for a
 * non-finite logit, one beyond float16's range (|z| > 65504) in a float16 store, or more samples
 * than the shard has left; ED_EIO on a write error. Every ~4096 samples the files are synced and
 * the progress recorded, so a crash loses at most that many. */
int ed_ts_writer_append(ed_ts_writer *w, int n, const float *const *logits, ed_err *err);

/* Makes every sample appended so far durable (fsync) and records the progress, so a resume
 * continues exactly after it (called on a stop; append does it every ~4096 samples). */
int ed_ts_writer_sync(ed_ts_writer *w, ed_err *err);

/* Finishes the shard once every sample is appended: syncs, renames the arrays to their final names
 * and writes the shard's JSON index atomically (its presence marks the shard complete). */
int ed_ts_writer_commit(ed_ts_writer *w, ed_err *err);

/* Closes; an uncommitted shard stays partial (continue it with resume). Accepts NULL. */
void ed_ts_writer_destroy(ed_ts_writer **pw);

/* ---- filler: one float32 shard filled in any sample order (distill --cache-targets) ---------- */

typedef struct ed_ts_filler ed_ts_filler;

/* Starts or continues filling a one-shard float32 store (every logit, no top-k) of layout lay
 * (copied) in dir (created if needed); docs/TARGET_STORE.md, "Filling in any order". Fresh: the
 * array is preallocated with every row unfilled (NaN) and the layout recorded. Continuing: the
 * recorded layout must equal lay (ED_EINVAL naming what differs, the directory's first); the rows
 * already filled are found by scanning the array (a damaged array is refilled from the start, with
 * a warning). ED_EBUSY when another process has the store open. Memory: total / 8 bytes. */
ed_ts_filler *ed_ts_filler_open(const char *dir, const ed_ts_layout *lay, ed_err *err);

int64_t ed_ts_filler_count(const ed_ts_filler *f);       /* rows filled */
bool ed_ts_filler_has(const ed_ts_filler *f, int64_t g); /* is sample g filled */
bool ed_ts_filler_complete(const ed_ts_filler *f);       /* committed */

/* Sample g's (n_members, classes) logits as stored. ED_EINVAL when g is not filled; ED_EIO. */
int ed_ts_filler_get(ed_ts_filler *f, int64_t g, float *row, ed_err *err);

/* Stores sample g's (n_members, classes) logits (member-major) at its position; a no-op when g is
 * filled already. ED_EINVAL for g out of range or a NaN/infinite value (nothing written); ED_EIO.
 * Not durable until ed_ts_filler_sync, but a crash never makes a row look filled that is not. */
int ed_ts_filler_put(ed_ts_filler *f, int64_t g, const float *row, ed_err *err);

/* fdatasync of the array (rows put so far survive a power loss). */
int ed_ts_filler_sync(ed_ts_filler *f, ed_err *err);

/* Once every row is filled: fsync, checksum, rename the array to its final name and write the
 * shard's index atomically, last: the store is complete (ed_ts_open reads it). get keeps working.
 * ED_EINVAL before every row is filled. */
int ed_ts_filler_commit(ed_ts_filler *f, ed_err *err);

/* Syncs (best effort) and closes; an uncommitted fill continues at the next open. Accepts NULL. */
void ed_ts_filler_destroy(ed_ts_filler **pf);

/* ---- reader --------------------------------------------------------------------------------- */

typedef struct ed_ts_reader ed_ts_reader;

/* Opens the store in dir and checks the whole set of shards before anything is read: every index
 * parses and has this format and version; all shards agree on the layout and the shard count; the
 * ranges cover [0, total) with no gap and no overlap; every array has the shape and size the index
 * says, its checksum matches and no value is NaN or infinite. Errors name the shard file and the
 * problem: ED_ENOTFOUND (no store, a missing shard: "samples [a, b) (shard 3 of 8) are missing"),
 * ED_EFORMAT (overlap, other members, wrong count, bad index), ED_ETRUNC (array shorter than its
 * index says), ED_ECHECKSUM, ED_EVERSION (newer format). The reader keeps one descriptor per shard
 * and no sample data. */
ed_ts_reader *ed_ts_open(const char *dir, ed_err *err);
void ed_ts_close(ed_ts_reader **pr);

const ed_ts_layout *ed_ts_reader_layout(const ed_ts_reader *r);
int ed_ts_reader_shards(const ed_ts_reader *r);

/* Sample g's logits as float32: out is (n_members, classes), member-major. ED_EINVAL when g is
 * outside [0, total); ED_EIO on a read error. */
int ed_ts_read(ed_ts_reader *r, int64_t g, float *out, ed_err *err);

/* Finds the input of the store that is the same file (size and hashes of `id`) and range
 * [id->start, id->end) and sets *offset to its store number. ED_ENOTFOUND naming what differs:
 * no input of the same identity ("<path>: no input of the store has this file's size and hashes
 * (the store labeled <paths>)") or the same file with another range. */
int ed_ts_find_input(const ed_ts_reader *r, const ed_ts_input *id, int64_t *offset, ed_err *err);

/* Checks that member fingerprints equal the store's (same order); ED_EFORMAT naming the first
 * that differs. */
int ed_ts_check_members(const ed_ts_reader *r, int n, const char *const *fingerprints, ed_err *err);

#endif
