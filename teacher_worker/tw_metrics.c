/* tw_metrics: worker metrics and health endpoints (see tw_metrics.h). */
#include "tw_metrics.h"

#include <stdlib.h>

#include "ed_clock.h"
#include "ed_http.h"
#include "ed_metrics.h"

#define S_CODES 16 /* error series by -code, ED_E* codes are -1..-14 */

typedef struct {
    double t_recv;
    uint32_t batch;
} s_slot;

struct tw_metrics {
    ed_metrics *reg;
    ed_http *http;
    ed_metric *req_info, *req_logit, *req_invalid;
    ed_metric *errors[S_CODES];
    ed_metric *latency, *batch, *samples, *bytes_in, *bytes_out, *queue;
    ed_metric *curve_ok, *curve_refused, *ready, *info;
    s_slot *slots;
    int n_slots;
    double t_last_recv;
};

static int s_register(tw_metrics *m, ed_err *err)
{
    ed_metrics *r = m->reg;
    const char *req = "edistill_worker_requests_total";
    const char *req_help = "Requests received, by kind (info, logit, invalid: undecodable or "
                           "unexpected message).";
    ed_label k_info = {"kind", "info"}, k_logit = {"kind", "logit"}, k_bad = {"kind", "invalid"};
    double lat[16], sizes[14];
    ed_metrics_exp_buckets(0.0001, 2.5, 16, lat); /* 100 us .. ~93 s */
    ed_metrics_exp_buckets(1, 2, 14, sizes);      /* 1 .. 8192 samples */
    ed_label ok = {"result", "admitted"}, refused = {"result", "refused"};
    const char *hs = "edistill_worker_curve_handshakes_total";
    const char *hs_help = "CurveZMQ client handshakes seen by the ZAP handler, by result.";
    if (!(m->req_info = ed_metrics_counter(r, req, req_help, &k_info, 1, err)) ||
        !(m->req_logit = ed_metrics_counter(r, req, req_help, &k_logit, 1, err)) ||
        !(m->req_invalid = ed_metrics_counter(r, req, req_help, &k_bad, 1, err)) ||
        !(m->latency = ed_metrics_histogram(r, "edistill_worker_request_duration_seconds",
                                            "Logit requests: time from receiving the request to "
                                            "handing the reply to ZeroMQ, in seconds.",
                                            NULL, 0, lat, 16, err)) ||
        !(m->batch = ed_metrics_histogram(r, "edistill_worker_batch_size",
                                          "Samples per logit request.", NULL, 0, sizes, 14, err)) ||
        !(m->samples = ed_metrics_counter(r, "edistill_worker_samples_total",
                                          "Samples whose logits were sent.", NULL, 0, err)) ||
        !(m->bytes_in = ed_metrics_counter(r, "edistill_worker_received_bytes_total",
                                           "Request payload bytes received.", NULL, 0, err)) ||
        !(m->bytes_out = ed_metrics_counter(r, "edistill_worker_sent_bytes_total",
                                            "Reply payload bytes sent.", NULL, 0, err)) ||
        !(m->queue = ed_metrics_gauge(r, "edistill_worker_queue_depth",
                                      "Logit requests queued or computing.", NULL, 0, err)) ||
        !(m->curve_ok = ed_metrics_counter(r, hs, hs_help, &ok, 1, err)) ||
        !(m->curve_refused = ed_metrics_counter(r, hs, hs_help, &refused, 1, err)) ||
        !(m->ready = ed_metrics_gauge(r, "edistill_worker_ready",
                                      "1 when the model is loaded and requests are served.", NULL,
                                      0, err)))
        return err->code;
    return ed_metrics_add_process(r, err);
}

