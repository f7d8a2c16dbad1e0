/*
 * tw_keygen: `teacher_worker keygen --out PREFIX`: makes a CurveZMQ key pair with libzmq
 * (zmq_curve_keypair) and writes PREFIX.key (public + secret key, mode 0600, created with O_EXCL
 * so it is never readable by others) and PREFIX.pub (public key, 0644) in ZeroMQ's certificate
 * text format (common/base/ed_keys.h). Existing files are refused unless --force. The same command
 * makes worker and trainer key pairs; docs/SECURITY.md says which file goes where.
 */
#include "tw_commands.h"

#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "ed_cli.h"
#include "ed_keys.h"

int tw_keygen_main(int argc, char **argv)
{
    const char *out = NULL, *comment = NULL;
    bool force = false;
    const ed_cli_opt opts[] = {
        {"out", ED_CLI_STR, &out, "PREFIX",
         "write PREFIX.key (secret, mode 0600) and PREFIX.pub "
         "(public, 0644)",
         NULL, true},
        {"comment", ED_CLI_STR, &comment, "TEXT",
         "a comment line written into both files (e.g. "
         "who the key is for)",
         NULL, false},
        {"force", ED_CLI_FLAG, &force, NULL, "replace existing files (default: refuse)", NULL,
         false},
    };
    const ed_cli_spec spec = {
        "teacher_worker keygen --out PREFIX [--force]",
        "Make a CurveZMQ key pair for a worker (serve --curve-secret) or a trainer (distill\n"
        "--curve-secret). Give PREFIX.pub to the other side; PREFIX.key never leaves its host.",
        opts, (int)(sizeof opts / sizeof opts[0]),
        "example:\n  teacher_worker keygen --out keys/teacher   # keys/teacher.key, "
        "keys/teacher.pub\n"
        "  teacher_worker keygen --out keys/trainer   # then: mkdir keys/clients && cp "
        "keys/trainer.pub keys/clients/"};
    ed_err err = {0};
    int rc;
    if (!ed_cli_parse_command(&spec, "teacher_worker keygen", argc, argv, &rc))
        return rc;
    if (comment && strchr(comment, '\n')) {
        ed_cli_reportf("teacher_worker keygen", "--comment must be one line");
        return 2;
    }
    if (!zmq_has("curve")) {
        ed_cli_reportf("teacher_worker keygen", "this libzmq was built without CURVE support");
        return 1;
    }
    char pub[ED_KEY_Z85_LEN + 1], sec[ED_KEY_Z85_LEN + 1];
    ed_keypair kp;
    if (zmq_curve_keypair(pub, sec) != 0 || ed_key_from_z85(pub, &kp.public_key, &err) < 0 ||
        ed_key_from_z85(sec, &kp.secret_key, &err) < 0) {
        ed_cli_reportf("teacher_worker keygen", "cannot make a key pair: %s",
                       err.msg[0] ? err.msg : zmq_strerror(zmq_errno()));
        return 1;
    }
    rc = ed_keys_write_pair(out, &kp, comment, force, &err);
    memset(sec, 0, sizeof sec);
    memset(&kp.secret_key, 0, sizeof kp.secret_key);
    if (rc < 0) {
        ed_cli_report("teacher_worker keygen", &err);
        return 1;
    }
    printf("wrote %s.key (secret, mode 0600) and %s.pub (public key %s)\n", out, out, pub);
    return 0;
}
