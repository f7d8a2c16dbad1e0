/*
 * ed_keys: CurveZMQ key files: Z85 (ZeroMQ RFC 32) coding of 32-byte keys, zcert-style text files,
 * the permission rule for secret key files, allow-list directories, and writing a new key pair
 * with O_EXCL so a secret file is never readable by others, not even for a moment.
 */
#include "ed_keys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAX_FILE (64 * 1024) /* key files are a few hundred bytes */
#define S_MAX_KEYS 4096        /* per allow-list */

static const char s_z85_chars[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

static int s_z85_digit(char c)
{
    const char *p = c ? strchr(s_z85_chars, c) : NULL;
    return p ? (int)(p - s_z85_chars) : -1;
}

int ed_key_from_z85(const char *text, ed_key *key, ed_err *err)
{
    for (int g = 0; g < ED_KEY_BYTES / 4; g++) {
        uint64_t v = 0;
        for (int j = 0; j < 5; j++) {
            int pos = g * 5 + j;
            int d = s_z85_digit(text[pos]);
            if (d < 0) {
                if (!text[pos])
                    return ed_err_set(err, ED_EFORMAT, "Z85 key is %d characters, expected %d", pos,
                                      ED_KEY_Z85_LEN);
                return ed_err_set(err, ED_EFORMAT,
                                  "character %d of the Z85 key (0x%02x) is not "
                                  "in the Z85 alphabet",
                                  pos + 1, (unsigned char)text[pos]);
            }
            v = v * 85 + (uint64_t)d;
        }
        if (v > 0xFFFFFFFFu)
            return ed_err_set(err, ED_EFORMAT,
                              "characters %d..%d of the Z85 key do not encode 4 "
                              "bytes",
                              g * 5 + 1, g * 5 + 5);
        key->bin[4 * g] = (uint8_t)(v >> 24);
        key->bin[4 * g + 1] = (uint8_t)(v >> 16);
        key->bin[4 * g + 2] = (uint8_t)(v >> 8);
        key->bin[4 * g + 3] = (uint8_t)v;
    }
    memcpy(key->z85, text, ED_KEY_Z85_LEN);
    key->z85[ED_KEY_Z85_LEN] = '\0';
    return 0;
}

void ed_key_from_bin(const uint8_t bin[ED_KEY_BYTES], ed_key *key)
{
    memcpy(key->bin, bin, ED_KEY_BYTES);
    for (int g = 0; g < ED_KEY_BYTES / 4; g++) {
        uint32_t v = (uint32_t)bin[4 * g] << 24 | (uint32_t)bin[4 * g + 1] << 16 |
                     (uint32_t)bin[4 * g + 2] << 8 | bin[4 * g + 3];
        for (int j = 4; j >= 0; j--) {
            key->z85[g * 5 + j] = s_z85_chars[v % 85];
            v /= 85;
        }
    }
    key->z85[ED_KEY_Z85_LEN] = '\0';
}

/* ---------------------------------------------------------------------------------------------- */
/* Reading                                                                                        */

typedef struct {
    ed_key pub[S_MAX_KEYS];
    int n_pub;
    ed_key secret;
    int n_secret;
} s_parsed;

/* Reads the whole of an open fd (at most S_MAX_FILE bytes) into a NUL-terminated buffer. */
static char *s_read_fd(int fd, const char *path, ed_err *err)
{
    char *buf = malloc(S_MAX_FILE + 1);
    if (!buf) {
        ed_err_set(err, ED_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, S_MAX_FILE + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            ed_err_set(err, ED_EIO, "%s: cannot read: %s", path, strerror(errno));
            free(buf);
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > S_MAX_FILE) {
            ed_err_set(err, ED_ETOOBIG, "%s: over %d bytes: not a key file", path, S_MAX_FILE);
            free(buf);
            return NULL;
        }
    }
    buf[n] = '\0';
    return buf;
}

/* Parses `name = "value"` (quotes optional) after the key name; returns the value or NULL. */
static const char *s_value(const char *p, size_t *len)
{
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p++ != '=')
        return NULL;
    while (*p == ' ' || *p == '\t')
        p++;
    bool quoted = *p == '"';
    p += quoted;
    size_t n = 0;
    while (p[n] && p[n] != '"' && p[n] != ' ' && p[n] != '\t')
        n++;
    if (quoted && p[n] != '"')
        return NULL;
    *len = n;
    return p;
}

