/*
 * ed_wire: edistill.proto Envelopes <-> plain C messages (see ed_wire.h).
 *
 * Packing builds the protobuf-c structs on the stack, pointing at the caller's data (no copies, no
 * allocation). Decoding unpacks with protobuf-c's default allocator, then validates everything a
 * peer could get wrong before any pointer is handed out: protocol version, body kind, tensor dtype,
 * rank, non-empty dims, and that the shape's byte count (computed without overflow) equals the data
 * length. On any failure the unpacked protobuf is freed at once and only kind + request_id survive,
 * so the caller can still address an error reply.
 */
#include "ed_wire.h"

#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "edistill.pb-c.h"

static const char *const s_kind_names[ED_MSG_KIND_COUNT] = {
    [ED_MSG_NONE] = "none",
    [ED_MSG_INFO_REQUEST] = "info_request",
    [ED_MSG_MEMBER_INFO] = "member_info",
    [ED_MSG_LOGIT_REQUEST] = "logit_request",
    [ED_MSG_LOGIT_REPLY] = "logit_reply",
    [ED_MSG_ERROR] = "error",
};

const char *ed_msg_kind_name(ed_msg_kind kind)
{
    if ((int)kind < 0 || kind >= ED_MSG_KIND_COUNT)
        return "unknown";
    return s_kind_names[kind];
}

/* Element sizes and names, kept local so the codec depends on nothing but ed_error. */
static size_t s_elem_size(ed_dtype dtype)
{
    return dtype == ED_DTYPE_F32 ? sizeof(float) : 1;
}

static const char *s_dtype_name(ed_dtype dtype)
{
    return dtype == ED_DTYPE_F32 ? "f32" : "u8";
}

static Edistill__DType s_dtype_to_wire(ed_dtype dtype)
{
    switch (dtype) {
    case ED_DTYPE_U8:
        return EDISTILL__DTYPE__DTYPE_U8;
    case ED_DTYPE_F32:
        return EDISTILL__DTYPE__DTYPE_F32;
    default:
        return EDISTILL__DTYPE__DTYPE_UNSPECIFIED;
    }
}

/* a * b * c into *out; false on size_t overflow. */
static bool s_mul3(size_t a, size_t b, size_t c, size_t *out)
{
    if (a && b > SIZE_MAX / a)
        return false;
    size_t ab = a * b;
    if (ab && c > SIZE_MAX / ab)
        return false;
    *out = ab * c;
    return true;
}

static char *s_str(const char *s)
{
    return (char *)(s ? s : "");
}

/* ---------------------------------------------------------------------------------------------- */
/* Packing                                                                                        */

/* Everything one envelope needs, on the caller's stack. */
typedef struct {
    Edistill__Envelope env;
    Edistill__InfoRequest info_request;
    Edistill__MemberInfo member_info;
    Edistill__LogitRequest logit_request;
    Edistill__LogitReply logit_reply;
    Edistill__ErrorReply error;
    Edistill__Tensor tensor;
    uint32_t shape[2];
} s_scratch;

static void s_tensor(s_scratch *s, ed_dtype dtype, uint32_t rows, uint32_t cols, const void *data)
{
    edistill__tensor__init(&s->tensor);
    s->tensor.dtype = s_dtype_to_wire(dtype);
    s->shape[0] = rows;
    s->shape[1] = cols;
    s->tensor.n_shape = 2;
    s->tensor.shape = s->shape;
    size_t bytes = 0;
    if (!s_mul3(rows, cols, s_elem_size(dtype), &bytes) || !data)
        bytes = 0; /* cannot exist in memory; the receiver rejects the mismatch */
    s->tensor.data.len = bytes;
    s->tensor.data.data = (uint8_t *)data;
}

