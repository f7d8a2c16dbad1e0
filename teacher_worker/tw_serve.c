/*
 * tw_serve: `teacher_worker serve`: answers member-info and logit requests for one model file over
 * a ZeroMQ ROUTER socket (tcp:// or ipc://), speaking edistill.proto through ed_wire.
 *
 * Architecture
 *   - The main thread runs ONE libuv loop and is the only thread that touches ZeroMQ sockets. The
 *     ROUTER socket is watched through its ZMQ_FD with a uv_poll_t. That fd is edge-triggered: it
 *     only says "socket state may have changed", so every wake-up (and every send, which can
 * consume the notification) is followed by tws_drain() (tw_serve_proto.c): check ZMQ_EVENTS and
 * receive until ZMQ_POLLIN is clear. A drain handles at most S_DRAIN_BUDGET messages, then re-arms
 * itself through the async handle so a flood of requests cannot starve finished jobs.
 *   - A request is [identity][payload]; any other frame count gets a (rate-limited) warning and an
 *     ErrorReply. Payloads are decoded and validated by ed_wire_decode; info requests are answered
 *     at once; bad requests (malformed, wrong input dim, batch > --max-batch) get an ErrorReply
 *     naming the problem and the worker keeps serving.
 *   - A valid LogitRequest takes a job from a fixed pool of (--queue + --threads) jobs and goes to
 *     the bounded FIFO of tw_compute, whose pthreads scale the inputs, run the forward pass with
 *     their own preallocated workspace, pack the LogitReply into a zmq message and hand the job
 * back through uv_async_t. The loop sends [identity][reply] and returns the job to the pool.
 *   - Backpressure: when the pool is empty the uv_poll is stopped, so the socket is not read (its
 *     queue, then the peers' send buffers, fill up instead); the first job to come back restarts
 * it.
 *   - SIGINT/SIGTERM (uv_signal_t): stop accepting logit requests (those that still arrive get an
 *     ED_ESTOPPED error; info requests answer ready=false), let in-flight jobs finish and send
 * their replies, then close every handle, close the socket with a short linger, join the threads,
 * free everything and return 0.
 *   - Connects/disconnects are logged from a ZeroMQ socket monitor (a PAIR socket, also polled by
 *     the loop). Nothing is logged per request; client errors are logged at most once a second.
 *   - With --curve-secret/--curve-clients the ROUTER is a CurveZMQ server and tw_auth's ZAP handler
 *     (a REP socket, one more uv_poll on the same loop) admits only the listed client keys (SIGHUP
 *     re-reads the list for the handshakes that follow);
 *     without keys a bind that other hosts can reach logs a warning (docs/SECURITY.md).
 */
#include "tw_commands.h"
#include "tw_serve_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>
#include <zmq.h>

#include "ed_blas.h"
#include "ed_cli.h"
#include "ed_http.h"
#include "ed_log.h"
#include "ed_member.h"
#include "ed_wire.h"
#include "tw_auth.h"
#include "tw_compute.h"

#define S_LINGER_MS 1000 /* how long close waits for unsent replies */
#define S_MAX_THREADS 256
#define S_MAX_QUEUE 65536
#define S_MAX_BATCH (1 << 20)
#define S_MONITOR_ENDPOINT "inproc://tw-serve-monitor"
/* ZMTP heartbeats: the worker pings every connection every second and drops one whose peer stays
 * silent S_HEARTBEAT_TIMEOUT_MS after a ping (a dead link: no FIN, no RST). libzmq resets that
 * timer per whole message, and the peer's PONG queues behind a frame it is sending, so the timeout
 * must also cover receiving the largest frame: 5 s (the trainer's side uses 3 s: its replies are
 * small). The TTL the trainers send is not relied on: libzmq 4.3 arms it only while the engine is
 * writing. */
#define S_HEARTBEAT_IVL_MS 1000
#define S_HEARTBEAT_TIMEOUT_MS 5000

