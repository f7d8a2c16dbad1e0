/* st_metrics: the metrics and health endpoints of distill and label (see st_metrics.h). */
#include "st_metrics.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_clock.h"
#include "ed_http.h"
#include "ed_metrics.h"

#define S_MAX_REPLICA_SERIES 256

/* Per-member series, created when the member is first seen. */
typedef struct {
    bool made;
    ed_metric *latency, *failovers, *down, *up, *rep_up, *rep_down;
} s_member;

/* Per-replica request counters, keyed by endpoint (a replica slot can be reused by DNS). */
typedef struct {
    char where[300];
    int member;
    ed_metric *requests;
} s_replica;

struct st_metrics {
    ed_metrics *reg;
    ed_http *http;
    const st_pool *pool;
    int quorum;
    ed_metric *steps, *samples, *labeled, *epoch, *loss, *soft, *hard, *acc, *test_acc, *rate;
    ed_metric *degraded, *blocked, *members, *ready;
    ed_metric *bytes, *shard_samples, *progress, *shard_info; /* label */
    double shard_total;                                       /* label: samples of the shard */
    s_member mem[ST_POOL_MAX_MEMBERS];
    s_replica reps[S_MAX_REPLICA_SERIES];
    int n_reps;
    double rate_t0, rate_samples0, samples_total;
    _Atomic uint64_t ckpt_at_bits; /* last checkpoint, ed_now() seconds (double bits); 0: none */
};

/* Scrape-time gauge: seconds since the last checkpoint (NaN before the first). */
static double s_ckpt_age(void *arg)
{
    st_metrics *m = arg;
    uint64_t bits = atomic_load(&m->ckpt_at_bits);
    double at;
    memcpy(&at, &bits, sizeof at);
    return at > 0 ? ed_now() - at : NAN;
}

static ed_metric *s_g(st_metrics *m, const char *name, const char *help, ed_err *err)
{
    return ed_metrics_gauge(m->reg, name, help, NULL, 0, err);
}

static ed_metric *s_c(st_metrics *m, const char *name, const char *help, ed_err *err)
{
    return ed_metrics_counter(m->reg, name, help, NULL, 0, err);
}

/* distill's series. */
static int s_register_distill(st_metrics *m, ed_err *err)
{
    const char *lh = "Loss of the last step, by term (total objective, soft term before alpha, "
                     "hard term before 1 - alpha).";
    ed_label l_total = {"term", "total"}, l_soft = {"term", "soft"}, l_hard = {"term", "hard"};
    if (!(m->steps = s_c(m, "edistill_trainer_steps_total", "Optimizer steps taken.", err)) ||
        !(m->samples = s_c(m, "edistill_trainer_samples_total", "Samples trained on.", err)) ||
        !(m->labeled = s_c(m, "edistill_trainer_labeled_samples_total",
                           "Labeled samples trained on (hard loss).", err)) ||
        !(m->epoch = s_g(m, "edistill_trainer_epoch", "The epoch under way (1-based).", err)) ||
        !(m->loss = ed_metrics_gauge(m->reg, "edistill_trainer_loss", lh, &l_total, 1, err)) ||
        !(m->soft = ed_metrics_gauge(m->reg, "edistill_trainer_loss", lh, &l_soft, 1, err)) ||
        !(m->hard = ed_metrics_gauge(m->reg, "edistill_trainer_loss", lh, &l_hard, 1, err)) ||
        !(m->acc = s_g(m, "edistill_trainer_train_accuracy_labeled",
                       "Accuracy on the labeled rows of the epoch so far (0..1).", err)) ||
        !(m->rate = s_g(m, "edistill_trainer_samples_per_second",
                        "Training throughput over the last second or more.", err)) ||
        !(m->blocked = s_c(m, "edistill_trainer_teacher_wait_seconds_total",
                           "Time the training loop spent blocked waiting for teachers.", err)) ||
        !ed_metrics_gauge_fn(m->reg, "edistill_trainer_checkpoint_age_seconds",
                             "Seconds since the last checkpoint was written (NaN: none yet).", NULL,
                             0, s_ckpt_age, m, err))
        return err->code;
    return 0;
}

/* label's series (the shard's info series comes with st_metrics_label_shard). */
static int s_register_label(st_metrics *m, ed_err *err)
{
    if (!(m->samples = s_c(m, "edistill_label_samples_total",
                           "Samples labeled and written to the store by this process.", err)) ||
        !(m->bytes =
              s_c(m, "edistill_label_written_bytes_total",
                  "Bytes of logits (and top-k indices) written to the store's arrays.", err)) ||
        !(m->shard_samples =
              s_g(m, "edistill_label_shard_samples", "Samples of the shard being labeled.", err)) ||
        !(m->progress = s_g(m, "edistill_label_shard_progress_ratio",
                            "Fraction of the shard written (0..1), samples written before a "
                            "--resume included.",
                            err)))
        return err->code;
    return 0;
}

