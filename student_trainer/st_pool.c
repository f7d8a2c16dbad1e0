/*
 * st_pool: ensemble members behind ZeroMQ endpoints or loaded in-process (see st_pool.h).
 *
 * Everything runs on the caller's thread, except the forward passes of in-process replicas when
 * the teacher thread is on (st_pool_local.c, st_overlap.c). The state of the pool is:
 *   - SOURCES: the entries of --teachers: a static endpoint, a DNS name (re-resolved), a model
 * file;
 *   - REPLICAS: one per endpoint address (or model file), each CONNECTING, UP, DOWN, REFUSED or
 * GONE;
 *   - MEMBERS: distinct weight fingerprints; a replica belongs to the member with its fingerprint;
 *   - SLOTS: batches in flight; slot.req[k] says where member k's answer for that batch stands
 *     (IDLE: not part of the batch, PENDING at a replica, WAITING for a live replica, DONE).
 * s_service() is the one place that waits: it polls every DEALER socket and its monitor, then runs
 * the timers: request deadlines, health pings with backoff, DNS re-resolution, and the dispatch of
 * WAITING requests to replicas that came back. submit and wait are thin loops around it.
 *
 * This file is the pipeline (open, submit, the service loop, wait); st_pool_dispatch.c sends the
 * requests (replica choice, groups, re-dispatch); st_replica.c is the life of one replica (connect,
 * member info, health, faults, DNS). Shared state: st_pool_internal.h.
 *
 * Request ids encode their first slot, their slot count and member (stp_request_id), and a reply
 * is accepted only if it is the one outstanding request of those slots and that member AND it
 * arrives on the socket of the replica it was sent to: replies can neither cross nor be counted
 * twice.
 *
 * Groups (cfg.group > 1): a submitted slot's remote requests are HELD until `group` slots are
 * held, then each member gets one request with their rows one after the other (st_req.at: where a
 * slot's rows begin); waiting for a held slot sends what is held. A group's reply fills each of
 * its slots; a failover re-sends the group whole, in the same row order.
 */
#include "st_pool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "ed_clock.h"
#include "ed_log.h"
#include "st_overlap.h"
#include "st_pool_internal.h"

/* ------------------------------------------------------------------------------------------------
 * The service loop: sockets, monitors, timers
 * --------------------------------------------------------------------------------------------- */

static void s_rebuild_items(st_pool *p)
{
    p->n_items = 0;
    for (int i = 0; i < p->n_reps; i++) {
        st_replica *r = &p->reps[i];
        if (!r->sock || r->state == ST_R_FREE || r->state == ST_R_GONE)
            continue;
        p->items[p->n_items] = (zmq_pollitem_t){.socket = r->sock, .events = ZMQ_POLLIN};
        p->item_rep[p->n_items++] = i;
        p->items[p->n_items] = (zmq_pollitem_t){.socket = r->mon, .events = ZMQ_POLLIN};
        p->item_rep[p->n_items++] = i;
    }
    p->items_dirty = false;
}

/* Waits up to max_block seconds for socket activity, then runs every timer once. WAITING requests
 * (their replica went down) are re-dispatched before the wait and after the timers. */
static int s_service(st_pool *p, double max_block, ed_err *err)
{
    int rc = stp_retry_waiting(p, err);
    if (rc)
        return rc;
    if (p->items_dirty)
        s_rebuild_items(p);
    double now = ed_now(), next = now + max_block;
    for (int i = 0; i < p->n_reps; i++) {
        const st_replica *r = &p->reps[i];
        if (r->sock && (r->state == ST_R_CONNECTING || r->state == ST_R_DOWN))
            next = fmin(next, r->next_ping);
    }
    for (int s = 0; s < p->cfg.depth; s++)
        for (int k = 0; k < p->n_members && p->slots[s].busy; k++)
            if (p->slots[s].req[k].st == ST_Q_PENDING)
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
                stp_read_monitor(p, ri);
            } else if ((rc = stp_read_socket(p, ri, err))) {
                return rc;
            }
        }
    } else if (timeout_ms > 0) {
        long ms = timeout_ms > 100 ? 100 : timeout_ms;
        nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = ms * 1000000L}, NULL);
    }
    now = ed_now();
    stp_deadlines(p, now);
    stp_health(p, now);
    if (p->cfg.resolve_interval_s > 0 && now >= p->next_resolve) {
        stp_resolve_start(p); /* answers are applied by stp_resolve_poll, never waited for */
        p->next_resolve = now + p->cfg.resolve_interval_s;
    }
    /* A new address that cannot be added is not fatal mid-run (the known teachers carry on), but
     * it is reported, once per distinct cause. */
    ed_err rerr = {0};
    if (stp_resolve_poll(p, &rerr) && strcmp(rerr.msg, p->resolve_error)) {
        ed_log_warn("teacher names: %s; carrying on with the known teachers", rerr.msg);
        stp_fmt(p->resolve_error, sizeof p->resolve_error, "%s", rerr.msg);
    }
    return stp_retry_waiting(p, err);
}

