/*
 * st_pool: the ensemble as the student trainer sees it: a set of MEMBERS, each served by one or
 * more REPLICAS. A replica is either a remote teacher_worker (a ZeroMQ endpoint, tcp:// or ipc://)
 * or a model file loaded in-process; replicas with the same weights fingerprint are the same member
 * and count once in the average.
 *
 * The pool pipelines batches: it holds `depth` SLOTS; st_pool_submit copies a raw batch into a slot
 * and sends it to one replica of every member; st_pool_wait blocks until every member has answered
 * that slot and hands back the batch and the members' raw logits. Remote requests go out at submit
 * time, so teachers compute the next batches while the caller trains on the current one.
 *
 * Remote protocol: one DEALER socket per endpoint, one Envelope per frame (see docs/PROTOCOL.md).
 * Every request has a deadline (timeout_s); a reply that misses it, or an error reply, fails the wait
 * with a message naming the endpoint.
 */
#ifndef ST_POOL_H
#define ST_POOL_H

#include <stdint.h>

#include "ed_data.h"
#include "ed_error.h"

typedef struct {
    int input_dim;             /* values per sample the data has */
    int classes;               /* classes every member must output */
    int max_batch;             /* largest batch submitted */
    int depth;                 /* batches in flight (slots), >= 1 */
    ed_dtype dtype;            /* dtype of the submitted batches */
    double timeout_s;          /* per-request deadline */
    double connect_timeout_s;  /* how long to wait for every teacher's member info */
    int quorum;                /* members that must answer a batch; <= 0 means all of them */
    double max_wait_s;         /* how long a batch may wait for its quorum before the run fails */
    double resolve_interval_s; /* re-resolve tcp:// host names this often (elastic membership) */
    double health_interval_s;  /* ping idle or down teachers this often */
} st_pool_config;

typedef struct st_pool st_pool;

/* teachers: comma-separated list of endpoints ("tcp://host:port", "ipc:///path") and/or model
 * files. Connects, asks every endpoint for its member info, checks input dim / classes / protocol,
 * and groups replicas by fingerprint. Errors name the endpoint or file at fault. */
st_pool *st_pool_open(const char *teachers, const st_pool_config *cfg, ed_err *err);
void st_pool_close(st_pool **pp);

int st_pool_member_count(const st_pool *p);
const char *st_pool_member_name(const st_pool *p, int k);
/* Number of replicas of member k and a description "name (fnv1a64:..) at ep1, ep2". */
int st_pool_replica_count(const st_pool *p, int k);
const char *st_pool_member_describe(const st_pool *p, int k);

/* Copies batch b into slot (0 <= slot < depth; the slot must be free) and dispatches it. */
int st_pool_submit(st_pool *p, int slot, const ed_batch *b, ed_err *err);

/* Waits for every member's logits of slot. On success *batch is the submitted batch (copy held by the
 * pool) and logits[k] points to member k's (batch->n, classes) raw logits; both stay valid until the
 * slot is submitted again. logits[k] is NULL when member k could not answer and the quorum policy
 * released the batch without it (a degraded batch); callers average over the non-NULL members.
 * The slot is free again afterwards. */
int st_pool_wait(st_pool *p, int slot, ed_batch *batch, const float *const **logits, ed_err *err);

typedef struct {
    long requests;             /* replies received since the last take */
    double latency_mean_ms;    /* request round trip (remote) or compute time (in-process) */
    double latency_p50_ms;
    double latency_p99_ms;
    double wait_ms;            /* time the caller spent blocked in st_pool_wait */
    uint64_t bytes_sent;
    uint64_t bytes_received;
} st_pool_stats;

/* Statistics since the last call, then resets them. */
void st_pool_stats_take(st_pool *p, st_pool_stats *out);

#endif
