/*
 * st_pool_internal: the state of a teacher pool (sources, replicas, members, slots) and the
 * functions st_pool.c (the batch pipeline), st_pool_dispatch.c (sending requests), st_replica.c
 * (the life of a replica) and st_pool_local.c (in-process replicas) share. Not a public API: only
 * those files include it. Cross-file functions carry the stp_ prefix. Calls go one way: st_pool.c
 * calls st_pool_dispatch.c, st_replica.c and st_pool_local.c; st_pool_dispatch.c calls the replica
 * and local sides; the replica side only marks requests WAITING and the pool re-dispatches them.
 */
#ifndef ST_POOL_INTERNAL_H
#define ST_POOL_INTERNAL_H

#include "st_pool.h"

#include <stdbool.h>
#include <stddef.h>
#include <zmq.h>

#include "ed_member.h"
#include "ed_wire.h"

#define ST_MAX_SOURCES 64
#define ST_MAX_SLOTS 1000
#define ST_LAT_SAMPLES 8192
#define ST_BACKOFF_START 0.25 /* seconds between pings of a down replica, doubling ... */
#define ST_ENDPOINT_LEN 300
#define ST_RECONNECT_MAX_MS 250      /* reconnects back off from 100 ms up to this */
#define ST_CONNECT_TIMEOUT_MS 1000   /* give up a TCP connect whose SYN is not answered */
#define ST_HEARTBEAT_IVL_MS 1000     /* ZMTP PING on every connection this often ... */
#define ST_HEARTBEAT_TIMEOUT_MS 3000 /* ... and drop it when nothing came back for this long */
#define ST_HEARTBEAT_TTL_MS 10000    /* worker: drop us after this long unheard (its own timeout) */

typedef enum { ST_SRC_STATIC, ST_SRC_DNS, ST_SRC_FILE } st_teacher_source_kind;

typedef struct {
    st_teacher_source_kind kind;
    char spec[ST_ENDPOINT_LEN]; /* as given */
    char host[256];             /* ST_SRC_DNS */
    char port[16];              /* ST_SRC_DNS */
    bool resolved_once;
    struct st_resolve_req *lookup; /* ST_SRC_DNS: a re-resolution in flight (st_resolve.c) */
} st_teacher_source;

typedef enum {
    ST_R_FREE = 0,
    ST_R_CONNECTING,
    ST_R_UP,
    ST_R_DOWN,
    ST_R_REFUSED,
    ST_R_GONE
} st_rstate;

typedef struct {
    st_rstate state;
    int source;
    char where[ST_ENDPOINT_LEN]; /* endpoint or model path */
    void *sock;                  /* DEALER; NULL for an in-process replica */
    void *mon;                   /* PAIR receiving the DEALER's monitor events */
    ed_member *local;            /* in-process only: the model file run here */
    ed_member *local_share;      /* with the teacher thread: local's weights for the caller's
                                  * thread (st_overlap), NULL otherwise */
    int member;                  /* -1 until its member info arrived */
    int inflight;
    char fingerprint[32];
    char name[128];
    double ping_sent; /* outstanding InfoRequest sent at (0: none) */
    uint64_t ping_id;
    double next_ping;
    double backoff;
    double last_heard;
    double down_since;
    bool seen;                 /* DNS: present in the latest resolution */
    char why[512];             /* why it was refused */
    bool refused_disconnected; /* refused, and that connection dropped since: recheck on the next */
    char handshake[200];       /* the last failed security handshake, for error messages */
    char arch[128];            /* as its member info (or model file) says */
    double rtt;                /* last member-info round trip, seconds (0: none yet) */
    int max_batch; /* rows it accepts in one request, as its member info says (0: any) */
} st_replica;

typedef struct {
    char name[128];
    char fingerprint[32];
    char desc[1024];
} st_member;

/* LOCAL: queued on the teacher thread (st_overlap), collected by st_pool_wait. HELD: submitted,
 * kept back until the next batches join it in one request (st_pool_config.group). */
