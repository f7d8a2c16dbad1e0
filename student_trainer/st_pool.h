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
 *
 * Faults. Every request has a deadline (timeout_s). A replica that misses it, or whose connection
 * drops (seen through a ZeroMQ socket monitor), is marked DOWN and its requests go to another live
 * replica of the same member. DOWN replicas are pinged (InfoRequest) with exponential backoff and
 * rejoin as soon as they answer with the member's fingerprint; a teacher whose fingerprint
 * disagrees with its member's is refused, loudly. Idle replicas are pinged every health_interval_s.
 * When a member has no live replica, a batch is released with the members that answered if at least
 * `quorum` did (a degraded batch); otherwise it waits for a replica to come back for up to
 * max_wait_s, then the wait fails naming the missing members.
 *
 * Elastic membership. A "tcp://NAME:PORT" whose NAME is not a numeric address is resolved with
 * getaddrinfo at open (every A/AAAA record becomes a replica endpoint) and re-resolved every
 * resolve_interval_s without blocking the loop (getaddrinfo_a, st_resolve.c): new addresses join
 * (as replicas, or as new members when their fingerprint is new), vanished ones are dropped. This
 * is what a headless Kubernetes Service looks like.
 */
#ifndef ST_POOL_H
#define ST_POOL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "ed_data.h"
#include "ed_error.h"

/* What the pool tells an observer (the trainer's metrics, st_metrics). */
typedef enum {
    ST_POOL_EV_REQUEST,  /* a logit request went to `replica` of `member` */
    ST_POOL_EV_REPLY,    /* its logits came back after `value` seconds */
    ST_POOL_EV_FAILOVER, /* a request of `member` was re-sent to `replica` */
    ST_POOL_EV_DOWN,     /* `replica` was marked down */
    ST_POOL_EV_UP,       /* `replica` came back */
} st_pool_event;

/* Called on the pool's (the caller's) thread, synchronously: must be cheap. `replica` is the
 * endpoint or model path. */
typedef void (*st_pool_observe_fn)(void *arg, st_pool_event ev, int member, const char *replica,
                                   double value);

/* Where in-process replicas (model files) compute (st_pool_config.overlap). */
typedef enum {
    ST_POOL_OVERLAP_OFF = 0, /* on the caller's thread, inside st_pool_submit */
    ST_POOL_OVERLAP_ON,      /* queued for a teacher thread (st_overlap), which computes the next
                              * batches while the caller trains on this one; the caller computes
                              * queued ones too while it waits in st_pool_wait. OpenBLAS: 1 thread */
    ST_POOL_OVERLAP_AUTO,    /* ON when the process runs exactly 2 OpenBLAS threads, else OFF */
} st_pool_overlap;

typedef struct {
    int input_dim;             /* values per sample the data has */
    int classes;               /* classes every member must output */
    int max_batch;             /* largest batch submitted */
    int depth;                 /* batches in flight (slots), >= 1 */
    int group;                 /* up to this many consecutively submitted batches go to a remote
                                * replica as one request (fewer round trips, larger GEMMs in the
                                * teacher); 1..min(depth, ST_POOL_MAX_GROUP), 0 = 1. Waiting for a batch sends it
                                * at once with whatever batches are held with it */
    ed_dtype dtype;            /* dtype of the submitted batches */
    double timeout_s;          /* per-request deadline */
    double connect_timeout_s;  /* how long to wait for every teacher's member info */
    int quorum;                /* members that must answer a batch; <= 0 means all of them */
    double max_wait_s;         /* how long a batch may wait for its quorum before the run fails */
    double resolve_interval_s; /* re-resolve tcp:// host names this often (elastic membership) */
    double health_interval_s;  /* ping idle or down teachers this often */
    /* CurveZMQ (docs/SECURITY.md). With curve_secret set, every DEALER is a CURVE client with this
     * key pair and authenticates its teacher by the server key of its --teachers entry: the key of
     * the curve_map entry whose `teacher` equals the entry as given, else curve_server. Keys are
     * Z85 text (40 characters); the strings must outlive the pool. NULL: plaintext. */
    const char *curve_public;
    const char *curve_secret;
    const char *curve_server;
    const struct st_pool_server_key *curve_map;
    int curve_map_n;
    bool probe;                 /* `status`: accept any dims, and when connect_timeout_s passes,
                                 * open with whoever answered instead of failing */
    st_pool_observe_fn observe; /* optional observer (NULL: none) and its argument */
    void *observe_arg;
    /* In-process replicas: ON (or AUTO with 2 OpenBLAS threads) starts the teacher thread when
     * --teachers has a model file, and sets OpenBLAS to 1 thread for the whole process (the
     * caller's thread and the teacher thread each run single-threaded calls, side by side). Targets
     * are the same as OFF's at 1 OpenBLAS thread, bit for bit. */
    st_pool_overlap overlap;
} st_pool_config;

