/*
 * tw_metrics: the Prometheus metrics and HTTP health endpoints of `teacher_worker serve`.
 *
 * tw_serve calls one hook per event (a request received, a job submitted or finished, a reply sent,
 * an error reply, CURVE handshake counts); each hook is a few atomic updates on an ed_metrics
 * registry, and every hook accepts NULL (metrics off) and returns at once. All hooks run on the
 * serve loop's thread; the registry is read by ed_http's thread. Series (docs/OPERATIONS.md):
 *   edistill_worker_requests_total{kind=info|logit|invalid}, edistill_worker_errors_total{code},
 *   edistill_worker_request_duration_seconds (receive to reply, histogram),
 *   edistill_worker_batch_size (histogram), edistill_worker_samples_total,
 *   edistill_worker_received_bytes_total, edistill_worker_sent_bytes_total,
 *   edistill_worker_queue_depth, edistill_worker_curve_handshakes_total{result=admitted|refused},
 *   edistill_worker_info{member,fingerprint,arch,worker} 1, edistill_worker_ready, process_*.
 */
#ifndef TW_METRICS_H
#define TW_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ed_error.h"

typedef struct tw_metrics tw_metrics;

/* Starts the listener on `listen` (ed_http_parse_listen syntax) with room for n_jobs concurrent
 * jobs. NULL with err set when the address is bad or cannot be bound. */
tw_metrics *tw_metrics_new(const char *listen, int n_jobs, ed_err *err);

/* "HOST:PORT" actually bound, for the ready file and the log. */
const char *tw_metrics_address(const tw_metrics *m);

/* The model is loaded: the info series, and /readyz follows `ready` from now on. */
void tw_metrics_model(tw_metrics *m, const char *member, const char *fingerprint, const char *arch,
                      const char *worker_id);
void tw_metrics_ready(tw_metrics *m, bool ready);

/* A request payload of `bytes` arrived (starts the latency clock of the job it may become). */
void tw_metrics_received(tw_metrics *m, size_t bytes);
/* Its kind once decoded. */
typedef enum { TW_REQ_INFO, TW_REQ_LOGIT, TW_REQ_INVALID } tw_req_kind;
void tw_metrics_request(tw_metrics *m, tw_req_kind kind);
/* An ErrorReply with this ED_E* code was sent (or attempted). */
void tw_metrics_error(tw_metrics *m, int code);
/* A reply of `bytes` was handed to ZeroMQ. */
void tw_metrics_sent(tw_metrics *m, size_t bytes);
/* Job `slot` (0..n_jobs) carrying `batch` samples went to the compute pool / came back and its
 * reply was sent; in_flight is the number of jobs out of the pool afterwards. */
void tw_metrics_job_start(tw_metrics *m, int slot, uint32_t batch, int in_flight);
void tw_metrics_job_done(tw_metrics *m, int slot, bool ok, int in_flight);
/* Mirror of tw_auth_counts. */
void tw_metrics_curve(tw_metrics *m, unsigned long admitted, unsigned long refused);

/* Stops the listener and frees. Accepts NULL; clears *pm. */
void tw_metrics_destroy(tw_metrics **pm);

#endif
