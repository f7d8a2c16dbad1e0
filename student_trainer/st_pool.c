/*
 * st_pool: ensemble members behind ZeroMQ endpoints or loaded in-process (see st_pool.h).
 *
 * Everything runs on the caller's thread. The state of the pool is:
 *   - SOURCES: the entries of --teachers: a static endpoint, a DNS name (re-resolved), a model file;
 *   - REPLICAS: one per endpoint address (or model file), each CONNECTING, UP, DOWN, REFUSED or GONE;
 *   - MEMBERS: distinct weight fingerprints; a replica belongs to the member with its fingerprint;
 *   - SLOTS: batches in flight; slot.req[k] says where member k's answer for that batch stands
 *     (IDLE: not part of the batch, PENDING at a replica, WAITING for a live replica, DONE).
 * s_service() is the one place that waits: it polls every DEALER socket and its monitor, then runs
 * the timers: request deadlines, health pings with backoff, DNS re-resolution, and the dispatch of
 * WAITING requests to replicas that came back. submit and wait are thin loops around it.
 *
 * Request ids encode their slot and member (id = seq << 20 | slot << 10 | member), and a reply is
 * accepted only if it is the one outstanding request of that slot and member AND it arrives on the
 * socket of the replica it was sent to: replies can neither cross nor be counted twice.
 */
#include "st_pool.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <zmq.h>

#include "ed_log.h"
#include "ed_mlp.h"
#include "ed_model_file.h"
#include "ed_progress.h"
#include "ed_wire.h"

#define ST_MAX_SOURCES 64
#define ST_MAX_SLOTS 1000
#define ST_LAT_SAMPLES 8192
#define ST_BACKOFF_START 0.25 /* seconds between pings of a down replica, doubling ... */
#define ST_ENDPOINT_LEN 300

typedef enum { SRC_STATIC, SRC_DNS, SRC_FILE } st_source_kind;

typedef struct {
    st_source_kind kind;
    char spec[ST_ENDPOINT_LEN];  /* as given */
    char host[256];              /* SRC_DNS */
    char port[16];               /* SRC_DNS */
    bool resolved_once;
} st_source;

typedef enum { R_FREE = 0, R_CONNECTING, R_UP, R_DOWN, R_REFUSED, R_GONE } st_rstate;

typedef struct {
    st_rstate state;
    int source;
    char where[ST_ENDPOINT_LEN];  /* endpoint or model path */
    void *sock;                   /* DEALER; NULL for an in-process replica */
    void *mon;                    /* PAIR receiving the DEALER's monitor events */
    ed_mlp *model;                /* in-process only */
    ed_mlp_ws *ws;
    float *x;                     /* (max_batch, in) scaled input, in-process only */
    float input_scale, input_offset;
    int member;                   /* -1 until its member info arrived */
    int inflight;
    char fingerprint[32];
    char name[128];
    double ping_sent;             /* outstanding InfoRequest sent at (0: none) */
    uint64_t ping_id;
    double next_ping;
    double backoff;
    double last_heard;
    double down_since;
    bool seen;                    /* DNS: present in the latest resolution */
    char why[512];                /* why it was refused */
    char handshake[200];          /* the last failed security handshake, for error messages */
} st_replica;

typedef struct {
    char name[128];
    char fingerprint[32];
    char desc[1024];
} st_member;

typedef enum { Q_IDLE = 0, Q_PENDING, Q_WAITING, Q_DONE } st_qstate;

typedef struct {
    st_qstate st;
    uint64_t id;
    int replica;
    double sent_at;
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
    bool missed[ST_POOL_MAX_MEMBERS];      /* after wait: left out of this batch (degraded) */
} st_slot;

struct st_pool {
    st_pool_config cfg;
    int quorum;                            /* effective; 0 = all members of the batch */
    void *zctx;
    st_source sources[ST_MAX_SOURCES];
    int n_sources;
    st_replica reps[ST_POOL_MAX_REPLICAS];
    int n_reps;                            /* high-water mark of used entries */
    st_member members[ST_POOL_MAX_MEMBERS];
    int n_members;
    st_slot *slots;
    uint64_t seq;
    uint64_t info_seq;
    double next_resolve;
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
};

static int s_dispatch(st_pool *p, int slot, int k, ed_err *err);

/* ------------------------------------------------------------------------------------------------
 * Small helpers
 * --------------------------------------------------------------------------------------------- */

/* snprintf through a va_list: for writing into one field of the pool from others (gcc's -Wrestrict
 * cannot tell the fields apart). */
__attribute__((format(printf, 3, 4))) static int s_fmt(char *dst, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, size, fmt, ap);
    va_end(ap);
    return n;
}

static bool s_is_endpoint(const char *s)
{
    return !strncmp(s, "tcp://", 6) || !strncmp(s, "ipc://", 6) || !strncmp(s, "inproc://", 9);
}

/* "tcp://HOST:PORT" with a HOST that is not a numeric address (nor a wildcard): a DNS source. */
static bool s_split_dns(const char *ep, char *host, size_t hsize, char *port, size_t psize)
{
    if (strncmp(ep, "tcp://", 6))
        return false;
    const char *h = ep + 6;
    if (*h == '[')
        return false; /* bracketed IPv6 literal */
    const char *colon = strrchr(h, ':');
    if (!colon || colon == h || (size_t)(colon - h) >= hsize || strlen(colon + 1) >= psize)
        return false;
    memcpy(host, h, (size_t)(colon - h));
    host[colon - h] = '\0';
    snprintf(port, psize, "%s", colon + 1);
    unsigned char buf[16];
    if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1 ||
        !strcmp(host, "*") || strchr(host, ';'))
        return false;
    return true;
}

static void s_record_latency(st_pool *p, double ms)
{
    p->lat_sum += ms;
    p->replies++;
    if (p->n_lat < ST_LAT_SAMPLES)
        p->lat[p->n_lat++] = ms;
    else
        p->lat[(size_t)p->replies % ST_LAT_SAMPLES] = ms;
}

