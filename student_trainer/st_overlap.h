/*
 * st_overlap: the teacher thread of a trainer with in-process members (issue 18). The pool
 * (st_pool.c) pushes every in-process forward pass of a batch here instead of running it on the
 * caller's thread, so the members compute batch k+1 on one core while the student trains on batch
 * k on the other, the way teacher_worker processes do across processes. Each thread runs OpenBLAS
 * with one thread (OpenBLAS 0.3.21's pthreads build runs single-threaded calls from several
 * application threads concurrently; multi-threaded ones are serialized).
 *
 * Jobs start in the order they were pushed, on the teacher thread or, while it waits in
 * st_overlap_collect, on the caller's thread: each thread has its own ed_member (shares of the same
 * weights, each with its own workspace). A forward pass computes the same logits on any thread, so
 * a run with the teacher thread gives the same targets and the same student, bit for bit, as one
 * without at the same OpenBLAS thread count.
 *
 *     st_overlap *o = st_overlap_new(&err);
 *     st_overlap_push(o, &(st_overlap_job){.member = m, .caller_member = m_share, .x = x,
 *                                          .dtype = ED_DTYPE_U8, .n = n, .out = logits,
 *                                          .slot = 0, .k = 0}, &err);
 *     ... train on something else ...
 *     st_overlap_collect(o, 0, on_done, arg);   // blocks until slot 0's jobs are done
 *     st_overlap_destroy(&o);
 */
#ifndef ST_OVERLAP_H
#define ST_OVERLAP_H

#include "ed_batch.h"
#include "ed_error.h"
#include "ed_member.h"

typedef struct st_overlap st_overlap;

/* One member's forward pass of one batch. The caller fills the inputs; the teacher thread fills
 * rc, err and seconds. x and out must stay valid and untouched until the job is collected. */
typedef struct {
    ed_member *member;        /* the teacher thread's */
    ed_member *caller_member; /* the same weights, for the caller (ed_member_share), or NULL */
    const void *x;            /* (n, input_dim) raw values of dtype */
    ed_dtype dtype;
    int n;
    float *out;  /* (n, classes) logits */
    int slot, k; /* the caller's tags: which batch, which member */
    /* results */
    int rc; /* 0, or ed_member_forward's error code (err says why) */
    ed_err err;
    double seconds; /* compute time */
} st_overlap_job;

/* Starts the teacher thread. NULL on failure (ED_ENOMEM, or ED_EIO when no thread can start). */
st_overlap *st_overlap_new(ed_err *err);

/* Stops the thread: the job under way finishes, jobs not started are dropped. Accepts NULL; clears
 * *po. */
void st_overlap_destroy(st_overlap **po);

/* Queues a copy of *job behind the jobs already pushed. Never blocks on the teacher thread's work.
 * ED_ENOMEM when the job cannot be queued. */
int st_overlap_push(st_overlap *o, const st_overlap_job *job, ed_err *err);

/* Blocks until every job of `slot` pushed so far is done, then calls done(arg, job) for each, in
 * push order, on the caller's thread, and forgets them. Only the thread that pushes may collect.
 * While it waits, the caller computes jobs itself, the next in line (of any slot) on its
 * caller_member, so that both threads stay busy: jobs queue 5 member passes of a batch (~24 MFLOP
 * a sample for the reference ensemble) against the student's ~8 MFLOP. */
void st_overlap_collect(st_overlap *o, int slot, void (*done)(void *arg, const st_overlap_job *job),
                        void *arg);

#endif
