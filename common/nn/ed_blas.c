/* ed_blas: OpenBLAS kernel selection and threads (see ed_blas.h). */
#include "ed_blas.h"

#include <cblas.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ed_log.h"

#define ED_BLAS_REEXEC_GUARD "EDISTILL_BLAS_REEXEC"
/* log2 of the cycles an idle OpenBLAS thread spins before it sleeps: 2^18 cycles (~0.1 ms) covers
 * the gaps between the sgemm calls of one step, and no more. */
#define ED_BLAS_THREAD_TIMEOUT "18"

static const char *s_better_core(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
    return NULL;
}

static int s_is_generic(const char *core)
{
    static const char *const generic[] = {"Prescott", "Core2",      "Penryn",    "Dunnington",
                                          "Katmai",   "Coppermine", "Northwood", "Banias",
                                          "Atom",     "Nano"};
    for (size_t i = 0; i < sizeof generic / sizeof generic[0]; i++)
        if (core && !strcmp(core, generic[i]))
            return 1;
    return 0;
}

void ed_blas_setup(char **argv)
{
    if (getenv(ED_BLAS_REEXEC_GUARD))
        return;
    const char *better = NULL, *core = NULL;
    if (!getenv("OPENBLAS_CORETYPE")) {
        core = openblas_get_corename();
        better = s_better_core();
        if (!s_is_generic(core))
            better = NULL;
    }
    /* Idle OpenBLAS threads spin for 2^28 cycles (~0.1 s) before sleeping: a trainer waiting for
     * its teachers, or a worker between requests, would burn a core the other processes need. */
    const bool timeout = !getenv("OPENBLAS_THREAD_TIMEOUT") && openblas_get_num_threads() > 1;
    if (!better && !timeout)
        return;
    if (better)
        setenv("OPENBLAS_CORETYPE", better, 1);
    if (timeout)
        setenv("OPENBLAS_THREAD_TIMEOUT", ED_BLAS_THREAD_TIMEOUT, 1);
    setenv(ED_BLAS_REEXEC_GUARD, "1", 1);
    if (better)
        ed_log_debug(
            "OpenBLAS chose its generic %s kernels on a CPU that runs %s ones: re-executing "
            "with OPENBLAS_CORETYPE=%s",
            core, better, better);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the slow kernels and the default thread timeout */
    if (better)
        ed_log_warn("could not re-execute with OPENBLAS_CORETYPE=%s; matrix products will be slow",
                    better);
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("OPENBLAS_THREAD_TIMEOUT");
    unsetenv(ED_BLAS_REEXEC_GUARD);
}

void ed_blas_set_threads(int n)
{
    if (n > 0)
        openblas_set_num_threads(n);
}

int ed_blas_threads(void)
{
    int n = openblas_get_num_threads();
    return n > 0 ? n : 1;
}

static pthread_mutex_t s_single_mu = PTHREAD_MUTEX_INITIALIZER;
static int s_single_open;  /* sections open; guarded by s_single_mu */
static int s_single_saved; /* the count before the first of them */

int ed_blas_single_begin(void)
{
    pthread_mutex_lock(&s_single_mu);
    if (s_single_open++ == 0) {
        s_single_saved = ed_blas_threads();
        if (s_single_saved > 1)
            openblas_set_num_threads(1);
    }
    const int saved = s_single_saved;
    pthread_mutex_unlock(&s_single_mu);
    return saved;
}

void ed_blas_single_end(void)
{
    pthread_mutex_lock(&s_single_mu);
    if (s_single_open > 0 && --s_single_open == 0 && s_single_saved > 1)
        openblas_set_num_threads(s_single_saved);
    pthread_mutex_unlock(&s_single_mu);
}

const char *ed_blas_describe(void)
{
    static char buf[128];
    snprintf(buf, sizeof buf, "OpenBLAS (%s kernels, %d threads)", openblas_get_corename(),
             openblas_get_num_threads());
    return buf;
}
