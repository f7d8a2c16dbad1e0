/*
 * tw_serve_internal: the state of `teacher_worker serve` and the functions its two files share:
 * tw_serve.c (options, start-up, the loop's callbacks, shut-down) and tw_serve_proto.c (reading
 * the socket, handling requests, sending replies). Not a public API. Cross-file names carry the
 * tws_ prefix.
 */
#ifndef TW_SERVE_INTERNAL_H
#define TW_SERVE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>
#include <zmq.h>

#include "ed_member.h"
#include "tw_auth.h"
#include "tw_compute.h"
#include "tw_metrics.h"

typedef struct {
    const char *model_path;
    const char *bind;
    const char *ready_file;
    int max_batch;
    int threads;
    int queue;
    int blas_threads;
    const char *curve_secret;   /* CurveZMQ: this worker's secret key file (tw_auth), or NULL */
    const char *curve_clients;  /* allow-list of client public keys (directory or file) */
    const char *metrics_listen; /* HOST:PORT of /metrics /healthz /readyz, or NULL (off) */
    float input_scale;          /* .onnx models: raw pixel -> ONNX input (NAN = default) */
    float input_offset;
} tws_options;

/* At most one log record per second per limiter; the rest are counted and reported with the next.
 */
typedef struct {
    uint64_t last_ms;
    bool used;
    unsigned long suppressed;
} tws_ratelimit;

typedef struct {
    tws_options opt;
    ed_member *member; /* the loaded model; each compute thread runs a share of it */
    char worker_id[320];
    char endpoint[512]; /* as bound (ZMQ_LAST_ENDPOINT: the real port for tcp://...:*) */

    void *zctx;
    void *sock;          /* ROUTER */
    void *monitor;       /* PAIR receiving the ROUTER's connect/disconnect events, or NULL */
    tw_auth *auth;       /* CURVE server + ZAP handler, or NULL (plaintext) */
    tw_metrics *metrics; /* Prometheus metrics + HTTP health (tw_metrics), or NULL (off) */

    uv_loop_t loop;
    bool loop_init;
    uv_poll_t poll;
    bool poll_init, poll_active;
    uv_poll_t mon_poll;
    bool mon_poll_init;
    uv_poll_t auth_poll; /* the ZAP handler's socket */
    bool auth_poll_init;
    uv_async_t async;
    bool async_init;
    uv_signal_t sig[2];
    bool sig_init[2];
    uv_signal_t hup; /* SIGHUP: reload the CURVE allow-list (only with CURVE) */
    bool hup_init;

    tw_compute *compute;
    tw_job *jobs; /* the pool: n_jobs preallocated jobs */
    int n_jobs;
    tw_job *free_jobs;
    int in_flight; /* jobs out of the pool */
    bool stopping; /* a signal arrived: no new logit requests */
    bool closing;  /* handles are being closed */
    bool ready_written;

    tws_ratelimit rl_client; /* client mistakes: bad frames, bad requests */
    tws_ratelimit rl_send;   /* send failures */
    uint64_t n_replies, n_errors;
} tws_server;

/* ---- tw_serve_proto.c ---- */

/* Sends [identity][payload] (both consumed); a failure is logged (rate-limited) and dropped. */
void tws_send_pair(tws_server *s, zmq_msg_t *identity, zmq_msg_t *payload);
/* Sends an ErrorReply for request_id (identity consumed). */
void tws_send_error(tws_server *s, zmq_msg_t *identity, uint64_t request_id, int code,
                    const char *message);
/* Starts watching the socket again (after backpressure or at start). */
void tws_poll_resume(tws_server *s);
/* Whether the loop may read another request (a job is free, or stopping). */
bool tws_can_read(const tws_server *s);
/* Receives and handles requests until the socket is empty or the budget is spent. */
void tws_drain(tws_server *s);

#endif
