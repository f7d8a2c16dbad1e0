/*
 * ed_fs: atomic file replacement, mkdir -p, and reopening an output file cut back to a length.
 *
 * ed_fs_write_atomic writes into "<path>.tmp.XXXXXX" (mkstemp, same directory so rename() stays
 * within one filesystem), flushes and fsyncs it, renames it over `path`, then fsyncs the directory
 * so the rename itself is durable. Readers therefore see either the old file or the complete new
 * one, never a prefix. Every failure before the rename removes the temporary file.
 */
#include "ed_fs.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "ed_log.h"

/* Directory part of path ("." when there is no slash, "/" for "/x"). Caller frees; NULL on OOM. */
static char *s_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    size_t n = (size_t)(slash - path);
    if (n == 0)
        n = 1; /* "/x" -> "/" */
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

/* fsync of a directory; filesystems that cannot sync directories (EINVAL) are not an error. */
static int s_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    if (rc != 0 && saved == EINVAL)
        return 0;
    errno = saved;
    return rc;
}

int ed_fs_write_atomic(const char *path, int (*write_fn)(FILE *f, void *ctx, ed_err *err),
                       void *ctx, ed_err *err)
{
    if (!path || !*path || !write_fn)
        return ed_err_set(err, ED_EINVAL, "ed_fs_write_atomic: empty path or no write function");

    int rc = ED_OK;
    FILE *f = NULL;
    int fd = -1;
    char *dir = NULL;
    size_t n = strlen(path) + sizeof ".tmp.XXXXXX";
    char *tmp = malloc(n);
    if (!tmp) {
        rc = ed_err_set(err, ED_ENOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);

    fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        rc = ed_err_set(err, ED_EIO, "%s: cannot create temporary file %s: %s", path, tmp,
                        strerror(e));
        tmp[0] = '\0'; /* nothing to unlink */
        goto cleanup;
    }
    /* mkstemp creates 0600; keep the mode of the file being replaced, else use 0644. */
    struct stat st;
    mode_t mode = 0644;
    if (stat(path, &st) == 0)
        mode = st.st_mode & 07777;
    (void)fchmod(fd, mode);

    f = fdopen(fd, "wb");
    if (!f) {
        int e = errno;
        rc = ed_err_set(err, ED_EIO, "%s: fdopen of %s failed: %s", path, tmp, strerror(e));
        goto cleanup;
    }
    fd = -1; /* owned by f now */

    ed_err inner;
    ed_err_clear(&inner);
    errno = 0;
    rc = write_fn(f, ctx, &inner);
    if (rc < 0) {
        if (inner.msg[0])
            ed_err_set(err, rc, "%s: %s", path, inner.msg);
        else
            ed_err_set(err, rc, "%s: write failed: %s", path, ed_strerror(rc));
        goto cleanup;
    }
    rc = ED_OK;
    if (fflush(f) != 0 || ferror(f)) {
        int e = errno;
        rc = ed_err_set(err, ED_EIO, "%s: write failed: %s", path, strerror(e));
        goto cleanup;
    }
    if (fsync(fileno(f)) != 0) {
        int e = errno;
        rc = ed_err_set(err, ED_EIO, "%s: fsync failed: %s", path, strerror(e));
        goto cleanup;
    }
    int crc = fclose(f);
    f = NULL;
    if (crc != 0) {
        int e = errno;
        rc = ed_err_set(err, ED_EIO, "%s: close failed: %s", path, strerror(e));
        goto cleanup;
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        rc = ed_err_set(err, ED_EIO, "%s: cannot rename %s over it: %s", path, tmp, strerror(e));
        goto cleanup;
    }
    tmp[0] = '\0'; /* renamed: nothing left to unlink */

    dir = s_dirname(path);
    if (!dir) {
        rc = ed_err_set(err, ED_ENOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    if (s_fsync_dir(dir) != 0) {
        int e = errno;
        rc = ed_err_set(err, ED_EIO, "%s: written, but fsync of directory %s failed: %s", path, dir,
                        strerror(e));
        goto cleanup;
    }

cleanup:
    if (f)
        fclose(f);
    if (fd >= 0)
        close(fd);
    if (tmp && tmp[0])
        unlink(tmp);
    free(tmp);
    free(dir);
    return rc;
}

int ed_fs_mkdirs(const char *path, ed_err *err)
{
    if (!path || !*path)
        return ed_err_set(err, ED_EINVAL, "ed_fs_mkdirs: empty path");
    char *p = strdup(path);
    if (!p)
        return ed_err_set(err, ED_ENOMEM, "%s: out of memory", path);

    int rc = ED_OK;
    size_t len = strlen(p);
    /* Create each prefix that ends before a '/', then the whole path. */
    for (size_t i = 1; i <= len; i++) {
        if (i < len && p[i] != '/')
            continue;
        char saved = p[i];
        p[i] = '\0';
        if (mkdir(p, 0777) != 0) {
            int e = errno;
            struct stat st;
            if (e != EEXIST) {
                rc = ed_err_set(err, ED_EIO, "%s: cannot create directory %s: %s", path, p,
                                strerror(e));
                goto cleanup;
            }
            if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
                rc = ed_err_set(err, ED_EIO, "%s: %s exists and is not a directory", path, p);
                goto cleanup;
            }
        }
        p[i] = saved;
    }

cleanup:
    free(p);
    return rc;
}

FILE *ed_fs_reopen_cut(const char *path, long bytes, const char *what)
{
    if (bytes < 0)
        return fopen(path, "wb");
    FILE *f;
    struct stat sb;
    if (stat(path, &sb) != 0 || sb.st_size < bytes)
        ed_log_warn("%s: %s file %s than when the checkpoint was written; appending", path, what,
                    stat(path, &sb) != 0 ? "missing, so it now lacks the lines from before"
                                         : "shorter");
    else if (truncate(path, (off_t)bytes) != 0)
        ed_log_warn("%s: cannot cut the %s file back to %ld bytes: %s", path, what, bytes,
                    strerror(errno));
    f = fopen(path, "ab");
    if (f)
        fseek(f, 0, SEEK_END); /* ftell in append mode is the end only after the first write */
    return f;
}

long ed_fs_file_bytes(FILE *f)
{
    if (!f || f == stdout)
        return -1;
    fflush(f);
    return ftell(f);
}
