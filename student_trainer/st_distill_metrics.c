/*
 * st_distill_metrics: one JSON line per epoch for `student_trainer distill --metrics` (see
 * st_distill_metrics.h). Built as a cJSON tree and printed unformatted: every string is escaped.
 */
#include "st_distill_metrics.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "ed_blas.h"
#include "ed_log.h"
#include "ed_proc.h"

static double s_div(double a, long b)
{
    return b ? a / (double)b : 0.0;
}

/* "missing": {name: batches} of the members left out of at least one batch. */
static void s_add_missing(cJSON *o, const st_epoch_record *r)
{
    cJSON *m = cJSON_AddObjectToObject(o, "missing");
    for (int k = 0; m && k < r->K; k++)
        if (r->missing[k])
            cJSON_AddNumberToObject(m, st_pool_member_name(r->members, k), (double)r->missing[k]);
}

/* "teachers": membership events of the epoch: down, back, requests re-sent elsewhere. */
static void s_add_teachers(cJSON *o, const st_epoch_record *r)
{
    cJSON *t = cJSON_AddObjectToObject(o, "teachers");
    if (!t)
        return;
    cJSON_AddNumberToObject(t, "members", r->members ? st_pool_member_count(r->members) : r->K);
    cJSON_AddNumberToObject(t, "replicas_up", r->pool->replicas_up);
    cJSON_AddNumberToObject(t, "replicas", r->pool->replicas_known);
    cJSON_AddNumberToObject(t, "down_events", (double)r->pool->down_events);
    cJSON_AddNumberToObject(t, "up_events", (double)r->pool->up_events);
    cJSON_AddNumberToObject(t, "failovers", (double)r->pool->failovers);
}

static cJSON *s_record(const st_epoch_record *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    const st_pool_stats *ps = r->pool;
    cJSON_AddNumberToObject(o, "epoch", r->epoch);
    cJSON_AddNumberToObject(o, "step", (double)r->step);
    cJSON_AddNumberToObject(o, "samples", (double)r->samples);
    cJSON_AddNumberToObject(o, "labeled", (double)r->labeled);
    cJSON_AddNumberToObject(o, "loss", s_div(r->loss_sum, r->samples));
    cJSON_AddNumberToObject(o, "soft_loss", s_div(r->soft_sum, r->samples));
    cJSON_AddNumberToObject(o, "hard_loss", s_div(r->hard_sum, r->labeled));
    cJSON_AddNumberToObject(o, "train_accuracy_labeled", s_div((double)r->correct, r->labeled));
    cJSON_AddNumberToObject(o, "samples_per_s", r->samples_per_s);
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    cJSON_AddNumberToObject(o, "members", r->K);
    cJSON_AddNumberToObject(o, "blas_threads", ed_blas_threads());
    cJSON_AddBoolToObject(o, "teacher_thread", r->pool->teacher_thread);
    cJSON *lat = cJSON_AddObjectToObject(o, "teacher_latency_ms");
    if (lat) {
        cJSON_AddNumberToObject(lat, "mean", ps->latency_mean_ms);
        cJSON_AddNumberToObject(lat, "p50", ps->latency_p50_ms);
        cJSON_AddNumberToObject(lat, "p99", ps->latency_p99_ms);
    }
    cJSON_AddNumberToObject(o, "teacher_wait_s", ps->wait_ms / 1000.0);
    cJSON_AddNumberToObject(o, "bytes_sent", (double)ps->bytes_sent);
    cJSON_AddNumberToObject(o, "bytes_received", (double)ps->bytes_received);
    cJSON_AddNumberToObject(o, "max_rss_mib", ed_proc_peak_rss_bytes() / (1024.0 * 1024.0));
    cJSON_AddNumberToObject(o, "degraded_batches", (double)r->degraded);
    s_add_missing(o, r);
    s_add_teachers(o, r);
    if (r->have_test) {
        cJSON_AddNumberToObject(o, "test_loss", r->test_loss);
        cJSON_AddNumberToObject(o, "test_accuracy", r->test_accuracy);
    }
    if (r->resumed_at_step >= 0)
        cJSON_AddNumberToObject(o, "resumed_at_step", (double)r->resumed_at_step);
    return o;
}

int st_distill_metrics_write(FILE *f, const char *path, const st_epoch_record *r, ed_err *err)
{
    cJSON *o = s_record(r);
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!text)
        return ed_err_set(err, ED_ENOMEM, "out of memory writing the metrics record");
    int bad = fputs(text, f) < 0 || fputc('\n', f) == EOF || fflush(f) != 0;
    cJSON_free(text);
    if (bad)
        return ed_err_set(err, ED_EIO, "%s: cannot write the metrics record", path);
    return 0;
}

void st_distill_metrics_log(const st_epoch_record *r)
{
    const double acc = r->have_test ? r->test_accuracy
                       : r->labeled ? (double)r->correct / (double)r->labeled
                                    : 0.0;
    ed_log_info("epoch %d/%d: loss %.4f (soft %.4f, hard %.4f)%s%.2f%% | %.1fs, %.0f samples/s, "
                "teacher latency p50 %.1f ms p99 %.1f ms, waited %.1fs",
                r->epoch, r->epochs, r->loss_sum / (double)r->samples,
                r->soft_sum / (double)r->samples,
                r->labeled ? r->hard_sum / (double)r->labeled : 0.0,
                r->have_test ? " | test acc " : " | train acc (labeled) ", 100.0 * acc, r->seconds,
                r->samples_per_s, r->pool->latency_p50_ms, r->pool->latency_p99_ms,
                r->pool->wait_ms / 1000.0);
}
