/*
 * ed_mem: the large, long-lived buffers of a run (model weights, workspaces, optimizer state, the
 * shuffle buffer) on transparent huge pages where the kernel offers them (madvise mode, Debian's
 * default). A buffer of 2 MiB or more is 2 MiB-aligned and marked MADV_HUGEPAGE, so the kernel
 * backs it with 2 MiB pages: 1/512 of the page faults when it is first written. In a VM every
 * fault is a trip to the hypervisor; on the machine of issue 18 the first write of 45 MB took
 * 114 ms on 4 KiB pages and 8 ms on huge pages (the GEMMs themselves ran no faster on them).
 * The hint is only a hint: where huge pages are off or short, the buffer is an ordinary one.
 * Smaller buffers are 64-byte aligned. Every buffer is released with free().
 *
 *     float *w = ed_mem_calloc(n, sizeof *w);   // zeroed
 *     ...
 *     free(w);
 */
#ifndef ED_MEM_H
#define ED_MEM_H

#include <stddef.h>

/* Buffers of this size or more go on huge pages (the x86-64 and arm64 PMD size). */
#define ED_MEM_HUGE_BYTES ((size_t)2 << 20)

/* bytes (0 counts as 1) of uninitialized memory, or NULL when out of memory. */
void *ed_mem_alloc(size_t bytes);

/* n * size zeroed bytes, or NULL when out of memory or when n * size overflows. */
void *ed_mem_calloc(size_t n, size_t size);

#endif
