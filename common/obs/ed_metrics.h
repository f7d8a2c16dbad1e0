/*
 * ed_metrics: a registry of Prometheus metrics (counters, gauges, histograms) and its text
 * exposition format (version 0.0.4).
 *
 * A metric *family* has a name, a help line and a type; each *series* of a family has its own label
 * values. Registering returns a series handle that stays valid until the registry is destroyed;
 * asking again for the same name and labels returns the same handle, so code that discovers label
 * values late (a new ensemble member) can simply register when it needs the series.
 *
 * Updates never block: counters, gauges and histogram buckets are C11 atomics (a double is kept as
 * its bits and updated with compare-and-swap), so the compute path pays a few atomic operations
 * and never waits for a scrape. Registration and rendering take the registry's mutex. Every update
 * function accepts a NULL series and does nothing, so a program with metrics off keeps its hook
 * calls and pays one branch each.
 *
 *     ed_metrics *r = ed_metrics_new();
 *     ed_label kind = {"kind", "logit"};
 *     ed_metric *req = ed_metrics_counter(r, "edistill_worker_requests_total",
 *                                         "Requests received, by kind.", &kind, 1, &err);
 *     ed_metric_inc(req);
 *     char *text = ed_metrics_render(r, NULL);   // "# HELP ...\n# TYPE ... counter\n..."
 *
 * Names follow Prometheus conventions (checked: [a-zA-Z_:][a-zA-Z0-9_:]*, labels without "__"
 * prefix or "le"/"quantile" clashes); counters end in `_total`, durations are in seconds. Label
 * values and help text are escaped as the format requires (backslash, double quote, newline).
 */
#ifndef ED_METRICS_H
#define ED_METRICS_H

#include <stddef.h>

#include "ed_error.h"

typedef struct ed_metrics ed_metrics;
typedef struct ed_metric ed_metric;

typedef struct {
    const char *name;
    const char *value; /* any bytes but NUL; escaped on output */
} ed_label;

#define ED_METRICS_MAX_LABELS 8
#define ED_METRICS_MAX_BUCKETS 32

/* Value of a gauge computed at scrape time (on the scraping thread: must be thread-safe). */
typedef double (*ed_metric_fn)(void *arg);

/* New empty registry, or NULL when out of memory. */
ed_metrics *ed_metrics_new(void);

/* Frees the registry and every series; handles become invalid. Accepts NULL; clears *pr. */
void ed_metrics_destroy(ed_metrics **pr);

/* Get-or-create a counter / gauge series. Returns NULL with err set (ED_EINVAL) for a bad name,
 * bad label name, more than ED_METRICS_MAX_LABELS labels, or a name already registered with another
 * type or another set of label names; ED_ENOMEM when out of memory. A NULL registry returns NULL
 * without error (metrics off). */
ed_metric *ed_metrics_counter(ed_metrics *r, const char *name, const char *help,
                              const ed_label *labels, int n_labels, ed_err *err);
ed_metric *ed_metrics_gauge(ed_metrics *r, const char *name, const char *help,
                            const ed_label *labels, int n_labels, ed_err *err);

/* A gauge whose value is fn(arg), called at each scrape. */
ed_metric *ed_metrics_gauge_fn(ed_metrics *r, const char *name, const char *help,
                               const ed_label *labels, int n_labels, ed_metric_fn fn, void *arg,
                               ed_err *err);

/* A histogram with the given upper bounds (strictly increasing, finite, 1..ED_METRICS_MAX_BUCKETS;
 * +Inf is added). All series of one family must use the same bounds. */
ed_metric *ed_metrics_histogram(ed_metrics *r, const char *name, const char *help,
                                const ed_label *labels, int n_labels, const double *bounds,
                                int n_bounds, ed_err *err);

/* Fills out[0..n) with start * factor^i (Prometheus' ExponentialBuckets). */
void ed_metrics_exp_buckets(double start, double factor, int n, double *out);

/* Updates (lock-free; NULL series: no-op). inc/add on a counter must not decrease it (a negative
 * add is ignored); set on a counter is for mirroring a count kept elsewhere. */
void ed_metric_inc(ed_metric *m);
void ed_metric_add(ed_metric *m, double v);
void ed_metric_set(ed_metric *m, double v);
void ed_metric_observe(ed_metric *m, double v); /* histograms */

/* Current value of a counter or gauge (histograms: the count); 0 for NULL. */
double ed_metric_value(const ed_metric *m);

/* Standard process series: process_start_time_seconds, process_resident_memory_bytes,
 * edistill_process_peak_rss_bytes. */
int ed_metrics_add_process(ed_metrics *r, ed_err *err);

/* The exposition text (malloc'd, NUL-terminated; caller frees), families in registration order,
 * series in registration order within each. *len (if given) gets its length. NULL when out of
 * memory. */
char *ed_metrics_render(ed_metrics *r, size_t *len);

#endif
