/*
 * st_overlap: the teacher thread (see st_overlap.h).
 *
 * The jobs pushed and not yet collected form one list in push order. `next` points at the first job
 * not started; every job before it is running or done. The teacher thread takes `next`, computes
 * it without the lock, marks it done and broadcasts. collect does the same (on the jobs' caller
 * members) while its slot has jobs not done and jobs are waiting, else it sleeps until one is done;
 * then it unlinks that slot's jobs (all before `next`) and reports them.
 */
#include "st_overlap.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ed_clock.h"

typedef struct s_node {
    st_overlap_job job;
    bool done;
    struct s_node *link;
} s_node;

struct st_overlap {
    pthread_t thread;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t work, done;
    s_node *head, *tail; /* pushed, not collected, in push order */
    s_node *next;        /* first job not started (NULL: none) */
    bool stop;
};

/* Runs the first job not started on member m (the caller's share when the caller runs it).
 * Called with the lock held and o->next set; returns with the lock held. */
static void s_run_next(st_overlap *o, bool caller)
{
    s_node *n = o->next;
    o->next = n->link;
    pthread_mutex_unlock(&o->mu);
    st_overlap_job *j = &n->job;
    const double t0 = ed_now();
    j->rc = ed_member_forward(caller ? j->caller_member : j->member, j->x, j->dtype, j->n, j->out,
                              &j->err);
    j->seconds = ed_now() - t0;
    pthread_mutex_lock(&o->mu);
    n->done = true;
    pthread_cond_broadcast(&o->done);
}

static void *s_main(void *arg)
{
    st_overlap *o = arg;
    pthread_mutex_lock(&o->mu);
    for (;;) {
        while (!o->stop && !o->next)
            pthread_cond_wait(&o->work, &o->mu);
        if (o->stop)
            break;
        s_run_next(o, false);
    }
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

st_overlap *st_overlap_new(ed_err *err)
{
    st_overlap *o = calloc(1, sizeof *o);
    if (!o) {
        ed_err_set(err, ED_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->work, NULL);
    pthread_cond_init(&o->done, NULL);
    int rc = pthread_create(&o->thread, NULL, s_main, o);
    if (rc) {
        ed_err_set(err, ED_EIO, "cannot start the teacher thread: %s", strerror(rc));
        pthread_cond_destroy(&o->done);
        pthread_cond_destroy(&o->work);
        pthread_mutex_destroy(&o->mu);
        free(o);
        return NULL;
    }
    return o;
}

void st_overlap_destroy(st_overlap **po)
{
    if (!po || !*po)
        return;
    st_overlap *o = *po;
    pthread_mutex_lock(&o->mu);
    o->stop = true;
    pthread_cond_broadcast(&o->work);
    pthread_mutex_unlock(&o->mu);
    pthread_join(o->thread, NULL);
    for (s_node *n = o->head, *link; n; n = link) {
        link = n->link;
        free(n);
    }
    pthread_cond_destroy(&o->done);
    pthread_cond_destroy(&o->work);
    pthread_mutex_destroy(&o->mu);
    free(o);
    *po = NULL;
}

int st_overlap_push(st_overlap *o, const st_overlap_job *job, ed_err *err)
{
    s_node *n = calloc(1, sizeof *n);
    if (!n)
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    n->job = *job;
    n->job.rc = 0;
    n->job.seconds = 0;
    pthread_mutex_lock(&o->mu);
    if (o->tail)
        o->tail->link = n;
    else
        o->head = n;
    o->tail = n;
    if (!o->next)
        o->next = n;
    pthread_cond_signal(&o->work);
    pthread_mutex_unlock(&o->mu);
    return 0;
}

/* True when a job of slot is not done yet (called with the lock held). */
static bool s_slot_busy(const st_overlap *o, int slot)
{
    for (const s_node *n = o->head; n; n = n->link)
        if (n->job.slot == slot && !n->done)
            return true;
    return false;
}

void st_overlap_collect(st_overlap *o, int slot, void (*done)(void *arg, const st_overlap_job *job),
                        void *arg)
{
    s_node *mine = NULL, **mine_tail = &mine;
    pthread_mutex_lock(&o->mu);
    while (s_slot_busy(o, slot)) {
        if (o->next && o->next->job.caller_member)
            s_run_next(o, true); /* help: the next job in line, whichever slot it is for */
        else
            pthread_cond_wait(&o->done, &o->mu);
    }
    /* Unlink the slot's jobs: all done, so all before `next`, which stays valid. */
    s_node *prev = NULL;
    for (s_node *n = o->head, *link; n; n = link) {
        link = n->link;
        if (n->job.slot != slot) {
            prev = n;
            continue;
        }
        if (prev)
            prev->link = link;
        else
            o->head = link;
        if (o->tail == n)
            o->tail = prev;
        n->link = NULL;
        *mine_tail = n;
        mine_tail = &n->link;
    }
    pthread_mutex_unlock(&o->mu);
    for (s_node *n = mine, *link; n; n = link) {
        link = n->link;
        done(arg, &n->job);
        free(n);
    }
}