/* Fills s->env from msg; false for a kind that cannot be sent. */
static bool s_build(const ed_msg *msg, s_scratch *s)
{
    edistill__envelope__init(&s->env);
    s->env.protocol_version = ED_PROTOCOL_VERSION;
    switch (msg->kind) {
    case ED_MSG_INFO_REQUEST:
        edistill__info_request__init(&s->info_request);
        s->info_request.request_id = msg->u.info_request_id;
        s->env.body_case = EDISTILL__ENVELOPE__BODY_INFO_REQUEST;
        s->env.info_request = &s->info_request;
        return true;
    case ED_MSG_MEMBER_INFO: {
        const ed_member_info *i = &msg->u.info;
        Edistill__MemberInfo *m = &s->member_info;
        edistill__member_info__init(m);
        m->request_id = i->request_id;
        m->protocol_version = ED_PROTOCOL_VERSION;
        m->member = s_str(i->member);
        m->fingerprint = s_str(i->fingerprint);
        m->input_dim = i->input_dim;
        m->classes = i->classes;
        m->arch = s_str(i->arch);
        m->ready = i->ready;
        m->worker_id = s_str(i->worker_id);
        m->max_batch = i->max_batch;
        if (i->input_shape[0]) {
            m->n_input_shape = 3;
            m->input_shape = (uint32_t *)i->input_shape;
        }
        s->env.body_case = EDISTILL__ENVELOPE__BODY_MEMBER_INFO;
        s->env.member_info = m;
        return true;
    }
    case ED_MSG_LOGIT_REQUEST: {
        const ed_logit_request *r = &msg->u.request;
        edistill__logit_request__init(&s->logit_request);
        s->logit_request.request_id = r->request_id;
        s_tensor(s, r->dtype, r->batch, r->dim, r->data);
        s->logit_request.input = &s->tensor;
        s->env.body_case = EDISTILL__ENVELOPE__BODY_LOGIT_REQUEST;
        s->env.logit_request = &s->logit_request;
        return true;
    }
    case ED_MSG_LOGIT_REPLY: {
        const ed_logit_reply *r = &msg->u.reply;
        Edistill__LogitReply *p = &s->logit_reply;
        edistill__logit_reply__init(p);
        p->request_id = r->request_id;
        s_tensor(s, ED_DTYPE_F32, r->batch, r->classes, r->logits);
        p->logits = &s->tensor;
        p->member = s_str(r->member);
        p->fingerprint = s_str(r->fingerprint);
        p->compute_us = r->compute_us;
        s->env.body_case = EDISTILL__ENVELOPE__BODY_LOGIT_REPLY;
        s->env.logit_reply = p;
        return true;
    }
    case ED_MSG_ERROR: {
        const ed_error_reply *e = &msg->u.error;
        edistill__error_reply__init(&s->error);
        s->error.request_id = e->request_id;
        s->error.code = e->code;
        s->error.message = s_str(e->message);
        s->env.body_case = EDISTILL__ENVELOPE__BODY_ERROR;
        s->env.error = &s->error;
        return true;
    }
    default:
        return false;
    }
}

size_t ed_wire_packed_size(const ed_msg *msg)
{
    s_scratch s;
    if (!msg || !s_build(msg, &s))
        return 0;
    return edistill__envelope__get_packed_size(&s.env);
}

size_t ed_wire_pack(const ed_msg *msg, uint8_t *out)
{
    s_scratch s;
    if (!msg || !out || !s_build(msg, &s))
        return 0;
    return edistill__envelope__pack(&s.env, out);
}

/* ---------------------------------------------------------------------------------------------- */
/* Decoding                                                                                       */

/* Validates a [rows, cols] tensor; on success fills the outputs. `what` names it in messages. */
static int s_check_tensor(const Edistill__Tensor *t, const char *what, ed_dtype *dtype,
                          uint32_t *rows, uint32_t *cols, ed_err *err)
{
    if (!t)
        return ed_err_set(err, ED_EFORMAT, "%s: tensor missing", what);
    switch ((int)t->dtype) {
    case EDISTILL__DTYPE__DTYPE_U8:
        *dtype = ED_DTYPE_U8;
        break;
    case EDISTILL__DTYPE__DTYPE_F32:
        *dtype = ED_DTYPE_F32;
        break;
    case EDISTILL__DTYPE__DTYPE_UNSPECIFIED:
        return ed_err_set(err, ED_EFORMAT, "%s: tensor dtype unspecified", what);
    default:
        return ed_err_set(err, ED_EFORMAT, "%s: unknown tensor dtype %d", what, (int)t->dtype);
    }
    if (t->n_shape != 2)
        return ed_err_set(err, ED_EFORMAT, "%s: tensor has %zu dims, expected 2 [batch, dim]", what,
                          t->n_shape);
    uint32_t b = t->shape[0], d = t->shape[1];
    if (b < 1 || d < 1)
        return ed_err_set(err, ED_EFORMAT,
                          "%s: tensor shape [%" PRIu32 ", %" PRIu32
                          "] is empty (both dims must be >= 1)",
                          what, b, d);
    size_t need = 0;
    if (!s_mul3(b, d, s_elem_size(*dtype), &need))
        return ed_err_set(err, ED_EFORMAT,
                          "%s: tensor shape [%" PRIu32 ", %" PRIu32
                          "] of %s overflows, got %zu bytes",
                          what, b, d, s_dtype_name(*dtype), t->data.len);
    if (need != t->data.len)
        return ed_err_set(err, ED_EFORMAT,
                          "%s: tensor shape [%" PRIu32 ", %" PRIu32
                          "] of %s needs %zu bytes, got %zu",
                          what, b, d, s_dtype_name(*dtype), need, t->data.len);
    *rows = b;
    *cols = d;
    return 0;
}

