/*
 * st_replica: the life of one teacher replica in the pool: creating its DEALER socket and monitor
 * (or loading a model file), member info and admission, refusal of foreign weights, health pings
 * with backoff, request deadlines, marking down and failover, rejoin, and DNS re-resolution of
 * named sources. See st_pool.c for the batch pipeline and st_pool_internal.h for the shared state.
 */
#include "st_pool_internal.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <zmq.h>

#include "ed_clock.h"
#include "ed_log.h"

/* snprintf through a va_list: for writing into one field of the pool from others (gcc's -Wrestrict
 * cannot tell the fields apart). */
__attribute__((format(printf, 3, 4))) int stp_fmt(char *dst, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, size, fmt, ap);
    va_end(ap);
    return n;
}

bool stp_is_endpoint(const char *s)
{
    return !strncmp(s, "tcp://", 6) || !strncmp(s, "ipc://", 6) || !strncmp(s, "inproc://", 9);
}

/* "tcp://HOST:PORT" with a HOST that is not a numeric address (nor a wildcard): a DNS source. */
bool stp_split_dns(const char *ep, char *host, size_t hsize, char *port, size_t psize)
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

void stp_record_latency(st_pool *p, double ms)
{
    p->lat_sum += ms;
    p->replies++;
    if (p->n_lat < ST_LAT_SAMPLES)
        p->lat[p->n_lat++] = ms;
    else
        p->lat[(size_t)p->replies % ST_LAT_SAMPLES] = ms;
}

int stp_send_msg(st_pool *p, st_replica *r, const ed_msg *m)
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

int stp_live_replicas(const st_pool *p, int k)
{
    int n = 0;
    for (int i = 0; i < p->n_reps; i++)
        n += p->reps[i].member == k && p->reps[i].state == ST_R_UP;
    return n;
}

void stp_describe_member(st_pool *p, int k)
{
    st_member *m = &p->members[k];
    int off = stp_fmt(m->desc, sizeof m->desc, "%s (%s) at", m->name, m->fingerprint);
    bool first = true;
    for (int i = 0; i < p->n_reps && off > 0 && (size_t)off < sizeof m->desc; i++) {
        const st_replica *r = &p->reps[i];
        if (r->member != k || r->state == ST_R_GONE || r->state == ST_R_FREE ||
            r->state == ST_R_REFUSED)
            continue;
        off += stp_fmt(m->desc + off, sizeof m->desc - (size_t)off, "%s %s", first ? "" : ",",
                       r->where);
        first = false;
    }
}

