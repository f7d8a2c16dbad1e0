/*
 * ed_paths: command-line input lists -> ordered paths (see ed_paths.h).
 */
#include "ed_paths.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    char **v;
    int n, cap;
} s_list;

static int s_push(s_list *l, const char *path, size_t len, ed_err *err)
{
    if (l->n >= ED_PATHS_MAX)
        return ed_err_set(err, ED_ETOOBIG, "more than %d input files", ED_PATHS_MAX);
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, sizeof(char *) * (size_t)cap);
        if (!v)
            return ed_err_set(err, ED_ENOMEM, "out of memory");
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strndup(path, len)))
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    l->n++;
    return 0;
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int s_dir(s_list *l, const char *dir, ed_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return ed_err_set(err, ED_EIO, "%s: cannot list: %s", dir, strerror(errno));
    int first = l->n, rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(n);
        struct stat sb;
        if (!p) {
            rc = ed_err_set(err, ED_ENOMEM, "out of memory");
            break;
        }
        snprintf(p, n, "%s/%s", dir, e->d_name);
        if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode))
            rc = s_push(l, p, strlen(p), err);
        free(p);
    }
    closedir(d);
    if (!rc && l->n == first)
        rc = ed_err_set(err, ED_ENOTFOUND, "%s: the directory holds no input files", dir);
    if (!rc)
        qsort(l->v + first, (size_t)(l->n - first), sizeof(char *), s_cmp);
    return rc;
}

static int s_entry(s_list *l, const char *entry, ed_err *err)
{
    struct stat sb;
    if (stat(entry, &sb) == 0)
        return S_ISDIR(sb.st_mode) ? s_dir(l, entry, err) : s_push(l, entry, strlen(entry), err);
    if (!strpbrk(entry, "*?["))
        return ed_err_set(err, ED_ENOTFOUND, "%s: no such file", entry);
    glob_t g;
    int grc = glob(entry, 0, NULL, &g); /* glob sorts its matches */
    int rc = 0;
    if (grc == GLOB_NOMATCH)
        rc = ed_err_set(err, ED_ENOTFOUND, "%s: no file matches the pattern", entry);
    else if (grc != 0)
        rc = ed_err_set(err, ED_EIO, "%s: cannot expand the pattern", entry);
    for (size_t i = 0; !rc && i < g.gl_pathc; i++)
        if (stat(g.gl_pathv[i], &sb) == 0 && S_ISREG(sb.st_mode))
            rc = s_push(l, g.gl_pathv[i], strlen(g.gl_pathv[i]), err);
    if (grc == 0)
        globfree(&g);
    return rc;
}

int ed_paths_expand(const char *list, char ***out, int *n, ed_err *err)
{
    s_list l = {0};
    int rc = 0;
    *out = NULL;
    *n = 0;
    if (!list || !*list)
        return ed_err_set(err, ED_EINVAL, "empty list of input files");
    for (const char *p = list; !rc;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char *entry = strndup(p, len);
        if (!entry)
            rc = ed_err_set(err, ED_ENOMEM, "out of memory");
        else if (len == 0)
            rc =
                ed_err_set(err, ED_EINVAL, "'%s': an empty entry in the list of input files", list);
        else
            rc = s_entry(&l, entry, err);
        free(entry);
        if (!comma)
            break;
        p = comma + 1;
    }
    if (rc) {
        ed_paths_free(&l.v, l.n);
        return rc;
    }
    *out = l.v;
    *n = l.n;
    return 0;
}

void ed_paths_free(char ***paths, int n)
{
    if (!paths || !*paths)
        return;
    for (int i = 0; i < n; i++)
        free((*paths)[i]);
    free(*paths);
    *paths = NULL;
}
