/* ed_blas: OpenBLAS kernel selection and threads (see ed_blas.h). */
#include "ed_blas.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ed_log.h"

#define ED_BLAS_REEXEC_GUARD "EDISTILL_BLAS_REEXEC"

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
    static const char *const generic[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Katmai",
                                          "Coppermine", "Northwood", "Banias", "Atom", "Nano"};
    for (size_t i = 0; i < sizeof generic / sizeof generic[0]; i++)
        if (core && !strcmp(core, generic[i]))
            return 1;
    return 0;
}

void ed_blas_setup(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE") || getenv(ED_BLAS_REEXEC_GUARD))
        return;
    const char *core = openblas_get_corename();
    const char *better = s_better_core();
    if (!better || !s_is_generic(core))
        return;
    setenv("OPENBLAS_CORETYPE", better, 1);
    setenv(ED_BLAS_REEXEC_GUARD, "1", 1);
    ed_log_debug("OpenBLAS chose its generic %s kernels on a CPU that runs %s ones: re-executing "
                 "with OPENBLAS_CORETYPE=%s", core, better, better);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the slow kernels */
    ed_log_warn("could not re-execute with OPENBLAS_CORETYPE=%s; matrix products will be slow",
                better);
    unsetenv("OPENBLAS_CORETYPE");
}

void ed_blas_set_threads(int n)
{
    if (n > 0)
        openblas_set_num_threads(n);
}

const char *ed_blas_describe(void)
{
    static char buf[128];
    snprintf(buf, sizeof buf, "OpenBLAS (%s kernels, %d threads)", openblas_get_corename(),
             openblas_get_num_threads());
    return buf;
}
