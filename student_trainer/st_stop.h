/*
 * st_stop: SIGINT/SIGTERM as a request to stop between steps. The handler only records the signal
 * in one flag; the commands' loops and the pool (st_pool_set_stop_flag) poll it, finish the step in
 * hand, save what can be saved and exit with 128 + the signal. The handlers are one-shot: a second
 * signal gets the default action, so a second Ctrl-C still ends a stuck process.
 */
#ifndef ST_STOP_H
#define ST_STOP_H

#include <signal.h>

typedef struct {
    struct sigaction old[2]; /* SIGINT's and SIGTERM's previous actions */
} st_stop_guard;

/* Clears the flag and installs the handlers (no SA_RESTART: blocking waits return with EINTR). */
void st_stop_install(st_stop_guard *g);

/* Puts the previous handlers back; the flag keeps its value. */
void st_stop_restore(const st_stop_guard *g);

/* The flag: 0, or the signal that asked to stop. */
volatile sig_atomic_t *st_stop_flag(void);

#endif