/* ------------------------------------------------------------------------------------------------
 * Opening and closing
 * --------------------------------------------------------------------------------------------- */

static int s_add_source(st_pool *p, const char *spec, ed_err *err)
{
    if (p->n_sources == ST_MAX_SOURCES)
        return ed_err_set(err, ED_EINVAL, "--teachers: more than %d entries", ST_MAX_SOURCES);
    int si = p->n_sources++;
    st_teacher_source *src = &p->sources[si];
    stp_fmt(src->spec, sizeof src->spec, "%s", spec);
    if (!stp_is_endpoint(spec)) {
        src->kind = ST_SRC_FILE;
        return stp_add_local(p, si, spec, err);
    }
    if (!p->zctx && !(p->zctx = zmq_ctx_new()))
        return ed_err_set(err, ED_ENOMEM, "cannot create a ZeroMQ context");
    /* Belt and braces next to ZMQ_LINGER 0 on every socket: zmq_ctx_term never waits for unsent
     * messages. */
    zmq_ctx_set(p->zctx, ZMQ_BLOCKY, 0);
    if (stp_split_dns(spec, src->host, sizeof src->host, src->port, sizeof src->port)) {
        src->kind = ST_SRC_DNS;
        return 0; /* resolved by stp_resolve */
    }
    src->kind = ST_SRC_STATIC;
    return stp_add_remote(p, si, spec, err);
}

#define ST_DNS_GRACE 3.0 /* seconds to wait for the other addresses of a name once one answered */

/* Writes "; <last handshake failure>" of a replica of the source spelled `spec` into note, or "".
 */
