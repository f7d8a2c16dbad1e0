/*
 * ed_par: fork-join over helper threads (see ed_par.h).
 *
 * One job at a time (a trylock'd mutex; a second caller runs serially). The caller publishes the
 * job under the state lock, bumps a generation counter and broadcasts; each helper runs its chunk,
 * and the last one to finish signals the caller, which meanwhile ran chunk 0 itself. Helpers are
 * started on demand (only as many as the largest split asked for) and never joined: they hold no
 * resources besides their stacks.
 */
#include "ed_par.h"

#include <pthread.h>
#include <stdbool.h>

#include "ed_blas.h"
#include "ed_log.h"

#define S_ALIGN_ELEMS 16 /* chunk bounds on multiples of 16 floats (64 bytes) */

static struct {
    pthread_mutex_t busy; /* held by the caller of ed_par_for */
    pthread_mutex_t mu;   /* guards everything below */
    pthread_cond_t go, done;
    int helpers; /* started helper threads (grows, never shrinks) */
    bool start_failed;
    unsigned long start_gen[ED_PAR_MAX_THREADS]; /* generation when helper i was created */
    unsigned long generation;
    int active;  /* helpers taking part in the current job */
    int pending; /* of those, still running */
    ed_par_fn fn;
    void *ctx;
    size_t n, chunk;
} s_par = {.busy = PTHREAD_MUTEX_INITIALIZER,
           .mu = PTHREAD_MUTEX_INITIALIZER,
           .go = PTHREAD_COND_INITIALIZER,
           .done = PTHREAD_COND_INITIALIZER};

static void s_range(int part, size_t n, size_t chunk, size_t *lo, size_t *hi)
{
    size_t a = (size_t)part * chunk, b = a + chunk;
    *lo = a < n ? a : n;
    *hi = b < n ? b : n;
}

static void *s_helper(void *arg)
{
    const int index = (int)(size_t)arg; /* 1.. : part 0 is the caller's */
    pthread_mutex_lock(&s_par.mu);
    unsigned long seen = s_par.start_gen[index]; /* jobs published before it existed are not its */
    for (;;) {
        while (s_par.generation == seen)
            pthread_cond_wait(&s_par.go, &s_par.mu);
        seen = s_par.generation;
        if (index > s_par.active)
            continue;
        ed_par_fn fn = s_par.fn;
        void *ctx = s_par.ctx;
        size_t lo, hi;
        s_range(index, s_par.n, s_par.chunk, &lo, &hi);
        pthread_mutex_unlock(&s_par.mu);
        if (lo < hi)
            fn(lo, hi, ctx);
        pthread_mutex_lock(&s_par.mu);
        if (--s_par.pending == 0)
            pthread_cond_signal(&s_par.done);
    }
    return NULL;
}

/* Starts helpers until `want` run (called with `busy` held); returns how many run. */
static int s_ensure_helpers(int want)
{
    while (s_par.helpers < want && !s_par.start_failed) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        pthread_mutex_lock(&s_par.mu);
        s_par.start_gen[s_par.helpers + 1] = s_par.generation;
        pthread_mutex_unlock(&s_par.mu);
        int rc = pthread_create(&t, &attr, s_helper, (void *)(size_t)(s_par.helpers + 1));
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            ed_log_debug("ed_par: cannot start helper thread %d; element-wise loops use %d",
                         s_par.helpers + 1, s_par.helpers + 1);
            s_par.start_failed = true;
            break;
        }
        pthread_mutex_lock(&s_par.mu);
        s_par.helpers++;
        pthread_mutex_unlock(&s_par.mu);
    }
    return s_par.helpers;
}

void ed_par_for(size_t n, size_t min_chunk, ed_par_fn fn, void *ctx)
{
    ed_par_for_threads(n, min_chunk, ed_blas_threads(), fn, ctx);
}

void ed_par_for_threads(size_t n, size_t min_chunk, int threads, ed_par_fn fn, void *ctx)
{
    if (n == 0)
        return;
    if (min_chunk < S_ALIGN_ELEMS)
        min_chunk = S_ALIGN_ELEMS;
    if (threads > ED_PAR_MAX_THREADS)
        threads = ED_PAR_MAX_THREADS;
    if ((size_t)threads > n / min_chunk)
        threads = (int)(n / min_chunk);
    if (threads < 2 || pthread_mutex_trylock(&s_par.busy) != 0) {
        fn(0, n, ctx);
        return;
    }
    int helpers = s_ensure_helpers(threads - 1);
    if (threads > helpers + 1)
        threads = helpers + 1;
    if (threads < 2) {
        pthread_mutex_unlock(&s_par.busy);
        fn(0, n, ctx);
        return;
    }
    size_t chunk = (n + (size_t)threads - 1) / (size_t)threads;
    chunk = (chunk + S_ALIGN_ELEMS - 1) / S_ALIGN_ELEMS * S_ALIGN_ELEMS;

    pthread_mutex_lock(&s_par.mu);
    s_par.fn = fn;
    s_par.ctx = ctx;
    s_par.n = n;
    s_par.chunk = chunk;
    s_par.active = threads - 1;
    s_par.pending = threads - 1;
    s_par.generation++;
    pthread_cond_broadcast(&s_par.go);
    pthread_mutex_unlock(&s_par.mu);

    size_t lo, hi;
    s_range(0, n, chunk, &lo, &hi);
    fn(lo, hi, ctx);

    pthread_mutex_lock(&s_par.mu);
    while (s_par.pending > 0)
        pthread_cond_wait(&s_par.done, &s_par.mu);
    pthread_mutex_unlock(&s_par.mu);
    pthread_mutex_unlock(&s_par.busy);
}