/* ---------------------------------------------------------------------------------------------- */
/* Finished jobs, shutdown, monitor                                                               */

static void s_on_close(uv_handle_t *h)
{
    (void)h;
}

/* Closes every handle so uv_run returns. */
static void s_close_handles(tws_server *s)
{
    if (s->closing)
        return;
    s->closing = true;
    if (s->poll_init)
        uv_close((uv_handle_t *)&s->poll, s_on_close);
    if (s->mon_poll_init)
        uv_close((uv_handle_t *)&s->mon_poll, s_on_close);
    if (s->auth_poll_init)
        uv_close((uv_handle_t *)&s->auth_poll, s_on_close);
    if (s->async_init)
        uv_close((uv_handle_t *)&s->async, s_on_close);
    for (int i = 0; i < 2; i++)
        if (s->sig_init[i])
            uv_close((uv_handle_t *)&s->sig[i], s_on_close);
    if (s->hup_init)
        uv_close((uv_handle_t *)&s->hup, s_on_close);
    s->poll_active = false;
}

static void s_maybe_finish(tws_server *s)
{
    if (s->stopping && s->in_flight == 0)
        s_close_handles(s);
}

static void s_on_async(uv_async_t *h)
{
    tws_server *s = h->data;
    for (tw_job *job = tw_compute_take_done(s->compute); job;) {
        tw_job *next = job->next;
        if (job->rc == 0) {
            tws_send_pair(s, &job->identity, &job->reply);
        } else {
            ed_log_error("request %" PRIu64 " failed: %s", job->request_id, job->err.msg);
            tws_send_error(s, &job->identity, job->request_id, job->rc, job->err.msg);
        }
        job->next = s->free_jobs;
        s->free_jobs = job;
        s->in_flight--;
        tw_metrics_job_done(s->metrics, (int)(job - s->jobs), job->rc == 0, s->in_flight);
        job = next;
    }
    if (s->closing)
        return;
    s_maybe_finish(s);
    if (s->closing)
        return;
    /* Sending may have consumed the fd's edge: look at the socket again either way. */
    if (tws_can_read(s))
        tws_poll_resume(s);
    tws_drain(s);
}

static void s_on_signal(uv_signal_t *h, int signum)
{
    tws_server *s = h->data;
    if (s->stopping) {
        ed_log_info("signal %d: already stopping, %d request(s) in flight", signum, s->in_flight);
        return;
    }
    s->stopping = true;
    tw_metrics_ready(s->metrics, false);
    ed_log_info("signal %d: stopping; finishing %d in-flight request(s)", signum, s->in_flight);
    s_maybe_finish(s);
    if (!s->closing) {
        tws_poll_resume(s); /* refuse what arrives meanwhile instead of leaving it queued */
        tws_drain(s);
    }
}

/* SIGHUP with CURVE: re-read --curve-clients; other connections are not touched. */
static void s_on_hup(uv_signal_t *h, int signum)
{
    (void)signum;
    tws_server *s = h->data;
    ed_err err = {0};
    if (tw_auth_reload(s->auth, &err))
        ed_log_error("SIGHUP: keeping the current allow-list: %s", err.msg);
}

/* Reads every pending monitor event (the monitor's ZMQ_FD is edge-triggered like the ROUTER's). */
static void s_monitor_drain(tws_server *s)
{
    for (;;) {
        int ev = 0;
        size_t len = sizeof ev;
        if (s->closing || zmq_getsockopt(s->monitor, ZMQ_EVENTS, &ev, &len) != 0 ||
            !(ev & ZMQ_POLLIN))
            return;
        zmq_msg_t head, addr;
        zmq_msg_init(&head);
        zmq_msg_init(&addr);
        if (zmq_msg_recv(&head, s->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&head);
            zmq_msg_close(&addr);
            return;
        }
        if (zmq_msg_more(&head))
            zmq_msg_recv(&addr, s->monitor, ZMQ_DONTWAIT);
        if (zmq_msg_size(&head) >= 6) {
            const uint8_t *d = zmq_msg_data(&head);
            uint16_t event;
            uint32_t value;
            memcpy(&event, d, sizeof event);
            memcpy(&value, d + 2, sizeof value);
            if (event == ZMQ_EVENT_ACCEPTED)
                ed_log_info("client connected (fd %" PRIu32 ")", value);
            else if (event == ZMQ_EVENT_DISCONNECTED)
                ed_log_info("client disconnected (fd %" PRIu32 ")", value);
        }
        zmq_msg_close(&head);
        zmq_msg_close(&addr);
    }
}

