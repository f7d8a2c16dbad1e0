/*
 * tw_compute: the compute side of `teacher_worker serve`: a fixed pool of pthreads that take logit
 * jobs from a FIFO, run the member's forward pass on the raw inputs (ed_member) and pack
 * the LogitReply into a ZeroMQ message, then hand the finished job back to the event-loop thread
 * (through a notify callback, i.e. uv_async_send). The compute threads never touch a socket.
 *
 * Memory: each thread owns a share of the member (same weights, its own workspace sized for
 * max_batch) and a logits buffer, allocated once in tw_compute_new. Jobs are owned by the caller (a
 * preallocated pool); the queue is intrusive, so submitting a job allocates nothing.
 */
#ifndef TW_COMPUTE_H
#define TW_COMPUTE_H

#include <stdint.h>

#include <zmq.h>

#include "ed_error.h"
#include "ed_member.h"
#include "ed_wire.h"

typedef struct tw_job tw_job;

struct tw_job {
    zmq_msg_t identity; /* ROUTER routing id of the client (loop thread) */
    ed_msg req;         /* decoded ED_MSG_LOGIT_REQUEST; cleared by the compute thread */
    uint64_t request_id;
    zmq_msg_t reply; /* packed LogitReply Envelope, valid when rc == 0 */
    int rc;          /* 0, or an ED_E* code with err filled */
    ed_err err;
    uint64_t compute_us; /* scaling + forward pass */
    tw_job *next;        /* intrusive list link (pending queue, done list, free list) */
};

typedef struct tw_compute tw_compute;

/* Called from a compute thread each time a job is finished, with the pool's lock held (so it must
 * be thread-safe, cheap, and must not call back into the pool). */
typedef void (*tw_compute_notify_fn)(void *arg);

typedef struct {
    const ed_member *member; /* each thread runs a share of it; outlives the pool. Its name and
                                fingerprint go into every reply */
    int threads;             /* >= 1 */
    int max_batch;           /* >= 1: largest batch a job may carry */
    tw_compute_notify_fn notify;
    void *notify_arg;
} tw_compute_config;

/* Allocates the per-thread workspaces and starts the threads. NULL on failure with err naming the
 * cause (ED_EINVAL: bad config; ED_ENOMEM: workspace for max_batch could not be allocated; ED_EIO:
 * thread creation). */
tw_compute *tw_compute_new(const tw_compute_config *cfg, ed_err *err);

/* Queues a job (the caller guarantees req is a validated logit request with dim = model input and
 * batch <= max_batch). The job belongs to the pool until it comes back from tw_compute_take_done.
 */
void tw_compute_submit(tw_compute *c, tw_job *job);

/* Detaches and returns the finished jobs (a list linked by ->next, in completion order), or NULL.
 */
tw_job *tw_compute_take_done(tw_compute *c);

/* Stops the threads after the queued jobs are finished, joins them and frees everything; finished
 * jobs not yet taken stay owned by the caller's pool. Accepts NULL; clears *pc. */
void tw_compute_destroy(tw_compute **pc);

#endif
