/*
 * ed_wire: the only module that touches protobuf-c generated names (edistill__*). It turns
 * edistill.proto Envelopes into plain C structs and back, and validates everything that comes off
 * the network: protocol version, message kind, tensor dtype, shape against data length, sizes.
 *
 * Decoded messages keep pointers into the unpacked protobuf (tensor data, strings); they stay valid
 * until ed_wire_msg_clear(). Little-endian hosts only (float32 bytes go on the wire as they are).
 */
#ifndef ED_WIRE_H
#define ED_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ed_batch.h"
#include "ed_error.h"

#define ED_PROTOCOL_VERSION 1
#define ED_WIRE_MAX_MESSAGE (256u << 20) /* refuse frames over 256 MiB before decoding */

typedef enum {
    ED_MSG_NONE = 0,
    ED_MSG_INFO_REQUEST = 1,
    ED_MSG_MEMBER_INFO = 2,
    ED_MSG_LOGIT_REQUEST = 3,
    ED_MSG_LOGIT_REPLY = 4,
    ED_MSG_ERROR = 5,
    ED_MSG_KIND_COUNT
} ed_msg_kind;

const char *ed_msg_kind_name(ed_msg_kind kind);

typedef struct {
    uint64_t request_id;
    uint32_t protocol_version;
    const char *member;
    const char *fingerprint;
    uint32_t input_dim;
    uint32_t classes;
    const char *arch;
    bool ready;
    const char *worker_id;
    uint32_t max_batch;
    uint32_t input_shape[3]; /* (C, H, W) of one sample, product input_dim; a decoded MemberInfo
                                from an older worker (no shape) reads (input_dim, 1, 1); encoding
                                all zeros sends no shape */
} ed_member_info;

typedef struct {
    uint64_t request_id;
    ed_dtype dtype;
    uint32_t batch;
    uint32_t dim;
    const void *data; /* batch * dim elements of dtype */
} ed_logit_request;

typedef struct {
    uint64_t request_id;
    uint32_t batch;
    uint32_t classes;
    const float *logits; /* (batch, classes) */
    const char *member;
    const char *fingerprint;
    uint64_t compute_us;
} ed_logit_reply;

typedef struct {
    uint64_t request_id;
    int32_t code;
    const char *message;
} ed_error_reply;

typedef struct {
    ed_msg_kind kind;
    union {
        uint64_t info_request_id; /* ED_MSG_INFO_REQUEST */
        ed_member_info info;
        ed_logit_request request;
        ed_logit_reply reply;
        ed_error_reply error;
    } u;
    void *owned; /* unpacked protobuf behind the pointers; NULL when encoding */
} ed_msg;

/* Bytes ed_wire_pack() will write for msg. */
size_t ed_wire_packed_size(const ed_msg *msg);

/* Serializes msg into out (ed_wire_packed_size bytes); returns the number of bytes written. */
size_t ed_wire_pack(const ed_msg *msg, uint8_t *out);

/* Parses and validates one frame. On success fills *out (release with ed_wire_msg_clear). Errors
 * (ED_EFORMAT malformed / unknown kind / bad dtype / data length not matching shape, ED_EVERSION
 * protocol mismatch, ED_ETOOBIG frame over ED_WIRE_MAX_MESSAGE) describe the fault; when the frame
 * decoded far enough, out->u.*.request_id is set even on error so the error reply can name it. */
int ed_wire_decode(const void *frame, size_t len, ed_msg *out, ed_err *err);

/* Frees what decode allocated; safe on a zeroed or already-cleared msg. */
void ed_wire_msg_clear(ed_msg *msg);

#endif
