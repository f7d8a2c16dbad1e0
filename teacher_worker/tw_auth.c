/*
 * tw_auth: the worker's CurveZMQ server set-up and its ZAP handler (see tw_auth.h).
 *
 * ZAP (ZeroMQ RFC 27) in brief: for every CURVE handshake, libzmq's I/O thread sends the handler a
 * request [version "1.0"][request id][domain][peer address][routing id][mechanism][client public
 * key, 32 bytes] and waits for [version][request id][status code][status text][user id][metadata].
 * The handshake completes only on "200"; on "400" libzmq sends the client an ERROR and drops the
 * connection, so the client never gets a message through. The handler answers on the main thread
 * from the event loop; a handshake simply waits while the loop is busy.
 */
#include "tw_auth.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "ed_clock.h"
#include "ed_keys.h"
#include "ed_log.h"

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_ZAP_DOMAIN "edistill"
#define S_ZAP_FRAMES 7 /* a CURVE request */

struct tw_auth {
    void *zap; /* REP bound to S_ZAP_ENDPOINT */
    ed_key *allowed;
    int n_allowed;
    char *clients_path; /* the allow-list, re-read by tw_auth_reload */
    unsigned long n_allowed_conn, n_refused;
    double last_refusal_log;
    unsigned long suppressed;
};

static bool s_allowed(const tw_auth *a, const uint8_t *key)
{
    for (int i = 0; i < a->n_allowed; i++)
        if (!memcmp(a->allowed[i].bin, key, ED_KEY_BYTES))
            return true;
    return false;
}

/* Sends the 6-frame reply; frames: version, request id (echoed), code, text, user id, metadata. */
static void s_reply(tw_auth *a, zmq_msg_t *request_id, const char *code, const char *text,
                    const char *user)
{
    const char *parts[] = {"1.0", NULL, code, text, user, ""};
    for (int i = 0; i < 6; i++) {
        int flags = ZMQ_DONTWAIT | (i < 5 ? ZMQ_SNDMORE : 0);
        int rc = i == 1 ? zmq_msg_send(request_id, a->zap, flags)
                        : zmq_send(a->zap, parts[i], strlen(parts[i]), flags);
        if (rc < 0) {
            ed_log_error("ZAP handler: cannot send a reply: %s", zmq_strerror(zmq_errno()));
            return;
        }
    }
}

static void s_log_refusal(tw_auth *a, const char *why, const char *key, const char *address)
{
    double now = ed_now();
    if (a->n_refused > 1 && now - a->last_refusal_log < 1.0) {
        a->suppressed++;
        return;
    }
    if (a->suppressed)
        ed_log_warn("refused client %s from %s: %s (%lu more refused since the last report)", key,
                    address, why, a->suppressed);
    else
        ed_log_warn("refused client %s from %s: %s", key, address, why);
    a->last_refusal_log = now;
    a->suppressed = 0;
}

/* Receives and answers one request. Returns false when none was waiting. */
static bool s_handle_one(tw_auth *a)
{
    zmq_msg_t f[S_ZAP_FRAMES];
    int n = 0;
    bool more = true;
    for (int i = 0; i < S_ZAP_FRAMES; i++)
        zmq_msg_init(&f[i]);
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, a->zap, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            if (n == 0) {
                for (int i = 0; i < S_ZAP_FRAMES; i++)
                    zmq_msg_close(&f[i]);
                return false;
            }
            break; /* parts of a message arrive together: cannot happen */
        }
        more = zmq_msg_more(&part);
        if (n < S_ZAP_FRAMES)
            zmq_msg_move(&f[n], &part);
        n++;
        zmq_msg_close(&part);
    }
    char address[128] = "?", key[ED_KEY_Z85_LEN + 1] = "?";
    if (n >= 4) {
        size_t len =
            zmq_msg_size(&f[3]) < sizeof address - 1 ? zmq_msg_size(&f[3]) : sizeof address - 1;
        memcpy(address, zmq_msg_data(&f[3]), len);
        address[len] = '\0';
    }
    bool curve = n == S_ZAP_FRAMES && zmq_msg_size(&f[5]) == 5 &&
                 !memcmp(zmq_msg_data(&f[5]), "CURVE", 5) && zmq_msg_size(&f[6]) == ED_KEY_BYTES;
    bool version_ok = n >= 1 && zmq_msg_size(&f[0]) == 3 && !memcmp(zmq_msg_data(&f[0]), "1.0", 3);
    if (curve) {
        ed_key k;
        ed_key_from_bin(zmq_msg_data(&f[6]), &k);
        memcpy(key, k.z85, sizeof key);
    }
    if (n < 2) {
        /* no request id to answer: nothing a REP socket can do but reply something */
        zmq_msg_t empty;
        zmq_msg_init(&empty);
        s_reply(a, &empty, "500", "malformed ZAP request", "");
        zmq_msg_close(&empty);
        ed_log_error("ZAP handler: malformed request of %d frames", n);
    } else if (!version_ok || !curve) {
        a->n_refused++;
        s_reply(a, &f[1], "400", "CURVE with an authorized key required", "");
        s_log_refusal(a, "not a CURVE handshake", key, address);
    } else if (s_allowed(a, zmq_msg_data(&f[6]))) {
        a->n_allowed_conn++;
        s_reply(a, &f[1], "200", "OK", key);
        ed_log_debug("client %s from %s authorized", key, address);
    } else {
        a->n_refused++;
        s_reply(a, &f[1], "400", "client key not authorized", "");
        s_log_refusal(a, "key not in the allow-list", key, address);
    }
    for (int i = 0; i < S_ZAP_FRAMES; i++)
        zmq_msg_close(&f[i]);
    return true;
}