/* Series of both commands: members, readiness, the process. */
static int s_register(st_metrics *m, st_metrics_kind kind, ed_err *err)
{
    if ((kind == ST_METRICS_LABEL ? s_register_label(m, err) : s_register_distill(m, err)) < 0)
        return err->code;
    if (!(m->degraded = s_c(m, "edistill_trainer_degraded_batches_total",
                            "Batches that came back without every member (distill: averaged "
                            "over a quorum; label: the run stops).",
                            err)) ||
        !(m->members = s_g(m, "edistill_trainer_members", "Ensemble members known.", err)) ||
        !(m->ready = s_g(m, "edistill_trainer_ready",
                         "1 while a quorum of members has a live replica.", err)))
        return err->code;
    return ed_metrics_add_process(m->reg, err);
}

st_metrics *st_metrics_new(const char *listen, st_metrics_kind kind, ed_err *err)
{
    st_metrics *m = calloc(1, sizeof *m);
    if (!m || !(m->reg = ed_metrics_new())) {
        ed_err_set(err, ED_ENOMEM, "metrics: out of memory");
        goto fail;
    }
    atomic_init(&m->ckpt_at_bits, 0);
    if (s_register(m, kind, err) < 0 || !(m->http = ed_http_start(listen, m->reg, err)))
        goto fail;
    return m;
fail:
    st_metrics_destroy(&m);
    return NULL;
}

const char *st_metrics_address(const st_metrics *m)
{
    return m ? ed_http_address(m->http) : "";
}

static s_member *s_member_series(st_metrics *m, int k)
{
    if (k < 0 || k >= ST_POOL_MAX_MEMBERS || !m->pool || k >= st_pool_member_count(m->pool))
        return NULL;
    s_member *s = &m->mem[k];
    if (s->made)
        return s;
    ed_label l = {"member", st_pool_member_name(m->pool, k)};
    ed_label up[2] = {l, {"state", "up"}}, down[2] = {l, {"state", "down"}};
    ed_label ev_down[2] = {l, {"event", "down"}}, ev_up[2] = {l, {"event", "up"}};
    double b[16];
    ed_metrics_exp_buckets(0.0005, 2, 16, b); /* 0.5 ms .. 16 s */
    const char *ev = "edistill_trainer_replica_events_total";
    const char *evh = "Replicas of a member marked down (missed deadline, connection lost, "
                      "stopping) or back up.";
    const char *rh = "Replicas of a member by state (up, or down/connecting).";
    s->latency = ed_metrics_histogram(m->reg, "edistill_trainer_teacher_request_duration_seconds",
                                      "Round trip of a logit request to a member (in-process: "
                                      "compute time).",
                                      &l, 1, b, 16, NULL);
    s->failovers =
        ed_metrics_counter(m->reg, "edistill_trainer_failovers_total",
                           "Requests re-sent to another replica of the member.", &l, 1, NULL);
    s->down = ed_metrics_counter(m->reg, ev, evh, ev_down, 2, NULL);
    s->up = ed_metrics_counter(m->reg, ev, evh, ev_up, 2, NULL);
    s->rep_up = ed_metrics_gauge(m->reg, "edistill_trainer_replicas", rh, up, 2, NULL);
    s->rep_down = ed_metrics_gauge(m->reg, "edistill_trainer_replicas", rh, down, 2, NULL);
    s->made = true;
    return s;
}

/* Replica gauges of every member and the readiness (quorum of members with a live replica). */
static void s_update_members(st_metrics *m)
{
    int K = st_pool_member_count(m->pool), live = 0;
    for (int k = 0; k < K && k < ST_POOL_MAX_MEMBERS; k++) {
        s_member *s = s_member_series(m, k);
        int up = st_pool_replicas_up(m->pool, k), all = st_pool_replica_count(m->pool, k);
        live += up > 0;
        if (s) {
            ed_metric_set(s->rep_up, up);
            ed_metric_set(s->rep_down, all - up);
        }
    }
    bool ready = K > 0 && live >= (m->quorum > 0 ? m->quorum : K);
    ed_metric_set(m->members, K);
    ed_metric_set(m->ready, ready);
    ed_http_set_ready(m->http, ready);
}

void st_metrics_attach(st_metrics *m, const st_pool *pool, int quorum)
{
    if (!m)
        return;
    m->pool = pool;
    m->quorum = quorum;
    m->rate_t0 = ed_now();
    if (!pool) { /* soft targets from a store: no teachers to wait for */
        ed_metric_set(m->ready, 1);
        ed_http_set_ready(m->http, true);
        return;
    }
    s_update_members(m);
}

