/*
 * ed_progress: progress reporting for long work (training epochs, evaluation): a line on stderr at
 * most every `interval` seconds with the done/total count, rate and an ETA.
 */
#ifndef ED_PROGRESS_H
#define ED_PROGRESS_H

#include <stdbool.h>

typedef struct {
    const char *what; /* "epoch 3/20" */
    long total;       /* units expected (0 = unknown) */
    double start;
    double last_print;
    double interval; /* seconds between lines; <= 0 disables */
} ed_progress;

void ed_progress_start(ed_progress *p, const char *what, long total, double interval);

/* Prints "what: done/total (xx%) rate/s eta Ns | extra" when the interval has passed. */
void ed_progress_update(ed_progress *p, long done, const char *extra);

#endif
