/*
 * ed_error: error codes as values, and an error record that carries the detail.
 *
 * Every fallible function in edistill returns 0 on success or a negative ED_E* code, and, when
 * given a non-NULL `ed_err *`, fills it with a one-line message naming the file, field or peer at
 * fault. Codes come from one X-macro table so that ed_strerror() and the enum never drift apart.
 *
 * Constructors (x_new, x_open, ...) return NULL on failure and say why through their `ed_err *`
 * out-parameter: when it is non-NULL, err->code holds the ED_E* code and err->msg the detail, so a
 * caller may pass err->code on. Programs report the error that ends a command through one path,
 * ed_cli_report ("COMMAND: message" on stderr); everything else goes through ed_log.
 */
#ifndef ED_ERROR_H
#define ED_ERROR_H

#include <stddef.h>

/* X(name, value, description). Values are append-only: they travel in error replies. */
#define ED_ERRNO_MAP(X)                                                                            \
    X(EINVAL, -1, "invalid argument")                                                              \
    X(ENOMEM, -2, "out of memory")                                                                 \
    X(EIO, -3, "input/output error")                                                               \
    X(EFORMAT, -4, "malformed data")                                                               \
    X(EVERSION, -5, "unsupported version")                                                         \
    X(ETRUNC, -6, "truncated input")                                                               \
    X(ESHAPE, -7, "shape mismatch")                                                                \
    X(ECHECKSUM, -8, "checksum mismatch")                                                          \
    X(ETIMEDOUT, -9, "timed out")                                                                  \
    X(EPEER, -10, "peer error")                                                                    \
    X(ETOOBIG, -11, "too large")                                                                   \
    X(EBUSY, -12, "busy")                                                                          \
    X(ESTOPPED, -13, "stopped")                                                                    \
    X(ENOTFOUND, -14, "not found")

typedef enum {
    ED_OK = 0,
#define ED_ERR_ENUM(name, value, desc) ED_##name = (value),
    ED_ERRNO_MAP(ED_ERR_ENUM)
#undef ED_ERR_ENUM
} ed_status;

#define ED_ERRSTR_LEN 512

/* Error record: `code` is an ed_status, `msg` a human-readable one-line detail. */
typedef struct {
    int code;
    char msg[ED_ERRSTR_LEN];
} ed_err;

/* Static description of an error code ("unknown error" for codes outside the table). */
const char *ed_strerror(int code);

/* Name of an error code without the ED_ prefix, e.g. "ESHAPE". */
const char *ed_err_name(int code);

/* Fills `err` (may be NULL) with `code` and a formatted message; returns `code` so callers can
 * write `return ed_err_set(err, ED_EINVAL, "...")`. */
int ed_err_set(ed_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with a formatted context ("reading x.gz: " + old message). */
int ed_err_wrap(ed_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clears the record to ED_OK with an empty message. */
void ed_err_clear(ed_err *err);

#endif