static ed_metric *s_replica_requests(st_metrics *m, int member, const char *where)
{
    for (int i = 0; i < m->n_reps; i++)
        if (m->reps[i].member == member && strcmp(m->reps[i].where, where) == 0)
            return m->reps[i].requests;
    if (m->n_reps == S_MAX_REPLICA_SERIES)
        return NULL;
    s_replica *r = &m->reps[m->n_reps++];
    snprintf(r->where, sizeof r->where, "%s", where);
    r->member = member;
    ed_label l[2] = {{"member", st_pool_member_name(m->pool, member)}, {"replica", r->where}};
    r->requests = ed_metrics_counter(m->reg, "edistill_trainer_teacher_requests_total",
                                     "Logit requests sent, by member and replica (endpoint or "
                                     "model file).",
                                     l, 2, NULL);
    return r->requests;
}

void st_metrics_observe(void *arg, st_pool_event ev, int member, const char *replica, double value)
{
    st_metrics *m = arg;
    if (!m || !m->pool)
        return;
    s_member *s = s_member_series(m, member);
    if (!s)
        return;
    switch (ev) {
    case ST_POOL_EV_REQUEST:
        ed_metric_inc(s_replica_requests(m, member, replica));
        break;
    case ST_POOL_EV_REPLY:
        ed_metric_observe(s->latency, value);
        break;
    case ST_POOL_EV_FAILOVER:
        ed_metric_inc(s->failovers);
        break;
    case ST_POOL_EV_DOWN:
        ed_metric_inc(s->down);
        s_update_members(m);
        break;
    case ST_POOL_EV_UP:
        ed_metric_inc(s->up);
        s_update_members(m);
        break;
    }
}

void st_metrics_step(st_metrics *m, const ed_step_stats *st, int epoch, bool degraded,
                     double blocked_s, double accuracy_labeled)
{
    if (!m)
        return;
    ed_metric_inc(m->steps);
    ed_metric_add(m->samples, st->n);
    ed_metric_add(m->labeled, st->n_labeled);
    ed_metric_set(m->epoch, epoch);
    ed_metric_set(m->loss, st->loss);
    ed_metric_set(m->soft, st->soft_loss);
    ed_metric_set(m->hard, st->hard_loss);
    if (accuracy_labeled >= 0)
        ed_metric_set(m->acc, accuracy_labeled);
    if (degraded)
        ed_metric_inc(m->degraded);
    ed_metric_add(m->blocked, blocked_s);
    m->samples_total += st->n;
    double now = ed_now();
    if (now - m->rate_t0 >= 1.0) {
        ed_metric_set(m->rate, (m->samples_total - m->rate_samples0) / (now - m->rate_t0));
        m->rate_t0 = now;
        m->rate_samples0 = m->samples_total;
        if (m->pool)
            s_update_members(m); /* members can join during the run */
    }
}

void st_metrics_epoch(st_metrics *m, int epoch, double test_accuracy)
{
    if (!m)
        return;
    ed_metric_set(m->epoch, epoch);
    if (test_accuracy < 0)
        return;
    if (!m->test_acc)
        m->test_acc =
            ed_metrics_gauge(m->reg, "edistill_trainer_test_accuracy",
                             "Test accuracy after the last evaluated epoch (0..1).", NULL, 0, NULL);
    ed_metric_set(m->test_acc, test_accuracy);
}

void st_metrics_checkpoint(st_metrics *m)
{
    if (!m)
        return;
    double now = ed_now();
    uint64_t bits;
    memcpy(&bits, &now, sizeof bits);
    atomic_store(&m->ckpt_at_bits, bits);
}

void st_metrics_label_shard(st_metrics *m, const char *store, int shard, int n_shards,
                            int64_t samples, int64_t done)
{
    if (!m)
        return;
    char sh[32];
    snprintf(sh, sizeof sh, "%d/%d", shard, n_shards);
    ed_label l[2] = {{"store", store}, {"shard", sh}};
    if (!m->shard_info)
        m->shard_info = ed_metrics_gauge(m->reg, "edistill_label_info",
                                         "The shard being labeled: store directory and shard "
                                         "(I/N); always 1.",
                                         l, 2, NULL);
    ed_metric_set(m->shard_info, 1);
    m->shard_total = (double)samples;
    ed_metric_set(m->shard_samples, (double)samples);
    ed_metric_set(m->progress, samples > 0 ? (double)done / (double)samples : 1.0);
}

void st_metrics_label_missing(st_metrics *m)
{
    if (m)
        ed_metric_inc(m->degraded);
}

void st_metrics_label_written(st_metrics *m, int n, size_t bytes, int64_t done)
{
    if (!m)
        return;
    ed_metric_add(m->samples, n);
    ed_metric_add(m->bytes, (double)bytes);
    if (m->shard_total > 0)
        ed_metric_set(m->progress, (double)done / m->shard_total);
}

void st_metrics_destroy(st_metrics **pm)
{
    if (!pm || !*pm)
        return;
    st_metrics *m = *pm;
    ed_http_stop(&m->http);
    ed_metrics_destroy(&m->reg);
    free(m);
    *pm = NULL;
}