static int s_new_replica_index(st_pool *p)
{
    for (int i = 0; i < p->n_reps; i++)
        if (p->reps[i].state == ST_R_FREE)
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

/* Socket options of every DEALER. Reconnects are retried every 100 ms and at most every
 * ST_RECONNECT_MAX_MS (not ZeroMQ's 2 s backoff cap), so a restarted worker is found within a
 * fraction of a second; a connect attempt whose SYN gets no answer is abandoned after
 * ST_CONNECT_TIMEOUT_MS; ZMTP heartbeats drop a connection whose PING goes unanswered for
 * ST_HEARTBEAT_TIMEOUT_MS (a blacked-out link), which then reconnects (the worker pings too and
 * drops its end on its own timeout). */
static int s_dealer_options(void *sock)
{
    const struct {
        int opt, v;
    } o[] = {
        {ZMQ_LINGER, 0},
        {ZMQ_SNDHWM, 0},
        {ZMQ_RCVHWM, 0},
        {ZMQ_IMMEDIATE, 1},
        {ZMQ_RECONNECT_IVL, 100},
        {ZMQ_RECONNECT_IVL_MAX, ST_RECONNECT_MAX_MS},
        {ZMQ_CONNECT_TIMEOUT, ST_CONNECT_TIMEOUT_MS},
        {ZMQ_HEARTBEAT_IVL, ST_HEARTBEAT_IVL_MS},
        {ZMQ_HEARTBEAT_TIMEOUT, ST_HEARTBEAT_TIMEOUT_MS},
        {ZMQ_HEARTBEAT_TTL, ST_HEARTBEAT_TTL_MS},
    };
    for (size_t i = 0; i < sizeof o / sizeof o[0]; i++)
        if (zmq_setsockopt(sock, o[i].opt, &o[i].v, sizeof o[i].v))
            return -1;
    return 0;
}

/* Sets up replica r's DEALER and monitor and connects it; on failure the caller frees them. */
static int s_open_dealer(st_pool *p, st_replica *r, int i, const char *ep, const char *server,
                         ed_err *err)
{
    int zero = 0;
    r->sock = zmq_socket(p->zctx, ZMQ_DEALER);
    r->mon = zmq_socket(p->zctx, ZMQ_PAIR);
    if (!r->sock || !r->mon)
        return ed_err_set(err, ED_ENOMEM, "teacher %s: cannot create a socket: %s", ep,
                          zmq_strerror(zmq_errno()));
    if (zmq_setsockopt(r->mon, ZMQ_LINGER, &zero, sizeof zero) || s_dealer_options(r->sock))
        return ed_err_set(err, ED_EIO, "teacher %s: cannot set socket options: %s", ep,
                          zmq_strerror(zmq_errno()));
    if (server && (zmq_setsockopt(r->sock, ZMQ_CURVE_SERVERKEY, server, strlen(server)) ||
                   zmq_setsockopt(r->sock, ZMQ_CURVE_PUBLICKEY, p->cfg.curve_public,
                                  strlen(p->cfg.curve_public)) ||
                   zmq_setsockopt(r->sock, ZMQ_CURVE_SECRETKEY, p->cfg.curve_secret,
                                  strlen(p->cfg.curve_secret))))
        return ed_err_set(err, ED_EINVAL, "teacher %s: cannot set the CURVE keys: %s", ep,
                          zmq_strerror(zmq_errno()));
    char mon_ep[96];
    snprintf(mon_ep, sizeof mon_ep, "inproc://st-pool-%p-%d-%llu", (void *)p, i,
             (unsigned long long)++p->info_seq);
    if (zmq_socket_monitor(r->sock, mon_ep,
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) ||
        zmq_connect(r->mon, mon_ep))
        return ed_err_set(err, ED_EIO, "teacher %s: cannot monitor the socket: %s", ep,
                          zmq_strerror(zmq_errno()));
    if (zmq_connect(r->sock, ep))
        return ed_err_set(err, ED_EINVAL, "teacher %s: cannot connect: %s", ep,
                          zmq_strerror(zmq_errno()));
    return 0;
}

int stp_add_remote(st_pool *p, int source, const char *ep, ed_err *err)
{
    const char *server = NULL;
    if (p->cfg.curve_secret && !(server = s_server_key(p, source)))
        return ed_err_set(err, ED_EINVAL,
                          "teacher %s (--teachers entry %s): no CURVE server key "
                          "for it in --curve-server-keys (add a line `%s KEY`)",
                          ep, p->sources[source].spec, p->sources[source].spec);
    int i = s_new_replica_index(p);
    if (i < 0)
        return ed_err_set(err, ED_ETOOBIG, "more than %d teacher endpoints", ST_POOL_MAX_REPLICAS);
    st_replica *r = &p->reps[i];
    memset(r, 0, sizeof *r);
    r->source = source;
    r->member = -1;
    stp_fmt(r->where, sizeof r->where, "%s", ep);
    int rc = s_open_dealer(p, r, i, ep, server, err);
    if (rc) {
        /* Close what was opened (an open socket would block zmq_ctx_term) and free the entry. */
        stp_free_replica(p, r);
        r->state = ST_R_FREE;
        if (i == p->n_reps - 1)
            p->n_reps--;
        return rc;
    }
    r->state = ST_R_CONNECTING;
    r->next_ping = ed_now();
    r->backoff = ST_BACKOFF_START;
    p->items_dirty = true;
    return 0;
}

int stp_add_local(st_pool *p, int source, const char *path, ed_err *err)
{
    int i = s_new_replica_index(p);
    if (i < 0)
        return ed_err_set(err, ED_ETOOBIG, "more than %d teachers", ST_POOL_MAX_REPLICAS);
    st_replica *r = &p->reps[i];
    memset(r, 0, sizeof *r);
    r->source = source;
    r->member = -1;
    r->state = ST_R_CONNECTING;
    stp_fmt(r->where, sizeof r->where, "%s", path);
    r->local = ed_member_open(path, p->cfg.max_batch, err);
    if (!r->local)
        return err ? err->code : ED_EFORMAT;
    const int in = ed_member_input_dim(r->local), classes = ed_member_classes(r->local);
    stp_fmt(r->arch, sizeof r->arch, "%s", ed_member_arch(r->local));
    if (!p->cfg.probe && (in != p->cfg.input_dim || classes != p->cfg.classes))
        return ed_err_set(err, ED_ESHAPE,
                          "teacher %s maps %d -> %d, the data have %d values and "
                          "the student %d classes",
                          path, in, classes, p->cfg.input_dim, p->cfg.classes);
    stp_fmt(r->fingerprint, sizeof r->fingerprint, "%s", ed_member_fingerprint(r->local));
    stp_fmt(r->name, sizeof r->name, "%s", ed_member_name(r->local));
    return 0;
}

void stp_free_replica(st_pool *p, st_replica *r)
{
    if (r->sock) {
        zmq_socket_monitor(r->sock, NULL, 0);
        zmq_close(r->sock);
    }
    if (r->mon)
        zmq_close(r->mon);
    ed_member_destroy(&r->local);
    ed_member_destroy(&r->local_share);
    r->sock = r->mon = NULL;
    p->items_dirty = true;
}

/* Requests outstanding at replica ri go back to WAITING (marked as failovers); the pool's service
 * loop re-dispatches them to another live replica (st_pool.c s_retry_waiting). */
static void s_reassign(st_pool *p, int ri)
{
    for (int s = 0; s < p->cfg.depth; s++) {
        st_slot *sl = &p->slots[s];
        if (!sl->busy)
            continue;
        for (int k = 0; k < p->n_members; k++) {
            if (sl->req[k].st != ST_Q_PENDING || sl->req[k].replica != ri)
                continue;
            sl->req[k].st = ST_Q_WAITING;
            sl->req[k].failover = true;
        }
    }
    p->reps[ri].inflight = 0;
}

void stp_mark_down(st_pool *p, int ri, const char *why)
{
    st_replica *r = &p->reps[ri];
    if (r->state != ST_R_UP && r->state != ST_R_CONNECTING)
        return;
    double now = ed_now();
    bool was_up = r->state == ST_R_UP;
    r->state = ST_R_DOWN;
    r->down_since = now;
    r->backoff = ST_BACKOFF_START;
    r->next_ping = now + r->backoff;
    r->ping_sent = 0;
    if (was_up) {
        p->down_events++;
        stp_observe(p, ST_POOL_EV_DOWN, r->member, r->where, 0);
        int k = r->member;
        ed_log_warn("teacher %s (%s) is down: %s; %d live replica%s of %s left", r->where, r->name,
                    why, stp_live_replicas(p, k), stp_live_replicas(p, k) == 1 ? "" : "s",
                    p->members[k].name);
    }
    s_reassign(p, ri);
}

/* A replica answered an InfoRequest: admit it (new member or replica), bring it back, or refuse. */
int stp_on_info(st_pool *p, int ri, const ed_member_info *info)
{
    st_replica *r = &p->reps[ri];
    double now = ed_now();
    r->last_heard = now;
    if (info->request_id == r->ping_id) {
        if (r->ping_sent > 0)
            r->rtt = now - r->ping_sent;
        r->ping_sent = 0;
    }
    if (r->state == ST_R_REFUSED || r->state == ST_R_GONE)
        return 0;
    if (!info->ready) {
        if (r->state == ST_R_UP)
            stp_mark_down(p, ri, "it reports not ready (stopping)");
        return 0;
    }
    if (r->state == ST_R_UP)
        return 0;
    if (!p->cfg.probe &&
        ((int)info->input_dim != p->cfg.input_dim || (int)info->classes != p->cfg.classes ||
         (info->max_batch && (int)info->max_batch < p->cfg.max_batch))) {
        r->state = ST_R_REFUSED;
        stp_fmt(r->why, sizeof r->why,
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
    r->max_batch = (int)info->max_batch; /* >= cfg.max_batch, checked above (0: no limit) */
    if (r->member >= 0) {                /* a known replica coming back */
        st_member *m = &p->members[r->member];
        if (strcmp(info->fingerprint, m->fingerprint)) {
            r->state = ST_R_REFUSED;
            stp_fmt(r->why, sizeof r->why,
                    "teacher %s came back with weights %s, but it served member %s (%s); restart "
                    "it with %s's model file",
                    r->where, info->fingerprint, m->name, m->fingerprint, m->name);
            ed_log_error("REFUSED %s", r->why);
            return 0;
        }
        r->state = ST_R_UP;
        r->backoff = ST_BACKOFF_START;
        p->up_events++;
        stp_observe(p, ST_POOL_EV_UP, r->member, r->where, 0);
        ed_log_info("teacher %s (%s) is back after %.1fs", r->where, m->name, now - r->down_since);
        return 0;
    }
    stp_fmt(r->fingerprint, sizeof r->fingerprint, "%s", info->fingerprint);
    stp_fmt(r->name, sizeof r->name, "%s", info->member);
    if (info->arch && *info->arch)
        stp_fmt(r->arch, sizeof r->arch, "%s", info->arch);
    int k = 0;
    while (k < p->n_members && strcmp(p->members[k].fingerprint, r->fingerprint))
        k++;
    if (k == p->n_members) {
        for (int j = 0; j < p->n_members; j++)
            if (!strcmp(p->members[j].name, r->name)) {
                r->state = ST_R_REFUSED;
                stp_fmt(r->why, sizeof r->why,
                        "teacher %s says it is member %s but has weights %s, while %s's other "
                        "replicas have %s",
                        r->where, r->name, r->fingerprint, r->name, p->members[j].fingerprint);
                ed_log_error("REFUSED %s", r->why);
                return 0;
            }
        if (p->n_members == ST_POOL_MAX_MEMBERS) {
            r->state = ST_R_REFUSED;
            stp_fmt(r->why, sizeof r->why, "teacher %s: more than %d members", r->where,
                    ST_POOL_MAX_MEMBERS);
            ed_log_error("REFUSED %s", r->why);
            return 0;
        }
        p->n_members++;
        stp_fmt(p->members[k].name, sizeof p->members[k].name, "%s", r->name);
        stp_fmt(p->members[k].fingerprint, sizeof p->members[k].fingerprint, "%s", r->fingerprint);
        if (p->sources[r->source].resolved_once)
            ed_log_info("new member %s (%s) at %s", r->name, r->fingerprint, r->where);
    } else if (p->sources[r->source].resolved_once) {
        ed_log_info("new replica of %s at %s", p->members[k].name, r->where);
    }
    r->member = k;
    r->state = ST_R_UP;
    stp_describe_member(p, k);
    return 0;
}

/* A logit reply or an error reply from replica ri. */
static int s_on_reply(st_pool *p, int ri, const ed_msg *m, ed_err *err)
{
    st_replica *r = &p->reps[ri];
    r->last_heard = ed_now();
    uint64_t id = m->kind == ED_MSG_LOGIT_REPLY ? m->u.reply.request_id : m->u.error.request_id;
    const int first = stp_request_first(id), k = stp_request_member(id), n = stp_request_slots(id);
    int slots[ST_POOL_MAX_GROUP], found = 0,
                                  rows = 0; /* the request's slots (any order: st_req.at) */
    for (int s = 0; first < p->cfg.depth && k < p->n_members && s < p->cfg.depth && found < n;
         s++) {
        const int slot = (first + s) % p->cfg.depth;
        const st_req *q = &p->slots[slot].req[k];
        if (p->slots[slot].busy && q->st == ST_Q_PENDING && q->id == id && q->replica == ri) {
            slots[found++] = slot;
            rows += p->slots[slot].n;
        }
    }
    if (found != n) {
        if (m->kind == ED_MSG_ERROR)
            ed_log_warn("teacher %s: error %s: %s", r->where, ed_err_name(m->u.error.code),
                        m->u.error.message);
        return 0; /* a late reply to a request that went elsewhere, or not ours */
    }
    if (m->kind == ED_MSG_ERROR) {
        if (m->u.error.code == ED_ESTOPPED) {
            stp_mark_down(p, ri, "it is stopping");
            return 0;
        }
        return ed_err_set(err, ED_EPEER, "teacher %s (%s) refused a batch: %s: %s", r->where,
                          r->name, ed_err_name(m->u.error.code), m->u.error.message);
    }
    const ed_logit_reply *rep = &m->u.reply;
    if ((int)rep->batch != rows || (int)rep->classes != p->cfg.classes)
        return ed_err_set(err, ED_ESHAPE,
                          "teacher %s answered %u x %u logits for a batch of %d x %d", r->where,
                          rep->batch, rep->classes, rows, p->cfg.classes);
    const size_t C = (size_t)p->cfg.classes;
    double sent_at = 0;
    for (int i = 0; i < found; i++) {
        st_slot *sl = &p->slots[slots[i]];
        st_req *q = &sl->req[k];
        memcpy(sl->logits[k], rep->logits + (size_t)q->at * C, sizeof(float) * (size_t)sl->n * C);
        q->st = ST_Q_DONE;
        sent_at = q->sent_at;
    }
    r->inflight -= found;
    stp_record_latency(p, 1000.0 * (ed_now() - sent_at));
    stp_observe(p, ST_POOL_EV_REPLY, k, r->where, ed_now() - sent_at);
    return 0;
}

/* A connection to r completed its handshake (messages can pass now: ZMQ_IMMEDIATE). A down or
 * connecting replica is asked at once whether it is back (a ping sent on the TCP connect alone
 * would be dropped before the handshake, and the next would wait for the backoff). A refused one
 * whose connection had dropped is reconsidered: the process behind the endpoint may have been
 * replaced, e.g. restarted with the right model file as its refusal advised; its member info is
 * checked again. */
static void s_on_connected(st_replica *r)
{
    if (r->state == ST_R_REFUSED && r->refused_disconnected) {
        ed_log_info("teacher %s (refused before) reconnected: checking its member info again",
                    r->where);
        r->state = r->member >= 0 ? ST_R_DOWN : ST_R_CONNECTING;
        r->refused_disconnected = false;
        r->why[0] = '\0';
        if (r->down_since == 0)
            r->down_since = ed_now();
    }
    if (r->state == ST_R_DOWN || r->state == ST_R_CONNECTING) {
        r->next_ping = ed_now();
        r->backoff = ST_BACKOFF_START;
        r->ping_sent = 0;
    }
}

void stp_read_monitor(st_pool *p, int ri)
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
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
            event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
            bool first = !r->handshake[0];
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
                stp_fmt(r->handshake, sizeof r->handshake,
                        "the teacher refused this trainer's "
                        "CURVE key (ZAP status %" PRIu32 "): add its .pub to the worker's "
                        "--curve-clients",
                        value);
            else
                stp_fmt(
                    r->handshake, sizeof r->handshake,
                    "security handshake failed (ZMTP error "
                    "0x%" PRIx32 "): %s",
                    value,
                    p->cfg.curve_secret
                        ? "a plaintext teacher, or not the server key given to --curve-server-keys?"
                        : "the teacher requires CURVE: give --curve-secret and "
                          "--curve-server-keys");
            if (first)
                ed_log_warn("teacher %s: %s", r->where, r->handshake);
        } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL && !r->handshake[0]) {
            /* The peer closed the connection before its reason arrived (a race with the
             * PROTOCOL/AUTH events above, which replace this note when they come). */
            stp_fmt(
                r->handshake, sizeof r->handshake,
                "the connection closed during the security "
                "handshake: %s",
                p->cfg.curve_secret
                    ? "a plaintext teacher, or a server key or client key it does not accept?"
                    : "the teacher requires CURVE: give --curve-secret and --curve-server-keys");
            ed_log_warn("teacher %s: %s", r->where, r->handshake);
        } else if (event == ZMQ_EVENT_DISCONNECTED) {
            r->refused_disconnected = r->state == ST_R_REFUSED;
            stp_mark_down(p, ri, "connection lost");
        } else if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            s_on_connected(r);
        }
    }
}

