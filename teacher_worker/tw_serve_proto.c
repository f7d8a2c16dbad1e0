/*
 * tw_serve_proto: the protocol side of `teacher_worker serve` (see tw_serve.c for the whole): read
 * the ROUTER socket until it is empty (its ZMQ_FD is edge-triggered), decode and check each
 * request, answer info requests and bad requests at once, hand logit requests to the compute pool,
 * and send replies; client mistakes are logged at most once a second.
 */
#include "tw_serve_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ed_log.h"
#include "ed_wire.h"

#define S_DRAIN_BUDGET 256 /* messages handled per drain before yielding to the loop */

/* ---------------------------------------------------------------------------------------------- */
/* Small helpers                                                                                  */

static bool s_ratelimit_ok(tws_server *s, tws_ratelimit *rl, unsigned long *suppressed)
{
    uint64_t now = uv_now(&s->loop);
    if (rl->used && now - rl->last_ms < 1000) {
        rl->suppressed++;
        return false;
    }
    rl->used = true;
    rl->last_ms = now;
    *suppressed = rl->suppressed;
    rl->suppressed = 0;
    return true;
}

#define S_WARN_LIMITED(s, rl, fmt, ...)                                                            \
    do {                                                                                           \
        unsigned long s_supp_;                                                                     \
        if (s_ratelimit_ok((s), (rl), &s_supp_)) {                                                 \
            if (s_supp_)                                                                           \
                ed_log_warn(fmt " (%lu similar suppressed)", __VA_ARGS__, s_supp_);                \
            else                                                                                   \
                ed_log_warn(fmt, __VA_ARGS__);                                                     \
        }                                                                                          \
    } while (0)