void tw_auth_drain(tw_auth *a)
{
    if (!a || !a->zap)
        return;
    for (;;) {
        int ev = 0;
        size_t len = sizeof ev;
        if (zmq_getsockopt(a->zap, ZMQ_EVENTS, &ev, &len) != 0 || !(ev & ZMQ_POLLIN))
            return;
        if (!s_handle_one(a))
            return;
    }
}

int tw_auth_reload(tw_auth *a, ed_err *err)
{
    ed_key *keys = NULL;
    int n = 0;
    if (ed_keys_load_allowlist(a->clients_path, &keys, &n, err) < 0)
        return err->code;
    free(a->allowed);
    a->allowed = keys;
    a->n_allowed = n;
    ed_log_info("allow-list reloaded: %d authorized client key(s) from %s", n, a->clients_path);
    return 0;
}

int tw_auth_fd(const tw_auth *a)
{
    int fd = -1;
    size_t len = sizeof fd;
    if (!a || !a->zap || zmq_getsockopt(a->zap, ZMQ_FD, &fd, &len) != 0)
        return -1;
    return fd;
}

void tw_auth_counts(const tw_auth *a, unsigned long *allowed, unsigned long *refused)
{
    *allowed = a ? a->n_allowed_conn : 0;
    *refused = a ? a->n_refused : 0;
}

void tw_auth_destroy(tw_auth **pa)
{
    if (!pa || !*pa)
        return;
    tw_auth *a = *pa;
    if (a->zap)
        zmq_close(a->zap);
    free(a->allowed);
    free(a->clients_path);
    free(a);
    *pa = NULL;
}

tw_auth *tw_auth_new(void *zctx, void *router, const char *secret_path, const char *clients_path,
                     ed_err *err)
{
    ed_keypair kp;
    memset(&kp, 0, sizeof kp);
    tw_auth *a = calloc(1, sizeof *a);
    if (!a) {
        ed_err_set(err, ED_ENOMEM, "out of memory");
        return NULL;
    }
    if (!zmq_has("curve")) {
        ed_err_set(err, ED_EINVAL, "--curve-secret: this libzmq was built without CURVE");
        goto fail;
    }
    if (!clients_path || !*clients_path) {
        ed_err_set(err, ED_EINVAL,
                   "--curve-secret needs --curve-clients (the public keys of the "
                   "trainers allowed to connect)");
        goto fail;
    }
    if (!(a->clients_path = strdup(clients_path))) {
        ed_err_set(err, ED_ENOMEM, "out of memory");
        goto fail;
    }
    if (ed_keys_load_secret(secret_path, &kp, err) < 0 ||
        ed_keys_load_allowlist(clients_path, &a->allowed, &a->n_allowed, err) < 0)
        goto fail;
    char derived[ED_KEY_Z85_LEN + 1];
    if (zmq_curve_public(derived, kp.secret_key.z85) != 0 || strcmp(derived, kp.public_key.z85)) {
        ed_err_set(err, ED_EFORMAT,
                   "%s: its public-key is not the public key of its secret-key "
                   "(damaged or hand-edited file?)",
                   secret_path);
        goto fail;
    }
    a->zap = zmq_socket(zctx, ZMQ_REP);
    int zero = 0, one = 1;
    if (!a->zap || zmq_setsockopt(a->zap, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_bind(a->zap, S_ZAP_ENDPOINT) != 0) {
        ed_err_set(err, ED_EIO, "cannot start the ZAP handler on %s: %s", S_ZAP_ENDPOINT,
                   zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (zmq_setsockopt(router, ZMQ_ZAP_DOMAIN, S_ZAP_DOMAIN, strlen(S_ZAP_DOMAIN)) != 0 ||
        zmq_setsockopt(router, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(router, ZMQ_CURVE_SECRETKEY, kp.secret_key.z85, ED_KEY_Z85_LEN) != 0) {
        ed_err_set(err, ED_EIO, "cannot make the socket a CURVE server: %s",
                   zmq_strerror(zmq_errno()));
        goto fail;
    }
    ed_log_info("CURVE on: server public key %s (%s); %d authorized client key(s) from %s",
                kp.public_key.z85, secret_path, a->n_allowed, clients_path);
    memset(&kp, 0, sizeof kp);
    return a;
fail:
    memset(&kp, 0, sizeof kp);
    tw_auth_destroy(&a);
    return NULL;
}

/* "tcp://HOST:PORT" -> is HOST loopback? */
static bool s_loopback_host(const char *host, size_t len)
{
    if (len >= 4 && !strncmp(host, "127.", 4))
        return true;
    static const char *const names[] = {"localhost", "[::1]", "::1", "lo", "ip6-localhost"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i]) == len && !strncmp(host, names[i], len))
            return true;
    return false;
}

int tw_auth_warn_plaintext(const char *bind)
{
    if (!strncmp(bind, "ipc://", 6) || !strncmp(bind, "inproc://", 9))
        return 0;
    const char *host = bind;
    if (!strncmp(bind, "tcp://", 6))
        host = bind + 6;
    const char *semi = strchr(host, ';'); /* tcp://SOURCE;HOST:PORT is for connect, not bind */
    if (semi)
        host = semi + 1;
    const char *colon = strrchr(host, ':');
    size_t len = colon ? (size_t)(colon - host) : strlen(host);
    if (s_loopback_host(host, len))
        return 0;
    ed_log_warn("WARNING: serving in PLAINTEXT on %s, which other hosts may reach: anyone who can "
                "connect gets logits, and inputs and logits cross the network unencrypted. Use "
                "--curve-secret and --curve-clients (docs/SECURITY.md), or bind 127.0.0.1",
                bind);
    return 1;
}
