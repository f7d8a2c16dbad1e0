/*
 * st_pool: ensemble members behind ZeroMQ endpoints or loaded in-process (see st_pool.h).
 *
 * All sockets live on the caller's thread: submit packs and sends, wait polls every DEALER socket
 * until the slot is complete or a deadline passes. Each pending request remembers the replica it was
 * sent to, so a reply is only accepted from the socket it was asked on (no crossed replies).
 */
#include "st_pool.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ed_log.h"
#include "ed_mlp.h"
#include "ed_model_file.h"
#include "ed_progress.h"
#include "ed_wire.h"

#define ST_MAX_TEACHERS 256
#define ST_LAT_SAMPLES 8192

typedef struct {
    char *where;              /* endpoint or model path */
    void *sock;               /* DEALER; NULL for an in-process replica */
    ed_mlp *model;            /* in-process only */
    ed_mlp_ws *ws;
    float *x;                 /* (max_batch, in) scaled input, in-process only */
    float input_scale, input_offset;
    int member;
    int inflight;
    char fingerprint[32];
    char name[128];
} st_replica;

typedef struct {
    char name[128];
    char fingerprint[32];
    int replicas[ST_MAX_TEACHERS];
    int n_replicas;
    unsigned rr;
    char desc[1024];
} st_member;

typedef struct {
    bool active;
    uint64_t id;
    int slot;
    int member;
    int replica;
    double sent_at;
} st_pending;

typedef struct {
    bool busy;
    int n;
    void *x;                  /* (max_batch, dim) of cfg.dtype */
    int32_t *y;               /* (max_batch) */
    float **logits;           /* [member] -> (max_batch, classes) */
    bool *done;               /* [member] */
    int remaining;
} st_slot;

struct st_pool {
    st_pool_config cfg;
    void *zctx;
    st_replica reps[ST_MAX_TEACHERS];
    int n_reps;
    st_member *members;
    int n_members;
    st_slot *slots;
    st_pending *pending;
    int n_pending;            /* capacity: depth * members */
    uint64_t next_id;
    zmq_pollitem_t items[ST_MAX_TEACHERS];
    int item_rep[ST_MAX_TEACHERS];
    int n_items;
    /* statistics since the last take */
    double lat[ST_LAT_SAMPLES];
    long n_lat;
    double lat_sum;
    long replies;
    double wait_s;
    uint64_t bytes_sent, bytes_received;
};

static bool s_is_endpoint(const char *s)
{
    return !strncmp(s, "tcp://", 6) || !strncmp(s, "ipc://", 6) || !strncmp(s, "inproc://", 9);
}