/* Sends [identity][payload] without blocking; both messages are consumed (closed) either way. */
void tws_send_pair(tws_server *s, zmq_msg_t *identity, zmq_msg_t *payload)
{
    size_t bytes = zmq_msg_size(payload);
    if (zmq_msg_send(identity, s->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_msg_send(payload, s->sock, ZMQ_DONTWAIT) < 0) {
        int e = zmq_errno();
        S_WARN_LIMITED(s, &s->rl_send, "cannot send a reply: %s", zmq_strerror(e));
    } else {
        s->n_replies++;
        tw_metrics_sent(s->metrics, bytes);
    }
    zmq_msg_close(identity);
    zmq_msg_close(payload);
}

/* Packs msg and sends it to identity (consumed). */
static void s_send_msg(tws_server *s, zmq_msg_t *identity, const ed_msg *msg)
{
    size_t n = ed_wire_packed_size(msg);
    zmq_msg_t out;
    if (n == 0 || zmq_msg_init_size(&out, n) != 0) {
        ed_log_error("cannot build a %s reply of %zu bytes", ed_msg_kind_name(msg->kind), n);
        zmq_msg_close(identity);
        return;
    }
    ed_wire_pack(msg, zmq_msg_data(&out));
    tws_send_pair(s, identity, &out);
}

void tws_send_error(tws_server *s, zmq_msg_t *identity, uint64_t request_id, int code,
                    const char *message)
{
    ed_msg m = {.kind = ED_MSG_ERROR};
    m.u.error = (ed_error_reply){.request_id = request_id, .code = code, .message = message};
    s->n_errors++;
    tw_metrics_error(s->metrics, code);
    s_send_msg(s, identity, &m);
}

static void s_send_info(tws_server *s, zmq_msg_t *identity, uint64_t request_id)
{
    ed_msg m = {.kind = ED_MSG_MEMBER_INFO};
    const ed_shape in = ed_member_input_shape(s->member);
    m.u.info = (ed_member_info){.request_id = request_id,
                                .protocol_version = ED_PROTOCOL_VERSION,
                                .member = ed_member_name(s->member),
                                .fingerprint = ed_member_fingerprint(s->member),
                                .input_dim = (uint32_t)ed_member_input_dim(s->member),
                                .classes = (uint32_t)ed_member_classes(s->member),
                                .arch = ed_member_arch(s->member),
                                .ready = !s->stopping,
                                .worker_id = s->worker_id,
                                .max_batch = (uint32_t)s->opt.max_batch,
                                .input_shape = {(uint32_t)in.c, (uint32_t)in.h, (uint32_t)in.w}};
    s_send_msg(s, identity, &m);
}

/* ---------------------------------------------------------------------------------------------- */
/* Reading requests                                                                               */

static void s_poll_pause(tws_server *s)
{
    if (s->poll_active) {
        uv_poll_stop(&s->poll);
        s->poll_active = false;
    }
}

static void s_on_poll(uv_poll_t *h, int status, int events);

void tws_poll_resume(tws_server *s)
{
    if (!s->poll_active && s->poll_init && !s->closing) {
        uv_poll_start(&s->poll, UV_READABLE, s_on_poll);
        s->poll_active = true;
    }
}

/* Can another request be read now? Logit requests need a job from the pool, unless stopping (then
 * they are refused without one). */
bool tws_can_read(const tws_server *s)
{
    return !s->closing && (s->stopping || s->free_jobs != NULL);
}

/* Handles one decoded-or-not payload from identity (consumed). */
static void s_handle(tws_server *s, zmq_msg_t *identity, zmq_msg_t *payload)
{
    ed_msg m;
    ed_err err = {0};
    tw_metrics_received(s->metrics, zmq_msg_size(payload));
    int rc = ed_wire_decode(zmq_msg_data(payload), zmq_msg_size(payload), &m, &err);
    zmq_msg_close(payload); /* decode copied what it keeps */
    tw_metrics_request(s->metrics, rc < 0                           ? TW_REQ_INVALID
                                   : m.kind == ED_MSG_INFO_REQUEST  ? TW_REQ_INFO
                                   : m.kind == ED_MSG_LOGIT_REQUEST ? TW_REQ_LOGIT
                                                                    : TW_REQ_INVALID);
    if (rc < 0) {
        S_WARN_LIMITED(s, &s->rl_client, "bad request: %s", err.msg);
        tws_send_error(s, identity, m.u.request.request_id, rc, err.msg);
        return;
    }

    char msg[512];
    switch (m.kind) {
    case ED_MSG_INFO_REQUEST:
        s_send_info(s, identity, m.u.info_request_id);
        ed_wire_msg_clear(&m);
        return;
    case ED_MSG_LOGIT_REQUEST: {
        const ed_logit_request *r = &m.u.request;
        int code = 0;
        if (s->stopping) {
            code = ED_ESTOPPED;
            snprintf(msg, sizeof msg, "worker %s is shutting down", s->worker_id);
        } else if (r->dim != (uint32_t)ed_member_input_dim(s->member)) {
            code = ED_ESHAPE;
            const ed_shape in = ed_member_input_shape(s->member);
            snprintf(msg, sizeof msg,
                     "input dim %" PRIu32 " does not match model input %d (%dx%dx%d per sample)",
                     r->dim, ed_member_input_dim(s->member), in.c, in.h, in.w);
        } else if (r->batch > (uint32_t)s->opt.max_batch) {
            code = ED_ETOOBIG;
            snprintf(msg, sizeof msg, "batch %" PRIu32 " exceeds this worker's max batch %d",
                     r->batch, s->opt.max_batch);
        }
        if (code) {
            if (code != ED_ESTOPPED)
                S_WARN_LIMITED(s, &s->rl_client, "bad request %" PRIu64 ": %s", r->request_id, msg);
            tws_send_error(s, identity, r->request_id, code, msg);
            ed_wire_msg_clear(&m);
            return;
        }
        tw_job *job = s->free_jobs; /* non-NULL: tws_can_read checked it */
        s->free_jobs = job->next;
        s->in_flight++;
        zmq_msg_init(&job->identity);
        zmq_msg_move(&job->identity, identity);
        zmq_msg_close(identity);
        job->request_id = r->request_id;
        job->req = m; /* ownership of the decoded protobuf moves to the job */
        tw_metrics_job_start(s->metrics, (int)(job - s->jobs), r->batch, s->in_flight);
        tw_compute_submit(s->compute, job);
        return;
    }
    default:
        snprintf(msg, sizeof msg,
                 "unexpected %s message: a worker accepts info_request and "
                 "logit_request",
                 ed_msg_kind_name(m.kind));
        S_WARN_LIMITED(s, &s->rl_client, "bad request: %s", msg);
        tws_send_error(s, identity, m.u.request.request_id, ED_EFORMAT, msg);
        ed_wire_msg_clear(&m);
        return;
    }
}

/* Receives one multipart message. Returns 1 if one was handled, 0 if none was waiting, -1 on a
 * socket error. */
static int s_recv_one(tws_server *s)
{
    zmq_msg_t frames[2];
    zmq_msg_init(&frames[0]);
    zmq_msg_init(&frames[1]);
    if (zmq_msg_recv(&frames[0], s->sock, ZMQ_DONTWAIT) < 0) {
        int e = zmq_errno();
        zmq_msg_close(&frames[0]);
        zmq_msg_close(&frames[1]);
        if (e == EAGAIN || e == EINTR)
            return 0;
        ed_log_error("receive on %s failed: %s", s->endpoint, zmq_strerror(e));
        return -1;
    }
    /* The parts of a multipart message arrive together, so the rest is already here. */
    int count = 1;
    bool more = zmq_msg_more(&frames[0]);
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, s->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            break;
        }
        more = zmq_msg_more(&part);
        if (count == 1)
            zmq_msg_move(&frames[1], &part); /* the payload; part becomes empty */
        count++;
        zmq_msg_close(&part);
    }
    if (count != 2) {
        char why[160];
        snprintf(why, sizeof why,
                 "expected one frame per request (an Envelope after the routing id), got %d",
                 count - 1);
        S_WARN_LIMITED(s, &s->rl_client, "dropping a message of %d frames: %s", count, why);
        tw_metrics_request(s->metrics, TW_REQ_INVALID);
        zmq_msg_close(&frames[1]);
        tws_send_error(s, &frames[0], 0, ED_EFORMAT, why);
        return 1;
    }
    s_handle(s, &frames[0], &frames[1]);
    return 1;
}

/* Edge-triggered ZMQ_FD: receive until ZMQ_EVENTS has no POLLIN, the pool is empty or the budget
 * is spent (then the async handle brings us back on the next loop iteration). */
void tws_drain(tws_server *s)
{
    for (int handled = 0;;) {
        if (s->closing)
            return;
        if (!tws_can_read(s)) {
            s_poll_pause(s); /* backpressure: resumed when a job comes back */
            return;
        }
        int events = 0;
        size_t len = sizeof events;
        if (zmq_getsockopt(s->sock, ZMQ_EVENTS, &events, &len) != 0) {
            ed_log_error("ZMQ_EVENTS on %s failed: %s", s->endpoint, zmq_strerror(zmq_errno()));
            return;
        }
        if (!(events & ZMQ_POLLIN))
            return;
        if (handled == S_DRAIN_BUDGET) {
            uv_async_send(&s->async);
            return;
        }
        if (s_recv_one(s) <= 0)
            return;
        handled++;
    }
}

static void s_on_poll(uv_poll_t *h, int status, int events)
{
    (void)events;
    tws_server *s = h->data;
    if (status < 0)
        ed_log_error("poll on %s: %s", s->endpoint, uv_strerror(status));
    tws_drain(s);
}
