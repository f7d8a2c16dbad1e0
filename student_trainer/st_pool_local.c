/*
 * st_pool_local: the in-process replicas of a pool (model files in --teachers): their forward
 * passes, either on the caller's thread inside st_pool_submit (overlap off), or queued on the
 * teacher thread (st_overlap) and collected by st_pool_wait, so that the members compute the next
 * batches while the caller trains on this one. The bookkeeping (latency, observer events, request
 * states) is the same either way and always happens on the caller's thread. Shared pool state:
 * st_pool_internal.h.
 */
#include <stdbool.h>

#include "ed_blas.h"
#include "ed_clock.h"
#include "ed_log.h"
#include "st_overlap.h"
#include "st_pool_internal.h"

/* Member k's forward pass of slot on replica r, now, on this thread. */
static int s_compute(st_pool *p, st_replica *r, st_slot *sl, int k, ed_err *err)
{
    double t0 = ed_now();
    int rc = ed_member_forward(r->local, sl->x, p->cfg.dtype, sl->n, sl->logits[k], err);
    if (rc)
        return ed_err_wrap(err, "teacher %s", r->where);
    sl->req[k].st = ST_Q_DONE;
    stp_record_latency(p, 1000.0 * (ed_now() - t0));
    stp_observe(p, ST_POOL_EV_REQUEST, k, r->where, 0);
    stp_observe(p, ST_POOL_EV_REPLY, k, r->where, ed_now() - t0);
    return 0;
}

int stp_local_dispatch(st_pool *p, int ri, int slot, int k, ed_err *err)
{
    st_slot *sl = &p->slots[slot];
    st_replica *r = &p->reps[ri];
    if (!p->overlap)
        return s_compute(p, r, sl, k, err);
    const st_overlap_job job = {.member = r->local,
                                .caller_member = r->local_share,
                                .x = sl->x,
                                .dtype = p->cfg.dtype,
                                .n = sl->n,
                                .out = sl->logits[k],
                                .slot = slot,
                                .k = k};
    if (st_overlap_push(p->overlap, &job, err))
        return err->code;
    sl->req[k] = (st_req){.st = ST_Q_LOCAL, .replica = ri, .sent_at = ed_now()};
    stp_observe(p, ST_POOL_EV_REQUEST, k, r->where, 0);
    return 0;
}

typedef struct {
    st_pool *p;
    int rc;
    ed_err *err;
} s_collect_ctx;

/* One pass done on the teacher thread: what s_compute does after its forward pass. */
static void s_done(void *arg, const st_overlap_job *job)
{
    s_collect_ctx *c = arg;
    st_pool *p = c->p;
    st_req *q = &p->slots[job->slot].req[job->k];
    const char *where = p->reps[q->replica].where;
    if (job->rc) {
        if (!c->rc) { /* the first failure is the one reported */
            *c->err = job->err;
            c->rc = ed_err_wrap(c->err, "teacher %s", where);
        }
        q->st = ST_Q_WAITING; /* not DONE: no logits were written */
        return;
    }
    q->st = ST_Q_DONE;
    stp_record_latency(p, 1000.0 * job->seconds);
    stp_observe(p, ST_POOL_EV_REPLY, job->k, where, job->seconds);
}

int stp_local_collect(st_pool *p, int slot, ed_err *err)
{
    s_collect_ctx c = {.p = p, .rc = 0, .err = err};
    st_overlap_collect(p->overlap, slot, s_done, &c);
    return c.rc;
}

int stp_local_start(st_pool *p, ed_err *err)
{
    bool any_local = false;
    for (int i = 0; i < p->n_reps; i++)
        any_local |= p->reps[i].local != NULL;
    const int threads = ed_blas_threads();
    if (!any_local || p->cfg.overlap == ST_POOL_OVERLAP_OFF ||
        (p->cfg.overlap == ST_POOL_OVERLAP_AUTO && threads != 2))
        return 0;
    for (int i = 0; i < p->n_reps; i++)
        if (p->reps[i].local &&
            !(p->reps[i].local_share = ed_member_share(p->reps[i].local, p->cfg.max_batch, err)))
            return err->code;
    if (!(p->overlap = st_overlap_new(err)))
        return err->code;
    ed_blas_set_threads(1);
    ed_log_info("in-process members compute on a teacher thread, and on the student's while it "
                "waits for them; 1 OpenBLAS thread each (was %d; --inprocess-overlap)",
                threads);
    return 0;
}
