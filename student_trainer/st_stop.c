/*
 * st_stop: the stop flag and its signal handlers (st_stop.h).
 */
#include "st_stop.h"

#include <string.h>

static volatile sig_atomic_t s_stop_signal;

static void s_on_signal(int sig)
{
    s_stop_signal = sig;
}

void st_stop_install(st_stop_guard *g)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    s_stop_signal = 0;
    sigaction(SIGINT, &sa, &g->old[0]);
    sigaction(SIGTERM, &sa, &g->old[1]);
}

void st_stop_restore(const st_stop_guard *g)
{
    sigaction(SIGINT, &g->old[0], NULL);
    sigaction(SIGTERM, &g->old[1], NULL);
}

volatile sig_atomic_t *st_stop_flag(void)
{
    return &s_stop_signal;
}