typedef enum {
    ST_Q_IDLE = 0,
    ST_Q_PENDING,
    ST_Q_WAITING,
    ST_Q_DONE,
    ST_Q_LOCAL,
    ST_Q_HELD
} st_qstate;

typedef struct {
    st_qstate st;
    uint64_t id; /* shared by the slots of one request */
    int at;      /* PENDING or WAITING: the request's row where this slot's rows begin */
    int replica;
    double sent_at;
    bool failover; /* WAITING because its replica went down: counted when re-sent */
} st_req;

typedef struct {
    bool busy;
    int n;
    void *x;                               /* (max_batch, dim) of cfg.dtype */
    int32_t *y;                            /* (max_batch) */
    float *logits[ST_POOL_MAX_MEMBERS];    /* (max_batch, classes), allocated per member lazily */
    const float *out[ST_POOL_MAX_MEMBERS]; /* what wait hands back: logits[k] or NULL */
    st_req req[ST_POOL_MAX_MEMBERS];
    double blocked_since;
    bool blocked_logged;
    bool missed[ST_POOL_MAX_MEMBERS]; /* after wait: left out of this batch (degraded) */
} st_slot;

struct st_pool {
    st_pool_config cfg;
    int quorum; /* effective; 0 = all members of the batch */
    void *zctx;
    st_teacher_source sources[ST_MAX_SOURCES];
    int n_sources;
    st_replica reps[ST_POOL_MAX_REPLICAS];
    int n_reps; /* high-water mark of used entries */
    st_member members[ST_POOL_MAX_MEMBERS];
    int n_members;
    st_slot *slots;
    int group;                   /* batches per remote request (cfg.group, 1..depth) */
    int held[ST_POOL_MAX_GROUP]; /* submitted slots with HELD requests, in submission order */
    int n_held;
    unsigned char *group_x; /* (group * max_batch, input_dim): a request's rows, concatenated */
    uint64_t seq;
    uint64_t info_seq;
    double next_resolve;
    char resolve_error[ED_ERRSTR_LEN]; /* the last re-resolution error reported */
    zmq_pollitem_t items[2 * ST_POOL_MAX_REPLICAS];
    int item_rep[2 * ST_POOL_MAX_REPLICAS];
    int n_items;
    bool items_dirty;
    /* statistics since the last take */
    double lat[ST_LAT_SAMPLES];
    long n_lat;
    double lat_sum;
    long replies;
    double wait_s;
    uint64_t bytes_sent, bytes_received;
    long down_events, up_events, failovers;
    const volatile sig_atomic_t *stop_flag;
    struct st_overlap *overlap; /* the teacher thread of in-process replicas, or NULL */
};

/* A logit request's id: seq << 24 | (slots - 1) << 20 | first slot << 10 | member (slots <=
 * ST_POOL_MAX_GROUP, slot < ST_MAX_SLOTS <= 1024, member < ST_POOL_MAX_MEMBERS). */
static inline uint64_t stp_request_id(uint64_t seq, int first, int slots, int k)
{
    return seq << 24 | (uint64_t)(slots - 1) << 20 | (uint64_t)first << 10 | (uint64_t)k;
}
static inline int stp_request_first(uint64_t id)
{
    return (int)((id >> 10) & 1023);
}
static inline int stp_request_slots(uint64_t id)
{
    return (int)((id >> 20) & 15) + 1;
}
static inline int stp_request_member(uint64_t id)
{
    return (int)(id & 1023);
}

/* ---- st_replica.c ---- */

/* snprintf through a va_list, for writing one pool field from others (-Wrestrict cannot tell them
 * apart). */
