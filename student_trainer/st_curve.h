/*
 * st_curve: the trainer's CurveZMQ keys (docs/SECURITY.md): its own key pair (--curve-secret) and
 * the teachers' public keys (--curve-server-keys), turned into the curve_* fields of
 * st_pool_config.
 *
 * --curve-server-keys FILE is either
 *   - a public key file (teacher_worker keygen's PREFIX.pub): every teacher has this key pair
 *     (the usual cluster set-up: one worker key pair distributed to all workers), or
 *   - a mapping file, one teacher per line: `TEACHERS-ENTRY KEY`, where TEACHERS-ENTRY is spelled
 *     exactly as in --teachers (tcp://host:port, a DNS name entry covers all its addresses) or `*`
 *     (every other entry), and KEY is a Z85 public key or the path of a .pub file (relative paths
 *     are relative to the mapping file's directory). '#' starts a comment line.
 * A directory is refused: a CURVE client must know the one key of the server it connects to.
 */
#ifndef ST_CURVE_H
#define ST_CURVE_H

#include <stdbool.h>

#include "ed_error.h"
#include "ed_keys.h"
#include "st_pool.h"

#define ST_CURVE_MAX_MAP 64

typedef struct {
    bool on;
    ed_keypair client;
    char server[ED_KEY_Z85_LEN + 1]; /* the default server key, or "" */
    st_pool_server_key map[ST_CURVE_MAX_MAP];
    char map_teacher[ST_CURVE_MAX_MAP][300];
    ed_key map_key[ST_CURVE_MAX_MAP];
    int map_n;
} st_curve;

/* Loads the keys. Both paths NULL or empty: c->on = false (plaintext). One without the other is
 * ED_EINVAL. The secret key file is checked as ed_keys_load_secret does (permissions) and its
 * public key must belong to its secret key. Errors name the file and line. */
int st_curve_load(st_curve *c, const char *secret_path, const char *server_keys_path, ed_err *err);

/* Points pc's curve_* fields into c (c must outlive the pool). Nothing when c->on is false. */
void st_curve_apply(const st_curve *c, st_pool_config *pc);

#endif