static void s_on_monitor(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    s_monitor_drain(h->data);
}

/* The ZAP handler's fd (edge-triggered): answer every waiting handshake. */
static void s_on_auth(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    tws_server *s = h->data;
    if (s->closing)
        return;
    tw_auth_drain(s->auth);
    if (s->metrics) {
        unsigned long admitted, refused;
        tw_auth_counts(s->auth, &admitted, &refused);
        tw_metrics_curve(s->metrics, admitted, refused);
    }
}

/* Compute threads call this (under their lock) when a job is done. */
static void s_notify(void *arg)
{
    uv_async_send(arg);
}

/* ---------------------------------------------------------------------------------------------- */
/* Setup and teardown                                                                             */

static int s_open_socket(tws_server *s, ed_err *err)
{
    s->zctx = zmq_ctx_new();
    if (!s->zctx)
        return ed_err_set(err, ED_EIO, "cannot create a ZeroMQ context: %s",
                          zmq_strerror(zmq_errno()));
    s->sock = zmq_socket(s->zctx, ZMQ_ROUTER);
    if (!s->sock)
        return ed_err_set(err, ED_EIO, "cannot create a ROUTER socket: %s",
                          zmq_strerror(zmq_errno()));
    /* Heartbeats (see S_HEARTBEAT_IVL_MS): a peer whose link went silent (no FIN, no RST) is
     * dropped instead of holding a dead connection. */
    int linger = S_LINGER_MS, hb_ivl = S_HEARTBEAT_IVL_MS, hb_timeout = S_HEARTBEAT_TIMEOUT_MS;
    int64_t maxmsg = (int64_t)ED_WIRE_MAX_MESSAGE;
    if (zmq_setsockopt(s->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_HEARTBEAT_IVL, &hb_ivl, sizeof hb_ivl) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof hb_timeout) != 0)
        return ed_err_set(err, ED_EIO, "cannot set socket options: %s", zmq_strerror(zmq_errno()));
    /* CURVE: the ZAP handler must exist before the socket accepts its first peer. */
    if (s->opt.curve_secret && *s->opt.curve_secret) {
        s->auth = tw_auth_new(s->zctx, s->sock, s->opt.curve_secret, s->opt.curve_clients, err);
        if (!s->auth)
            return err->code;
    } else if (s->opt.curve_clients && *s->opt.curve_clients) {
        return ed_err_set(err, ED_EINVAL,
                          "--curve-clients needs --curve-secret (this worker's "
                          "key pair, from teacher_worker keygen)");
    } else {
        tw_auth_warn_plaintext(s->opt.bind);
    }
    if (zmq_bind(s->sock, s->opt.bind) != 0)
        return ed_err_set(err, ED_EIO, "cannot bind %s: %s", s->opt.bind,
                          zmq_strerror(zmq_errno()));
    size_t len = sizeof s->endpoint;
    if (zmq_getsockopt(s->sock, ZMQ_LAST_ENDPOINT, s->endpoint, &len) != 0)
        snprintf(s->endpoint, sizeof s->endpoint, "%s", s->opt.bind);

    /* Optional: connect/disconnect logging. A failure here only costs those log lines. */
    if (zmq_socket_monitor(s->sock, S_MONITOR_ENDPOINT,
                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) == 0) {
        s->monitor = zmq_socket(s->zctx, ZMQ_PAIR);
        int zero = 0;
        if (s->monitor && (zmq_setsockopt(s->monitor, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
                           zmq_connect(s->monitor, S_MONITOR_ENDPOINT) != 0)) {
            zmq_close(s->monitor);
            s->monitor = NULL;
        }
    }
    if (!s->monitor)
        ed_log_debug("socket monitor unavailable: connects/disconnects will not be logged");
    return 0;
}