static int s_send_msg(st_pool *p, st_replica *r, const ed_msg *m)
{
    size_t len = ed_wire_packed_size(m);
    zmq_msg_t zm;
    if (zmq_msg_init_size(&zm, len))
        return ED_ENOMEM;
    ed_wire_pack(m, zmq_msg_data(&zm));
    /* ZMQ_IMMEDIATE is set: with no live connection the send fails at once instead of queueing. */
    if (zmq_msg_send(&zm, r->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&zm);
        return ED_EPEER;
    }
    p->bytes_sent += len;
    return 0;
}

static int s_live_replicas(const st_pool *p, int k)
{
    int n = 0;
    for (int i = 0; i < p->n_reps; i++)
        n += p->reps[i].member == k && p->reps[i].state == R_UP;
    return n;
}

static void s_describe_member(st_pool *p, int k)
{
    st_member *m = &p->members[k];
    int off = s_fmt(m->desc, sizeof m->desc, "%s (%s) at", m->name, m->fingerprint);
    bool first = true;
    for (int i = 0; i < p->n_reps && off > 0 && (size_t)off < sizeof m->desc; i++) {
        const st_replica *r = &p->reps[i];
        if (r->member != k || r->state == R_GONE || r->state == R_FREE || r->state == R_REFUSED)
            continue;
        off += s_fmt(m->desc + off, sizeof m->desc - (size_t)off, "%s %s", first ? "" : ",",
                        r->where);
        first = false;
    }
}

/* ------------------------------------------------------------------------------------------------
 * Replicas: creation, state changes
 * --------------------------------------------------------------------------------------------- */

static int s_new_replica_index(st_pool *p)
{
    for (int i = 0; i < p->n_reps; i++)
        if (p->reps[i].state == R_FREE)
            return i;
    return p->n_reps < ST_POOL_MAX_REPLICAS ? p->n_reps++ : -1;
}

/* The CURVE server key for the teachers of --teachers entry `source`, or NULL. */
static const char *s_server_key(const st_pool *p, int source)
{
    for (int i = 0; i < p->cfg.curve_map_n; i++)
        if (!strcmp(p->cfg.curve_map[i].teacher, p->sources[source].spec))
            return p->cfg.curve_map[i].key;
    return p->cfg.curve_server;
}

