/* tu: shared unit-test helpers (see tu.h). */
#include "tu.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tu_allclose(const char *what, const float *a, const float *b, size_t n, double atol,
                double rtol)
{
    double worst = 0.0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double tol = atol + rtol * fabs((double)b[i]);
        double r = d / tol;
        if (isnan(a[i]) || isnan(b[i]))
            r = INFINITY;
        if (r > worst) {
            worst = r;
            wi = i;
        }
    }
    if (worst > 1.0) {
        fprintf(stderr,
                "%s: not close at [%zu]: got %.9g, want %.9g (|diff| %.3g, atol %.3g rtol %.3g)\n",
                what, wi, (double)a[wi], (double)b[wi], fabs((double)a[wi] - (double)b[wi]), atol,
                rtol);
        return 0;
    }
    return 1;
}

char *tu_temp_path(const char *suffix)
{
    static int counter;
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    size_t n = strlen(dir) + strlen(suffix) + 64;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/edtest-%ld-%d%s", dir, (long)getpid(), counter++, suffix);
    return p;
}

int tu_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, n, f);
    int rc = fclose(f);
    return (w == n && rc == 0) ? 0 : -1;
}

void *tu_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(len > 0 ? (size_t)len : 1);
    if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf && n)
        *n = (size_t)len;
    return buf;
}