static int s_write_ready_file(const tws_server *s, ed_err *err)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", s->opt.ready_file, (long)getpid()) >=
        sizeof tmp)
        return ed_err_set(err, ED_EINVAL, "--ready-file path is too long");
    FILE *f = fopen(tmp, "w");
    if (!f)
        return ed_err_set(err, ED_EIO, "cannot write ready file %s: %s", tmp, strerror(errno));
    fprintf(f, "endpoint=%s\npid=%ld\nmember=%s\nfingerprint=%s\narch=%s\nmax_batch=%d\n",
            s->endpoint, (long)getpid(), ed_member_name(s->member),
            ed_member_fingerprint(s->member), ed_member_arch(s->member), s->opt.max_batch);
    if (s->metrics)
        fprintf(f, "metrics=%s\n", tw_metrics_address(s->metrics));
    if (fclose(f) != 0 || rename(tmp, s->opt.ready_file) != 0) {
        int e = errno;
        remove(tmp);
        return ed_err_set(err, ED_EIO, "cannot write ready file %s: %s", s->opt.ready_file,
                          strerror(e));
    }
    return 0;
}

static int s_start(tws_server *s, ed_err *err)
{
    /* The metrics listener first: /healthz answers (and /readyz says 503) while the model loads. */
    if (s->opt.metrics_listen && *s->opt.metrics_listen &&
        !(s->metrics = tw_metrics_new(s->opt.metrics_listen, s->opt.queue + s->opt.threads, err)))
        return err->code;
    /* The loaded member only serves as the template of the compute threads' shares. */
    ed_onnx_import_opts io = ed_onnx_import_defaults();
    io.input_scale = s->opt.input_scale;
    io.input_offset = s->opt.input_offset;
    s->member = ed_member_open_with(s->opt.model_path, &io, 1, err);
    if (!s->member)
        return err->code;
    int rc;
    char host[256] = "localhost";
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(s->worker_id, sizeof s->worker_id, "%s:%ld", host, (long)getpid());

    if ((rc = s_open_socket(s, err)) < 0)
        return rc;

    s->n_jobs = s->opt.queue + s->opt.threads;
    s->jobs = calloc((size_t)s->n_jobs, sizeof *s->jobs);
    if (!s->jobs)
        return ed_err_set(err, ED_ENOMEM, "cannot allocate %d jobs", s->n_jobs);
    for (int i = s->n_jobs - 1; i >= 0; i--) {
        s->jobs[i].next = s->free_jobs;
        s->free_jobs = &s->jobs[i];
    }

    if ((rc = uv_loop_init(&s->loop)) < 0)
        return ed_err_set(err, ED_EIO, "cannot create the event loop: %s", uv_strerror(rc));
    s->loop_init = true;
    if ((rc = uv_async_init(&s->loop, &s->async, s_on_async)) < 0)
        return ed_err_set(err, ED_EIO, "uv_async_init: %s", uv_strerror(rc));
    s->async.data = s;
    s->async_init = true;
    static const int signals[2] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        if ((rc = uv_signal_init(&s->loop, &s->sig[i])) < 0)
            return ed_err_set(err, ED_EIO, "uv_signal_init: %s", uv_strerror(rc));
        s->sig[i].data = s;
        s->sig_init[i] = true;
        if ((rc = uv_signal_start(&s->sig[i], s_on_signal, signals[i])) < 0)
            return ed_err_set(err, ED_EIO, "cannot watch signal %d: %s", signals[i],
                              uv_strerror(rc));
    }

    int fd = -1;
    size_t len = sizeof fd;
    if (zmq_getsockopt(s->sock, ZMQ_FD, &fd, &len) != 0)
        return ed_err_set(err, ED_EIO, "ZMQ_FD: %s", zmq_strerror(zmq_errno()));
    if ((rc = uv_poll_init(&s->loop, &s->poll, fd)) < 0)
        return ed_err_set(err, ED_EIO, "cannot poll the socket: %s", uv_strerror(rc));
    s->poll.data = s;
    s->poll_init = true;
    if (s->monitor) {
        int mfd = -1;
        len = sizeof mfd;
        if (zmq_getsockopt(s->monitor, ZMQ_FD, &mfd, &len) == 0 &&
            (rc = uv_poll_init(&s->loop, &s->mon_poll, mfd)) == 0) {
            s->mon_poll.data = s;
            s->mon_poll_init = true;
            rc = uv_poll_start(&s->mon_poll, UV_READABLE, s_on_monitor);
        }
        if (rc < 0)
            ed_log_warn("cannot poll the socket monitor (fd %d): %s", mfd, uv_strerror(rc));
        else
            s_monitor_drain(s); /* ZMQ_FD only signals after ZMQ_EVENTS has been read once */
    }
    if (s->auth) {
        if ((rc = uv_signal_init(&s->loop, &s->hup)) < 0)
            return ed_err_set(err, ED_EIO, "uv_signal_init: %s", uv_strerror(rc));
        s->hup.data = s;
        s->hup_init = true;
        if ((rc = uv_signal_start(&s->hup, s_on_hup, SIGHUP)) < 0)
            return ed_err_set(err, ED_EIO, "cannot watch SIGHUP: %s", uv_strerror(rc));
        int afd = tw_auth_fd(s->auth);
        if (afd < 0 || (rc = uv_poll_init(&s->loop, &s->auth_poll, afd)) < 0)
            return ed_err_set(err, ED_EIO, "cannot poll the ZAP handler (fd %d)", afd);
        s->auth_poll.data = s;
        s->auth_poll_init = true;
        if ((rc = uv_poll_start(&s->auth_poll, UV_READABLE, s_on_auth)) < 0)
            return ed_err_set(err, ED_EIO, "cannot poll the ZAP handler: %s", uv_strerror(rc));
        tw_auth_drain(s->auth); /* handshakes may be waiting; the fd only signals new state */
    }

    tw_compute_config cc = {.member = s->member,
                            .threads = s->opt.threads,
                            .max_batch = s->opt.max_batch,
                            .notify = s_notify,
                            .notify_arg = &s->async};
    s->compute = tw_compute_new(&cc, err);
    if (!s->compute)
        return err->code;

    if (s->opt.ready_file) {
        if ((rc = s_write_ready_file(s, err)) < 0)
            return rc;
        s->ready_written = true;
    }
    tw_metrics_model(s->metrics, ed_member_name(s->member), ed_member_fingerprint(s->member),
                     ed_member_arch(s->member), s->worker_id);
    tw_metrics_ready(s->metrics, true);
    ed_log_set_field("member", ed_member_name(s->member));
    ed_log_set_field("endpoint", s->endpoint);
    tws_poll_resume(s);
    tws_drain(s); /* requests may already be queued, and the fd only signals new state */
    return 0;
}

