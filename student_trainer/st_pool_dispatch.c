/*
 * st_pool_dispatch: sending members' requests (st_pool_internal.h): the choice of a replica, the
 * requests of several batches (st_pool_config.group: held slots, their rows one after the other),
 * and the re-dispatch of WAITING requests after a failover, a request's slots together.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ed_clock.h"
#include "st_pool_internal.h"

/* Member k's least-loaded live replica, or -1. */
static int s_pick_replica(const st_pool *p, int k)
{
    int best = -1;
    for (int i = 0; i < p->n_reps; i++) {
        const st_replica *r = &p->reps[i];
        if (r->member == k && r->state == ST_R_UP &&
            (best < 0 || r->inflight < p->reps[best].inflight))
            best = i;
    }
    return best;
}

/* Sends member k's request of the n slots (in this order; their rows concatenated in x) to its
 * least-loaded live replica, as few requests as the replica's max batch allows; leaves them
 * WAITING if there is none. Only in-process forward errors are returned. */
static int s_dispatch_group(st_pool *p, const int *slots, int n, const unsigned char *x, int k,
                            ed_err *err)
{
    const size_t row = (size_t)p->cfg.input_dim * ed_dtype_size(p->cfg.dtype);
    while (n > 0) {
        const int best = s_pick_replica(p, k);
        if (best < 0) { /* they wait together, under one id (stp_retry_waiting) */
            const uint64_t tag = stp_request_id(++p->seq, slots[0], n, k);
            for (int i = 0, at = 0; i < n; i++) {
                st_req *q = &p->slots[slots[i]].req[k];
                q->st = ST_Q_WAITING;
                q->id = tag;
                q->at = at;
                at += p->slots[slots[i]].n;
            }
            return 0;
        }
        st_replica *r = &p->reps[best];
        if (!r->sock) { /* in-process: one forward pass per batch */
            for (int i = 0; i < n; i++) {
                int rc = stp_local_dispatch(p, best, slots[i], k, err);
                if (rc)
                    return rc;
            }
            return 0;
        }
        int m = 0, rows = 0; /* the first m slots fit one request to r */
        while (m < n && (m == 0 || !r->max_batch || rows + p->slots[slots[m]].n <= r->max_batch))
            rows += p->slots[slots[m++]].n;
        const uint64_t id = stp_request_id(++p->seq, slots[0], m, k);
        ed_msg msg = {.kind = ED_MSG_LOGIT_REQUEST,
                      .u.request = {.request_id = id,
                                    .dtype = p->cfg.dtype,
                                    .batch = (uint32_t)rows,
                                    .dim = (uint32_t)p->cfg.input_dim,
                                    .data = x}};
        if (stp_send_msg(p, r, &msg) != 0) {
            stp_mark_down(p, best, "not connected");
            continue;
        }
        const double now = ed_now();
        for (int i = 0, at = 0; i < m; i++) {
            st_req *q = &p->slots[slots[i]].req[k];
            if (q->failover)
                stp_observe(p, ST_POOL_EV_FAILOVER, k, r->where, 0);
            p->failovers += q->failover;
            *q = (st_req){.st = ST_Q_PENDING, .id = id, .at = at, .replica = best, .sent_at = now};
            at += p->slots[slots[i]].n;
        }
        r->inflight += m;
        stp_observe(p, ST_POOL_EV_REQUEST, k, r->where, 0);
        slots += m;
        n -= m;
        x += (size_t)rows * row;
    }
    return 0;
}

int stp_dispatch(st_pool *p, int slot, int k, ed_err *err)
{
    return s_dispatch_group(p, &slot, 1, p->slots[slot].x, k, err);
}

/* Copies the n slots' rows one after the other into group_x. */
static void s_concat(st_pool *p, const int *slots, int n)
{
    const size_t row = (size_t)p->cfg.input_dim * ed_dtype_size(p->cfg.dtype);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const st_slot *sl = &p->slots[slots[i]];
        memcpy(p->group_x + off, sl->x, (size_t)sl->n * row);
        off += (size_t)sl->n * row;
    }
}

int stp_flush(st_pool *p, ed_err *err)
{
    int built[ST_POOL_MAX_GROUP], n_built = 0; /* the slots whose rows group_x holds */
    for (int k = 0; k < p->n_members; k++) {
        int slots[ST_POOL_MAX_GROUP], n = 0;
        for (int i = 0; i < p->n_held; i++)
            if (p->slots[p->held[i]].req[k].st == ST_Q_HELD)
                slots[n++] = p->held[i];
        if (n > 1 && (n != n_built || memcmp(slots, built, sizeof(int) * (size_t)n))) {
            s_concat(p, slots, n); /* once for the members that hold the same slots */
            memcpy(built, slots, sizeof(int) * (size_t)n);
            n_built = n;
        }
        int rc = n == 0   ? 0
                 : n == 1 ? stp_dispatch(p, slots[0], k, err)
                          : s_dispatch_group(p, slots, n, p->group_x, k, err);
        if (rc)
            return rc;
    }
    p->n_held = 0;
    return 0;
}

bool stp_member_remote(const st_pool *p, int k)
{
    for (int i = 0; i < p->n_reps; i++)
        if (p->reps[i].member == k && p->reps[i].state == ST_R_UP && p->reps[i].sock)
            return true;
    return false;
}

int stp_retry_waiting(st_pool *p, ed_err *err)
{
    for (int k = 0; k < p->n_members; k++) {
        for (int s = 0; s < p->cfg.depth && stp_live_replicas(p, k) > 0; s++) {
            const st_req *q = &p->slots[s].req[k];
            if (!p->slots[s].busy || q->st != ST_Q_WAITING)
                continue;
            int slots[ST_POOL_MAX_GROUP], n = 0;
            for (int at = 0, found = 1; found && n < ST_POOL_MAX_GROUP;) { /* by their rows */
                found = 0;
                for (int t = 0; t < p->cfg.depth && !found; t++) {
                    const st_req *o = &p->slots[t].req[k];
                    if (p->slots[t].busy && o->st == ST_Q_WAITING && o->id == q->id &&
                        o->at == at) {
                        slots[n++] = t;
                        at += p->slots[t].n;
                        found = 1;
                    }
                }
            }
            if (n > 1)
                s_concat(p, slots, n);
            int rc = n > 1 ? s_dispatch_group(p, slots, n, p->group_x, k, err)
                           : stp_dispatch(p, s, k, err);
            if (rc)
                return rc;
        }
    }
    return 0;
}
