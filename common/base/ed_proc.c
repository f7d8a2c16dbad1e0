/*
 * ed_proc: facts about this process (ed_proc.h).
 */
#include "ed_proc.h"

#include <sys/resource.h>

double ed_proc_peak_rss_bytes(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_maxrss * 1024.0; /* Linux: kilobytes */
}