tw_metrics *tw_metrics_new(const char *listen, int n_jobs, ed_err *err)
{
    tw_metrics *m = calloc(1, sizeof *m);
    if (!m || !(m->reg = ed_metrics_new()) ||
        !(m->slots = calloc((size_t)(n_jobs > 0 ? n_jobs : 1), sizeof *m->slots))) {
        ed_err_set(err, ED_ENOMEM, "metrics: out of memory");
        goto fail;
    }
    m->n_slots = n_jobs;
    if (s_register(m, err) < 0)
        goto fail;
    if (!(m->http = ed_http_start(listen, m->reg, err)))
        goto fail;
    return m;
fail:
    tw_metrics_destroy(&m);
    return NULL;
}

const char *tw_metrics_address(const tw_metrics *m)
{
    return m ? ed_http_address(m->http) : "";
}

void tw_metrics_model(tw_metrics *m, const char *member, const char *fingerprint, const char *arch,
                      const char *worker_id)
{
    if (!m)
        return;
    ed_label l[] = {
        {"member", member}, {"fingerprint", fingerprint}, {"arch", arch}, {"worker", worker_id}};
    m->info = ed_metrics_gauge(m->reg, "edistill_worker_info",
                               "The served model: member name, weights fingerprint, "
                               "architecture, worker id; always 1.",
                               l, 4, NULL);
    ed_metric_set(m->info, 1);
}

void tw_metrics_ready(tw_metrics *m, bool ready)
{
    if (!m)
        return;
    ed_metric_set(m->ready, ready);
    ed_http_set_ready(m->http, ready);
}

void tw_metrics_received(tw_metrics *m, size_t bytes)
{
    if (!m)
        return;
    m->t_last_recv = ed_now();
    ed_metric_add(m->bytes_in, (double)bytes);
}

void tw_metrics_request(tw_metrics *m, tw_req_kind kind)
{
    if (!m)
        return;
    ed_metric_inc(kind == TW_REQ_INFO    ? m->req_info
                  : kind == TW_REQ_LOGIT ? m->req_logit
                                         : m->req_invalid);
}

void tw_metrics_error(tw_metrics *m, int code)
{
    if (!m)
        return;
    int i = -code;
    if (i < 0 || i >= S_CODES)
        i = 0;
    if (!m->errors[i]) {
        ed_label l = {"code", i ? ed_err_name(-i) : "other"};
        m->errors[i] = ed_metrics_counter(m->reg, "edistill_worker_errors_total",
                                          "Error replies sent, by ED_E* code (docs/PROTOCOL.md).",
                                          &l, 1, NULL);
    }
    ed_metric_inc(m->errors[i]);
}

void tw_metrics_sent(tw_metrics *m, size_t bytes)
{
    if (m)
        ed_metric_add(m->bytes_out, (double)bytes);
}

void tw_metrics_job_start(tw_metrics *m, int slot, uint32_t batch, int in_flight)
{
    if (!m)
        return;
    if (slot >= 0 && slot < m->n_slots)
        m->slots[slot] = (s_slot){.t_recv = m->t_last_recv, .batch = batch};
    ed_metric_set(m->queue, in_flight);
}

void tw_metrics_job_done(tw_metrics *m, int slot, bool ok, int in_flight)
{
    if (!m)
        return;
    ed_metric_set(m->queue, in_flight);
    if (slot < 0 || slot >= m->n_slots)
        return;
    ed_metric_observe(m->latency, ed_now() - m->slots[slot].t_recv);
    ed_metric_observe(m->batch, m->slots[slot].batch);
    if (ok)
        ed_metric_add(m->samples, m->slots[slot].batch);
}

void tw_metrics_curve(tw_metrics *m, unsigned long admitted, unsigned long refused)
{
    if (!m)
        return;
    ed_metric_set(m->curve_ok, (double)admitted);
    ed_metric_set(m->curve_refused, (double)refused);
}

void tw_metrics_destroy(tw_metrics **pm)
{
    if (!pm || !*pm)
        return;
    tw_metrics *m = *pm;
    ed_http_stop(&m->http); /* first: no scrape may read the registry after this */
    ed_metrics_destroy(&m->reg);
    free(m->slots);
    free(m);
    *pm = NULL;
}
