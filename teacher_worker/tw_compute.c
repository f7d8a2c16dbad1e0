/*
 * tw_compute: compute threads of `teacher_worker serve` (see tw_compute.h).
 *
 * One mutex guards the pending FIFO, the done list and the quit flag; a condition variable wakes
 * idle threads. A thread pops a job, releases the lock, runs its member share and packs the reply
 * with only its own buffers, then appends the job to the done list and calls notify
 * (uv_async_send), which coalesces wake-ups: the loop thread always takes the whole done list.
 */
#include "tw_compute.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ed_clock.h"
#include "ed_log.h"

typedef struct {
    tw_compute *pool;
    int index;
    pthread_t thread;
    bool started;
    ed_member *member; /* a share of cfg.member: same weights, this thread's workspace */
    float *logits;     /* (max_batch, classes) */
} s_worker;

struct tw_compute {
    tw_compute_config cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool quit;
    tw_job *pending_head, *pending_tail;
    tw_job *done_head, *done_tail;
    s_worker *workers;
};

/* Scaling, forward pass and reply packing for one job; fills job->rc / err / reply. */
static void s_run(s_worker *w, tw_job *job)
{
    const ed_logit_request *r = &job->req.u.request;
    uint64_t t0 = ed_now_us();
    job->rc = ed_member_forward(w->member, r->data, r->dtype, (int)r->batch, w->logits, &job->err);
    job->compute_us = ed_now_us() - t0;
    if (job->rc < 0)
        return;

    ed_msg reply = {.kind = ED_MSG_LOGIT_REPLY};
    reply.u.reply = (ed_logit_reply){.request_id = job->request_id,
                                     .batch = r->batch,
                                     .classes = (uint32_t)ed_member_classes(w->member),
                                     .logits = w->logits,
                                     .member = ed_member_name(w->member),
                                     .fingerprint = ed_member_fingerprint(w->member),
                                     .compute_us = job->compute_us};
    size_t n = ed_wire_packed_size(&reply);
    if (zmq_msg_init_size(&job->reply, n) != 0) {
        job->rc = ed_err_set(&job->err, ED_ENOMEM, "cannot allocate a %zu-byte reply: %s", n,
                             zmq_strerror(zmq_errno()));
        return;
    }
    ed_wire_pack(&reply, zmq_msg_data(&job->reply));
}

static void *s_thread_main(void *arg)
{
    s_worker *w = arg;
    tw_compute *c = w->pool;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        while (!c->pending_head && !c->quit)
            pthread_cond_wait(&c->cv, &c->mu);
        tw_job *job = c->pending_head;
        if (!job) { /* quit and nothing left */
            pthread_mutex_unlock(&c->mu);
            return NULL;
        }
        c->pending_head = job->next;
        if (!c->pending_head)
            c->pending_tail = NULL;
        pthread_mutex_unlock(&c->mu);

        job->next = NULL;
        job->rc = 0;
        ed_err_clear(&job->err);
        s_run(w, job);
        ed_wire_msg_clear(&job->req); /* the input is no longer needed */

        pthread_mutex_lock(&c->mu);
        if (c->done_tail)
            c->done_tail->next = job;
        else
            c->done_head = job;
        c->done_tail = job;
        /* Notify under the lock: once the loop thread can take this job (and perhaps close the
         * async handle because nothing is left in flight), this thread is done with the handle. */
        if (c->cfg.notify)
            c->cfg.notify(c->cfg.notify_arg);
        pthread_mutex_unlock(&c->mu);
    }
}

tw_compute *tw_compute_new(const tw_compute_config *cfg, ed_err *err)
{
    if (!cfg || !cfg->member || cfg->threads < 1 || cfg->max_batch < 1) {
        ed_err_set(err, ED_EINVAL, "compute pool: needs a member, threads >= 1 and max_batch >= 1");
        return NULL;
    }
    tw_compute *c = calloc(1, sizeof *c);
    if (!c) {
        ed_err_set(err, ED_ENOMEM, "compute pool: out of memory");
        return NULL;
    }
    c->cfg = *cfg;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->workers = calloc((size_t)cfg->threads, sizeof *c->workers);
    if (!c->workers) {
        ed_err_set(err, ED_ENOMEM, "compute pool: out of memory");
        goto fail;
    }
    const int C = ed_member_classes(cfg->member);
    for (int i = 0; i < cfg->threads; i++) {
        s_worker *w = &c->workers[i];
        w->pool = c;
        w->index = i;
        w->member = ed_member_share(cfg->member, cfg->max_batch, err);
        w->logits = malloc(sizeof(float) * (size_t)cfg->max_batch * (size_t)C);
        if (!w->member || !w->logits) {
            ed_err_set(err, ED_ENOMEM,
                       "cannot allocate the workspace of compute thread %d for max batch %d "
                       "(input dim %d): lower --max-batch or --threads",
                       i, cfg->max_batch, ed_member_input_dim(cfg->member));
            goto fail;
        }
    }
    for (int i = 0; i < cfg->threads; i++) {
        int rc = pthread_create(&c->workers[i].thread, NULL, s_thread_main, &c->workers[i]);
        if (rc != 0) {
            ed_err_set(err, ED_EIO, "cannot start compute thread %d: %s", i, strerror(rc));
            goto fail;
        }
        c->workers[i].started = true;
    }
    return c;

fail:
    tw_compute_destroy(&c);
    return NULL;
}

void tw_compute_submit(tw_compute *c, tw_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->pending_tail)
        c->pending_tail->next = job;
    else
        c->pending_head = job;
    c->pending_tail = job;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

tw_job *tw_compute_take_done(tw_compute *c)
{
    pthread_mutex_lock(&c->mu);
    tw_job *list = c->done_head;
    c->done_head = c->done_tail = NULL;
    pthread_mutex_unlock(&c->mu);
    return list;
}

void tw_compute_destroy(tw_compute **pc)
{
    if (!pc || !*pc)
        return;
    tw_compute *c = *pc;
    if (c->workers) {
        pthread_mutex_lock(&c->mu);
        c->quit = true;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        for (int i = 0; i < c->cfg.threads; i++) {
            s_worker *w = &c->workers[i];
            if (w->started)
                pthread_join(w->thread, NULL);
            ed_member_destroy(&w->member);
            free(w->logits);
        }
        free(c->workers);
    }
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
    *pc = NULL;
}