/* Body -> msg, with validation. env is known to have a body and the right version. */
/* MemberInfo.input_shape: absent (older worker) reads as (input_dim, 1, 1); else exactly three
 * positive dims whose product is input_dim. */
static int s_input_shape(const Edistill__MemberInfo *m, ed_member_info *i, ed_err *err)
{
    if (m->n_input_shape == 0) {
        i->input_shape[0] = m->input_dim;
        i->input_shape[1] = i->input_shape[2] = 1;
        return 0;
    }
    if (m->n_input_shape != 3)
        return ed_err_set(err, ED_EFORMAT,
                          "MemberInfo.input_shape has %zu dims, expected 3 [C, H, W]",
                          m->n_input_shape);
    uint64_t prod = 1;
    for (int k = 0; k < 3; k++) {
        if (m->input_shape[k] < 1)
            return ed_err_set(err, ED_EFORMAT, "MemberInfo.input_shape[%d] is 0", k);
        prod *= m->input_shape[k];
        i->input_shape[k] = m->input_shape[k];
    }
    if (prod != m->input_dim)
        return ed_err_set(err, ED_EFORMAT,
                          "MemberInfo.input_shape [%" PRIu32 ", %" PRIu32 ", %" PRIu32
                          "] does not multiply to input_dim %" PRIu32,
                          m->input_shape[0], m->input_shape[1], m->input_shape[2], m->input_dim);
    return 0;
}

static int s_convert(const Edistill__Envelope *env, ed_msg *out, ed_err *err)
{
    switch (env->body_case) {
    case EDISTILL__ENVELOPE__BODY_INFO_REQUEST:
        out->u.info_request_id = env->info_request->request_id;
        return 0;
    case EDISTILL__ENVELOPE__BODY_MEMBER_INFO: {
        const Edistill__MemberInfo *m = env->member_info;
        ed_member_info *i = &out->u.info;
        i->request_id = m->request_id;
        i->protocol_version = m->protocol_version;
        i->member = m->member;
        i->fingerprint = m->fingerprint;
        i->input_dim = m->input_dim;
        i->classes = m->classes;
        i->arch = m->arch;
        i->ready = m->ready;
        i->worker_id = m->worker_id;
        i->max_batch = m->max_batch;
        return s_input_shape(m, i, err);
    }
    case EDISTILL__ENVELOPE__BODY_LOGIT_REQUEST: {
        const Edistill__LogitRequest *r = env->logit_request;
        ed_logit_request *q = &out->u.request;
        q->request_id = r->request_id;
        int rc =
            s_check_tensor(r->input, "logit_request input", &q->dtype, &q->batch, &q->dim, err);
        if (rc < 0)
            return rc;
        q->data = r->input->data.data;
        return 0;
    }
    case EDISTILL__ENVELOPE__BODY_LOGIT_REPLY: {
        const Edistill__LogitReply *r = env->logit_reply;
        ed_logit_reply *p = &out->u.reply;
        p->request_id = r->request_id;
        ed_dtype dt = ED_DTYPE_F32;
        int rc = s_check_tensor(r->logits, "logit_reply logits", &dt, &p->batch, &p->classes, err);
        if (rc < 0)
            return rc;
        if (dt != ED_DTYPE_F32)
            return ed_err_set(err, ED_EFORMAT, "logit_reply logits: dtype %s, expected f32",
                              s_dtype_name(dt));
        p->logits = (const float *)(const void *)r->logits->data.data;
        p->member = r->member;
        p->fingerprint = r->fingerprint;
        p->compute_us = r->compute_us;
        return 0;
    }
    case EDISTILL__ENVELOPE__BODY_ERROR: {
        const Edistill__ErrorReply *e = env->error;
        out->u.error.request_id = e->request_id;
        out->u.error.code = e->code;
        out->u.error.message = e->message;
        return 0;
    }
    default:
        return ed_err_set(err, ED_EFORMAT, "envelope has no body");
    }
}