static int s_add_remote(st_pool *p, int source, const char *ep, ed_err *err)
{
    int i = s_new_replica_index(p);
    if (i < 0)
        return ed_err_set(err, ED_ETOOBIG, "more than %d teacher endpoints", ST_POOL_MAX_REPLICAS);
    st_replica *r = &p->reps[i];
    memset(r, 0, sizeof *r);
    r->source = source;
    r->member = -1;
    s_fmt(r->where, sizeof r->where, "%s", ep);
    r->sock = zmq_socket(p->zctx, ZMQ_DEALER);
    r->mon = zmq_socket(p->zctx, ZMQ_PAIR);
    if (!r->sock || !r->mon)
        return ed_err_set(err, ED_ENOMEM, "teacher %s: cannot create a socket", ep);
    int linger = 0, hwm = 0, one = 1, ivl = 100, ivl_max = 2000;
    zmq_setsockopt(r->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(r->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(r->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(r->sock, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(r->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(r->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    zmq_setsockopt(r->mon, ZMQ_LINGER, &linger, sizeof linger);
    char mon_ep[96];
    snprintf(mon_ep, sizeof mon_ep, "inproc://st-pool-%p-%d-%llu", (void *)p, i,
             (unsigned long long)++p->info_seq);
    if (p->cfg.curve_secret) {
        const char *server = s_server_key(p, source);
        if (!server)
            return ed_err_set(err, ED_EINVAL, "teacher %s: no CURVE server key for it in "
                              "--curve-server-keys", ep);
        if (zmq_setsockopt(r->sock, ZMQ_CURVE_SERVERKEY, server, strlen(server)) ||
            zmq_setsockopt(r->sock, ZMQ_CURVE_PUBLICKEY, p->cfg.curve_public,
                           strlen(p->cfg.curve_public)) ||
            zmq_setsockopt(r->sock, ZMQ_CURVE_SECRETKEY, p->cfg.curve_secret,
                           strlen(p->cfg.curve_secret)))
            return ed_err_set(err, ED_EINVAL, "teacher %s: cannot set the CURVE keys: %s", ep,
                              zmq_strerror(zmq_errno()));
    }
    if (zmq_socket_monitor(r->sock, mon_ep, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
                                                ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                                ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) ||
        zmq_connect(r->mon, mon_ep))
        return ed_err_set(err, ED_EIO, "teacher %s: cannot monitor the socket: %s", ep,
                          zmq_strerror(zmq_errno()));
    if (zmq_connect(r->sock, ep))
        return ed_err_set(err, ED_EINVAL, "teacher %s: cannot connect: %s", ep,
                          zmq_strerror(zmq_errno()));
    r->state = R_CONNECTING;
    r->next_ping = ed_now();
    r->backoff = ST_BACKOFF_START;
    p->items_dirty = true;
    return 0;
}

static int s_add_local(st_pool *p, int source, const char *path, ed_err *err)
{
    int i = s_new_replica_index(p);
    if (i < 0)
        return ed_err_set(err, ED_ETOOBIG, "more than %d teachers", ST_POOL_MAX_REPLICAS);
    st_replica *r = &p->reps[i];
    memset(r, 0, sizeof *r);
    r->source = source;
    r->member = -1;
    r->state = R_CONNECTING;
    s_fmt(r->where, sizeof r->where, "%s", path);
    ed_model_meta meta;
    if (ed_model_load(path, &r->model, &meta, err))
        return err ? err->code : ED_EFORMAT;
    const ed_arch *a = &r->model->arch;
    if (ed_arch_in(a) != p->cfg.input_dim || ed_arch_out(a) != p->cfg.classes)
        return ed_err_set(err, ED_ESHAPE, "teacher %s maps %d -> %d, the data have %d values and "
                          "the student %d classes", path, ed_arch_in(a), ed_arch_out(a),
                          p->cfg.input_dim, p->cfg.classes);
    r->ws = ed_mlp_ws_new(a, p->cfg.max_batch, false);
    r->x = malloc(sizeof(float) * (size_t)p->cfg.max_batch * (size_t)p->cfg.input_dim);
    if (!r->ws || !r->x)
        return ed_err_set(err, ED_ENOMEM, "teacher %s: cannot allocate buffers", path);
    r->input_scale = meta.input_scale;
    r->input_offset = meta.input_offset;
    ed_fingerprint_format(meta.fingerprint, r->fingerprint, sizeof r->fingerprint);
    s_fmt(r->name, sizeof r->name, "%s", meta.member);
    return 0;
}

static void s_free_replica(st_pool *p, st_replica *r)
{
    if (r->sock) {
        zmq_socket_monitor(r->sock, NULL, 0);
        zmq_close(r->sock);
    }
    if (r->mon)
        zmq_close(r->mon);
    ed_mlp_destroy(&r->model);
    ed_mlp_ws_destroy(&r->ws);
    free(r->x);
    r->sock = r->mon = NULL;
    r->x = NULL;
    p->items_dirty = true;
}

/* Requests outstanding at replica ri go back to WAITING and are re-dispatched where possible. */
static void s_reassign(st_pool *p, int ri)
{
    for (int s = 0; s < p->cfg.depth; s++) {
        st_slot *sl = &p->slots[s];
        if (!sl->busy)
            continue;
        for (int k = 0; k < p->n_members; k++) {
            if (sl->req[k].st != Q_PENDING || sl->req[k].replica != ri)
                continue;
            sl->req[k].st = Q_WAITING;
            if (s_dispatch(p, s, k, NULL) == 0 && sl->req[k].st == Q_PENDING)
                p->failovers++;
        }
    }
    p->reps[ri].inflight = 0;
}

static void s_mark_down(st_pool *p, int ri, const char *why)
{
    st_replica *r = &p->reps[ri];
    if (r->state != R_UP && r->state != R_CONNECTING)
        return;
    double now = ed_now();
    bool was_up = r->state == R_UP;
    r->state = R_DOWN;
    r->down_since = now;
    r->backoff = ST_BACKOFF_START;
    r->next_ping = now + r->backoff;
    r->ping_sent = 0;
    if (was_up) {
        p->down_events++;
        int k = r->member;
        ed_log_warn("teacher %s (%s) is down: %s; %d live replica%s of %s left", r->where,
                    r->name, why, s_live_replicas(p, k), s_live_replicas(p, k) == 1 ? "" : "s",
                    p->members[k].name);
    }
    s_reassign(p, ri);
}

/* A replica answered an InfoRequest: admit it (new member or replica), bring it back, or refuse. */
static int s_on_info(st_pool *p, int ri, const ed_member_info *info)
{
    st_replica *r = &p->reps[ri];
    double now = ed_now();
    r->last_heard = now;
    if (info->request_id == r->ping_id)
        r->ping_sent = 0;
    if (r->state == R_REFUSED || r->state == R_GONE)
        return 0;
    if (!info->ready) {
        if (r->state == R_UP)
            s_mark_down(p, ri, "it reports not ready (stopping)");
        return 0;
    }
    if (r->state == R_UP)
        return 0;
    if ((int)info->input_dim != p->cfg.input_dim || (int)info->classes != p->cfg.classes ||
        (info->max_batch && (int)info->max_batch < p->cfg.max_batch)) {
        r->state = R_REFUSED;
        s_fmt(r->why, sizeof r->why,
                 "teacher %s (%s) takes %u inputs, outputs %u classes, accepts batches of %u; the "
                 "run needs %d inputs, %d classes, batches of %d%s",
                 r->where, info->member, info->input_dim, info->classes, info->max_batch,
                 p->cfg.input_dim, p->cfg.classes, p->cfg.max_batch,
                 (info->max_batch && (int)info->max_batch < p->cfg.max_batch)
                     ? " (start it with a larger --max-batch)"
                     : "");
        ed_log_error("REFUSED %s", r->why);
        return 0;
    }
    if (r->member >= 0) { /* a known replica coming back */
        st_member *m = &p->members[r->member];
        if (strcmp(info->fingerprint, m->fingerprint)) {
            r->state = R_REFUSED;
            s_fmt(r->why, sizeof r->why,
                     "teacher %s came back with weights %s, but it served member %s (%s); restart "
                     "it with %s's model file", r->where, info->fingerprint, m->name,
                     m->fingerprint, m->name);
            ed_log_error("REFUSED %s", r->why);
            return 0;
        }
        r->state = R_UP;
        r->backoff = ST_BACKOFF_START;
        p->up_events++;
        ed_log_info("teacher %s (%s) is back after %.1fs", r->where, m->name, now - r->down_since);
        return 0;
    }
    s_fmt(r->fingerprint, sizeof r->fingerprint, "%s", info->fingerprint);
    s_fmt(r->name, sizeof r->name, "%s", info->member);
    int k = 0;
    while (k < p->n_members && strcmp(p->members[k].fingerprint, r->fingerprint))
        k++;
    if (k == p->n_members) {
        for (int j = 0; j < p->n_members; j++)
            if (!strcmp(p->members[j].name, r->name)) {
                r->state = R_REFUSED;
                s_fmt(r->why, sizeof r->why,
                         "teacher %s says it is member %s but has weights %s, while %s's other "
                         "replicas have %s", r->where, r->name, r->fingerprint, r->name,
                         p->members[j].fingerprint);
                ed_log_error("REFUSED %s", r->why);
                return 0;
            }
        if (p->n_members == ST_POOL_MAX_MEMBERS) {
            r->state = R_REFUSED;
            s_fmt(r->why, sizeof r->why, "teacher %s: more than %d members", r->where,
                     ST_POOL_MAX_MEMBERS);
            ed_log_error("REFUSED %s", r->why);
            return 0;
        }
        p->n_members++;
        s_fmt(p->members[k].name, sizeof p->members[k].name, "%s", r->name);
        s_fmt(p->members[k].fingerprint, sizeof p->members[k].fingerprint, "%s", r->fingerprint);
        if (p->sources[r->source].resolved_once)
            ed_log_info("new member %s (%s) at %s", r->name, r->fingerprint, r->where);
    } else if (p->sources[r->source].resolved_once) {
        ed_log_info("new replica of %s at %s", p->members[k].name, r->where);
    }
    r->member = k;
    r->state = R_UP;
    s_describe_member(p, k);
    return 0;
}

/* A logit reply or an error reply from replica ri. */
static int s_on_reply(st_pool *p, int ri, const ed_msg *m, ed_err *err)
{
    st_replica *r = &p->reps[ri];
    r->last_heard = ed_now();
    uint64_t id = m->kind == ED_MSG_LOGIT_REPLY ? m->u.reply.request_id : m->u.error.request_id;
    int slot = (int)((id >> 10) & 1023), k = (int)(id & 1023);
    st_req *q = NULL;
    if (slot < p->cfg.depth && k < p->n_members && p->slots[slot].busy)
        q = &p->slots[slot].req[k];
    if (!q || q->st != Q_PENDING || q->id != id || q->replica != ri) {
        if (m->kind == ED_MSG_ERROR)
            ed_log_warn("teacher %s: error %s: %s", r->where, ed_err_name(m->u.error.code),
                        m->u.error.message);
        return 0; /* a late reply to a request that went elsewhere, or not ours */
    }
    if (m->kind == ED_MSG_ERROR) {
        if (m->u.error.code == ED_ESTOPPED || m->u.error.code == ED_EBUSY) {
            s_mark_down(p, ri, "it is stopping");
            return 0;
        }
        return ed_err_set(err, ED_EPEER, "teacher %s (%s) refused a batch: %s: %s", r->where,
                          r->name, ed_err_name(m->u.error.code), m->u.error.message);
    }
    st_slot *sl = &p->slots[slot];
    const ed_logit_reply *rep = &m->u.reply;
    if ((int)rep->batch != sl->n || (int)rep->classes != p->cfg.classes)
        return ed_err_set(err, ED_ESHAPE, "teacher %s answered %u x %u logits for a batch of %d x %d",
                          r->where, rep->batch, rep->classes, sl->n, p->cfg.classes);
    memcpy(sl->logits[k], rep->logits, sizeof(float) * (size_t)sl->n * (size_t)p->cfg.classes);
    q->st = Q_DONE;
    r->inflight--;
    s_record_latency(p, 1000.0 * (ed_now() - q->sent_at));
    return 0;
}

/* ------------------------------------------------------------------------------------------------
 * Dispatch of one member's share of one batch
 * --------------------------------------------------------------------------------------------- */

static int s_compute_local(st_pool *p, st_replica *r, st_slot *sl, int k, ed_err *err)
{
    ed_batch b = {.n = sl->n, .dim = p->cfg.input_dim, .dtype = p->cfg.dtype, .x = sl->x, .y = sl->y};
    double t0 = ed_now();
    const float *z;
    ed_batch_to_float(&b, r->input_scale, r->input_offset, r->x);
    int rc = ed_mlp_forward(r->model, r->ws, r->x, sl->n, false, NULL, &z, err);
    if (rc)
        return ed_err_wrap(err, "teacher %s", r->where);
    memcpy(sl->logits[k], z, sizeof(float) * (size_t)sl->n * (size_t)p->cfg.classes);
    sl->req[k].st = Q_DONE;
    s_record_latency(p, 1000.0 * (ed_now() - t0));
    return 0;
}

/* Sends member k's request of slot to its least-loaded live replica; leaves it WAITING if there is
 * none. Only in-process forward errors are returned. */
static int s_dispatch(st_pool *p, int slot, int k, ed_err *err)
{
    st_slot *sl = &p->slots[slot];
    for (;;) {
        int best = -1;
        for (int i = 0; i < p->n_reps; i++) {
            const st_replica *r = &p->reps[i];
            if (r->member == k && r->state == R_UP &&
                (best < 0 || r->inflight < p->reps[best].inflight))
                best = i;
        }
        if (best < 0) {
            sl->req[k].st = Q_WAITING;
            return 0;
        }
        st_replica *r = &p->reps[best];
        if (!r->sock)
            return s_compute_local(p, r, sl, k, err);
        uint64_t id = (++p->seq << 20) | ((uint64_t)slot << 10) | (uint64_t)k;
        ed_msg m = {.kind = ED_MSG_LOGIT_REQUEST,
                    .u.request = {.request_id = id, .dtype = p->cfg.dtype, .batch = (uint32_t)sl->n,
                                  .dim = (uint32_t)p->cfg.input_dim, .data = sl->x}};
        if (s_send_msg(p, r, &m) == 0) {
            sl->req[k] = (st_req){.st = Q_PENDING, .id = id, .replica = best, .sent_at = ed_now()};
            r->inflight++;
            return 0;
        }
        s_mark_down(p, best, "not connected");
    }
}

/* ------------------------------------------------------------------------------------------------
 * The service loop: sockets, monitors, timers
 * --------------------------------------------------------------------------------------------- */

static void s_rebuild_items(st_pool *p)
{
    p->n_items = 0;
    for (int i = 0; i < p->n_reps; i++) {
        st_replica *r = &p->reps[i];
        if (!r->sock || r->state == R_FREE || r->state == R_GONE)
            continue;
        p->items[p->n_items] = (zmq_pollitem_t){.socket = r->sock, .events = ZMQ_POLLIN};
        p->item_rep[p->n_items++] = i;
        p->items[p->n_items] = (zmq_pollitem_t){.socket = r->mon, .events = ZMQ_POLLIN};
        p->item_rep[p->n_items++] = i;
    }
    p->items_dirty = false;
}

static void s_read_monitor(st_pool *p, int ri)
{
    st_replica *r = &p->reps[ri];
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, r->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&event, zmq_msg_data(&ev), sizeof event);
            memcpy(&value, (const char *)zmq_msg_data(&ev) + 2, sizeof value);
        }
        int more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        if (more) { /* second frame: the peer address; parts of a message arrive together */
            zmq_msg_init(&addr);
            zmq_msg_recv(&addr, r->mon, ZMQ_DONTWAIT);
            zmq_msg_close(&addr);
        }
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH || event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
            bool first = !r->handshake[0];
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
                s_fmt(r->handshake, sizeof r->handshake, "the teacher refused this trainer's "
                      "CURVE key (ZAP status %" PRIu32 "): add its .pub to the worker's "
                      "--curve-clients", value);
            else
                s_fmt(r->handshake, sizeof r->handshake, "security handshake failed (ZMTP error "
                      "0x%" PRIx32 "): %s", value, p->cfg.curve_secret
                      ? "a plaintext teacher, or not the server key given to --curve-server-keys?"
                      : "the teacher requires CURVE: give --curve-secret and --curve-server-keys");
            if (first)
                ed_log_warn("teacher %s: %s", r->where, r->handshake);
        } else if (event == ZMQ_EVENT_DISCONNECTED) {
            s_mark_down(p, ri, "connection lost");
        } else if (event == ZMQ_EVENT_CONNECTED && r->state == R_DOWN) {
            r->next_ping = ed_now(); /* ask at once whether it is back */
        }
    }
}

static int s_read_socket(st_pool *p, int ri, ed_err *err)
{
    st_replica *r = &p->reps[ri];
    int rc = 0;
    zmq_msg_t zm;
    zmq_msg_init(&zm);
    while (!rc && r->sock && zmq_msg_recv(&zm, r->sock, ZMQ_DONTWAIT) >= 0) {
        ed_msg m = {0};
        ed_err derr = {0};
        p->bytes_received += zmq_msg_size(&zm);
        if (ed_wire_decode(zmq_msg_data(&zm), zmq_msg_size(&zm), &m, &derr)) {
            ed_log_warn("teacher %s sent an undecodable reply: %s", r->where, derr.msg);
        } else if (m.kind == ED_MSG_MEMBER_INFO) {
            rc = s_on_info(p, ri, &m.u.info);
        } else if (m.kind == ED_MSG_LOGIT_REPLY || m.kind == ED_MSG_ERROR) {
            rc = s_on_reply(p, ri, &m, err);
        }
        ed_wire_msg_clear(&m);
    }
    zmq_msg_close(&zm);
    return rc;
}

static void s_ping(st_pool *p, st_replica *r, double now)
{
    ed_msg m = {.kind = ED_MSG_INFO_REQUEST, .u.info_request_id = ++p->info_seq};
    r->ping_id = p->info_seq;
    r->ping_sent = s_send_msg(p, r, &m) == 0 ? now : 0;
}

/* Health checks: pings for connecting and down replicas (with backoff) and for idle live ones. */
static void s_health(st_pool *p, double now)
{
    const double interval = p->cfg.health_interval_s > 0 ? p->cfg.health_interval_s : 2.0;
    for (int i = 0; i < p->n_reps; i++) {
        st_replica *r = &p->reps[i];
        if (!r->sock)
            continue;
        if (r->state == R_CONNECTING || r->state == R_DOWN) {
            if (now >= r->next_ping) {
                s_ping(p, r, now);
                r->next_ping = now + r->backoff;
                r->backoff = fmin(r->backoff * 2.0, interval);
            }
        } else if (r->state == R_UP) {
            if (r->ping_sent > 0 && now - r->ping_sent > p->cfg.timeout_s)
                s_mark_down(p, i, "no answer to a health check");
            else if (r->ping_sent == 0 && r->inflight == 0 && now - r->last_heard >= interval)
                s_ping(p, r, now);
        }
    }
}

/* Pending requests past their deadline mark their replica down (which re-dispatches them). */
static void s_deadlines(st_pool *p, double now)
{
    for (int s = 0; s < p->cfg.depth; s++) {
        st_slot *sl = &p->slots[s];
        if (!sl->busy)
            continue;
        for (int k = 0; k < p->n_members; k++) {
            st_req *q = &sl->req[k];
            if (q->st == Q_PENDING && now - q->sent_at > p->cfg.timeout_s) {
                char why[64];
                snprintf(why, sizeof why, "missed the %.1fs deadline", p->cfg.timeout_s);
                s_mark_down(p, q->replica, why);
            }
        }
    }
}

/* Re-resolves DNS sources: new addresses join, vanished ones leave. */
static void s_resolve(st_pool *p, ed_err *err)
{
    for (int si = 0; si < p->n_sources; si++) {
        st_source *src = &p->sources[si];
        if (src->kind != SRC_DNS)
            continue;
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        struct addrinfo *res = NULL;
        int gai = getaddrinfo(src->host, src->port, &hints, &res);
        if (gai) {
            ed_log_warn("teacher name %s: cannot resolve (%s); keeping its %s teachers", src->host,
                        gai_strerror(gai), src->resolved_once ? "known" : "(no)");
            continue;
        }
        for (int i = 0; i < p->n_reps; i++)
            p->reps[i].seen = false;
        for (struct addrinfo *a = res; a; a = a->ai_next) {
            char ip[INET6_ADDRSTRLEN], ep[ST_ENDPOINT_LEN];
            if (a->ai_family == AF_INET) {
                inet_ntop(AF_INET, &((struct sockaddr_in *)a->ai_addr)->sin_addr, ip, sizeof ip);
                snprintf(ep, sizeof ep, "tcp://%s:%s", ip, src->port);
            } else if (a->ai_family == AF_INET6) {
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)a->ai_addr)->sin6_addr, ip, sizeof ip);
                snprintf(ep, sizeof ep, "tcp://[%s]:%s", ip, src->port);
            } else {
                continue;
            }
            int found = -1;
            for (int i = 0; i < p->n_reps && found < 0; i++)
                if (p->reps[i].source == si && p->reps[i].state != R_FREE &&
                    p->reps[i].state != R_GONE && !strcmp(p->reps[i].where, ep))
                    found = i;
            if (found >= 0) {
                p->reps[found].seen = true;
            } else if (s_add_remote(p, si, ep, err) == 0) {
                if (src->resolved_once)
                    ed_log_info("teacher name %s: new address %s", src->host, ep);
                for (int i = 0; i < p->n_reps; i++)
                    if (p->reps[i].source == si && !strcmp(p->reps[i].where, ep))
                        p->reps[i].seen = true;
            } else {
                ed_log_warn("%s", err ? err->msg : "cannot add a teacher");
            }
        }
        freeaddrinfo(res);
        for (int i = 0; i < p->n_reps; i++) {
            st_replica *r = &p->reps[i];
            if (r->source != si || r->seen || r->state == R_FREE || r->state == R_GONE)
                continue;
            ed_log_warn("teacher %s left %s's addresses: dropping it", r->where, src->host);
            s_mark_down(p, i, "its address was removed");
            r->state = R_GONE;
            s_free_replica(p, r);
            r->state = R_FREE;
            if (r->member >= 0)
                s_describe_member(p, r->member);
        }
        src->resolved_once = true;
    }
}