static int s_parse_key(const char *path, int line, const char *v, size_t len, ed_key *out,
                       ed_err *err)
{
    if (len != ED_KEY_Z85_LEN)
        return ed_err_set(err, ED_EFORMAT, "%s:%d: a key is %d Z85 characters, this one has %zu",
                          path, line, ED_KEY_Z85_LEN, len);
    if (ed_key_from_z85(v, out, err) < 0)
        return ed_err_wrap(err, "%s:%d: ", path, line);
    return 0;
}

/* Collects the keys of one file's text into ps (public keys appended). */
static int s_parse(const char *path, char *text, s_parsed *ps, ed_err *err)
{
    int line = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        line++;
        while (*l == ' ' || *l == '\t')
            l++;
        size_t end = strlen(l);
        while (end > 0 && (l[end - 1] == '\r' || l[end - 1] == ' ' || l[end - 1] == '\t'))
            l[--end] = '\0';
        if (!*l || *l == '#')
            continue;
        const char *v = NULL;
        size_t len = 0;
        ed_key k;
        if (!strncmp(l, "public-key", 10) && (v = s_value(l + 10, &len))) {
            if (ps->n_pub == S_MAX_KEYS)
                return ed_err_set(err, ED_ETOOBIG, "%s: more than %d keys", path, S_MAX_KEYS);
            if (s_parse_key(path, line, v, len, &ps->pub[ps->n_pub], err) < 0)
                return err ? err->code : ED_EFORMAT;
            ps->n_pub++;
        } else if (!strncmp(l, "secret-key", 10) && (v = s_value(l + 10, &len))) {
            if (s_parse_key(path, line, v, len, &k, err) < 0)
                return err ? err->code : ED_EFORMAT;
            ps->secret = k;
            ps->n_secret++;
        } else if (end == ED_KEY_Z85_LEN && ed_key_from_z85(l, &k, NULL) == 0) {
            if (ps->n_pub == S_MAX_KEYS)
                return ed_err_set(err, ED_ETOOBIG, "%s: more than %d keys", path, S_MAX_KEYS);
            ps->pub[ps->n_pub++] = k;
        }
        /* anything else (metadata, curve, name = ...) is not ours to judge */
    }
    return 0;
}

