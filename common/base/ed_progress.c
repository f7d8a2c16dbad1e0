/* ed_progress: throttled progress lines (see ed_progress.h). */
#include "ed_progress.h"

#include <stdio.h>

#include "ed_clock.h"

void ed_progress_start(ed_progress *p, const char *what, long total, double interval)
{
    p->what = what;
    p->total = total;
    p->start = p->last_print = ed_now();
    p->interval = interval;
}

void ed_progress_update(ed_progress *p, long done, const char *extra)
{
    if (p->interval <= 0)
        return;
    double now = ed_now();
    if (now - p->last_print < p->interval)
        return;
    p->last_print = now;
    double el = now - p->start;
    double rate = el > 0 ? (double)done / el : 0.0;
    if (p->total > 0) {
        double eta = rate > 0 ? (double)(p->total - done) / rate : 0.0;
        fprintf(stderr, "  %s: %ld/%ld (%.0f%%) %.0f/s eta %.0fs%s%s\n", p->what, done, p->total,
                100.0 * (double)done / (double)p->total, rate, eta, extra ? " | " : "",
                extra ? extra : "");
    } else {
        fprintf(stderr, "  %s: %ld %.0f/s%s%s\n", p->what, done, rate, extra ? " | " : "",
                extra ? extra : "");
    }
}