int stp_read_socket(st_pool *p, int ri, ed_err *err)
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
            rc = stp_on_info(p, ri, &m.u.info);
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
    r->ping_sent = stp_send_msg(p, r, &m) == 0 ? now : 0;
}

/* Health checks: pings for connecting and down replicas (with backoff) and for idle live ones. */
void stp_health(st_pool *p, double now)
{
    const double interval = p->cfg.health_interval_s > 0 ? p->cfg.health_interval_s : 2.0;
    for (int i = 0; i < p->n_reps; i++) {
        st_replica *r = &p->reps[i];
        if (!r->sock)
            continue;
        if (r->state == ST_R_CONNECTING || r->state == ST_R_DOWN) {
            if (now >= r->next_ping) {
                s_ping(p, r, now);
                r->next_ping = now + r->backoff;
                r->backoff = fmin(r->backoff * 2.0, interval);
            }
        } else if (r->state == ST_R_UP) {
            if (r->ping_sent > 0 && now - r->ping_sent > p->cfg.timeout_s)
                stp_mark_down(p, i, "no answer to a health check");
            else if (r->ping_sent == 0 && r->inflight == 0 && now - r->last_heard >= interval)
                s_ping(p, r, now);
        }
    }
}

/* Pending requests past their deadline mark their replica down (which re-dispatches them). */
void stp_deadlines(st_pool *p, double now)
{
    for (int s = 0; s < p->cfg.depth; s++) {
        st_slot *sl = &p->slots[s];
        if (!sl->busy)
            continue;
        for (int k = 0; k < p->n_members; k++) {
            st_req *q = &sl->req[k];
            if (q->st == ST_Q_PENDING && now - q->sent_at > p->cfg.timeout_s) {
                char why[64];
                snprintf(why, sizeof why, "missed the %.1fs deadline", p->cfg.timeout_s);
                stp_mark_down(p, q->replica, why);
            }
        }
    }
}