static int s_send_msg(st_pool *p, st_replica *r, const ed_msg *m, ed_err *err)
{
    size_t len = ed_wire_packed_size(m);
    zmq_msg_t zm;
    if (zmq_msg_init_size(&zm, len))
        return ed_err_set(err, ED_ENOMEM, "cannot allocate a %zu-byte message", len);
    ed_wire_pack(m, zmq_msg_data(&zm));
    if (zmq_msg_send(&zm, r->sock, 0) < 0) {
        int e = zmq_errno();
        zmq_msg_close(&zm);
        return ed_err_set(err, ED_EPEER, "teacher %s: send failed: %s", r->where, zmq_strerror(e));
    }
    p->bytes_sent += len;
    return 0;
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

/* ---- opening: connect, ask member info, group replicas ---- */

static int s_add_remote(st_pool *p, const char *ep, ed_err *err)
{
    st_replica *r = &p->reps[p->n_reps];
    r->where = strdup(ep);
    r->sock = zmq_socket(p->zctx, ZMQ_DEALER);
    if (!r->where || !r->sock)
        return ed_err_set(err, ED_ENOMEM, "teacher %s: cannot create a socket", ep);
    p->n_reps++;
    int linger = 0, hwm = 0;
    zmq_setsockopt(r->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(r->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(r->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (zmq_connect(r->sock, ep))
        return ed_err_set(err, ED_EINVAL, "teacher %s: cannot connect: %s", ep,
                          zmq_strerror(zmq_errno()));
    p->items[p->n_items] = (zmq_pollitem_t){.socket = r->sock, .events = ZMQ_POLLIN};
    p->item_rep[p->n_items++] = p->n_reps - 1;
    return 0;
}

static int s_add_local(st_pool *p, const char *path, ed_err *err)
{
    st_replica *r = &p->reps[p->n_reps];
    ed_model_meta meta;
    r->where = strdup(path);
    if (!r->where)
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    p->n_reps++;
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
    snprintf(r->name, sizeof r->name, "%s", meta.member);
    return 0;
}

static int s_check_info(st_pool *p, st_replica *r, const ed_member_info *info, ed_err *err)
{
    if (!info->ready)
        return ED_EBUSY;
    if ((int)info->input_dim != p->cfg.input_dim)
        return ed_err_set(err, ED_ESHAPE, "teacher %s (%s) takes %u inputs, the data have %d",
                          r->where, info->member, info->input_dim, p->cfg.input_dim);
    if ((int)info->classes != p->cfg.classes)
        return ed_err_set(err, ED_ESHAPE, "teacher %s (%s) outputs %u classes, the student %d",
                          r->where, info->member, info->classes, p->cfg.classes);
    if (info->max_batch && (int)info->max_batch < p->cfg.max_batch)
        return ed_err_set(err, ED_ETOOBIG, "teacher %s accepts batches of %u, the trainer sends %d "
                          "(start it with --max-batch %d)", r->where, info->max_batch,
                          p->cfg.max_batch, p->cfg.max_batch);
    snprintf(r->fingerprint, sizeof r->fingerprint, "%s", info->fingerprint);
    snprintf(r->name, sizeof r->name, "%s", info->member);
    return 0;
}

static int s_gather_info(st_pool *p, ed_err *err)
{
    bool *known = calloc((size_t)p->n_reps, sizeof *known);
    if (!known)
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    int rc = 0, missing = 0;
    double deadline = ed_now() + p->cfg.connect_timeout_s, next_ask = 0.0;
    for (int i = 0; i < p->n_reps; i++)
        if (p->reps[i].sock)
            missing++;
    while (missing > 0) {
        double now = ed_now();
        if (now >= deadline) {
            for (int i = 0; i < p->n_reps; i++)
                if (p->reps[i].sock && !known[i]) {
                    rc = ed_err_set(err, ED_ETIMEDOUT, "teacher %s did not report ready within %.0fs "
                                    "(is teacher_worker serve running there?)", p->reps[i].where,
                                    p->cfg.connect_timeout_s);
                    break;
                }
            break;
        }
        if (now >= next_ask) { /* ask again each second: a worker may still be loading its model */
            for (int i = 0; i < p->n_reps; i++) {
                if (!p->reps[i].sock || known[i])
                    continue;
                ed_msg m = {.kind = ED_MSG_INFO_REQUEST, .u.info_request_id = ++p->next_id};
                if ((rc = s_send_msg(p, &p->reps[i], &m, err)))
                    goto done;
            }
            next_ask = now + 1.0;
        }
        double wait = fmin(next_ask, deadline) - now;
        if (zmq_poll(p->items, p->n_items, (long)(wait * 1000) + 1) < 0)
            continue;
        for (int it = 0; it < p->n_items; it++) {
            if (!(p->items[it].revents & ZMQ_POLLIN))
                continue;
            int ri = p->item_rep[it];
            zmq_msg_t zm;
            zmq_msg_init(&zm);
            while (zmq_msg_recv(&zm, p->items[it].socket, ZMQ_DONTWAIT) >= 0) {
                ed_msg m = {0};
                ed_err derr = {0};
                p->bytes_received += zmq_msg_size(&zm);
                if (ed_wire_decode(zmq_msg_data(&zm), zmq_msg_size(&zm), &m, &derr)) {
                    ed_log_warn("teacher %s: undecodable reply: %s", p->reps[ri].where, derr.msg);
                } else if (m.kind == ED_MSG_MEMBER_INFO && !known[ri]) {
                    int c = s_check_info(p, &p->reps[ri], &m.u.info, err);
                    if (c == 0) {
                        known[ri] = true;
                        missing--;
                    } else if (c != ED_EBUSY) {
                        ed_wire_msg_clear(&m);
                        zmq_msg_close(&zm);
                        rc = c;
                        goto done;
                    }
                } else if (m.kind == ED_MSG_ERROR) {
                    ed_log_warn("teacher %s: error %d: %s", p->reps[ri].where, m.u.error.code,
                                m.u.error.message);
                }
                ed_wire_msg_clear(&m);
            }
            zmq_msg_close(&zm);
        }
    }
done:
    free(known);
    return rc;
}

static int s_group_members(st_pool *p, ed_err *err)
{
    p->members = calloc((size_t)p->n_reps, sizeof *p->members);
    if (!p->members)
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    for (int i = 0; i < p->n_reps; i++) {
        st_replica *r = &p->reps[i];
        int k = 0;
        while (k < p->n_members && strcmp(p->members[k].fingerprint, r->fingerprint))
            k++;
        st_member *m = &p->members[k];
        if (k == p->n_members) {
            p->n_members++;
            snprintf(m->name, sizeof m->name, "%s", r->name);
            snprintf(m->fingerprint, sizeof m->fingerprint, "%s", r->fingerprint);
        } else if (strcmp(m->name, r->name)) {
            ed_log_warn("teacher %s calls itself '%s' but has the weights of member '%s' (%s): "
                        "treating it as a replica of '%s'", r->where, r->name, m->name,
                        m->fingerprint, m->name);
        }
        m->replicas[m->n_replicas++] = i;
        r->member = k;
    }
    for (int k = 0; k < p->n_members; k++) {
        st_member *m = &p->members[k];
        int off = snprintf(m->desc, sizeof m->desc, "%s (%s) at", m->name, m->fingerprint);
        for (int j = 0; j < m->n_replicas && off > 0 && (size_t)off < sizeof m->desc; j++)
            off += snprintf(m->desc + off, sizeof m->desc - (size_t)off, "%s %s", j ? "," : "",
                            p->reps[m->replicas[j]].where);
    }
    return 0;
}

static int s_alloc_slots(st_pool *p, ed_err *err)
{
    const st_pool_config *c = &p->cfg;
    size_t xbytes = (size_t)c->max_batch * (size_t)c->input_dim * ed_dtype_size(c->dtype);
    p->slots = calloc((size_t)c->depth, sizeof *p->slots);
    p->n_pending = c->depth * p->n_members;
    p->pending = calloc((size_t)p->n_pending, sizeof *p->pending);
    if (!p->slots || !p->pending)
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    for (int s = 0; s < c->depth; s++) {
        st_slot *sl = &p->slots[s];
        sl->x = malloc(xbytes);
        sl->y = malloc(sizeof(int32_t) * (size_t)c->max_batch);
        sl->logits = calloc((size_t)p->n_members, sizeof *sl->logits);
        sl->done = calloc((size_t)p->n_members, sizeof *sl->done);
        if (!sl->x || !sl->y || !sl->logits || !sl->done)
            return ed_err_set(err, ED_ENOMEM, "out of memory");
        for (int k = 0; k < p->n_members; k++) {
            sl->logits[k] = malloc(sizeof(float) * (size_t)c->max_batch * (size_t)c->classes);
            if (!sl->logits[k])
                return ed_err_set(err, ED_ENOMEM, "out of memory");
        }
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
    if (cfg->depth < 1 || cfg->max_batch < 1) {
        ed_err_set(err, ED_EINVAL, "pool depth and batch must be >= 1");
        goto fail;
    }
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (p->n_reps == ST_MAX_TEACHERS) {
            ed_err_set(err, ED_EINVAL, "--teachers: more than %d teachers", ST_MAX_TEACHERS);
            goto fail;
        }
        if (s_is_endpoint(t)) {
            if (!p->zctx && !(p->zctx = zmq_ctx_new())) {
                ed_err_set(err, ED_ENOMEM, "cannot create a ZeroMQ context");
                goto fail;
            }
            if (s_add_remote(p, t, err))
                goto fail;
        } else if (s_add_local(p, t, err)) {
            goto fail;
        }
    }
    if (p->n_reps == 0) {
        ed_err_set(err, ED_EINVAL, "--teachers: no teacher given");
        goto fail;
    }
    if (s_gather_info(p, err) || s_group_members(p, err) || s_alloc_slots(p, err))
        goto fail;
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
    for (int i = 0; i < p->n_reps; i++) {
        st_replica *r = &p->reps[i];
        if (r->sock)
            zmq_close(r->sock);
        ed_mlp_destroy(&r->model);
        ed_mlp_ws_destroy(&r->ws);
        free(r->x);
        free(r->where);
    }
    if (p->zctx)
        zmq_ctx_term(p->zctx);
    if (p->slots) {
        for (int s = 0; s < p->cfg.depth; s++) {
            st_slot *sl = &p->slots[s];
            if (sl->logits)
                for (int k = 0; k < p->n_members; k++)
                    free(sl->logits[k]);
            free(sl->logits);
            free(sl->done);
            free(sl->x);
            free(sl->y);
        }
    }
    free(p->slots);
    free(p->pending);
    free(p->members);
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
    return p->members[k].n_replicas;
}

const char *st_pool_member_describe(const st_pool *p, int k)
{
    return p->members[k].desc;
}

/* ---- the pipeline ---- */

static int s_pick_replica(st_pool *p, st_member *m)
{
    int best = -1;
    for (int j = 0; j < m->n_replicas; j++) {
        int ri = m->replicas[(m->rr + (unsigned)j) % (unsigned)m->n_replicas];
        if (best < 0 || p->reps[ri].inflight < p->reps[best].inflight)
            best = ri;
    }
    m->rr++;
    return best;
}

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
    sl->done[k] = true;
    sl->remaining--;
    s_record_latency(p, 1000.0 * (ed_now() - t0));
    return 0;
}

int st_pool_submit(st_pool *p, int slot, const ed_batch *b, ed_err *err)
{
    if (slot < 0 || slot >= p->cfg.depth || p->slots[slot].busy)
        return ed_err_set(err, ED_EINVAL, "pool slot %d is not free", slot);
    if (b->n < 1 || b->n > p->cfg.max_batch || b->dim != p->cfg.input_dim || b->dtype != p->cfg.dtype)
        return ed_err_set(err, ED_ESHAPE, "batch of %d x %d %s does not fit the pool (%d x %d %s)",
                          b->n, b->dim, ed_dtype_name(b->dtype), p->cfg.max_batch,
                          p->cfg.input_dim, ed_dtype_name(p->cfg.dtype));
    st_slot *sl = &p->slots[slot];
    sl->busy = true;
    sl->n = b->n;
    memcpy(sl->x, b->x, (size_t)b->n * (size_t)b->dim * ed_dtype_size(b->dtype));
    memcpy(sl->y, b->y, sizeof(int32_t) * (size_t)b->n);
    sl->remaining = p->n_members;
    for (int k = 0; k < p->n_members; k++) {
        sl->done[k] = false;
        int ri = s_pick_replica(p, &p->members[k]);
        st_replica *r = &p->reps[ri];
        if (!r->sock) {
            if (s_compute_local(p, r, sl, k, err))
                return err ? err->code : ED_EINVAL;
            continue;
        }
        int pi = 0;
        while (pi < p->n_pending && p->pending[pi].active)
            pi++;
        if (pi == p->n_pending)
            return ed_err_set(err, ED_EINVAL, "internal: no free pending record");
        st_pending *pe = &p->pending[pi];
        *pe = (st_pending){.active = true, .id = ++p->next_id, .slot = slot, .member = k,
                           .replica = ri, .sent_at = ed_now()};
        ed_msg m = {.kind = ED_MSG_LOGIT_REQUEST,
                    .u.request = {.request_id = pe->id, .dtype = b->dtype, .batch = (uint32_t)b->n,
                                  .dim = (uint32_t)b->dim, .data = sl->x}};
        if (s_send_msg(p, r, &m, err))
            return err ? err->code : ED_EPEER;
        r->inflight++;
    }
    return 0;
}

static int s_handle_reply(st_pool *p, int ri, const ed_msg *m, ed_err *err)
{
    st_replica *r = &p->reps[ri];
    uint64_t id = m->kind == ED_MSG_LOGIT_REPLY ? m->u.reply.request_id
                  : m->kind == ED_MSG_ERROR     ? m->u.error.request_id
                                                : 0;
    st_pending *pe = NULL;
    for (int i = 0; i < p->n_pending; i++)
        if (p->pending[i].active && p->pending[i].id == id && p->pending[i].replica == ri) {
            pe = &p->pending[i];
            break;
        }
    if (!pe) {
        if (m->kind == ED_MSG_ERROR)
            ed_log_warn("teacher %s: error %d: %s", r->where, m->u.error.code, m->u.error.message);
        return 0; /* member info, or a stale / unknown reply: ignored */
    }
    if (m->kind == ED_MSG_ERROR)
        return ed_err_set(err, ED_EPEER, "teacher %s (%s) refused a batch: %s: %s", r->where, r->name,
                          ed_err_name(m->u.error.code), m->u.error.message);
    st_slot *sl = &p->slots[pe->slot];
    const ed_logit_reply *rep = &m->u.reply;
    if ((int)rep->batch != sl->n || (int)rep->classes != p->cfg.classes)
        return ed_err_set(err, ED_ESHAPE, "teacher %s answered %u x %u logits for a batch of %d x %d",
                          r->where, rep->batch, rep->classes, sl->n, p->cfg.classes);
    memcpy(sl->logits[pe->member], rep->logits, sizeof(float) * (size_t)sl->n * (size_t)p->cfg.classes);
    sl->done[pe->member] = true;
    sl->remaining--;
    r->inflight--;
    s_record_latency(p, 1000.0 * (ed_now() - pe->sent_at));
    pe->active = false;
    return 0;
}

static int s_poll_once(st_pool *p, long timeout_ms, ed_err *err)
{
    int n = zmq_poll(p->items, p->n_items, timeout_ms);
    if (n < 0)
        return zmq_errno() == EINTR ? 0 : ed_err_set(err, ED_EIO, "zmq_poll: %s", zmq_strerror(zmq_errno()));
    int rc = 0;
    for (int it = 0; it < p->n_items && !rc; it++) {
        if (!(p->items[it].revents & ZMQ_POLLIN))
            continue;
        zmq_msg_t zm;
        zmq_msg_init(&zm);
        while (!rc && zmq_msg_recv(&zm, p->items[it].socket, ZMQ_DONTWAIT) >= 0) {
            ed_msg m = {0};
            ed_err derr = {0};
            p->bytes_received += zmq_msg_size(&zm);
            if (ed_wire_decode(zmq_msg_data(&zm), zmq_msg_size(&zm), &m, &derr))
                rc = ed_err_set(err, derr.code, "teacher %s sent an invalid reply: %s",
                                p->reps[p->item_rep[it]].where, derr.msg);
            else
                rc = s_handle_reply(p, p->item_rep[it], &m, err);
            ed_wire_msg_clear(&m);
        }
        zmq_msg_close(&zm);
    }
    return rc;
}

int st_pool_wait(st_pool *p, int slot, ed_batch *batch, const float *const **logits, ed_err *err)
{
    if (slot < 0 || slot >= p->cfg.depth || !p->slots[slot].busy)
        return ed_err_set(err, ED_EINVAL, "pool slot %d has nothing in flight", slot);
    st_slot *sl = &p->slots[slot];
    double t0 = ed_now();
    while (sl->remaining > 0) {
        double now = ed_now(), oldest = now;
        for (int i = 0; i < p->n_pending; i++)
            if (p->pending[i].active && p->pending[i].slot == slot && p->pending[i].sent_at < oldest)
                oldest = p->pending[i].sent_at;
        double left = oldest + p->cfg.timeout_s - now;
        if (left <= 0) {
            for (int i = 0; i < p->n_pending; i++)
                if (p->pending[i].active && p->pending[i].slot == slot)
                    return ed_err_set(err, ED_ETIMEDOUT, "teacher %s (%s) did not answer within %.1fs",
                                      p->reps[p->pending[i].replica].where,
                                      p->members[p->pending[i].member].name, p->cfg.timeout_s);
        }
        int rc = s_poll_once(p, (long)(left * 1000.0) + 1, err);
        if (rc)
            return rc;
    }
    p->wait_s += ed_now() - t0;
    sl->busy = false;
    *batch = (ed_batch){.n = sl->n, .dim = p->cfg.input_dim, .dtype = p->cfg.dtype, .x = sl->x, .y = sl->y};
    *logits = (const float *const *)sl->logits;
    return 0;
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
    p->replies = p->n_lat = 0;
    p->lat_sum = p->wait_s = 0.0;
    p->bytes_sent = p->bytes_received = 0;
}
