/*
 * test_par: ed_par_for covers [0, n) exactly once with disjoint ranges, in parallel when the
 * process runs several BLAS threads and serially otherwise, and the optimizer steps it splits give
 * the same bits as the same steps run on one thread; ed_blas's single-threaded sections keep 1
 * thread while any is open and restore the count after the last, whoever enters them.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ed_blas.h"
#include "ed_optim.h"
#include "ed_par.h"
#include "ed_rng.h"

typedef struct {
    unsigned char *hits;
    int calls; /* ranges handed out (atomic: helpers run concurrently) */
} s_cover;

static void s_mark(size_t lo, size_t hi, void *ctx)
{
    s_cover *c = ctx;
    for (size_t i = lo; i < hi; i++)
        c->hits[i]++;
    __atomic_add_fetch(&c->calls, 1, __ATOMIC_RELAXED);
}

static void s_check_cover(size_t n, size_t min_chunk)
{
    s_cover c = {calloc(n ? n : 1, 1), 0};
    assert_non_null(c.hits);
    ed_par_for(n, min_chunk, s_mark, &c);
    /* split exactly when there is more than one thread and enough work for two chunks */
    const int want = ed_blas_threads() >= 2 && n >= 2 * min_chunk ? 2 : n > 0;
    if (c.calls < want)
        fail_msg("n %zu chunk %zu, %d BLAS threads: %d range(s), expected at least %d", n,
                 min_chunk, ed_blas_threads(), c.calls, want);
    for (size_t i = 0; i < n; i++)
        if (c.hits[i] != 1)
            fail_msg("n %zu chunk %zu: element %zu visited %d times", n, min_chunk, i, c.hits[i]);
    free(c.hits);
}

static void test_cover(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 15, 16, 17, 100, 1000, 4099, 100000, 1276810};
    for (int threads = 1; threads <= 3; threads++) {
        ed_blas_set_threads(threads);
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            s_check_cover(sizes[i], 16);
            s_check_cover(sizes[i], 1000);
        }
    }
    ed_blas_set_threads(1);
}

/* Runs `steps` optimizer steps on a copy of p0 with the given BLAS thread count. */
static float *s_run(ed_opt_kind kind, const float *p0, const float *g, size_t n, int threads)
{
    ed_blas_set_threads(threads);
    ed_opt_config c = ed_opt_config_default();
    c.kind = kind;
    c.weight_decay = 0.01f;
    ed_optim *o = ed_optim_new(&c, n, NULL);
    float *p = malloc(n * sizeof *p);
    assert_non_null(o);
    assert_non_null(p);
    memcpy(p, p0, n * sizeof *p);
    for (int s = 0; s < 3; s++)
        ed_optim_step(o, p, g);
    ed_optim_destroy(&o);
    return p;
}

static void test_optim_split_is_exact(void **state)
{
    (void)state;
    const size_t n = 300001; /* several chunks, not a multiple of the alignment */
    float *p0 = malloc(n * sizeof *p0), *g = malloc(n * sizeof *g);
    assert_non_null(p0);
    assert_non_null(g);
    ed_rng r;
    ed_rng_seed(&r, 42);
    for (size_t i = 0; i < n; i++) {
        p0[i] = ed_rng_normal(&r);
        g[i] = 0.1f * ed_rng_normal(&r);
    }
    for (int kind = 0; kind < ED_OPT_KIND_COUNT; kind++) {
        float *one = s_run((ed_opt_kind)kind, p0, g, n, 1);
        float *two = s_run((ed_opt_kind)kind, p0, g, n, 2);
        for (size_t i = 0; i < n; i++)
            if (memcmp(&one[i], &two[i], sizeof one[i]) != 0)
                fail_msg("%s: element %zu differs: %.9g (1 thread) vs %.9g (2 threads)",
                         ed_opt_kind_name((ed_opt_kind)kind), i, (double)one[i], (double)two[i]);
        free(one);
        free(two);
    }
    ed_blas_set_threads(1);
    free(p0);
    free(g);
}

/* ed_blas_single_begin/end: 1 thread inside a section, the count restored after it, and callers
 * on several threads at once never leave OpenBLAS at a count other than the one they found. */
static void *s_single_loop(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        int prev = ed_blas_single_begin();
        if (prev != 2 || ed_blas_threads() != 1)
            return (void *)1;
        ed_blas_single_end();
    }
    return NULL;
}

static void test_single_sections(void **state)
{
    (void)state;
    ed_blas_set_threads(2);
    int prev = ed_blas_single_begin();
    assert_int_equal(prev, 2);
    assert_int_equal(ed_blas_threads(), 1);
    assert_int_equal(ed_blas_single_begin(), 2); /* nested: the count from before the first */
    ed_blas_single_end();
    assert_int_equal(ed_blas_threads(), 1); /* the first section is still open */
    ed_blas_single_end();
    assert_int_equal(ed_blas_threads(), 2);
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, s_single_loop, NULL), 0);
    for (int i = 0; i < 3; i++) {
        void *rc = NULL;
        pthread_join(th[i], &rc);
        assert_null(rc);
    }
    assert_int_equal(ed_blas_threads(), 2);
    ed_blas_set_threads(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cover),
        cmocka_unit_test(test_optim_split_is_exact),
        cmocka_unit_test(test_single_sections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
