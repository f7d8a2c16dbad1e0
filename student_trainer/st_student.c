/* st_student: privileged information for distill: options, files, the student's slots (see
 * st_student.h). */
#include "st_student.h"

#include <stdlib.h>
#include <string.h>

int st_student_options(st_student_opts *o, ed_cli_opt *out)
{
    const ed_cli_opt opts[ST_STUDENT_OPTS] = {
        {"labeled-student-images", ED_CLI_STR, &o->labeled_images, "FILE",
         "privileged information: the student's input for each labeled sample, aligned with "
         "--labeled-images (same count and order; the same range applies); the teachers get "
         "--labeled-images",
         NULL, false},
        {"unlabeled-student-images", ED_CLI_STR, &o->unlabeled_images, "FILE",
         "the student's input for each --unlabeled sample (same count and order)", NULL, false},
        {"student-view", ED_CLI_STR, &o->view_text, "VIEW",
         "the student sees a view of its input: avgpool:K averages K x K blocks of square images "
         "(avgpool:4: 28x28 -> 7x7, float32 on the raw scale); without student files it is "
         "computed from the teachers' batch; --test-images are read through it too",
         NULL, false},
    };
    memcpy(out, opts, sizeof opts);
    return ST_STUDENT_OPTS;
}

void st_student_provenance(const st_student_opts *o, cJSON *obj)
{
    if (ed_view_on(&o->view))
        cJSON_AddStringToObject(obj, "student-view", o->view.text);
    if (o->labeled_images)
        cJSON_AddStringToObject(obj, "labeled-student-images", o->labeled_images);
    if (o->unlabeled_images)
        cJSON_AddStringToObject(obj, "unlabeled-student-images", o->unlabeled_images);
}

bool st_student_on(const st_student_opts *o)
{
    return o->labeled_images || o->unlabeled_images || ed_view_on(&o->view);
}

int st_student_check(st_student_opts *o, const char *unlabeled, ed_err *err)
{
    if (ed_view_parse(o->view_text, &o->view, err))
        return ed_err_wrap(err, "--student-view");
    if (!o->labeled_images && o->unlabeled_images)
        return ed_err_set(err, ED_EINVAL,
                          "--unlabeled-student-images needs --labeled-student-images");
    if (o->labeled_images && (unlabeled != NULL) != (o->unlabeled_images != NULL))
        return ed_err_set(err, ED_EINVAL,
                          unlabeled ? "with --labeled-student-images and --unlabeled, give "
                                      "--unlabeled-student-images too"
                                    : "--unlabeled-student-images needs --unlabeled");
    return 0;
}

/* ED_ESHAPE when the student's file and the teachers' hold different numbers of samples. */
static int s_same_count(const char *student, const char *teachers, const char *what, ed_err *err)
{
    long n[2];
    const char *paths[2] = {student, teachers};
    for (int i = 0; i < 2; i++) {
        ed_dataset_spec all = {paths[i], NULL, 0, -1};
        ed_stream *s = ed_stream_open(&all, err);
        if (!s)
            return err->code;
        n[i] = ed_stream_count(s);
        ed_stream_destroy(&s);
    }
    if (n[0] != n[1])
        return ed_err_set(err, ED_ESHAPE,
                          "%s %s has %ld samples but the teachers' %s has %ld: the student's file "
                          "must be aligned sample by sample with the teachers'",
                          what, student, n[0], teachers, n[1]);
    return 0;
}

int st_student_attach(const st_student_opts *o, st_mixer *mix, const ed_dataset_spec *lab,
                      const ed_dataset_spec *unl, int depth, st_student_slots **slots, ed_err *err)
{
    int rc;
    if (!st_student_on(o))
        return 0; /* the student sees what the teachers see: no slots */
    if (!o->labeled_images) {
        rc = st_mixer_set_student(mix, NULL, NULL, &o->view, err);
    } else {
        if (s_same_count(o->labeled_images, lab->images, "--labeled-student-images", err) ||
            (unl &&
             s_same_count(o->unlabeled_images, unl->images, "--unlabeled-student-images", err)))
            return err->code;
        ed_dataset_spec slab = {o->labeled_images, NULL, lab->start, lab->end};
        ed_dataset_spec sunl = {o->unlabeled_images, NULL, unl ? unl->start : 0,
                                unl ? unl->end : -1};
        rc = st_mixer_set_student(mix, &slab, unl ? &sunl : NULL, &o->view, err);
    }
    if (rc == 0 && !(*slots = st_student_slots_new(depth, mix, err)))
        rc = err->code;
    return rc;
}

