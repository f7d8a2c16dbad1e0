/*
 * test_mem: ed_mem's buffers are aligned (64 bytes; 2 MiB from ED_MEM_HUGE_BYTES on), zeroed by
 * ed_mem_calloc, refused when the size overflows, and the large ones carry the huge-page advice
 * (VmFlags "hg" in /proc/self/smaps) wherever the kernel has transparent huge pages.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ed_mem.h"

static void test_alignment_and_zeroing(void **state)
{
    (void)state;
    const size_t sizes[] = {
        0, 1, 63, 4096, ED_MEM_HUGE_BYTES - 1, ED_MEM_HUGE_BYTES, ED_MEM_HUGE_BYTES * 3 + 17};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = ed_mem_calloc(sizes[i], 1);
        assert_non_null(p);
        const size_t align = sizes[i] >= ED_MEM_HUGE_BYTES ? ED_MEM_HUGE_BYTES : 64;
        if ((uintptr_t)p % align)
            fail_msg("%zu bytes at %p: not aligned to %zu", sizes[i], (void *)p, align);
        for (size_t k = 0; k < sizes[i]; k++)
            if (p[k])
                fail_msg("%zu bytes: byte %zu is %d, not 0", sizes[i], k, p[k]);
        memset(p, 0xab, sizes[i]); /* writable end to end (ASan checks the bounds) */
        free(p);
        p = ed_mem_alloc(sizes[i]);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % align, 0);
        free(p);
    }
}

static void test_overflow_is_refused(void **state)
{
    (void)state;
    assert_null(ed_mem_calloc(SIZE_MAX / 2, 3));
    assert_null(ed_mem_calloc(3, SIZE_MAX / 2));
}

/* The VmFlags of the mapping that holds address a, or "" when not found. */
static void s_vmflags(const void *a, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return;
    char line[512];
    bool inside = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            inside = (uintptr_t)a >= lo && (uintptr_t)a < hi;
            continue;
        }
        if (inside && !strncmp(line, "VmFlags:", 8)) {
            snprintf(out, cap, "%s", line + 8);
            break;
        }
    }
    fclose(f);
}

static void test_large_buffers_advise_huge_pages(void **state)
{
    (void)state;
    char mode[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (!fgets(mode, sizeof mode, f))
            mode[0] = '\0';
        fclose(f);
    }
    if (!strstr(mode, "[madvise]") && !strstr(mode, "[always]"))
        skip(); /* no THP on this kernel, or it is off: the advice is refused, harmlessly */
    float *big = ed_mem_calloc(ED_MEM_HUGE_BYTES, 2);
    assert_non_null(big);
    char flags[512];
    s_vmflags(big, flags, sizeof flags);
    if (!strstr(flags, " hg"))
        fail_msg("a %zu-byte buffer at %p: VmFlags '%s' lack hg (MADV_HUGEPAGE)",
                 ED_MEM_HUGE_BYTES * 2, (void *)big, flags);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alignment_and_zeroing),
        cmocka_unit_test(test_overflow_is_refused),
        cmocka_unit_test(test_large_buffers_advise_huge_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
