/*
 * ed_keys: CurveZMQ key files (docs/SECURITY.md): Z85 keys, the secret key file of a worker or a
 * trainer, public key files, and allow-lists of client public keys.
 *
 * Files use ZeroMQ's certificate text (czmq zcert, pyzmq zmq.auth), so keys made by those tools
 * load here and ours load there:
 *
 *     #   ZeroMQ CURVE **Secret** Certificate        (comments: '#')
 *     metadata
 *     curve
 *         public-key = "*e&EcTxokgPpEC#vDLNDg]{QJSVjL*B!JQ6ry^x("
 *         secret-key = "!ON$Rn$Bhv@474ndZvt/QH[7/{U-Bo2WoQ!uo760"
 *
 * A public key file has only the public-key line; a bare line of 40 Z85 characters is also read as
 * a public key, so an allow-list file may simply list keys, one per line. Other lines are ignored.
 *
 * This module is plain file parsing (no libzmq): programs check that a secret key matches its
 * public key with zmq_curve_public() themselves.
 */
#ifndef ED_KEYS_H
#define ED_KEYS_H

#include <stdbool.h>
#include <stdint.h>

#include "ed_error.h"

#define ED_KEY_BYTES 32
#define ED_KEY_Z85_LEN 40 /* Z85 text of a 32-byte key, without the terminating NUL */

typedef struct {
    char z85[ED_KEY_Z85_LEN + 1]; /* NUL-terminated, as ZMQ_CURVE_* options take it */
    uint8_t bin[ED_KEY_BYTES];
} ed_key;

typedef struct {
    ed_key public_key;
    ed_key secret_key;
} ed_keypair;

/* Decodes 40 Z85 characters (text need not be NUL-terminated after them) into key. ED_EFORMAT
 * naming the first bad character and its position, or a 5-character group worth more than 2^32. */
int ed_key_from_z85(const char *text, ed_key *key, ed_err *err);

/* Encodes 32 bytes as Z85 into key (key->z85 and key->bin both set). */
void ed_key_from_bin(const uint8_t bin[ED_KEY_BYTES], ed_key *key);

/* Reads a secret key file: both the public-key and the secret-key lines are required. The file
 * must be a regular file (symlinks are followed) that neither group nor others can access
 * (mode & 077 == 0), except that a root-owned file may be group-readable (mode & 037 == 0: what
 * Kubernetes makes of a Secret mounted with fsGroup; PostgreSQL applies the same rule to its key).
 * Errors name the file: ED_EINVAL for loose permissions (with the mode and "chmod 600 FILE") or
 * not a regular file, ED_EIO when it cannot be read, ED_EFORMAT for missing/duplicate/bad keys. */
int ed_keys_load_secret(const char *path, ed_keypair *kp, ed_err *err);

/* Reads a public key file holding exactly one public key. A file with a secret-key line is refused
 * (ED_EINVAL: "give the .pub file"), so a secret file is not passed around by mistake. */
int ed_keys_load_public(const char *path, ed_key *key, ed_err *err);

/* Reads an allow-list: a directory (every *.pub file in it, in name order, each with one or more
 * keys) or one file (one or more keys). *keys (caller frees) gets the distinct keys, *n their
 * number (>= 1: an empty allow-list is ED_EINVAL, it would refuse every client). Files holding a
 * secret-key line are refused. */
int ed_keys_load_allowlist(const char *path, ed_key **keys, int *n, ed_err *err);

/* Writes PREFIX.key (public + secret, mode 0600) and PREFIX.pub (public, mode 0644). Without
 * `force` both files are created with O_EXCL and an existing one is refused (ED_EINVAL naming it,
 * nothing written); with `force` each is written to a new temporary file and renamed over the old
 * one. The secret file never exists with a mode other than 0600. `comment` (may be NULL) is added
 * as a "# ..." line. On failure nothing new is left behind. */
int ed_keys_write_pair(const char *prefix, const ed_keypair *kp, const char *comment, bool force,
                       ed_err *err);

#endif
