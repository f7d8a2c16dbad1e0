/*
 * st_pool_flags: the teacher-pool options every student_trainer command that talks to teachers
 * takes (distill, label, status): the teacher list, requests in flight, deadlines, quorum,
 * re-resolution and health intervals, and the CurveZMQ keys. One table, one set of defaults, one
 * check, one translation into st_pool_config, so the commands cannot drift apart.
 */
#ifndef ST_POOL_FLAGS_H
#define ST_POOL_FLAGS_H

#include <stdbool.h>

#include "ed_cli.h"
#include "ed_error.h"
#include "st_curve.h"
#include "st_pool.h"

typedef struct {
    const char *teachers; /* --teachers LIST */
    int inflight;         /* batches in flight */
    int per_request;      /* batches a remote teacher gets in one request */
    int quorum;           /* members that must answer a batch (0: all) */
    float timeout, connect_timeout, max_wait, resolve_interval, health_interval; /* seconds */
    const char *curve_secret, *curve_server_keys;
    st_curve curve; /* loaded by st_pool_flags_check; the pool keeps pointers into it */
    /* Where in-process replicas compute: distill's --inprocess-overlap sets it
     * (st_distill_opts.c); OFF for the other commands. */
    st_pool_overlap overlap;
} st_pool_flags;

/* Which options a command shows. */
typedef enum {
    ST_POOL_FLAGS_ALL,   /* distill, label: the whole table */
    ST_POOL_FLAGS_PROBE, /* status: --teachers, --timeout (every wait), CURVE */
} st_pool_flags_set;

/* The most entries st_pool_flags_options writes. */
enum { ST_POOL_FLAGS_OPTS = 11 };

/* The defaults: 4 in flight, 10 s request deadline, 60 s to connect and to wait for a quorum,
 * re-resolve every 10 s, ping every 2 s, quorum 0 (all members), plaintext. */
st_pool_flags st_pool_flags_defaults(void);

/* Writes the option entries of `set` for f into opts (room for ST_POOL_FLAGS_OPTS) and returns
 * their number. teachers_required: --teachers must be given. quorum_help: the command's meaning
 * of --quorum (NULL: distill's, a degraded batch). The entries point into f. */
int st_pool_flags_options(st_pool_flags *f, st_pool_flags_set set, bool teachers_required,
                          const char *quorum_help, ed_cli_opt *opts);

/* After parsing: checks the values (--inflight >= 1, --batches-per-request in 1..min(16,
 * --inflight), positive deadlines, --quorum >= 0) and loads
 * the CURVE keys into f->curve. Errors name the option or key file. */
int st_pool_flags_check(st_pool_flags *f, ed_err *err);

/* Fills pc's pool fields (depth, group, deadlines, quorum, intervals, CURVE, overlap) from f; the
 * data fields (input_dim, classes, max_batch, dtype) stay the caller's. f must outlive the pool. */
void st_pool_flags_apply(const st_pool_flags *f, st_pool_config *pc);

#endif
