/* st_augment: distill's --augment on the raw batch, before the teachers label it (st_augment.h). */
#include "st_augment.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ed_augment.h"

struct st_augment {
    ed_augment aug;
    uint64_t seed;
    int c, h, w;
    void *x; /* (max_batch, dim) of the samples' dtype */
};

int st_augment_open(st_augment **out, const ed_train_flags *f, const ed_stack *student, int dim,
                    ed_dtype dtype, int max_batch, ed_err *err)
{
    *out = NULL;
    ed_augment aug;
    if (ed_train_flags_augment(f, &aug, err))
        return err->code;
    if (!ed_augment_on(&aug))
        return 0;
    ed_shape in = student->input;
    if (in.h < 2 || in.w < 2) { /* a flat student: square single-channel images */
        const int side = (int)lround(sqrt((double)dim));
        in = (ed_shape){.c = 1, .h = side, .w = side};
    }
    if ((long)in.c * in.h * in.w != dim)
        return ed_err_set(err, ED_ESHAPE,
                          "--augment %s needs image samples: the samples have %d values, neither "
                          "the student's input (--arch %s) nor a square single-channel image",
                          aug.text, dim, f->arch);
    if (ed_augment_check(&aug, in.c, in.h, in.w, err))
        return ed_err_wrap(err, "--augment");
    st_augment *a = calloc(1, sizeof *a);
    if (!a || !(a->x = malloc((size_t)max_batch * (size_t)dim * ed_dtype_size(dtype)))) {
        free(a);
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    }
    *a = (st_augment){.aug = aug, .seed = f->seed, .c = in.c, .h = in.h, .w = in.w, .x = a->x};
    *out = a;
    return 0;
}

void st_augment_destroy(st_augment **pa)
{
    if (!*pa)
        return;
    free((*pa)->x);
    free(*pa);
    *pa = NULL;
}

void st_augment_batch(st_augment *a, uint64_t step, ed_batch *b)
{
    if (!a)
        return;
    ed_augment_raw_batch(&a->aug, a->seed, step, b, a->c, a->h, a->w, a->x);
    b->x = a->x;
}

const char *st_augment_describe(const st_augment *a, char *buf, size_t size)
{
    if (!a)
        snprintf(buf, size, "none");
    else
        snprintf(buf, size, "%s on %dx%dx%d images", a->aug.text, a->c, a->h, a->w);
    return buf;
}
