/*
 * test_wire: the ed_wire codec. Round trips of every message kind, and every malformed frame a peer
 * could send (random bytes, truncation, wrong version, shape/data mismatch, overflowing shapes,
 * unknown dtype, empty envelope, oversized frame) rejected with the right code and message.
 * Malformed frames are built with a tiny independent protobuf encoder below, not with ed_wire_pack,
 * so the test does not trust the code under test to produce the bad input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ed_rng.h"
#include "ed_wire.h"
#include "tu.h"

/* ---- a minimal protobuf writer (wire format: varint = 0, length-delimited = 2) ---- */

typedef struct {
    uint8_t b[8192];
    size_t n;
} s_pb;

static void s_varint(s_pb *p, uint64_t v)
{
    while (v >= 0x80) {
        p->b[p->n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p->b[p->n++] = (uint8_t)v;
}

static void s_field_varint(s_pb *p, unsigned field, uint64_t v)
{
    s_varint(p, (uint64_t)field << 3 | 0);
    s_varint(p, v);
}

static void s_field_bytes(s_pb *p, unsigned field, const void *data, size_t len)
{
    s_varint(p, (uint64_t)field << 3 | 2);
    s_varint(p, len);
    assert_true(p->n + len <= sizeof p->b);
    if (len)
        memcpy(p->b + p->n, data, len);
    p->n += len;
}

/* Tensor{dtype, shape (packed), data = data_len zero bytes}. */
static void s_tensor(s_pb *out, int dtype, const uint32_t *shape, size_t n_shape, size_t data_len)
{
    s_pb sh = {.n = 0};
    for (size_t i = 0; i < n_shape; i++)
        s_varint(&sh, shape[i]);
    static const uint8_t zeros[1024];
    assert_true(data_len <= sizeof zeros);
    out->n = 0;
    if (dtype)
        s_field_varint(out, 1, (uint64_t)dtype);
    if (n_shape)
        s_field_bytes(out, 2, sh.b, sh.n);
    if (data_len)
        s_field_bytes(out, 3, zeros, data_len);
}

/* Envelope{version, body field = {request_id, tensor}} with body field 4 (request) or 5 (reply). */
static void s_tensor_envelope(s_pb *env, unsigned body_field, uint64_t id, int dtype,
                              const uint32_t *shape, size_t n_shape, size_t data_len)
{
    s_pb t, body = {.n = 0};
    s_tensor(&t, dtype, shape, n_shape, data_len);
    s_field_varint(&body, 1, id);
    s_field_bytes(&body, 2, t.b, t.n);
    env->n = 0;
    s_field_varint(env, 1, ED_PROTOCOL_VERSION);
    s_field_bytes(env, body_field, body.b, body.n);
}

enum { S_WIRE_F32 = 1, S_WIRE_U8 = 2 };

/* Decodes and expects failure with `code`, a message containing `needle` (if non-NULL), and the
 * given request id passed through. */
static void s_expect_fail(const void *frame, size_t len, int code, const char *needle, uint64_t id)
{
    ed_msg m;
    ed_err err = {0};
    int rc = ed_wire_decode(frame, len, &m, &err);
    if (rc != code || (needle && !strstr(err.msg, needle)))
        fprintf(stderr, "decode of %zu bytes: rc %d (%s) '%s', want %d (%s) containing '%s'\n", len,
                rc, ed_err_name(rc), err.msg, code, ed_err_name(code), needle ? needle : "");
    assert_int_equal(rc, code);
    assert_int_equal(err.code, code);
    if (needle)
        assert_non_null(strstr(err.msg, needle));
    assert_true(m.u.request.request_id == id);
    assert_null(m.owned);
    ed_wire_msg_clear(&m);
}

/* Packs msg into a fresh buffer; returns it (caller frees) with *len. */
static uint8_t *s_pack(const ed_msg *msg, size_t *len)
{
    size_t n = ed_wire_packed_size(msg);
    assert_true(n > 0);
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    assert_int_equal(ed_wire_pack(msg, buf), n);
    *len = n;
    return buf;
}

static void s_decode_ok(const uint8_t *buf, size_t len, ed_msg *out)
{
    ed_err err = {0};
    int rc = ed_wire_decode(buf, len, out, &err);
    if (rc)
        fprintf(stderr, "decode failed: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(out->owned);
}

/* ---- round trips ---- */

static void test_roundtrip_info(void **state)
{
    (void)state;
    ed_msg m = {.kind = ED_MSG_INFO_REQUEST, .u.info_request_id = 0xfeedfacecafebeefULL};
    size_t len;
    uint8_t *buf = s_pack(&m, &len);
    ed_msg d;
    s_decode_ok(buf, len, &d);
    assert_int_equal(d.kind, ED_MSG_INFO_REQUEST);
    assert_true(d.u.info_request_id == 0xfeedfacecafebeefULL);
    ed_wire_msg_clear(&d);
    assert_null(d.owned);
    ed_wire_msg_clear(&d); /* twice is fine */
    free(buf);

    ed_msg mi = {.kind = ED_MSG_MEMBER_INFO};
    mi.u.info = (ed_member_info){.request_id = 7,
                                 .member = "member-3",
                                 .fingerprint = "fnv1a64:0123456789abcdef",
                                 .input_dim = 784,
                                 .classes = 10,
                                 .arch = "784,64,10",
                                 .ready = true,
                                 .worker_id = "host:42",
                                 .max_batch = 1024};
    buf = s_pack(&mi, &len);
    s_decode_ok(buf, len, &d);
    assert_int_equal(d.kind, ED_MSG_MEMBER_INFO);
    const ed_member_info *i = &d.u.info;
    assert_true(i->request_id == 7);
    assert_int_equal(i->protocol_version, ED_PROTOCOL_VERSION);
    assert_string_equal(i->member, "member-3");
    assert_string_equal(i->fingerprint, "fnv1a64:0123456789abcdef");
    assert_int_equal(i->input_dim, 784);
    assert_int_equal(i->classes, 10);
    assert_string_equal(i->arch, "784,64,10");
    assert_true(i->ready);
    assert_string_equal(i->worker_id, "host:42");
    assert_int_equal(i->max_batch, 1024);
    /* no shape sent (an older worker): read as a flat input */
    assert_int_equal(i->input_shape[0], 784);
    assert_int_equal(i->input_shape[1], 1);
    assert_int_equal(i->input_shape[2], 1);
    ed_wire_msg_clear(&d);
    free(buf);

    /* NULL strings pack as empty strings. */
    ed_msg empty = {.kind = ED_MSG_MEMBER_INFO};
    buf = s_pack(&empty, &len);
    s_decode_ok(buf, len, &d);
    assert_string_equal(d.u.info.member, "");
    assert_false(d.u.info.ready);
    ed_wire_msg_clear(&d);
    free(buf);
}

static void test_member_info_input_shape(void **state)
{
    (void)state;
    ed_msg mi = {.kind = ED_MSG_MEMBER_INFO};
    mi.u.info = (ed_member_info){.request_id = 8,
                                 .input_dim = 3 * 32 * 32,
                                 .classes = 10,
                                 .arch = "3x32x32:conv8k3,gap,dense10",
                                 .ready = true,
                                 .input_shape = {3, 32, 32}};
    size_t len;
    uint8_t *buf = s_pack(&mi, &len);
    ed_msg d;
    s_decode_ok(buf, len, &d);
    assert_int_equal(d.u.info.input_shape[0], 3);
    assert_int_equal(d.u.info.input_shape[1], 32);
    assert_int_equal(d.u.info.input_shape[2], 32);
    assert_string_equal(d.u.info.arch, "3x32x32:conv8k3,gap,dense10");
    ed_wire_msg_clear(&d);
    free(buf);

    /* A shape that does not multiply to input_dim, or a zero dim, is refused with the field named.
     */
    const uint32_t bad[2][3] = {{3, 32, 31}, {3, 0, 32}};
    for (int k = 0; k < 2; k++) {
        memcpy(mi.u.info.input_shape, bad[k], sizeof bad[k]);
        buf = s_pack(&mi, &len);
        ed_err err = {0};
        assert_int_equal(ed_wire_decode(buf, len, &d, &err), ED_EFORMAT);
        assert_non_null(strstr(err.msg, "MemberInfo.input_shape"));
        assert_null(d.owned);
        free(buf);
    }
}

static void test_roundtrip_logit_request(void **state)
{
    (void)state;
    uint8_t px[3 * 5];
    for (size_t k = 0; k < sizeof px; k++)
        px[k] = (uint8_t)(k * 17);
    ed_msg m = {.kind = ED_MSG_LOGIT_REQUEST};
    m.u.request = (ed_logit_request){
        .request_id = 99, .dtype = ED_DTYPE_U8, .batch = 3, .dim = 5, .data = px};
    size_t len;
    uint8_t *buf = s_pack(&m, &len);
    ed_msg d;
    s_decode_ok(buf, len, &d);
    assert_int_equal(d.kind, ED_MSG_LOGIT_REQUEST);
    assert_true(d.u.request.request_id == 99);
    assert_int_equal(d.u.request.dtype, ED_DTYPE_U8);
    assert_int_equal(d.u.request.batch, 3);
    assert_int_equal(d.u.request.dim, 5);
    assert_memory_equal(d.u.request.data, px, sizeof px);
    ed_wire_msg_clear(&d);
    free(buf);

    float x[2 * 4] = {0.5f, -1.0f, 3.25f, 1e-20f, -0.0f, 7.0f, 1e20f, 42.0f};
    m.u.request = (ed_logit_request){
        .request_id = 1ULL << 40, .dtype = ED_DTYPE_F32, .batch = 2, .dim = 4, .data = x};
    buf = s_pack(&m, &len);
    s_decode_ok(buf, len, &d);
    assert_int_equal(d.u.request.dtype, ED_DTYPE_F32);
    assert_int_equal(d.u.request.batch, 2);
    assert_int_equal(d.u.request.dim, 4);
    assert_true(d.u.request.request_id == 1ULL << 40);
    assert_true(tu_allclose("f32 request data", d.u.request.data, x, 8, 0.0, 0.0));
    ed_wire_msg_clear(&d);
    free(buf);
}

static void test_roundtrip_reply_and_error(void **state)
{
    (void)state;
    float z[2 * 3] = {1.0f, -2.0f, 3.5f, 0.25f, -8.0f, 1e-3f};
    ed_msg m = {.kind = ED_MSG_LOGIT_REPLY};
    m.u.reply = (ed_logit_reply){.request_id = 5,
                                 .batch = 2,
                                 .classes = 3,
                                 .logits = z,
                                 .member = "m0",
                                 .fingerprint = "fnv1a64:00000000000000ff",
                                 .compute_us = 1234};
    size_t len;
    uint8_t *buf = s_pack(&m, &len);
    ed_msg d;
    s_decode_ok(buf, len, &d);
    assert_int_equal(d.kind, ED_MSG_LOGIT_REPLY);
    const ed_logit_reply *r = &d.u.reply;
    assert_true(r->request_id == 5);
    assert_int_equal(r->batch, 2);
    assert_int_equal(r->classes, 3);
    assert_true(tu_allclose("reply logits", r->logits, z, 6, 0.0, 0.0));
    assert_string_equal(r->member, "m0");
    assert_string_equal(r->fingerprint, "fnv1a64:00000000000000ff");
    assert_true(r->compute_us == 1234);
    ed_wire_msg_clear(&d);
    free(buf);

    ed_msg e = {.kind = ED_MSG_ERROR};
    e.u.error = (ed_error_reply){
        .request_id = 77, .code = ED_ETOOBIG, .message = "batch 2000 exceeds max_batch 1024"};
    buf = s_pack(&e, &len);
    s_decode_ok(buf, len, &d);
    assert_int_equal(d.kind, ED_MSG_ERROR);
    assert_true(d.u.error.request_id == 77);
    assert_int_equal(d.u.error.code, ED_ETOOBIG);
    assert_string_equal(d.u.error.message, "batch 2000 exceeds max_batch 1024");
    ed_wire_msg_clear(&d);
    free(buf);

    /* A kind that cannot be sent packs to nothing. */
    ed_msg none = {.kind = ED_MSG_NONE};
    assert_int_equal(ed_wire_packed_size(&none), 0);
    uint8_t one[4];
    assert_int_equal(ed_wire_pack(&none, one), 0);
    assert_string_equal(ed_msg_kind_name(ED_MSG_LOGIT_REPLY), "logit_reply");
    assert_string_equal(ed_msg_kind_name((ed_msg_kind)99), "unknown");
}

/* ---- malformed frames ---- */

static void test_random_bytes(void **state)
{
    (void)state;
    ed_rng rng;
    ed_rng_seed(&rng, 12345);
    uint8_t buf[512];
    int rejected = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = 1 + (size_t)(ed_rng_next(&rng) % sizeof buf);
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)ed_rng_next(&rng);
        ed_msg m;
        ed_err err = {0};
        int rc = ed_wire_decode(buf, len, &m, &err);
        if (rc < 0) {
            rejected++;
            assert_true(rc == ED_EFORMAT || rc == ED_EVERSION);
            assert_true(err.msg[0] != '\0');
            assert_null(m.owned);
        }
        ed_wire_msg_clear(&m);
    }
    assert_true(rejected > 19000);

    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0xff};
    s_expect_fail(junk, sizeof junk, ED_EFORMAT, "malformed protobuf frame (11 bytes)", 0);
    s_expect_fail("", 0, ED_EFORMAT, "empty frame", 0);
}