static void s_handshake_note(const st_pool *p, const char *spec, char *note, size_t size)
{
    note[0] = '\0';
    for (int i = 0; i < p->n_reps; i++) {
        const st_replica *r = &p->reps[i];
        if (r->state != ST_R_FREE && r->handshake[0] && !strcmp(p->sources[r->source].spec, spec)) {
            snprintf(note, size, "; %s", r->handshake);
            return;
        }
    }
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
            if (!r->sock && r->state == ST_R_CONNECTING) {
                char name[sizeof r->name], fp[sizeof r->fingerprint];
                memcpy(name, r->name, sizeof name);
                memcpy(fp, r->fingerprint, sizeof fp);
                ed_member_info info = {.member = name,
                                       .fingerprint = fp,
                                       .input_dim = (uint32_t)p->cfg.input_dim,
                                       .classes = (uint32_t)p->cfg.classes,
                                       .ready = true};
                int rc = stp_on_info(p, i, &info);
                if (rc)
                    return rc;
            }
        }
        const char *missing = NULL;
        for (int si = 0; si < p->n_sources && !missing; si++) {
            bool any_up = false, any_pending = false;
            for (int i = 0; i < p->n_reps; i++) {
                const st_replica *r = &p->reps[i];
                if (r->source != si || r->state == ST_R_FREE)
                    continue;
                any_up |= r->state == ST_R_UP;
                any_pending |= r->state == ST_R_CONNECTING || r->state == ST_R_DOWN;
                if (p->sources[si].kind != ST_SRC_DNS && r->state == ST_R_REFUSED && !p->cfg.probe)
                    return ed_err_set(err, ED_EPEER, "%s", r->why);
            }
            double now = ed_now();
            if (any_up && first_up[si] == 0)
                first_up[si] = now;
            bool ready = p->sources[si].kind == ST_SRC_DNS
                             ? any_up && (!any_pending || now - first_up[si] >= ST_DNS_GRACE)
                             : !any_pending;
            if (!ready)
                missing = p->sources[si].spec;
        }
        if (!missing)
            return 0;
        double now = ed_now();
        if (now >= deadline && p->cfg.probe)
            return 0; /* status: report who answered */
        if (now >= deadline) {
            char note[256];
            s_handshake_note(p, missing, note, sizeof note);
            return ed_err_set(err, ED_ETIMEDOUT,
                              "teacher %s did not report ready within %.0fs "
                              "(is teacher_worker serve running there?)%s%s",
                              missing, p->cfg.connect_timeout_s, note,
                              p->cfg.curve_secret && !note[0]
                                  ? "; CURVE is on: a teacher without CURVE, or with another key "
                                    "pair than the server key given, never answers"
                                  : "");
        }
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
    if (p->group > 1 && !(p->group_x = malloc(xbytes * (size_t)p->group)))
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
    p->group = cfg->group > 0 ? cfg->group : 1;
    if (p->group > ST_POOL_MAX_GROUP || p->group > cfg->depth) {
        ed_err_set(err, ED_EINVAL,
                   "--batches-per-request %d: must be 1..%d and at most --inflight (%d)", p->group,
                   ST_POOL_MAX_GROUP, cfg->depth);
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
    if (stp_resolve(p, err))
        goto fail; /* e.g. no CURVE server key for a name's entry: say so, not "no address" */
    for (int si = 0; si < p->n_sources; si++) {
        bool any = false;
        for (int i = 0; i < p->n_reps; i++)
            any |= p->reps[i].source == si && p->reps[i].state != ST_R_FREE;
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
    if (stp_local_start(p, err))
        goto fail;
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
    st_overlap_destroy(&p->overlap); /* first: its jobs use the replicas and the slots */
    stp_resolve_cancel(p);
    for (int i = 0; i < p->n_reps; i++)
        stp_free_replica(p, &p->reps[i]);
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
    free(p->group_x);
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

const char *st_pool_member_fingerprint(const st_pool *p, int k)
{
    return p->members[k].fingerprint;
}

int st_pool_replica_slots(const st_pool *p)
{
    return p->n_reps;
}

bool st_pool_replica_get(const st_pool *p, int i, st_pool_replica_info *out)
{
    static const char *const states[] = {"free", "connecting", "up", "down", "refused", "gone"};
    if (i < 0 || i >= p->n_reps || p->reps[i].state == ST_R_FREE)
        return false;
    const st_replica *r = &p->reps[i];
    *out = (st_pool_replica_info){.where = r->where,
                                  .member = r->member,
                                  .name = r->name,
                                  .fingerprint = r->fingerprint,
                                  .arch = r->arch,
                                  .state = states[r->state],
                                  .up = r->state == ST_R_UP,
                                  .rtt_s = r->rtt > 0 ? r->rtt : -1.0,
                                  .why = r->state == ST_R_REFUSED ? r->why : r->handshake};
    return true;
}

int st_pool_replicas_up(const st_pool *p, int k)
{
    int n = 0;
    for (int i = 0; i < p->n_reps; i++)
        n += p->reps[i].member == k && p->reps[i].state == ST_R_UP;
    return n;
}

int st_pool_replica_count(const st_pool *p, int k)
{
    int n = 0;
    for (int i = 0; i < p->n_reps; i++) {
        st_rstate s = p->reps[i].state;
        n += p->reps[i].member == k && (s == ST_R_UP || s == ST_R_DOWN || s == ST_R_CONNECTING);
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
    if (b->n < 1 || b->n > p->cfg.max_batch || b->dim != p->cfg.input_dim ||
        b->dtype != p->cfg.dtype)
        return ed_err_set(err, ED_ESHAPE, "batch of %d x %d %s does not fit the pool (%d x %d %s)",
                          b->n, b->dim, ed_dtype_name(b->dtype), p->cfg.max_batch, p->cfg.input_dim,
                          ed_dtype_name(p->cfg.dtype));
    st_slot *sl = &p->slots[slot];
    for (int k = 0; k < p->n_members; k++)
        if (!sl->logits[k] && !(sl->logits[k] = malloc(sizeof(float) * (size_t)p->cfg.max_batch *
                                                       (size_t)p->cfg.classes)))
            return ed_err_set(err, ED_ENOMEM, "out of memory");
    sl->busy = true;
    sl->n = b->n;
    sl->blocked_since = 0;
    sl->blocked_logged = false;
    memcpy(sl->x, b->x, (size_t)b->n * (size_t)b->dim * ed_dtype_size(b->dtype));
    memcpy(sl->y, b->y, sizeof(int32_t) * (size_t)b->n);
    for (int k = 0; k < ST_POOL_MAX_MEMBERS; k++)
        sl->req[k] = (st_req){.st = ST_Q_IDLE};
    bool held = false;
    for (int k = 0; k < p->n_members; k++) {
        if (p->group > 1 && stp_member_remote(p, k)) {
            sl->req[k].st = ST_Q_HELD;
            held = true;
            continue;
        }
        int rc = stp_dispatch(p, slot, k, err);
        if (rc)
            return rc;
    }
    if (held)
        p->held[p->n_held++] = slot;
    return p->n_held == p->group ? stp_flush(p, err) : 0;
}

/* Names of the members of slot still WAITING, for messages. */
static void s_waiting_names(const st_pool *p, const st_slot *sl, char *buf, size_t size)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int k = 0; k < p->n_members && off < size; k++) {
        if (sl->req[k].st != ST_Q_WAITING)
            continue;
        const char *last = "never up";
        for (int i = 0; i < p->n_reps; i++)
            if (p->reps[i].member == k && p->reps[i].state != ST_R_FREE)
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
    for (int i = 0; i < p->n_held; i++)
        if (p->held[i] == slot) { /* its group is not complete: send what there is */
            int rc = stp_flush(p, err);
            if (rc)
                return rc;
        }
    for (;;) {
        int part = 0, done = 0, pending = 0, waiting = 0, local = 0;
        for (int k = 0; k < p->n_members; k++) {
            st_qstate q = sl->req[k].st;
            part += q != ST_Q_IDLE;
            done += q == ST_Q_DONE;
            pending += q == ST_Q_PENDING;
            waiting += q == ST_Q_WAITING;
            local += q == ST_Q_LOCAL;
        }
        if (local > 0) { /* remote replies wait in their sockets meanwhile */
            int rc = stp_local_collect(p, slot, err);
            if (rc)
                return rc;
            continue;
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
                            "%d; waiting up to %.0fs",
                            names, done, part, p->quorum ? "--quorum" : "the run (no --quorum)",
                            needed, p->cfg.max_wait_s);
                sl->blocked_logged = true;
            }
            if (p->stop_flag && *p->stop_flag)
                return ed_err_set(err, ED_ESTOPPED, "interrupted while waiting for teachers");
            if (now - sl->blocked_since > p->cfg.max_wait_s) {
                s_waiting_names(p, sl, names, sizeof names);
                return ed_err_set(err, ED_ETIMEDOUT,
                                  "no live replica of %s for %.0fs: %d of %d members answered, "
                                  "%d needed (--quorum); giving up",
                                  names, p->cfg.max_wait_s, done, part, needed);
            }
        }
        int rc = s_service(p, 0.5, err);
        if (rc)
            return rc;
    }
    for (int k = 0; k < ST_POOL_MAX_MEMBERS; k++) {
        sl->out[k] = sl->req[k].st == ST_Q_DONE ? sl->logits[k] : NULL;
        sl->missed[k] = sl->req[k].st == ST_Q_WAITING;
        sl->req[k].st = ST_Q_IDLE;
    }
    p->wait_s += ed_now() - t0;
    sl->busy = false;
    *batch = (ed_batch){
        .n = sl->n, .dim = p->cfg.input_dim, .dtype = p->cfg.dtype, .x = sl->x, .y = sl->y};
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
    out->teacher_thread = p->overlap != NULL;
    for (int i = 0; i < p->n_reps; i++) {
        st_rstate s = p->reps[i].state;
        out->replicas_up += s == ST_R_UP;
        out->replicas_known += s == ST_R_UP || s == ST_R_DOWN || s == ST_R_CONNECTING;
    }
    p->replies = p->n_lat = 0;
    p->lat_sum = p->wait_s = 0.0;
    p->bytes_sent = p->bytes_received = 0;
    p->down_events = p->up_events = p->failovers = 0;
}