/* Frees everything s_start made, in reverse; safe after a partial start. */
static void s_stop(tws_server *s)
{
    if (s->loop_init) {
        s_close_handles(s);
        uv_run(&s->loop, UV_RUN_DEFAULT); /* runs the close callbacks */
    }
    tw_compute_destroy(&s->compute); /* joins; the queue is empty on a clean stop */
    free(s->jobs);                   /* the loop only ends with every job back in the pool */
    s->jobs = NULL;
    if (s->monitor) {
        zmq_socket_monitor(s->sock, NULL, 0);
        zmq_close(s->monitor);
    }
    if (s->sock)
        zmq_close(s->sock);
    tw_auth_destroy(&s->auth); /* its socket must close before the context terminates */
    if (s->zctx)
        zmq_ctx_term(s->zctx);
    if (s->loop_init && uv_loop_close(&s->loop) != 0)
        ed_log_warn("event loop closed with handles still open");
    if (s->ready_written)
        remove(s->opt.ready_file);
    tw_metrics_destroy(&s->metrics);
    ed_member_destroy(&s->member);
}

/* ---------------------------------------------------------------------------------------------- */
/* Entry point                                                                                    */

/* tcp://HOST:PORT with PORT 1..65535 or *, or ipc://PATH. ZeroMQ itself would silently wrap a
 * port over 65535 into some other port. */