/* Dispatches WAITING requests whose member has a live replica again. */
static int s_retry_waiting(st_pool *p, ed_err *err)
{
    for (int s = 0; s < p->cfg.depth; s++) {
        st_slot *sl = &p->slots[s];
        if (!sl->busy)
            continue;
        for (int k = 0; k < p->n_members; k++)
            if (sl->req[k].st == Q_WAITING && s_live_replicas(p, k) > 0) {
                int rc = s_dispatch(p, s, k, err);
                if (rc)
                    return rc;
            }
    }
    return 0;
}

/* Waits up to max_block seconds for socket activity, then runs every timer once. */
static int s_service(st_pool *p, double max_block, ed_err *err)
{
    if (p->items_dirty)
        s_rebuild_items(p);
    double now = ed_now(), next = now + max_block;
    for (int i = 0; i < p->n_reps; i++) {
        const st_replica *r = &p->reps[i];
        if (r->sock && (r->state == R_CONNECTING || r->state == R_DOWN))
            next = fmin(next, r->next_ping);
    }
    for (int s = 0; s < p->cfg.depth; s++)
        for (int k = 0; k < p->n_members && p->slots[s].busy; k++)
            if (p->slots[s].req[k].st == Q_PENDING)
                next = fmin(next, p->slots[s].req[k].sent_at + p->cfg.timeout_s);
    long timeout_ms = (long)fmax(0.0, ceil((next - now) * 1000.0));
    if (p->n_items > 0) {
        int n = zmq_poll(p->items, p->n_items, timeout_ms);
        if (n < 0 && zmq_errno() != EINTR)
            return ed_err_set(err, ED_EIO, "zmq_poll: %s", zmq_strerror(zmq_errno()));
        for (int it = 0; n > 0 && it < p->n_items; it++) {
            if (!(p->items[it].revents & ZMQ_POLLIN))
                continue;
            int ri = p->item_rep[it];
            if (p->items[it].socket == p->reps[ri].mon) {
                s_read_monitor(p, ri);
            } else {
                int rc = s_read_socket(p, ri, err);
                if (rc)
                    return rc;
            }
        }
    } else if (timeout_ms > 0) {
        long ms = timeout_ms > 100 ? 100 : timeout_ms;
        nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = ms * 1000000L}, NULL);
    }
    now = ed_now();
    s_deadlines(p, now);
    s_health(p, now);
    if (p->cfg.resolve_interval_s > 0 && now >= p->next_resolve) {
        s_resolve(p, err);
        p->next_resolve = now + p->cfg.resolve_interval_s;
    }
    return s_retry_waiting(p, err);
}