__attribute__((format(printf, 3, 4))) int stp_fmt(char *dst, size_t size, const char *fmt, ...);
bool stp_is_endpoint(const char *s);
/* "tcp://HOST:PORT" whose HOST is a name, not a numeric address: split it; false otherwise. */
bool stp_split_dns(const char *ep, char *host, size_t hsize, char *port, size_t psize);
void stp_record_latency(st_pool *p, double ms);
/* Sends one message without blocking; ED_EPEER when the replica is not connected. */
int stp_send_msg(st_pool *p, st_replica *r, const ed_msg *m);
int stp_live_replicas(const st_pool *p, int k);
/* New replica of source `source`: a DEALER connected to ep (with its monitor), or a model file. */
int stp_add_remote(st_pool *p, int source, const char *ep, ed_err *err);
int stp_add_local(st_pool *p, int source, const char *path, ed_err *err);
void stp_free_replica(st_pool *p, st_replica *r);
/* Marks a replica DOWN (logging why); its outstanding requests go back to WAITING. */
void stp_mark_down(st_pool *p, int ri, const char *why);
/* Handles member info: admits, brings back, or refuses the replica. */
int stp_on_info(st_pool *p, int ri, const ed_member_info *info);
void stp_read_monitor(st_pool *p, int ri);
/* Reads every message waiting on replica ri's socket; errors are fatal to the run. */
int stp_read_socket(st_pool *p, int ri, ed_err *err);
/* Timers: pings with backoff, request deadlines, DNS re-resolution. */
void stp_health(st_pool *p, double now);
void stp_deadlines(st_pool *p, double now);
/* Rebuilds member k's description ("name (fingerprint) at ep1, ep2"). */
void stp_describe_member(st_pool *p, int k);
/* DNS sources (st_resolve.c). stp_resolve resolves every name now, blocking (at open).
 * stp_resolve_start asks again without blocking (a lookup per name not already in flight);
 * stp_resolve_poll applies the answers that are in; stp_resolve_cancel drops the lookups (close).
 * Addresses that cannot be added (no CURVE key for the entry, too many replicas, ...) are left
 * out, with nothing left open; resolve and poll return the first such error (in err), 0 if every
 * address was added or known. */
int stp_resolve(st_pool *p, ed_err *err);
void stp_resolve_start(st_pool *p);
int stp_resolve_poll(st_pool *p, ed_err *err);
void stp_resolve_cancel(st_pool *p);

/* ---- st_pool_dispatch.c: sending requests ---- */

/* Sends member k's request of slot to its least-loaded live replica (in-process: computed or queued
 * on the teacher thread); leaves it WAITING if there is none. Only in-process forward errors are
 * returned. */
int stp_dispatch(st_pool *p, int slot, int k, ed_err *err);
/* Sends the held slots (cfg.group): per member, the slots it holds, as one request (split to fit
 * the replica's max batch); empties the held list. */
int stp_flush(st_pool *p, ed_err *err);
/* A remote replica of member k is up: its requests may be held for a group. */
bool stp_member_remote(const st_pool *p, int k);
/* Dispatches WAITING requests whose member has a live replica again; the slots of one request (one
 * id) go together, in the same row order, so a failover does not change what the teacher computes.
 */
int stp_retry_waiting(st_pool *p, ed_err *err);

/* ---- st_pool_local.c: in-process replicas ---- */

/* Member k's forward pass of slot on in-process replica ri: computed now (DONE), or with the
 * teacher thread queued on it (LOCAL). Errors: the forward pass's (now) or ED_ENOMEM. */
int stp_local_dispatch(st_pool *p, int ri, int slot, int k, ed_err *err);
/* Blocks until slot's LOCAL passes are done and marks them DONE; the first failed pass's error. */
int stp_local_collect(st_pool *p, int slot, ed_err *err);
/* At open: starts the teacher thread if cfg.overlap asks for it and --teachers has a model file
 * (then OpenBLAS runs 1 thread). */
int stp_local_start(st_pool *p, ed_err *err);

/* Tells the configured observer (if any) about a pool event. */
static inline void stp_observe(const st_pool *p, st_pool_event ev, int member, const char *where,
                               double value)
{
    if (p->cfg.observe)
        p->cfg.observe(p->cfg.observe_arg, ev, member, where, value);
}

#endif
