/*
 * fuzz_wire_decode: ed_wire_decode on arbitrary bytes (what a worker or trainer gets off a socket).
 *
 * Checks, beyond "no crash, no sanitizer report": a refused frame leaves no owned memory and an
 * error message; an accepted frame has a known kind, a tensor whose bytes match its shape, and
 * survives a round trip: pack(decode(x)) decodes again to the same message, and packing that gives
 * the same bytes (pack is a fixed point after one decode). Any violation aborts, which libFuzzer
 * records as a crash.
 */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_wire.h"

static void s_fail(const char *what)
{
    fprintf(stderr, "fuzz_wire_decode: invariant violated: %s\n", what);
    abort();
}

static void s_same_str(const char *a, const char *b, const char *what)
{
    if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
        s_fail(what);
}

/* Bytes of a decoded [rows, cols] tensor of element size es; touches every byte (ASan checks). */
static size_t s_tensor_bytes(uint32_t rows, uint32_t cols, size_t es, const void *data)
{
    if (rows < 1 || cols < 1 || !data)
        s_fail("accepted tensor with an empty shape or no data");
    size_t n = (size_t)rows * cols * es;
    volatile unsigned sum = 0;
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        sum += p[i];
    (void)sum;
    return n;
}

static void s_compare(const ed_msg *a, const ed_msg *b)
{
    if (a->kind != b->kind)
        s_fail("kind changed in the round trip");
    switch (a->kind) {
    case ED_MSG_INFO_REQUEST:
        if (a->u.info_request_id != b->u.info_request_id)
            s_fail("info request id changed");
        break;
    case ED_MSG_MEMBER_INFO: {
        const ed_member_info *x = &a->u.info, *y = &b->u.info;
        if (x->request_id != y->request_id || x->input_dim != y->input_dim ||
            x->classes != y->classes || x->ready != y->ready || x->max_batch != y->max_batch)
            s_fail("member info numbers changed");
        if (y->protocol_version != ED_PROTOCOL_VERSION)
            s_fail("packed member info does not carry this build's protocol version");
        s_same_str(x->member, y->member, "member info member changed");
        s_same_str(x->fingerprint, y->fingerprint, "member info fingerprint changed");
        s_same_str(x->arch, y->arch, "member info arch changed");
        s_same_str(x->worker_id, y->worker_id, "member info worker_id changed");
        break;
    }
    case ED_MSG_LOGIT_REQUEST: {
        const ed_logit_request *x = &a->u.request, *y = &b->u.request;
        if (x->request_id != y->request_id || x->dtype != y->dtype || x->batch != y->batch ||
            x->dim != y->dim)
            s_fail("logit request header changed");
        size_t n = s_tensor_bytes(x->batch, x->dim, ed_dtype_size(x->dtype), x->data);
        if (memcmp(x->data, y->data, n) != 0)
            s_fail("logit request data changed");
        break;
    }
    case ED_MSG_LOGIT_REPLY: {
        const ed_logit_reply *x = &a->u.reply, *y = &b->u.reply;
        if (x->request_id != y->request_id || x->batch != y->batch || x->classes != y->classes ||
            x->compute_us != y->compute_us)
            s_fail("logit reply header changed");
        size_t n = s_tensor_bytes(x->batch, x->classes, sizeof(float), x->logits);
        if (memcmp(x->logits, y->logits, n) != 0)
            s_fail("logit reply data changed");
        s_same_str(x->member, y->member, "logit reply member changed");
        s_same_str(x->fingerprint, y->fingerprint, "logit reply fingerprint changed");
        break;
    }
    case ED_MSG_ERROR:
        if (a->u.error.request_id != b->u.error.request_id || a->u.error.code != b->u.error.code)
            s_fail("error reply numbers changed");
        s_same_str(a->u.error.message, b->u.error.message, "error reply message changed");
        break;
    default:
        s_fail("accepted a message of no known kind");
    }
}

/* pack(msg) into a fresh heap buffer (exact size, so ASan sees any overrun); *len gets its size. */
static uint8_t *s_pack(const ed_msg *msg, size_t *len)
{
    size_t n = ed_wire_packed_size(msg);
    if (n == 0)
        s_fail("packed size 0 for a decoded message");
    uint8_t *buf = malloc(n);
    if (!buf)
        abort();
    size_t w = ed_wire_pack(msg, buf);
    if (w != n)
        s_fail("ed_wire_pack wrote a different size than ed_wire_packed_size");
    *len = n;
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ed_msg msg;
    ed_err err;
    ed_err_clear(&err);
    /* Odd-sized inputs also exercise the err == NULL path. */
    int rc = ed_wire_decode(data, size, &msg, (size & 1) ? NULL : &err);
    if (rc < 0) {
        if (msg.owned)
            s_fail("refused frame left owned memory");
        if (!(size & 1) && (err.code != rc || err.msg[0] == '\0'))
            s_fail("refused frame without a matching error record");
        ed_wire_msg_clear(&msg);
        return 0;
    }
    if (rc != 0 || !msg.owned)
        s_fail("accepted frame: rc != 0 or nothing owned");

    size_t n1 = 0, n2 = 0;
    uint8_t *p1 = s_pack(&msg, &n1);
    ed_msg again;
    ed_err_clear(&err);
    if (ed_wire_decode(p1, n1, &again, &err) != 0) {
        fprintf(stderr, "fuzz_wire_decode: re-decode failed: %s\n", err.msg);
        s_fail("a packed decoded message does not decode");
    }
    s_compare(&msg, &again);
    uint8_t *p2 = s_pack(&again, &n2);
    if (n1 != n2 || memcmp(p1, p2, n1) != 0)
        s_fail("pack(decode(pack(m))) differs from pack(m)");
    free(p1);
    free(p2);
    ed_wire_msg_clear(&again);
    ed_wire_msg_clear(&msg);
    ed_wire_msg_clear(&msg); /* documented as safe on a cleared message */
    return 0;
}
