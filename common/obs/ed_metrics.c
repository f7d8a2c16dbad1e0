/*
 * ed_metrics: Prometheus metrics registry and text exposition (see ed_metrics.h).
 *
 * Families and series are linked lists that only grow while the registry lives, guarded by one
 * mutex for registration and rendering. A series' value is a double kept as bits in an
 * _Atomic uint64_t; histograms keep one atomic count per bucket (not cumulative, so the +Inf
 * bucket and _count, both derived from them at render time, always agree) and an atomic sum.
 */
#include "ed_metrics.h"

#include "ed_proc.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef enum { S_COUNTER, S_GAUGE, S_HISTOGRAM } s_type;

static const char *const s_type_names[] = {"counter", "gauge", "histogram"};

typedef struct s_family s_family;

struct ed_metric {
    s_family *fam;
    char *labels;              /* rendered `a="x",b="y"` (escaped), "" without labels */
    _Atomic uint64_t bits;     /* counter/gauge value, histogram sum: a double's bits */
    _Atomic uint64_t *buckets; /* histogram: n_bounds + 1 non-cumulative counts */
    ed_metric_fn fn;           /* computed gauge, or NULL */
    void *fn_arg;
    ed_metric *next;
};

struct s_family {
    char *name;
    char *help; /* escaped */
    s_type type;
    int n_labels;
    char *label_names[ED_METRICS_MAX_LABELS];
    double bounds[ED_METRICS_MAX_BUCKETS];
    int n_bounds;
    ed_metric *head, *tail;
    s_family *next;
};

struct ed_metrics {
    pthread_mutex_t mu;
    s_family *head, *tail;
};

/* ---------------------------------------------------------------------------------------------- */
/* Text helpers                                                                                   */

/* A growable string; on allocation failure `failed` is set and further appends are ignored. */
typedef struct {
    char *p;
    size_t len, cap;
    int failed;
} s_buf;

static void s_putn(s_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void s_puts(s_buf *b, const char *s)
{
    s_putn(b, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes there are not one. */
static size_t s_utf8_len(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0)
        n = 2, min = 0x80, c &= 0x1F;
    else if ((c & 0xF0) == 0xE0)
        n = 3, min = 0x800, c &= 0x0F;
    else if ((c & 0xF8) == 0xF0)
        n = 4, min = 0x10000, c &= 0x07;
    else
        return 0;
    if (n > avail)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    return n;
}

/* Appends s escaped for a label value (quote = 1) or a help line (quote = 0): backslash and
 * newline always, double quote in label values; bytes that are not UTF-8 become '?'. */
static void s_put_escaped(s_buf *b, const char *s, int quote)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        if (u[i] == '\\') {
            s_puts(b, "\\\\");
            i++;
        } else if (u[i] == '\n') {
            s_puts(b, "\\n");
            i++;
        } else if (u[i] == '"' && quote) {
            s_puts(b, "\\\"");
            i++;
        } else {
            size_t k = s_utf8_len(u + i, n - i);
            if (k == 0) {
                s_puts(b, "?");
                i++;
            } else {
                s_putn(b, s + i, k);
                i += k;
            }
        }
    }
}

/* Prometheus float syntax: shortest round-trip decimal, +Inf / -Inf / NaN. */
static void s_put_double(s_buf *b, double v)
{
    char tmp[40];
    if (isnan(v))
        snprintf(tmp, sizeof tmp, "NaN");
    else if (isinf(v))
        snprintf(tmp, sizeof tmp, v > 0 ? "+Inf" : "-Inf");
    else {
        snprintf(tmp, sizeof tmp, "%.15g", v);
        if (strtod(tmp, NULL) != v)
            snprintf(tmp, sizeof tmp, "%.17g", v);
    }
    s_puts(b, tmp);
}

static int s_valid_name(const char *s, int label)
{
    if (!s || !*s)
        return 0;
    for (const char *p = s; *p; p++) {
        int alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
                    (!label && *p == ':');
        int digit = *p >= '0' && *p <= '9';
        if (!alpha && !(digit && p != s))
            return 0;
    }
    if (label && (strncmp(s, "__", 2) == 0 || strcmp(s, "le") == 0 || strcmp(s, "quantile") == 0))
        return 0;
    return 1;
}

