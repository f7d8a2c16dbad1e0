/* ed_mem: large buffers on transparent huge pages (see ed_mem.h). */
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
#include "ed_mem.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void *ed_mem_alloc(size_t bytes)
{
    if (bytes == 0)
        bytes = 1;
    const bool huge = bytes >= ED_MEM_HUGE_BYTES;
    void *p = NULL;
    if (posix_memalign(&p, huge ? ED_MEM_HUGE_BYTES : 64, bytes) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (huge)
        (void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: EINVAL where THP is not built in */
#endif
    return p;
}

void *ed_mem_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    const size_t bytes = n * size;
    void *p = ed_mem_alloc(bytes);
    if (p)
        memset(p, 0, bytes > 0 ? bytes : 1);
    return p;
}