static ed_msg_kind s_kind_of(Edistill__Envelope__BodyCase c)
{
    switch (c) {
    case EDISTILL__ENVELOPE__BODY_INFO_REQUEST:
        return ED_MSG_INFO_REQUEST;
    case EDISTILL__ENVELOPE__BODY_MEMBER_INFO:
        return ED_MSG_MEMBER_INFO;
    case EDISTILL__ENVELOPE__BODY_LOGIT_REQUEST:
        return ED_MSG_LOGIT_REQUEST;
    case EDISTILL__ENVELOPE__BODY_LOGIT_REPLY:
        return ED_MSG_LOGIT_REPLY;
    case EDISTILL__ENVELOPE__BODY_ERROR:
        return ED_MSG_ERROR;
    default:
        return ED_MSG_NONE;
    }
}

/* request_id of whichever body is set (0 if none); every body carries one as field 1. */
static uint64_t s_request_id(const Edistill__Envelope *env)
{
    switch (env->body_case) {
    case EDISTILL__ENVELOPE__BODY_INFO_REQUEST:
        return env->info_request->request_id;
    case EDISTILL__ENVELOPE__BODY_MEMBER_INFO:
        return env->member_info->request_id;
    case EDISTILL__ENVELOPE__BODY_LOGIT_REQUEST:
        return env->logit_request->request_id;
    case EDISTILL__ENVELOPE__BODY_LOGIT_REPLY:
        return env->logit_reply->request_id;
    case EDISTILL__ENVELOPE__BODY_ERROR:
        return env->error->request_id;
    default:
        return 0;
    }
}

int ed_wire_decode(const void *frame, size_t len, ed_msg *out, ed_err *err)
{
    if (!out)
        return ed_err_set(err, ED_EINVAL, "ed_wire_decode: no output message");
    memset(out, 0, sizeof *out);
    if (len > ED_WIRE_MAX_MESSAGE)
        return ed_err_set(err, ED_ETOOBIG, "frame of %zu bytes exceeds the limit of %u bytes", len,
                          (unsigned)ED_WIRE_MAX_MESSAGE);
    if (len == 0)
        return ed_err_set(err, ED_EFORMAT, "empty frame (0 bytes)");
    if (!frame)
        return ed_err_set(err, ED_EINVAL, "ed_wire_decode: NULL frame of %zu bytes", len);

    Edistill__Envelope *env = edistill__envelope__unpack(NULL, len, frame);
    if (!env)
        return ed_err_set(err, ED_EFORMAT, "malformed protobuf frame (%zu bytes)", len);

    out->kind = s_kind_of(env->body_case);
    uint64_t id = s_request_id(env);
    int rc;
    if (env->protocol_version != ED_PROTOCOL_VERSION) {
        rc = ed_err_set(err, ED_EVERSION,
                        "protocol version %" PRIu32 " from the peer, this build speaks version %d",
                        env->protocol_version, ED_PROTOCOL_VERSION);
    } else {
        rc = s_convert(env, out, err);
    }
    if (rc < 0) {
        ed_msg_kind kind = out->kind;
        edistill__envelope__free_unpacked(env, NULL);
        memset(out, 0, sizeof *out);
        out->kind = kind;
        out->u.request.request_id = id; /* every union member starts with the request id */
        return rc;
    }
    out->owned = env;
    return 0;
}

void ed_wire_msg_clear(ed_msg *msg)
{
    if (!msg)
        return;
    if (msg->owned)
        edistill__envelope__free_unpacked(msg->owned, NULL);
    memset(msg, 0, sizeof *msg);
}