/* ---- the slots ------------------------------------------------------------------------------ */

struct st_student_slots {
    int depth, batch;
    size_t row_bytes;
    uint8_t *x;   /* (depth, batch, dim) of the dtype */
    int64_t *idx; /* (depth, batch) */
    int32_t *y;   /* (depth, batch) */
    int *n;       /* (depth) */
    int dim;
    ed_dtype dtype;
};

st_student_slots *st_student_slots_new(int depth, const st_mixer *mix, ed_err *err)
{
    const int batch_size = st_mixer_batch_size(mix), dim = st_mixer_student_dim(mix);
    const ed_dtype dtype = st_mixer_student_dtype(mix);
    st_student_slots *s = calloc(1, sizeof *s);
    if (s) {
        s->depth = depth;
        s->batch = batch_size;
        s->dim = dim;
        s->dtype = dtype;
        s->row_bytes = (size_t)dim * ed_dtype_size(dtype);
        s->x = malloc(s->row_bytes * (size_t)batch_size * (size_t)depth);
        s->idx = malloc(sizeof(int64_t) * (size_t)batch_size * (size_t)depth);
        s->y = malloc(sizeof(int32_t) * (size_t)batch_size * (size_t)depth);
        s->n = calloc((size_t)depth, sizeof(int));
    }
    if (!s || !s->x || !s->idx || !s->y || !s->n) {
        st_student_slots_destroy(&s);
        ed_err_set(err, ED_ENOMEM, "out of memory (student batches)");
    }
    return s;
}

void st_student_slots_destroy(st_student_slots **ps)
{
    if (!ps || !*ps)
        return;
    free((*ps)->x);
    free((*ps)->idx);
    free((*ps)->y);
    free((*ps)->n);
    free(*ps);
    *ps = NULL;
}

int st_student_slots_put(st_student_slots *s, int slot, const st_mixer *mix, const ed_batch *b,
                         ed_err *err)
{
    if (!s)
        return 0;
    ed_batch student;
    st_mixer_student(mix, b, &student);
    const ed_batch *sb = &student;
    if (slot < 0 || slot >= s->depth || sb->n > s->batch || sb->dim != s->dim ||
        sb->dtype != s->dtype)
        return ed_err_set(err, ED_EINVAL, "st_student_slots_put: bad slot %d or batch", slot);
    s->n[slot] = sb->n;
    memcpy(s->x + (size_t)slot * (size_t)s->batch * s->row_bytes, sb->x,
           (size_t)sb->n * s->row_bytes);
    memcpy(s->idx + (size_t)slot * (size_t)s->batch, sb->idx, sizeof(int64_t) * (size_t)sb->n);
    memcpy(s->y + (size_t)slot * (size_t)s->batch, sb->y, sizeof(int32_t) * (size_t)sb->n);
    return 0;
}

int st_student_slots_get(st_student_slots *s, int slot, const ed_batch *tb, ed_batch *out,
                         ed_err *err)
{
    if (!s) {
        *out = *tb;
        return 0;
    }
    if (slot < 0 || slot >= s->depth)
        return ed_err_set(err, ED_EINVAL, "st_student_slots_get: bad slot %d", slot);
    const int64_t *idx = s->idx + (size_t)slot * (size_t)s->batch;
    const int32_t *y = s->y + (size_t)slot * (size_t)s->batch;
    bool same = tb->n == s->n[slot];
    for (int i = 0; same && i < tb->n; i++)
        same = tb->y[i] == y[i] && (!tb->idx || tb->idx[i] == idx[i]);
    if (!same)
        return ed_err_set(err, ED_EINVAL,
                          "the student's batch of slot %d does not match the teachers' batch "
                          "(internal error)",
                          slot);
    *out = (ed_batch){.n = tb->n,
                      .dim = s->dim,
                      .dtype = s->dtype,
                      .x = s->x + (size_t)slot * (size_t)s->batch * s->row_bytes,
                      .y = tb->y,
                      .idx = idx};
    return 0;
}
