/*
 * st_curve: loading the trainer's CurveZMQ key pair and the teachers' server keys (st_curve.h).
 */
#include "st_curve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zmq.h>

#include "ed_log.h"

/* Is the file a mapping (some line "ENTRY KEY" with ENTRY "*" or containing "://")? */
static bool s_is_mapping(FILE *f)
{
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char a[512], b[512];
        if (sscanf(line, " %511s %511s", a, b) == 2 && a[0] != '#' &&
            (!strcmp(a, "*") || strstr(a, "://")))
            return true;
    }
    return false;
}

/* KEY of a mapping line: a Z85 key, or a .pub path relative to the mapping file's directory. */
static int s_map_key(const char *map_path, int line, const char *tok, ed_key *key, ed_err *err)
{
    if (strlen(tok) == ED_KEY_Z85_LEN && ed_key_from_z85(tok, key, NULL) == 0)
        return 0;
    char path[4096];
    const char *slash = strrchr(map_path, '/');
    if (tok[0] == '/' || !slash)
        snprintf(path, sizeof path, "%s", tok);
    else
        snprintf(path, sizeof path, "%.*s/%s", (int)(slash - map_path), map_path, tok);
    if (ed_keys_load_public(path, key, err) < 0)
        return ed_err_wrap(err, "%s:%d: ", map_path, line);
    return 0;
}

static int s_load_mapping(st_curve *c, const char *path, FILE *f, ed_err *err)
{
    char line[1024];
    int ln = 0;
    rewind(f);
    while (fgets(line, sizeof line, f)) {
        ln++;
        char a[512], b[512], extra[8];
        int n = sscanf(line, " %511s %511s %7s", a, b, extra);
        if (n <= 0 || a[0] == '#')
            continue;
        if (n != 2)
            return ed_err_set(err, ED_EFORMAT,
                              "%s:%d: expected `TEACHERS-ENTRY KEY` (KEY: Z85 or "
                              "a .pub file)",
                              path, ln);
        ed_key k;
        if (s_map_key(path, ln, b, &k, err) < 0)
            return err ? err->code : ED_EFORMAT;
        if (!strcmp(a, "*")) {
            memcpy(c->server, k.z85, sizeof c->server);
            continue;
        }
        if (c->map_n == ST_CURVE_MAX_MAP)
            return ed_err_set(err, ED_ETOOBIG, "%s: more than %d teachers", path, ST_CURVE_MAX_MAP);
        if (strlen(a) >= sizeof c->map_teacher[0])
            return ed_err_set(err, ED_EINVAL, "%s:%d: teacher entry too long", path, ln);
        memcpy(c->map_teacher[c->map_n], a, strlen(a) + 1);
        c->map_key[c->map_n] = k;
        c->map_n++;
    }
    if (c->map_n == 0 && !c->server[0])
        return ed_err_set(err, ED_EFORMAT, "%s: no teacher key in it", path);
    for (int i = 0; i < c->map_n; i++)
        c->map[i] = (st_pool_server_key){.teacher = c->map_teacher[i], .key = c->map_key[i].z85};
    return 0;
}

int st_curve_load(st_curve *c, const char *secret_path, const char *server_keys_path, ed_err *err)
{
    memset(c, 0, sizeof *c);
    bool have_secret = secret_path && *secret_path,
         have_server = server_keys_path && *server_keys_path;
    if (!have_secret && !have_server)
        return 0;
    if (!have_secret || !have_server)
        return ed_err_set(err, ED_EINVAL,
                          "CURVE needs both --curve-secret (this trainer's key "
                          "pair) and --curve-server-keys (the teachers' public keys)");
    if (!zmq_has("curve"))
        return ed_err_set(err, ED_EINVAL, "--curve-secret: this libzmq was built without CURVE");
    int rc = ed_keys_load_secret(secret_path, &c->client, err);
    if (rc < 0)
        return rc;
    char derived[ED_KEY_Z85_LEN + 1];
    if (zmq_curve_public(derived, c->client.secret_key.z85) != 0 ||
        strcmp(derived, c->client.public_key.z85))
        return ed_err_set(err, ED_EFORMAT,
                          "%s: its public-key is not the public key of its "
                          "secret-key (damaged or hand-edited file?)",
                          secret_path);
    struct stat st;
    if (stat(server_keys_path, &st) != 0)
        return ed_err_set(err, ED_EIO, "--curve-server-keys %s: %s", server_keys_path,
                          strerror(errno));
    if (S_ISDIR(st.st_mode))
        return ed_err_set(err, ED_EINVAL,
                          "--curve-server-keys %s is a directory: give the "
                          "teachers' shared public key file (.pub), or a mapping file of "
                          "`TEACHERS-ENTRY KEY` lines (a CURVE client needs its server's one key)",
                          server_keys_path);
    FILE *f = fopen(server_keys_path, "r");
    if (!f)
        return ed_err_set(err, ED_EIO, "--curve-server-keys %s: %s", server_keys_path,
                          strerror(errno));
    if (s_is_mapping(f)) {
        rc = s_load_mapping(c, server_keys_path, f, err);
    } else {
        ed_key k;
        rc = ed_keys_load_public(server_keys_path, &k, err);
        if (rc == 0)
            memcpy(c->server, k.z85, sizeof c->server);
    }
    fclose(f);
    if (rc < 0)
        return rc;
    c->on = true;
    ed_log_info("CURVE on: this trainer's public key %s; teachers' key %s, %d mapped entr%s",
                c->client.public_key.z85, c->server[0] ? c->server : "(none)", c->map_n,
                c->map_n == 1 ? "y" : "ies");
    return 0;
}

void st_curve_apply(const st_curve *c, st_pool_config *pc)
{
    if (!c->on)
        return;
    pc->curve_public = c->client.public_key.z85;
    pc->curve_secret = c->client.secret_key.z85;
    pc->curve_server = c->server[0] ? c->server : NULL;
    pc->curve_map = c->map;
    pc->curve_map_n = c->map_n;
}