static double s_bits_to_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static uint64_t s_double_to_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static void s_atomic_add(_Atomic uint64_t *a, double v)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old,
                                                  s_double_to_bits(s_bits_to_double(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* ---------------------------------------------------------------------------------------------- */
/* Registry                                                                                       */

ed_metrics *ed_metrics_new(void)
{
    ed_metrics *r = calloc(1, sizeof *r);
    if (r)
        pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void s_metric_free(ed_metric *m)
{
    free(m->labels);
    free(m->buckets);
    free(m);
}

void ed_metrics_destroy(ed_metrics **pr)
{
    if (!pr || !*pr)
        return;
    ed_metrics *r = *pr;
    for (s_family *f = r->head; f;) {
        s_family *fn = f->next;
        for (ed_metric *m = f->head; m;) {
            ed_metric *mn = m->next;
            s_metric_free(m);
            m = mn;
        }
        for (int i = 0; i < f->n_labels; i++)
            free(f->label_names[i]);
        free(f->name);
        free(f->help);
        free(f);
        f = fn;
    }
    pthread_mutex_destroy(&r->mu);
    free(r);
    *pr = NULL;
}

/* Finds or creates the family (registry lock held). */
static s_family *s_family_get(ed_metrics *r, const char *name, const char *help, s_type type,
                              const ed_label *labels, int n_labels, const double *bounds,
                              int n_bounds, ed_err *err)
{
    for (s_family *f = r->head; f; f = f->next) {
        if (strcmp(f->name, name) != 0)
            continue;
        int same = f->type == type && f->n_labels == n_labels && f->n_bounds == n_bounds;
        for (int i = 0; same && i < n_labels; i++)
            same = strcmp(f->label_names[i], labels[i].name) == 0;
        for (int i = 0; same && i < n_bounds; i++)
            same = f->bounds[i] == bounds[i];
        if (!same) {
            ed_err_set(err, ED_EINVAL,
                       "metric %s: already registered as a %s with other labels "
                       "or buckets",
                       name, s_type_names[f->type]);
            return NULL;
        }
        return f;
    }
    s_family *f = calloc(1, sizeof *f);
    s_buf h = {0};
    s_puts(&h, ""); /* allocates: an empty help is still a string */
    s_put_escaped(&h, help ? help : "", 0);
    if (!f || !(f->name = strdup(name)) || h.failed || !h.p) {
        free(h.p);
        if (f)
            free(f->name);
        free(f);
        ed_err_set(err, ED_ENOMEM, "metric %s: out of memory", name);
        return NULL;
    }
    f->help = h.p;
    f->type = type;
    f->n_bounds = n_bounds;
    if (n_bounds > 0)
        memcpy(f->bounds, bounds, sizeof(double) * (size_t)n_bounds);
    for (int i = 0; i < n_labels; i++) {
        if (!(f->label_names[i] = strdup(labels[i].name))) {
            for (int j = 0; j < i; j++)
                free(f->label_names[j]);
            free(f->name);
            free(f->help);
            free(f);
            ed_err_set(err, ED_ENOMEM, "metric %s: out of memory", name);
            return NULL;
        }
    }
    f->n_labels = n_labels;
    if (r->tail)
        r->tail->next = f;
    else
        r->head = f;
    r->tail = f;
    return f;
}

static ed_metric *s_register(ed_metrics *r, const char *name, const char *help, s_type type,
                             const ed_label *labels, int n_labels, const double *bounds,
                             int n_bounds, ed_err *err)
{
    if (!r)
        return NULL;
    if (!s_valid_name(name, 0)) {
        ed_err_set(err, ED_EINVAL, "metric name '%s' is not [a-zA-Z_:][a-zA-Z0-9_:]*",
                   name ? name : "(null)");
        return NULL;
    }
    size_t nl = strlen(name);
    if (type == S_COUNTER && (nl < 6 || strcmp(name + nl - 6, "_total") != 0)) {
        ed_err_set(err, ED_EINVAL, "counter %s: counter names end in _total", name);
        return NULL;
    }
    if (n_labels < 0 || n_labels > ED_METRICS_MAX_LABELS || (n_labels && !labels)) {
        ed_err_set(err, ED_EINVAL, "metric %s: 0..%d labels allowed", name, ED_METRICS_MAX_LABELS);
        return NULL;
    }
    for (int i = 0; i < n_labels; i++)
        if (!s_valid_name(labels[i].name, 1) || !labels[i].value) {
            ed_err_set(err, ED_EINVAL, "metric %s: bad label name '%s' (or no value)", name,
                       labels[i].name ? labels[i].name : "(null)");
            return NULL;
        }
    if (type == S_HISTOGRAM) {
        int ok = bounds && n_bounds >= 1 && n_bounds <= ED_METRICS_MAX_BUCKETS;
        for (int i = 0; ok && i < n_bounds; i++)
            ok = isfinite(bounds[i]) && (i == 0 || bounds[i] > bounds[i - 1]);
        if (!ok) {
            ed_err_set(err, ED_EINVAL, "histogram %s: needs 1..%d finite increasing bounds", name,
                       ED_METRICS_MAX_BUCKETS);
            return NULL;
        }
    } else {
        n_bounds = 0;
    }

    s_buf lb = {0};
    s_puts(&lb, "");
    for (int i = 0; i < n_labels; i++) {
        if (i)
            s_puts(&lb, ",");
        s_puts(&lb, labels[i].name);
        s_puts(&lb, "=\"");
        s_put_escaped(&lb, labels[i].value, 1);
        s_puts(&lb, "\"");
    }
    if (lb.failed) {
        free(lb.p);
        ed_err_set(err, ED_ENOMEM, "metric %s: out of memory", name);
        return NULL;
    }

    pthread_mutex_lock(&r->mu);
    ed_metric *m = NULL;
    s_family *f = s_family_get(r, name, help, type, labels, n_labels, bounds, n_bounds, err);
    if (!f)
        goto out;
    for (m = f->head; m; m = m->next)
        if (strcmp(m->labels, lb.p) == 0)
            goto out;
    m = calloc(1, sizeof *m);
    if (!m || (n_bounds && !(m->buckets = calloc((size_t)n_bounds + 1, sizeof *m->buckets)))) {
        free(m);
        m = NULL;
        ed_err_set(err, ED_ENOMEM, "metric %s: out of memory", name);
        goto out;
    }
    m->fam = f;
    m->labels = lb.p;
    lb.p = NULL;
    atomic_init(&m->bits, s_double_to_bits(0.0));
    if (f->tail)
        f->tail->next = m;
    else
        f->head = m;
    f->tail = m;
out:
    pthread_mutex_unlock(&r->mu);
    free(lb.p);
    return m;
}

ed_metric *ed_metrics_counter(ed_metrics *r, const char *name, const char *help,
                              const ed_label *labels, int n_labels, ed_err *err)
{
    return s_register(r, name, help, S_COUNTER, labels, n_labels, NULL, 0, err);
}

ed_metric *ed_metrics_gauge(ed_metrics *r, const char *name, const char *help,
                            const ed_label *labels, int n_labels, ed_err *err)
{
    return s_register(r, name, help, S_GAUGE, labels, n_labels, NULL, 0, err);
}

ed_metric *ed_metrics_gauge_fn(ed_metrics *r, const char *name, const char *help,
                               const ed_label *labels, int n_labels, ed_metric_fn fn, void *arg,
                               ed_err *err)
{
    ed_metric *m = s_register(r, name, help, S_GAUGE, labels, n_labels, NULL, 0, err);
    if (m) {
        pthread_mutex_lock(&r->mu);
        m->fn = fn;
        m->fn_arg = arg;
        pthread_mutex_unlock(&r->mu);
    }
    return m;
}

ed_metric *ed_metrics_histogram(ed_metrics *r, const char *name, const char *help,
                                const ed_label *labels, int n_labels, const double *bounds,
                                int n_bounds, ed_err *err)
{
    return s_register(r, name, help, S_HISTOGRAM, labels, n_labels, bounds, n_bounds, err);
}

void ed_metrics_exp_buckets(double start, double factor, int n, double *out)
{
    double v = start;
    for (int i = 0; i < n; i++, v *= factor)
        out[i] = v;
}

/* ---------------------------------------------------------------------------------------------- */
/* Updates                                                                                        */

void ed_metric_add(ed_metric *m, double v)
{
    if (!m || m->buckets || (m->fam->type == S_COUNTER && !(v >= 0)))
        return;
    s_atomic_add(&m->bits, v);
}

void ed_metric_inc(ed_metric *m)
{
    ed_metric_add(m, 1.0);
}

void ed_metric_set(ed_metric *m, double v)
{
    if (m && !m->buckets)
        atomic_store_explicit(&m->bits, s_double_to_bits(v), memory_order_relaxed);
}

void ed_metric_observe(ed_metric *m, double v)
{
    if (!m || !m->buckets || isnan(v))
        return;
    const s_family *f = m->fam;
    int i = 0;
    while (i < f->n_bounds && v > f->bounds[i])
        i++;
    atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
    s_atomic_add(&m->bits, v);
}

double ed_metric_value(const ed_metric *m)
{
    if (!m)
        return 0;
    if (m->buckets) {
        uint64_t n = 0;
        for (int i = 0; i <= m->fam->n_bounds; i++)
            n += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
        return (double)n;
    }
    if (m->fn)
        return m->fn(m->fn_arg);
    return s_bits_to_double(atomic_load_explicit(&m->bits, memory_order_relaxed));
}

/* ---------------------------------------------------------------------------------------------- */
/* Process series                                                                                 */

static double s_start_time;

static double s_fn_start_time(void *arg)
{
    (void)arg;
    return s_start_time;
}

static double s_fn_rss(void *arg)
{
    (void)arg;
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (double)rss * (double)sysconf(_SC_PAGESIZE);
}

static double s_fn_peak_rss(void *arg)
{
    (void)arg;
    return ed_proc_peak_rss_bytes();
}

int ed_metrics_add_process(ed_metrics *r, ed_err *err)
{
    if (!r)
        return 0;
    if (s_start_time == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s_start_time = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    }
    if (!ed_metrics_gauge_fn(r, "process_start_time_seconds",
                             "Start time of the process since the Unix epoch, in seconds.", NULL, 0,
                             s_fn_start_time, NULL, err) ||
        !ed_metrics_gauge_fn(r, "process_resident_memory_bytes", "Resident memory size in bytes.",
                             NULL, 0, s_fn_rss, NULL, err) ||
        !ed_metrics_gauge_fn(r, "edistill_process_peak_rss_bytes",
                             "Peak resident memory size in bytes (getrusage ru_maxrss).", NULL, 0,
                             s_fn_peak_rss, NULL, err))
        return err ? err->code : ED_EINVAL;
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Exposition                                                                                     */

/* name[suffix]{labels[,extra]} value\n */
static void s_put_sample(s_buf *b, const s_family *f, const char *suffix, const char *labels,
                         const char *extra, double v)
{
    s_puts(b, f->name);
    s_puts(b, suffix);
    int has = labels[0] != '\0';
    if (has || extra) {
        s_puts(b, "{");
        s_puts(b, labels);
        if (extra) {
            if (has)
                s_puts(b, ",");
            s_puts(b, extra);
        }
        s_puts(b, "}");
    }
    s_puts(b, " ");
    s_put_double(b, v);
    s_puts(b, "\n");
}

static void s_put_histogram(s_buf *b, const s_family *f, const ed_metric *m)
{
    uint64_t cum = 0;
    for (int i = 0; i <= f->n_bounds; i++) {
        cum += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
        s_buf le = {0};
        s_puts(&le, "le=\"");
        if (i == f->n_bounds)
            s_puts(&le, "+Inf");
        else
            s_put_double(&le, f->bounds[i]);
        s_puts(&le, "\"");
        if (le.failed)
            b->failed = 1;
        else
            s_put_sample(b, f, "_bucket", m->labels, le.p, (double)cum);
        free(le.p);
    }
    s_put_sample(b, f, "_sum", m->labels, NULL,
                 s_bits_to_double(atomic_load_explicit(&m->bits, memory_order_relaxed)));
    s_put_sample(b, f, "_count", m->labels, NULL, (double)cum);
}

char *ed_metrics_render(ed_metrics *r, size_t *len)
{
    s_buf b = {0};
    s_puts(&b, "");
    if (r) {
        pthread_mutex_lock(&r->mu);
        for (const s_family *f = r->head; f; f = f->next) {
            if (!f->head)
                continue;
            s_puts(&b, "# HELP ");
            s_puts(&b, f->name);
            s_puts(&b, " ");
            s_puts(&b, f->help);
            s_puts(&b, "\n# TYPE ");
            s_puts(&b, f->name);
            s_puts(&b, " ");
            s_puts(&b, s_type_names[f->type]);
            s_puts(&b, "\n");
            for (const ed_metric *m = f->head; m; m = m->next) {
                if (f->type == S_HISTOGRAM)
                    s_put_histogram(&b, f, m);
                else
                    s_put_sample(&b, f, "", m->labels, NULL, ed_metric_value(m));
            }
        }
        pthread_mutex_unlock(&r->mu);
    }
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.p;
}