/* ------------------------------------------------------------------------------------------------
 * Opening and closing
 * --------------------------------------------------------------------------------------------- */

static int s_add_source(st_pool *p, const char *spec, ed_err *err)
{
    if (p->n_sources == ST_MAX_SOURCES)
        return ed_err_set(err, ED_EINVAL, "--teachers: more than %d entries", ST_MAX_SOURCES);
    int si = p->n_sources++;
    st_source *src = &p->sources[si];
    s_fmt(src->spec, sizeof src->spec, "%s", spec);
    if (!s_is_endpoint(spec)) {
        src->kind = SRC_FILE;
        return s_add_local(p, si, spec, err);
    }
    if (!p->zctx && !(p->zctx = zmq_ctx_new()))
        return ed_err_set(err, ED_ENOMEM, "cannot create a ZeroMQ context");
    if (s_split_dns(spec, src->host, sizeof src->host, src->port, sizeof src->port)) {
        src->kind = SRC_DNS;
        return 0; /* resolved by s_resolve */
    }
    src->kind = SRC_STATIC;
    return s_add_remote(p, si, spec, err);
}

#define ST_DNS_GRACE 3.0 /* seconds to wait for the other addresses of a name once one answered */

/* "; <last handshake failure>" of a replica of the source spelled `spec`, or "". */
static const char *s_handshake_note(st_pool *p, const char *spec)
{
    static char note[256];
    for (int i = 0; i < p->n_reps; i++) {
        const st_replica *r = &p->reps[i];
        if (r->state != R_FREE && r->handshake[0] && !strcmp(p->sources[r->source].spec, spec)) {
            snprintf(note, sizeof note, "; %s", r->handshake);
            return note;
        }
    }
    return "";
}