/* Opens, checks and parses one file. `secret`: apply the permission rule for secret key files. */
static int s_load_file(const char *path, bool secret, s_parsed *ps, ed_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ed_err_set(err, ED_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = ed_err_set(err, ED_EIO, "%s: cannot stat: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rc = ed_err_set(err, ED_EINVAL, "%s: not a regular file", path);
    } else if (secret && (st.st_mode & 077) && !(st.st_uid == 0 && (st.st_mode & 037) == 0)) {
        rc = ed_err_set(err, ED_EINVAL,
                        "secret key file %s has mode %04o: %s can read it; refusing to use it "
                        "(fix: chmod 600 %s)",
                        path, (unsigned)(st.st_mode & 07777),
                        (st.st_mode & 007) ? "any user" : "its group", path);
    }
    if (rc < 0) {
        close(fd);
        return rc;
    }
    char *text = s_read_fd(fd, path, err);
    close(fd);
    if (!text)
        return err ? err->code : ED_EIO;
    rc = s_parse(path, text, ps, err);
    memset(text, 0, strlen(text)); /* it may have held a secret key */
    free(text);
    return rc;
}

int ed_keys_load_secret(const char *path, ed_keypair *kp, ed_err *err)
{
    s_parsed *ps = calloc(1, sizeof *ps);
    if (!ps)
        return ed_err_set(err, ED_ENOMEM, "%s: out of memory", path);
    int rc = s_load_file(path, true, ps, err);
    if (rc == 0 && ps->n_secret != 1)
        rc = ed_err_set(err, ED_EFORMAT,
                        "%s: %s secret-key line: not a secret key file (make one "
                        "with `teacher_worker keygen --out PREFIX`)",
                        path, ps->n_secret ? "more than one" : "no");
    else if (rc == 0 && ps->n_pub != 1)
        rc = ed_err_set(err, ED_EFORMAT,
                        "%s: expected one public-key line beside the secret key, "
                        "found %d",
                        path, ps->n_pub);
    if (rc == 0) {
        kp->public_key = ps->pub[0];
        kp->secret_key = ps->secret;
    }
    memset(ps, 0, sizeof *ps);
    free(ps);
    return rc;
}

int ed_keys_load_public(const char *path, ed_key *key, ed_err *err)
{
    s_parsed *ps = calloc(1, sizeof *ps);
    if (!ps)
        return ed_err_set(err, ED_ENOMEM, "%s: out of memory", path);
    int rc = s_load_file(path, false, ps, err);
    if (rc == 0 && ps->n_secret)
        rc = ed_err_set(err, ED_EINVAL,
                        "%s holds a SECRET key: give the public key file (.pub) "
                        "instead",
                        path);
    else if (rc == 0 && ps->n_pub != 1)
        rc = ed_err_set(err, ED_EFORMAT, "%s: expected one public key, found %d", path, ps->n_pub);
    if (rc == 0)
        *key = ps->pub[0];
    memset(ps, 0, sizeof *ps);
    free(ps);
    return rc;
}

static int s_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends the keys of one allow-list file to ps. */
static int s_allow_file(const char *path, s_parsed *ps, ed_err *err)
{
    int before = ps->n_pub;
    int rc = s_load_file(path, false, ps, err);
    if (rc < 0)
        return rc;
    if (ps->n_secret)
        return ed_err_set(err, ED_EINVAL,
                          "%s holds a SECRET key: an allow-list takes public keys "
                          "(.pub files) only",
                          path);
    if (ps->n_pub == before)
        return ed_err_set(err, ED_EFORMAT, "%s: no public key in it", path);
    return 0;
}

static int s_allow_dir(const char *path, s_parsed *ps, ed_err *err)
{
    DIR *d = opendir(path);
    if (!d)
        return ed_err_set(err, ED_EIO, "%s: cannot open the directory: %s", path, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0, rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 4, ".pub"))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown = realloc(names, sizeof *names * (size_t)cap);
            if (!grown) {
                rc = ed_err_set(err, ED_ENOMEM, "%s: out of memory", path);
                break;
            }
            names = grown;
        }
        size_t need = strlen(path) + len + 2;
        if (!(names[n] = malloc(need))) {
            rc = ed_err_set(err, ED_ENOMEM, "%s: out of memory", path);
            break;
        }
        snprintf(names[n++], need, "%s/%s", path, e->d_name);
    }
    closedir(d);
    if (rc == 0 && n == 0)
        rc = ed_err_set(err, ED_EINVAL,
                        "%s: no *.pub file in the directory: every client would "
                        "be refused",
                        path);
    if (rc == 0)
        qsort(names, (size_t)n, sizeof *names, s_cmp_names);
    for (int i = 0; rc == 0 && i < n; i++)
        rc = s_allow_file(names[i], ps, err);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

