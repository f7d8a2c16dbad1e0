/*
 * tw_auth: transport security of `teacher_worker serve` (docs/SECURITY.md).
 *
 * With keys, the worker's ROUTER is a CurveZMQ server and a ZAP handler (ZeroMQ RFC 27: a REP
 * socket bound to inproc://zeromq.zap.01 in the worker's context) admits only the client public
 * keys of an allow-list: 200 for a listed key, 400 for any other; refused clients are logged
 * (rate-limited) with their key and address. The handler never blocks: the worker's event loop
 * polls tw_auth_fd() and calls tw_auth_drain() (the fd is edge-triggered like every ZMQ_FD).
 * Without keys, tw_auth_warn_plaintext() warns when the bind address is reachable from other hosts.
 */
#ifndef TW_AUTH_H
#define TW_AUTH_H

#include "ed_error.h"

typedef struct tw_auth tw_auth;

/* Loads the worker's secret key file (ed_keys_load_secret: permissions checked) and the allow-list
 * (a directory of *.pub files or one file), checks that the public key in the secret file belongs
 * to its secret key, binds the ZAP handler in zctx and makes `router` (not yet bound) a CURVE
 * server with that key. Must run before router binds. Returns the handler, or NULL with err naming
 * the file at fault. */
tw_auth *tw_auth_new(void *zctx, void *router, const char *secret_path, const char *clients_path,
                     ed_err *err);

/* Re-reads the allow-list from the path given to tw_auth_new (the worker calls it on SIGHUP). The
 * new list decides every handshake from now on: a key taken out is refused from its next
 * connection, a key added is admitted; connections already established are kept. On error
 * (unreadable, empty, a secret key in it) the current list stays in force and err names the file.
 */
int tw_auth_reload(tw_auth *a, ed_err *err);

/* The ZAP socket's ZMQ_FD (edge-triggered), or -1. */
int tw_auth_fd(const tw_auth *a);

/* Answers every ZAP request waiting on the handler, without blocking. */
void tw_auth_drain(tw_auth *a);

/* Clients admitted and refused so far. */
void tw_auth_counts(const tw_auth *a, unsigned long *allowed, unsigned long *refused);

/* Closes the ZAP socket (before the context is terminated) and frees a. Accepts NULL. */
void tw_auth_destroy(tw_auth **pa);

/* Plaintext: logs a WARNING when `bind` is not loopback-only (tcp://127.x, tcp://localhost,
 * tcp://[::1], ipc:// are fine; tcp://0.0.0.0, the * wildcard, other addresses, names and
 * interfaces warn). Returns 1 if it warned, 0 otherwise. */
int tw_auth_warn_plaintext(const char *bind);

#endif