static int s_check_endpoint(const char *ep, ed_err *err)
{
    if (!strncmp(ep, "ipc://", 6) && ep[6])
        return 0;
    if (strncmp(ep, "tcp://", 6) != 0)
        return ed_err_set(err, ED_EINVAL, "--bind '%s': expected tcp://HOST:PORT or ipc://PATH",
                          ep);
    const char *colon = strrchr(ep + 6, ':');
    if (!colon || colon == ep + 6)
        return ed_err_set(err, ED_EINVAL, "--bind '%s': expected tcp://HOST:PORT", ep);
    const char *port = colon + 1;
    if (!strcmp(port, "*"))
        return 0;
    char *end = NULL;
    errno = 0;
    long v = strtol(port, &end, 10);
    if (errno || end == port || *end || v < 1 || v > 65535)
        return ed_err_set(err, ED_EINVAL,
                          "--bind '%s': port '%s' is not in 1..65535 (use * for any free port)", ep,
                          port);
    return 0;
}

static int s_check_options(const tws_options *o, ed_err *err)
{
    int rc = s_check_endpoint(o->bind, err);
    if (rc < 0)
        return rc;
    if (o->max_batch < 1 || o->max_batch > S_MAX_BATCH)
        return ed_err_set(err, ED_EINVAL, "--max-batch %d: must be in 1..%d", o->max_batch,
                          S_MAX_BATCH);
    if (o->threads < 1 || o->threads > S_MAX_THREADS)
        return ed_err_set(err, ED_EINVAL, "--threads %d: must be in 1..%d", o->threads,
                          S_MAX_THREADS);
    if (o->queue < 1 || o->queue > S_MAX_QUEUE)
        return ed_err_set(err, ED_EINVAL, "--queue %d: must be in 1..%d", o->queue, S_MAX_QUEUE);
    if (o->blas_threads < 0)
        return ed_err_set(err, ED_EINVAL, "--blas-threads %d: must be >= 0", o->blas_threads);
    return 0;
}