int ed_keys_load_allowlist(const char *path, ed_key **keys, int *n, ed_err *err)
{
    *keys = NULL;
    *n = 0;
    struct stat st;
    if (stat(path, &st) != 0)
        return ed_err_set(err, ED_EIO, "%s: %s", path, strerror(errno));
    s_parsed *ps = calloc(1, sizeof *ps);
    if (!ps)
        return ed_err_set(err, ED_ENOMEM, "%s: out of memory", path);
    int rc = S_ISDIR(st.st_mode) ? s_allow_dir(path, ps, err) : s_allow_file(path, ps, err);
    if (rc == 0) {
        ed_key *out = malloc(sizeof *out * (size_t)ps->n_pub);
        if (!out) {
            rc = ed_err_set(err, ED_ENOMEM, "%s: out of memory", path);
        } else {
            int m = 0;
            for (int i = 0; i < ps->n_pub; i++) {
                bool dup = false;
                for (int j = 0; j < m && !dup; j++)
                    dup = !memcmp(out[j].bin, ps->pub[i].bin, ED_KEY_BYTES);
                if (!dup)
                    out[m++] = ps->pub[i];
            }
            *keys = out;
            *n = m;
        }
    }
    free(ps);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* Writing                                                                                        */

static int s_write_all(int fd, const char *text)
{
    size_t n = strlen(text), off = 0;
    while (off < n) {
        ssize_t w = write(fd, text + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

/* Creates `path` holding `text` with exactly `mode`. Without force: O_EXCL on path itself; with
 * force: O_EXCL on a temporary name, then rename. On failure nothing is left behind. */
static int s_write_file(const char *path, const char *text, mode_t mode, bool force, ed_err *err)
{
    char tmp[4096];
    const char *target = path;
    if (force) {
        if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
            return ed_err_set(err, ED_EINVAL, "%s: path too long", path);
        target = tmp;
    }
    int fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        if (errno == EEXIST && !force)
            return ed_err_set(err, ED_EINVAL,
                              "%s exists: refusing to overwrite a key (use "
                              "--force to replace it)",
                              path);
        return ed_err_set(err, ED_EIO, "cannot create %s: %s", target, strerror(errno));
    }
    /* fchmod: the umask may have removed bits (0644 -> 0600 is fine, but be exact). */
    int rc = 0;
    if (fchmod(fd, mode) != 0 || s_write_all(fd, text) != 0 || fsync(fd) != 0)
        rc = ed_err_set(err, ED_EIO, "cannot write %s: %s", target, strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = ed_err_set(err, ED_EIO, "cannot write %s: %s", target, strerror(errno));
    if (rc == 0 && force && rename(tmp, path) != 0)
        rc = ed_err_set(err, ED_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc < 0)
        unlink(target);
    return rc;
}

int ed_keys_write_pair(const char *prefix, const ed_keypair *kp, const char *comment, bool force,
                       ed_err *err)
{
    char key_path[4096], pub_path[4096];
    if ((size_t)snprintf(key_path, sizeof key_path, "%s.key", prefix) >= sizeof key_path ||
        (size_t)snprintf(pub_path, sizeof pub_path, "%s.pub", prefix) >= sizeof pub_path)
        return ed_err_set(err, ED_EINVAL, "--out %s: path too long", prefix);
    if (!force) { /* refuse before writing either file */
        struct stat st;
        if (lstat(key_path, &st) == 0)
            return ed_err_set(err, ED_EINVAL,
                              "%s exists: refusing to overwrite a key (use "
                              "--force to replace it)",
                              key_path);
        if (lstat(pub_path, &st) == 0)
            return ed_err_set(err, ED_EINVAL,
                              "%s exists: refusing to overwrite a key (use "
                              "--force to replace it)",
                              pub_path);
    }
    char cline[512] = "";
    if (comment && *comment)
        snprintf(cline, sizeof cline, "#   %s\n", comment);
    char text[1024];
    snprintf(text, sizeof text,
             "#   ****  Generated by edistill (teacher_worker keygen)  ****\n"
             "#   ZeroMQ CURVE **Secret** Certificate\n"
             "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n%s\n"
             "metadata\n"
             "curve\n"
             "    public-key = \"%s\"\n"
             "    secret-key = \"%s\"\n",
             cline, kp->public_key.z85, kp->secret_key.z85);
    int rc = s_write_file(key_path, text, 0600, force, err);
    memset(text, 0, sizeof text);
    if (rc < 0)
        return rc;
    snprintf(text, sizeof text,
             "#   ****  Generated by edistill (teacher_worker keygen)  ****\n"
             "#   ZeroMQ CURVE Public Certificate\n"
             "#   Give this file to the peers that must trust this key.\n%s\n"
             "metadata\n"
             "curve\n"
             "    public-key = \"%s\"\n",
             cline, kp->public_key.z85);
    rc = s_write_file(pub_path, text, 0644, force, err);
    if (rc < 0 && !force)
        unlink(key_path); /* do not leave half a pair */
    return rc;
}