/* Waits until every static teacher answered, and every address of each DNS name, or at least one
 * of them for ST_DNS_GRACE seconds (the others may join later). */
static int s_wait_ready(st_pool *p, ed_err *err)
{
    double deadline = ed_now() + p->cfg.connect_timeout_s, first_up[ST_MAX_SOURCES] = {0};
    for (;;) {
        /* Admit in-process replicas (their info is known already). */
        for (int i = 0; i < p->n_reps; i++) {
            st_replica *r = &p->reps[i];
            if (!r->sock && r->state == R_CONNECTING) {
                char name[sizeof r->name], fp[sizeof r->fingerprint];
                memcpy(name, r->name, sizeof name);
                memcpy(fp, r->fingerprint, sizeof fp);
                ed_member_info info = {.member = name, .fingerprint = fp,
                                       .input_dim = (uint32_t)p->cfg.input_dim,
                                       .classes = (uint32_t)p->cfg.classes, .ready = true};
                int rc = s_on_info(p, i, &info);
                if (rc)
                    return rc;
            }
        }
        const char *missing = NULL;
        for (int si = 0; si < p->n_sources && !missing; si++) {
            bool any_up = false, any_pending = false;
            for (int i = 0; i < p->n_reps; i++) {
                const st_replica *r = &p->reps[i];
                if (r->source != si || r->state == R_FREE)
                    continue;
                any_up |= r->state == R_UP;
                any_pending |= r->state == R_CONNECTING || r->state == R_DOWN;
                if (p->sources[si].kind != SRC_DNS && r->state == R_REFUSED)
                    return ed_err_set(err, ED_EPEER, "%s", r->why);
            }
            double now = ed_now();
            if (any_up && first_up[si] == 0)
                first_up[si] = now;
            bool ready = p->sources[si].kind == SRC_DNS
                             ? any_up && (!any_pending || now - first_up[si] >= ST_DNS_GRACE)
                             : !any_pending;
            if (!ready)
                missing = p->sources[si].spec;
        }
        if (!missing)
            return 0;
        double now = ed_now();
        if (now >= deadline)
            return ed_err_set(err, ED_ETIMEDOUT, "teacher %s did not report ready within %.0fs "
                              "(is teacher_worker serve running there?)%s%s", missing,
                              p->cfg.connect_timeout_s, s_handshake_note(p, missing),
                              p->cfg.curve_secret && !s_handshake_note(p, missing)[0]
                                  ? "; CURVE is on: a teacher without CURVE, or with another key "
                                    "pair than the server key given, never answers"
                                  : "");
        int rc = s_service(p, fmin(0.2, deadline - now), err);
        if (rc)
            return rc;
    }
}