/* One line of a --curve-server-keys mapping: a --teachers entry and its server's public key. */
typedef struct st_pool_server_key {
    const char *teacher;
    const char *key;
} st_pool_server_key;

typedef struct st_pool st_pool;

/* teachers: comma-separated list of endpoints ("tcp://host:port", "ipc:///path") and/or model
 * files. Connects, asks every endpoint for its member info, checks input dim / classes / protocol,
 * and groups replicas by fingerprint. Errors name the endpoint or file at fault. */
st_pool *st_pool_open(const char *teachers, const st_pool_config *cfg, ed_err *err);
void st_pool_close(st_pool **pp);

/* Members known now. Membership can grow during a run (elastic DNS); indices never change. */
int st_pool_member_count(const st_pool *p);
const char *st_pool_member_name(const st_pool *p, int k);
/* Member k's weights fingerprint, "fnv1a64:<16 hex digits>" (what identifies a member). */
const char *st_pool_member_fingerprint(const st_pool *p, int k);
/* Number of replicas of member k and a description "name (fnv1a64:..) at ep1, ep2". */
int st_pool_replica_count(const st_pool *p, int k);
const char *st_pool_member_describe(const st_pool *p, int k);
/* Replicas of member k that are up now. */
int st_pool_replicas_up(const st_pool *p, int k);

/* One replica as `student_trainer status` shows it; strings are owned by the pool. */
typedef struct {
    const char *where;                     /* endpoint or model file */
    int member;                            /* member index, -1 when it never answered */
    const char *name, *fingerprint, *arch; /* as it answered; "" when it never did */
    const char *state;                     /* connecting, up, down, refused, gone */
    bool up;
    double rtt_s;    /* last member-info round trip (< 0: none measured) */
    const char *why; /* refused: why; else the last failed security handshake, or "" */
} st_pool_replica_info;

/* Replica entries are 0..st_pool_replica_slots(p) - 1; st_pool_replica_get returns false for an
 * unused entry. */
int st_pool_replica_slots(const st_pool *p);
bool st_pool_replica_get(const st_pool *p, int i, st_pool_replica_info *out);

/* Copies batch b into slot (0 <= slot < depth; the slot must be free) and dispatches it: at once,
 * or with cfg.group > 1 once `group` slots are held for remote members (or it is waited on). */
int st_pool_submit(st_pool *p, int slot, const ed_batch *b, ed_err *err);

/* Waits for every member's logits of slot. On success *batch is the submitted batch (copy held by
 * the pool) and logits[k] points to member k's (batch->n, classes) raw logits; both stay valid
 * until the slot is submitted again. logits[k] is NULL when member k could not answer and the
 * quorum policy released the batch without it (a degraded batch); callers average over the non-NULL
 * members. The slot is free again afterwards. */
int st_pool_wait(st_pool *p, int slot, ed_batch *batch, const float *const **logits, ed_err *err);

#define ST_POOL_MAX_MEMBERS 64
#define ST_POOL_MAX_GROUP 16 /* most batches in one request (st_pool_config.group) */
#define ST_POOL_MAX_REPLICAS 256

/* After st_pool_wait(slot): true when member k was part of that batch but had no live replica and
 * was left out under the quorum policy. (logits[k] is also NULL for a member that joined the pool
 * after the batch was submitted: that one is not "missing".) */
bool st_pool_missed(const st_pool *p, int slot, int k);

/* Makes st_pool_wait return ED_ESTOPPED instead of waiting for dead teachers once *flag becomes
 * non-zero (a signal handler's flag). Replies already on their way are still awaited. */
void st_pool_set_stop_flag(st_pool *p, const volatile sig_atomic_t *flag);

typedef struct {
    long requests;          /* replies received since the last take */
    long down_events;       /* replicas marked down since the last take */
    long up_events;         /* replicas that came back since the last take */
    long failovers;         /* requests re-sent to another replica */
    int replicas_up;        /* now */
    int replicas_known;     /* now: up, down or connecting (not refused, not gone) */
    double latency_mean_ms; /* request round trip (remote) or compute time (in-process) */
    double latency_p50_ms;
    double latency_p99_ms;
    double wait_ms; /* time the caller spent blocked in st_pool_wait */
    uint64_t bytes_sent;
    uint64_t bytes_received;
    bool teacher_thread; /* now: in-process replicas run on the teacher thread (overlap) */
} st_pool_stats;

/* Statistics since the last call, then resets them. */
void st_pool_stats_take(st_pool *p, st_pool_stats *out);

#endif