static void test_truncated(void **state)
{
    (void)state;
    float x[4 * 6];
    for (int k = 0; k < 24; k++)
        x[k] = (float)k;
    ed_msg m = {.kind = ED_MSG_LOGIT_REQUEST};
    m.u.request =
        (ed_logit_request){.request_id = 3, .dtype = ED_DTYPE_F32, .batch = 4, .dim = 6, .data = x};
    size_t len;
    uint8_t *buf = s_pack(&m, &len);
    for (size_t cut = 0; cut < len; cut++) {
        /* A copy of exactly `cut` bytes, so ASan catches any read past the end. */
        uint8_t *part = malloc(cut ? cut : 1);
        assert_non_null(part);
        memcpy(part, buf, cut);
        ed_msg d;
        ed_err err = {0};
        int rc = ed_wire_decode(part, cut, &d, &err);
        if (rc != ED_EFORMAT)
            fprintf(stderr, "prefix of %zu/%zu bytes: rc %d '%s'\n", cut, len, rc, err.msg);
        assert_int_equal(rc, ED_EFORMAT);
        ed_wire_msg_clear(&d);
        free(part);
    }
    free(buf);
}

static void test_wrong_version(void **state)
{
    (void)state;
    ed_msg m = {.kind = ED_MSG_INFO_REQUEST, .u.info_request_id = 31};
    size_t len;
    uint8_t *buf = s_pack(&m, &len);
    /* The envelope starts with field 1 (version) as a one-byte varint: 0x08 0x01. */
    assert_int_equal(buf[0], 0x08);
    assert_int_equal(buf[1], ED_PROTOCOL_VERSION);
    buf[1] = 2;
    s_expect_fail(buf, len, ED_EVERSION,
                  "protocol version 2 from the peer, this build speaks version 1", 31);
    /* Version field absent = 0. */
    s_expect_fail(buf + 2, len - 2, ED_EVERSION, "protocol version 0", 31);
    free(buf);
}