/* Numbers members in the order of their first replica in --teachers (answers arrive in any order,
 * and the order of the members is the order of the floating-point sums of the average). */
static void s_order_members(st_pool *p)
{
    int first[ST_POOL_MAX_MEMBERS], order[ST_POOL_MAX_MEMBERS], new_index[ST_POOL_MAX_MEMBERS];
    for (int k = 0; k < p->n_members; k++) {
        first[k] = ST_POOL_MAX_REPLICAS;
        order[k] = k;
    }
    for (int i = p->n_reps - 1; i >= 0; i--)
        if (p->reps[i].member >= 0)
            first[p->reps[i].member] = i;
    for (int a = 1; a < p->n_members; a++) /* insertion sort: a handful of members */
        for (int b = a; b > 0 && first[order[b]] < first[order[b - 1]]; b--) {
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    st_member sorted[ST_POOL_MAX_MEMBERS];
    for (int k = 0; k < p->n_members; k++) {
        sorted[k] = p->members[order[k]];
        new_index[order[k]] = k;
    }
    memcpy(p->members, sorted, sizeof(st_member) * (size_t)p->n_members);
    for (int i = 0; i < p->n_reps; i++)
        if (p->reps[i].member >= 0)
            p->reps[i].member = new_index[p->reps[i].member];
}

static int s_alloc_slots(st_pool *p, ed_err *err)
{
    const st_pool_config *c = &p->cfg;
    size_t xbytes = (size_t)c->max_batch * (size_t)c->input_dim * ed_dtype_size(c->dtype);
    p->slots = calloc((size_t)c->depth, sizeof *p->slots);
    if (!p->slots)
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    for (int s = 0; s < c->depth; s++) {
        st_slot *sl = &p->slots[s];
        sl->x = malloc(xbytes);
        sl->y = malloc(sizeof(int32_t) * (size_t)c->max_batch);
        if (!sl->x || !sl->y)
            return ed_err_set(err, ED_ENOMEM, "out of memory");
    }
    return 0;
}

st_pool *st_pool_open(const char *teachers, const st_pool_config *cfg, ed_err *err)
{
    st_pool *p = calloc(1, sizeof *p);
    char *list = strdup(teachers ? teachers : "");
    if (!p || !list) {
        ed_err_set(err, ED_ENOMEM, "out of memory");
        goto fail;
    }
    p->cfg = *cfg;
    if (cfg->depth < 1 || cfg->depth > ST_MAX_SLOTS || cfg->max_batch < 1) {
        ed_err_set(err, ED_EINVAL, "pool depth must be 1..%d and batch >= 1", ST_MAX_SLOTS);
        goto fail;
    }
    if (p->cfg.timeout_s <= 0)
        p->cfg.timeout_s = 10.0;
    p->quorum = cfg->quorum > 0 ? cfg->quorum : 0;
    if (s_alloc_slots(p, err))
        goto fail;
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (s_add_source(p, t, err))
            goto fail;
    if (p->n_sources == 0) {
        ed_err_set(err, ED_EINVAL, "--teachers: no teacher given");
        goto fail;
    }
    s_resolve(p, err);
    for (int si = 0; si < p->n_sources; si++) {
        bool any = false;
        for (int i = 0; i < p->n_reps; i++)
            any |= p->reps[i].source == si && p->reps[i].state != R_FREE;
        if (!any) {
            ed_err_set(err, ED_ENOTFOUND, "teacher name %s resolves to no address",
                       p->sources[si].host);
            goto fail;
        }
    }
    p->next_resolve = ed_now() + (cfg->resolve_interval_s > 0 ? cfg->resolve_interval_s : 1e9);
    if (s_wait_ready(p, err))
        goto fail;
    s_order_members(p);
    if (p->quorum > p->n_members) {
        ed_err_set(err, ED_EINVAL, "--quorum %d is more than the %d members found", p->quorum,
                   p->n_members);
        goto fail;
    }
    free(list);
    return p;
fail:
    free(list);
    st_pool_close(&p);
    return NULL;
}

void st_pool_close(st_pool **pp)
{
    if (!pp || !*pp)
        return;
    st_pool *p = *pp;
    for (int i = 0; i < p->n_reps; i++)
        s_free_replica(p, &p->reps[i]);
    if (p->zctx)
        zmq_ctx_term(p->zctx);
    if (p->slots) {
        for (int s = 0; s < p->cfg.depth; s++) {
            for (int k = 0; k < ST_POOL_MAX_MEMBERS; k++)
                free(p->slots[s].logits[k]);
            free(p->slots[s].x);
            free(p->slots[s].y);
        }
    }
    free(p->slots);
    free(p);
    *pp = NULL;
}

int st_pool_member_count(const st_pool *p)
{
    return p->n_members;
}

const char *st_pool_member_name(const st_pool *p, int k)
{
    return p->members[k].name;
}

int st_pool_replica_count(const st_pool *p, int k)
{
    int n = 0;
    for (int i = 0; i < p->n_reps; i++) {
        st_rstate s = p->reps[i].state;
        n += p->reps[i].member == k && (s == R_UP || s == R_DOWN || s == R_CONNECTING);
    }
    return n;
}

const char *st_pool_member_describe(const st_pool *p, int k)
{
    return p->members[k].desc;
}

/* ------------------------------------------------------------------------------------------------
 * Submit and wait
 * --------------------------------------------------------------------------------------------- */

int st_pool_submit(st_pool *p, int slot, const ed_batch *b, ed_err *err)
{
    if (slot < 0 || slot >= p->cfg.depth || p->slots[slot].busy)
        return ed_err_set(err, ED_EINVAL, "pool slot %d is not free", slot);
    if (b->n < 1 || b->n > p->cfg.max_batch || b->dim != p->cfg.input_dim || b->dtype != p->cfg.dtype)
        return ed_err_set(err, ED_ESHAPE, "batch of %d x %d %s does not fit the pool (%d x %d %s)",
                          b->n, b->dim, ed_dtype_name(b->dtype), p->cfg.max_batch,
                          p->cfg.input_dim, ed_dtype_name(p->cfg.dtype));
    st_slot *sl = &p->slots[slot];
    for (int k = 0; k < p->n_members; k++)
        if (!sl->logits[k] &&
            !(sl->logits[k] = malloc(sizeof(float) * (size_t)p->cfg.max_batch * (size_t)p->cfg.classes)))
            return ed_err_set(err, ED_ENOMEM, "out of memory");
    sl->busy = true;
    sl->n = b->n;
    sl->blocked_since = 0;
    sl->blocked_logged = false;
    memcpy(sl->x, b->x, (size_t)b->n * (size_t)b->dim * ed_dtype_size(b->dtype));
    memcpy(sl->y, b->y, sizeof(int32_t) * (size_t)b->n);
    for (int k = 0; k < ST_POOL_MAX_MEMBERS; k++)
        sl->req[k].st = Q_IDLE;
    for (int k = 0; k < p->n_members; k++) {
        int rc = s_dispatch(p, slot, k, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* Names of the members of slot still WAITING, for messages. */
static void s_waiting_names(const st_pool *p, const st_slot *sl, char *buf, size_t size)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int k = 0; k < p->n_members && off < size; k++) {
        if (sl->req[k].st != Q_WAITING)
            continue;
        const char *last = "never up";
        for (int i = 0; i < p->n_reps; i++)
            if (p->reps[i].member == k && p->reps[i].state != R_FREE)
                last = p->reps[i].where;
        int w = snprintf(buf + off, size - off, "%s%s (last at %s)", off ? ", " : "",
                         p->members[k].name, last);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

int st_pool_wait(st_pool *p, int slot, ed_batch *batch, const float *const **logits, ed_err *err)
{
    if (slot < 0 || slot >= p->cfg.depth || !p->slots[slot].busy)
        return ed_err_set(err, ED_EINVAL, "pool slot %d has nothing in flight", slot);
    st_slot *sl = &p->slots[slot];
    double t0 = ed_now();
    for (;;) {
        int part = 0, done = 0, pending = 0, waiting = 0;
        for (int k = 0; k < p->n_members; k++) {
            st_qstate q = sl->req[k].st;
            part += q != Q_IDLE;
            done += q == Q_DONE;
            pending += q == Q_PENDING;
            waiting += q == Q_WAITING;
        }
        if (pending == 0) {
            int needed = p->quorum > 0 && p->quorum < part ? p->quorum : part;
            if (waiting == 0 || done >= needed)
                break;
            double now = ed_now();
            char names[512];
            if (sl->blocked_since == 0)
                sl->blocked_since = now;
            if (!sl->blocked_logged) {
                s_waiting_names(p, sl, names, sizeof names);
                ed_log_warn("waiting for %s: no live replica; %d of %d members answered, %s needs "
                            "%d; waiting up to %.0fs", names, done, part,
                            p->quorum ? "--quorum" : "the run (no --quorum)", needed,
                            p->cfg.max_wait_s);
                sl->blocked_logged = true;
            }
            if (p->stop_flag && *p->stop_flag)
                return ed_err_set(err, ED_ESTOPPED, "interrupted while waiting for teachers");
            if (now - sl->blocked_since > p->cfg.max_wait_s) {
                s_waiting_names(p, sl, names, sizeof names);
                return ed_err_set(err, ED_ETIMEDOUT,
                                  "no live replica of %s for %.0fs: %d of %d members answered, "
                                  "%d needed (--quorum); giving up", names, p->cfg.max_wait_s,
                                  done, part, needed);
            }
        }
        int rc = s_service(p, 0.5, err);
        if (rc)
            return rc;
    }
    for (int k = 0; k < ST_POOL_MAX_MEMBERS; k++) {
        sl->out[k] = sl->req[k].st == Q_DONE ? sl->logits[k] : NULL;
        sl->missed[k] = sl->req[k].st == Q_WAITING;
        sl->req[k].st = Q_IDLE;
    }
    p->wait_s += ed_now() - t0;
    sl->busy = false;
    *batch = (ed_batch){.n = sl->n, .dim = p->cfg.input_dim, .dtype = p->cfg.dtype, .x = sl->x, .y = sl->y};
    *logits = sl->out;
    return 0;
}

bool st_pool_missed(const st_pool *p, int slot, int k)
{
    return slot >= 0 && slot < p->cfg.depth && k >= 0 && k < ST_POOL_MAX_MEMBERS &&
           p->slots[slot].missed[k];
}

void st_pool_set_stop_flag(st_pool *p, const volatile sig_atomic_t *flag)
{
    p->stop_flag = flag;
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void st_pool_stats_take(st_pool *p, st_pool_stats *out)
{
    memset(out, 0, sizeof *out);
    out->requests = p->replies;
    if (p->replies > 0) {
        out->latency_mean_ms = p->lat_sum / (double)p->replies;
        qsort(p->lat, (size_t)p->n_lat, sizeof p->lat[0], s_cmp_double);
        out->latency_p50_ms = p->lat[(p->n_lat - 1) / 2];
        out->latency_p99_ms = p->lat[(long)((double)(p->n_lat - 1) * 0.99)];
    }
    out->wait_ms = 1000.0 * p->wait_s;
    out->bytes_sent = p->bytes_sent;
    out->bytes_received = p->bytes_received;
    out->down_events = p->down_events;
    out->up_events = p->up_events;
    out->failovers = p->failovers;
    for (int i = 0; i < p->n_reps; i++) {
        st_rstate s = p->reps[i].state;
        out->replicas_up += s == R_UP;
        out->replicas_known += s == R_UP || s == R_DOWN || s == R_CONNECTING;
    }
    p->replies = p->n_lat = 0;
    p->lat_sum = p->wait_s = 0.0;
    p->bytes_sent = p->bytes_received = 0;
    p->down_events = p->up_events = p->failovers = 0;
}