int tw_serve_main(int argc, char **argv)
{
    tws_server *s = calloc(1, sizeof *s);
    if (!s) {
        ed_cli_reportf("teacher_worker serve", "out of memory");
        return 1;
    }
    s->opt = (tws_options){.bind = "tcp://127.0.0.1:5555",
                           .max_batch = 1024,
                           .threads = 1,
                           .queue = 16,
                           .blas_threads = 0,
                           .input_scale = NAN,
                           .input_offset = NAN};
    tws_options *o = &s->opt;
    const ed_cli_opt opts[] = {
        {"model", ED_CLI_STR, &o->model_path, "FILE",
         "model file to serve: an edistill model (safetensors) or an ONNX model (*.onnx)",
         "EDISTILL_MODEL", true},
        {"input-scale", ED_CLI_FLOAT, &o->input_scale, "X",
         "ONNX models: raw pixel -> model input is x * X + OFFSET (nan = 1/255, or 1 for an "
         "edistill-exported model); edistill model files carry their own",
         NULL, false},
        {"input-offset", ED_CLI_FLOAT, &o->input_offset, "OFFSET",
         "ONNX models: see --input-scale (nan = 0)", NULL, false},
        {"bind", ED_CLI_STR, &o->bind, "ENDPOINT",
         "ZeroMQ endpoint to bind (tcp://HOST:PORT, "
         "port * = any free one, or ipc://PATH)",
         "EDISTILL_BIND", false},
        {"max-batch", ED_CLI_INT, &o->max_batch, "N", "largest batch accepted in one request", NULL,
         false},
        {"threads", ED_CLI_INT, &o->threads, "N", "compute threads", NULL, false},
        {"queue", ED_CLI_INT, &o->queue, "N",
         "pending requests queued before the socket stops being read", NULL, false},
        {"blas-threads", ED_CLI_INT, &o->blas_threads, "N",
         "OpenBLAS threads per call (0 = leave OpenBLAS's setting)", NULL, false},
        {"curve-secret", ED_CLI_STR, &o->curve_secret, "FILE",
         "CurveZMQ: this worker's secret key file (teacher_worker keygen; mode 0600). Only "
         "clients listed in --curve-clients are served; traffic is encrypted",
         "EDISTILL_CURVE_SECRET", false},
        {"curve-clients", ED_CLI_STR, &o->curve_clients, "DIR|FILE",
         "authorized client public keys: a directory of *.pub files or one file of keys "
         "(read at start and again on SIGHUP)",
         "EDISTILL_CURVE_CLIENTS", false},
        {"metrics-listen", ED_CLI_STR, &o->metrics_listen, "HOST:PORT", ED_HTTP_LISTEN_HELP,
         ED_HTTP_LISTEN_ENV, false},
        {"ready-file", ED_CLI_STR, &o->ready_file, "FILE",
         "written once the model is loaded and the socket bound (endpoint=, pid=, ...); removed "
         "on exit",
         NULL, false},
    };
    const ed_cli_spec spec = {
        "teacher_worker serve --model FILE [options]",
        "Serve one ensemble member's logits over ZeroMQ (ROUTER socket, edistill.proto). Stops "
        "cleanly on SIGINT/SIGTERM after answering the requests in flight.",
        opts, (int)(sizeof opts / sizeof opts[0]),
        "example:\n  teacher_worker serve --model member-0.safetensors --bind tcp://0.0.0.0:5555 "
        "--threads 2"};

    ed_err err = {0};
    int rc = ed_cli_parse(&spec, argc, argv, &err);
    if (rc == 0)
        rc = s_check_options(o, &err);
    if (rc != 0) {
        free(s);
        if (rc > 0)
            return 0;
        ed_cli_report("teacher_worker serve", &err);
        return 2;
    }
    ed_blas_set_threads(o->blas_threads); /* 0: leave OpenBLAS's own setting */

    rc = s_start(s, &err);
    if (rc < 0) {
        err.code = rc;
        ed_cli_report("teacher_worker serve", &err);
        s_stop(s);
        free(s);
        return 1;
    }
    ed_log_info("serving member '%s' (arch %s, %s) on %s: max batch %d, %d compute thread(s), "
                "queue %d, %s, worker %s",
                ed_member_name(s->member), ed_member_arch(s->member),
                ed_member_fingerprint(s->member), s->endpoint, o->max_batch, o->threads, o->queue,
                ed_blas_describe(), s->worker_id);
    if (s->metrics)
        ed_log_info("metrics on http://%s/metrics (/healthz, /readyz)",
                    tw_metrics_address(s->metrics));
    uv_run(&s->loop, UV_RUN_DEFAULT);
    ed_log_info("stopped: %" PRIu64 " replies sent (%" PRIu64 " errors)", s->n_replies,
                s->n_errors);
    if (s->auth) {
        unsigned long admitted, refused;
        tw_auth_counts(s->auth, &admitted, &refused);
        ed_log_info("CURVE: %lu client handshake(s) admitted, %lu refused", admitted, refused);
    }
    s_stop(s);
    free(s);
    return 0;
}