static void test_empty_envelope(void **state)
{
    (void)state;
    s_pb env = {.n = 0};
    s_field_varint(&env, 1, ED_PROTOCOL_VERSION);
    s_expect_fail(env.b, env.n, ED_EFORMAT, "no body", 0);
    /* An unknown field only: protobuf skips it, so still no body. */
    s_field_varint(&env, 15, 3);
    s_expect_fail(env.b, env.n, ED_EFORMAT, "no body", 0);
    /* A logit request without an input tensor. */
    s_pb body = {.n = 0};
    s_field_varint(&body, 1, 11);
    env.n = 0;
    s_field_varint(&env, 1, ED_PROTOCOL_VERSION);
    s_field_bytes(&env, 4, body.b, body.n);
    s_expect_fail(env.b, env.n, ED_EFORMAT, "tensor missing", 11);
}

static void test_tensor_shapes(void **state)
{
    (void)state;
    s_pb env;
    /* The independent encoder produces frames the decoder accepts. */
    const uint32_t ok[2] = {2, 3};
    s_tensor_envelope(&env, 4, 8, S_WIRE_U8, ok, 2, 6);
    ed_msg d;
    s_decode_ok(env.b, env.n, &d);
    assert_int_equal(d.u.request.batch, 2);
    assert_int_equal(d.u.request.dim, 3);
    ed_wire_msg_clear(&d);
    s_tensor_envelope(&env, 4, 8, S_WIRE_F32, ok, 2, 24);
    s_decode_ok(env.b, env.n, &d);
    assert_int_equal(d.u.request.dtype, ED_DTYPE_F32);
    ed_wire_msg_clear(&d);

    /* Data length mismatch, both directions and both dtypes. */
    s_tensor_envelope(&env, 4, 9, S_WIRE_U8, ok, 2, 5);
    s_expect_fail(env.b, env.n, ED_EFORMAT, "tensor shape [2, 3] of u8 needs 6 bytes, got 5", 9);
    s_tensor_envelope(&env, 4, 9, S_WIRE_U8, ok, 2, 7);
    s_expect_fail(env.b, env.n, ED_EFORMAT, "needs 6 bytes, got 7", 9);
    s_tensor_envelope(&env, 4, 10, S_WIRE_F32, ok, 2, 6);
    s_expect_fail(env.b, env.n, ED_EFORMAT, "tensor shape [2, 3] of f32 needs 24 bytes, got 6", 10);
    s_tensor_envelope(&env, 4, 10, S_WIRE_F32, ok, 2, 0);
    s_expect_fail(env.b, env.n, ED_EFORMAT, "needs 24 bytes, got 0", 10);

    /* Shapes whose byte count overflows, or is merely huge. */
    const uint32_t big[2] = {1u << 31, 1u << 31};
    s_tensor_envelope(&env, 4, 11, S_WIRE_U8, big, 2, 4);
    s_expect_fail(env.b, env.n, ED_EFORMAT, "[2147483648, 2147483648]", 11);
    s_tensor_envelope(&env, 4, 11, S_WIRE_F32, big, 2, 4);
    s_expect_fail(env.b, env.n, ED_EFORMAT, "[2147483648, 2147483648] of f32", 11);
    const uint32_t max[2] = {UINT32_MAX, UINT32_MAX};
    s_tensor_envelope(&env, 4, 12, S_WIRE_F32, max, 2, 16);
    s_expect_fail(env.b, env.n, ED_EFORMAT, "[4294967295, 4294967295]", 12);
    const uint32_t wide[2] = {1, UINT32_MAX};
    s_tensor_envelope(&env, 4, 12, S_WIRE_F32, wide, 2, 16);
    s_expect_fail(env.b, env.n, ED_EFORMAT, "needs 17179869180 bytes, got 16", 12);

    /* Rank and empty dims. */
    const uint32_t three[3] = {2, 3, 1};
    s_tensor_envelope(&env, 4, 13, S_WIRE_U8, three, 3, 6);
    s_expect_fail(env.b, env.n, ED_EFORMAT, "3 dims, expected 2", 13);
    s_tensor_envelope(&env, 4, 13, S_WIRE_U8, three, 1, 2);
    s_expect_fail(env.b, env.n, ED_EFORMAT, "1 dims, expected 2", 13);
    s_tensor_envelope(&env, 4, 13, S_WIRE_U8, three, 0, 0);
    s_expect_fail(env.b, env.n, ED_EFORMAT, "0 dims", 13);
    const uint32_t zero_b[2] = {0, 3}, zero_d[2] = {3, 0};
    s_tensor_envelope(&env, 4, 14, S_WIRE_U8, zero_b, 2, 0);
    s_expect_fail(env.b, env.n, ED_EFORMAT, "[0, 3] is empty", 14);
    s_tensor_envelope(&env, 4, 14, S_WIRE_F32, zero_d, 2, 0);
    s_expect_fail(env.b, env.n, ED_EFORMAT, "[3, 0] is empty", 14);

    /* Dtypes: unspecified and unknown. */
    s_tensor_envelope(&env, 4, 15, 0, ok, 2, 6);
    s_expect_fail(env.b, env.n, ED_EFORMAT, "dtype unspecified", 15);
    s_tensor_envelope(&env, 4, 15, 7, ok, 2, 6);
    s_expect_fail(env.b, env.n, ED_EFORMAT, "unknown tensor dtype 7", 15);

    /* Logit replies must be f32. */
    s_tensor_envelope(&env, 5, 16, S_WIRE_U8, ok, 2, 6);
    s_expect_fail(env.b, env.n, ED_EFORMAT, "logit_reply logits: dtype u8, expected f32", 16);
    s_tensor_envelope(&env, 5, 16, S_WIRE_F32, ok, 2, 23);
    s_expect_fail(env.b, env.n, ED_EFORMAT, "needs 24 bytes, got 23", 16);
    s_tensor_envelope(&env, 5, 16, S_WIRE_F32, ok, 2, 24);
    s_decode_ok(env.b, env.n, &d);
    assert_int_equal(d.kind, ED_MSG_LOGIT_REPLY);
    assert_int_equal(d.u.reply.classes, 3);
    ed_wire_msg_clear(&d);
}

static void test_too_big(void **state)
{
    (void)state;
    /* The size check comes before any byte is read, so a small buffer with a huge claimed length is
     * enough (and ASan would flag a read). */
    static const uint8_t small[4] = {0x08, 0x01};
    s_expect_fail(small, (size_t)ED_WIRE_MAX_MESSAGE + 1, ED_ETOOBIG, "exceeds the limit", 0);
    s_expect_fail(small, SIZE_MAX, ED_ETOOBIG, "268435456", 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_info),
        cmocka_unit_test(test_member_info_input_shape),
        cmocka_unit_test(test_roundtrip_logit_request),
        cmocka_unit_test(test_roundtrip_reply_and_error),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_wrong_version),
        cmocka_unit_test(test_empty_envelope),
        cmocka_unit_test(test_tensor_shapes),
        cmocka_unit_test(test_too_big),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
