/*
 * st_distill_ckpt: the resume side of `student_trainer distill` (see st_distill_ckpt.h): which
 * checkpoint to read before connecting, the settings a resumed run must share, writing and
 * restoring the position (the output files are cut back to their length at the checkpoint by
 * ed_fs_reopen_cut); and the student model file with its provenance.
 */
#include "st_distill_ckpt.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_model_file.h"

int st_distill_ckpt_open(const st_distill_opts *o, ed_checkpoint **ck, ed_err *err)
{
    *ck = NULL;
    if (o->checkpoint_every < 0)
        return ed_err_set(err, ED_EINVAL, "--checkpoint-every must be >= 0");
    return ed_checkpoint_open_resume(o->checkpoint, o->resume, o->resume_if_present, ck, err);
}

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The settings a resumed run must share with the run that wrote the checkpoint (keys are the flag
 * names; "labeled-count"/"unlabeled-count" are the samples found in the files, "teachers" the
 * members' weight fingerprints, sorted). Settings that do not change the trained student (inflight,
 * timeouts, test files, output paths, BLAS threads) may change. Caller frees. */
char *st_distill_ckpt_config(const st_distill_opts *o, const st_mixer *mix, const st_pool *pool,
                             const st_targets *tg)
{
    cJSON *c = cJSON_CreateObject();
    ed_train_flags_to_json(&o->train, c);
    cJSON_AddNumberToObject(c, "temperature", o->temperature);
    cJSON_AddNumberToObject(c, "alpha", o->alpha);
    cJSON_AddStringToObject(c, "combine", o->combine);
    cJSON_AddStringToObject(c, "soft-loss", o->soft_loss);
    cJSON_AddStringToObject(c, "labeled-images", o->labeled_images);
    cJSON_AddStringToObject(c, "labeled-labels", o->labeled_labels);
    cJSON_AddNumberToObject(c, "labeled-start", (double)o->labeled_start);
    cJSON_AddNumberToObject(c, "labeled-end", (double)o->labeled_end);
    if (o->unlabeled)
        cJSON_AddStringToObject(c, "unlabeled", o->unlabeled);
    else
        cJSON_AddNullToObject(c, "unlabeled");
    cJSON_AddNumberToObject(c, "unlabeled-start", (double)o->unlabeled_start);
    cJSON_AddNumberToObject(c, "unlabeled-end", (double)o->unlabeled_end);
    cJSON_AddNumberToObject(c, "labeled-count", (double)st_mixer_labeled_count(mix));
    cJSON_AddNumberToObject(c, "unlabeled-count", (double)st_mixer_unlabeled_count(mix));
    st_student_provenance(&o->student, c); /* privileged information: only when on */
    /* Members by weights fingerprint, sorted: endpoints may move. */
    if (tg && strcmp(st_targets_kind(tg), "float32"))
        cJSON_AddStringToObject(c, "targets", st_targets_kind(tg));
    int K = tg ? st_targets_member_count(tg) : st_pool_member_count(pool);
    char(*fps)[64] = calloc((size_t)K + 1, sizeof *fps);
    cJSON *teachers = cJSON_AddArrayToObject(c, "teachers");
    if (fps) {
        for (int k = 0; k < K; k++)
            snprintf(fps[k], sizeof fps[k], "%s",
                     tg ? st_targets_member_fingerprint(tg, k)
                        : st_pool_member_fingerprint(pool, k));
        qsort(fps, (size_t)K, sizeof *fps, s_cmp_str);
        for (int k = 0; k < K; k++)
            cJSON_AddItemToArray(teachers, cJSON_CreateString(fps[k]));
        free(fps);
    }
    char *text = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    return text;
}

/* Writes the checkpoint: the trainer after pos->step steps, the position and the epoch's sums. */
int st_distill_ckpt_save(const char *path, const char *config, const ed_trainer *t,
                         const st_position *pos, const st_epoch_sums *sums, int K, ed_err *err)
{
    ed_checkpoint *c = ed_checkpoint_new(config, err);
    if (!c)
        return err->code;
    int rc = ed_checkpoint_put_trainer(c, t, err);
    const struct {
        const char *key;
        int64_t v;
    } ints[] = {
        {"epoch", pos->epoch},           {"step", pos->step},
        {"epoch_step", sums->steps},     {"metrics_bytes", pos->metrics_bytes},
        {"dump_bytes", pos->dump_bytes}, {"members", K},
        {"sums.samples", sums->samples}, {"sums.labeled", sums->labeled},
        {"sums.correct", sums->correct}, {"sums.degraded", sums->degraded},
    };
    for (size_t i = 0; !rc && i < sizeof ints / sizeof ints[0]; i++)
        rc = ed_checkpoint_put_int(c, ints[i].key, ints[i].v, err);
    const struct {
        const char *key;
        double v;
    } reals[] = {
        {"sums.loss", sums->loss},
        {"sums.soft", sums->soft},
        {"sums.hard", sums->hard},
        {"test_accuracy", pos->test_acc},
    };
    for (size_t i = 0; !rc && i < sizeof reals / sizeof reals[0]; i++)
        rc = ed_checkpoint_put_real(c, reals[i].key, reals[i].v, err);
    for (int k = 0; !rc && k < K; k++) {
        char key[32];
        snprintf(key, sizeof key, "sums.missing.%d", k);
        rc = ed_checkpoint_put_int(c, key, sums->missing[k], err);
    }
    if (!rc)
        rc = ed_checkpoint_put_rng(c, "mixer.mix", &pos->epoch_start.mix, err);
    if (!rc)
        rc = ed_checkpoint_put_rng(c, "mixer.labeled", &pos->epoch_start.loader[0], err);
    if (!rc)
        rc = ed_checkpoint_put_rng(c, "mixer.unlabeled", &pos->epoch_start.loader[1], err);
    if (!rc)
        rc = ed_checkpoint_write(c, path, err);
    ed_checkpoint_destroy(&c);
    return rc;
}

/* Restores trainer, position and sums from an open checkpoint whose config matched; checks that
 * the position is consistent with this run's shape. */
int st_distill_ckpt_restore(const ed_checkpoint *c, const char *path, ed_trainer *t, int K,
                            const ed_train_plan *plan, st_position *pos, st_epoch_sums *sums,
                            ed_err *err)
{
    int64_t iv[10];
    const char *ikeys[] = {"epoch",        "step",         "epoch_step",   "metrics_bytes",
                           "dump_bytes",   "members",      "sums.samples", "sums.labeled",
                           "sums.correct", "sums.degraded"};
    int rc = ed_checkpoint_get_trainer(c, t, err);
    if (!rc)
        rc = ed_checkpoint_get_ints(c, ikeys, 10, iv, err);
    if (!rc)
        rc = ed_checkpoint_get_real(c, "sums.loss", &sums->loss, err);
    if (!rc)
        rc = ed_checkpoint_get_real(c, "sums.soft", &sums->soft, err);
    if (!rc)
        rc = ed_checkpoint_get_real(c, "sums.hard", &sums->hard, err);
    if (!rc)
        rc = ed_checkpoint_get_real(c, "test_accuracy", &pos->test_acc, err);
    if (!rc)
        rc = ed_checkpoint_get_rng(c, "mixer.mix", &pos->epoch_start.mix, err);
    if (!rc)
        rc = ed_checkpoint_get_rng(c, "mixer.labeled", &pos->epoch_start.loader[0], err);
    if (!rc)
        rc = ed_checkpoint_get_rng(c, "mixer.unlabeled", &pos->epoch_start.loader[1], err);
    if (!rc && iv[5] != K)
        rc = ed_err_set(err, ED_EFORMAT, "it counts %lld members, this run has %d",
                        (long long)iv[5], K);
    for (int k = 0; !rc && k < K; k++) {
        char key[32];
        int64_t v;
        snprintf(key, sizeof key, "sums.missing.%d", k);
        rc = ed_checkpoint_get_int(c, key, &v, err);
        sums->missing[k] = (long)v;
    }
    if (rc)
        return ed_err_wrap(err, "%s", path);
    pos->epoch = (int)iv[0];
    pos->step = (long)iv[1];
    sums->steps = (long)iv[2];
    pos->metrics_bytes = (long)iv[3];
    pos->dump_bytes = (long)iv[4];
    sums->samples = (long)iv[6];
    sums->labeled = (long)iv[7];
    sums->correct = (long)iv[8];
    sums->degraded = (long)iv[9];
    return ed_train_plan_check_position(plan, iv[0], iv[1], iv[2], t->opt->t, path, err);
}

/* ---- the student model file ------------------------------------------------------------- */

/* The student's provenance: how it was trained, from what, and its last test accuracy. */
static char *s_provenance(const st_distill_opts *o, const st_pool *pool, const st_targets *tg,
                          long steps, double acc)
{
    cJSON *p = ed_train_flags_provenance(&o->train, "student_trainer distill");
    if (!p)
        return NULL;
    cJSON_AddNumberToObject(p, "steps_done", (double)steps);
    cJSON_AddNumberToObject(p, "temperature", o->temperature);
    cJSON_AddNumberToObject(p, "alpha", o->alpha);
    cJSON_AddStringToObject(p, "combine", o->combine);
    cJSON_AddStringToObject(p, "soft_loss", o->soft_loss);
    cJSON_AddStringToObject(p, "labeled_images", o->labeled_images);
    cJSON_AddNumberToObject(p, "labeled_start", (double)o->labeled_start);
    cJSON_AddNumberToObject(p, "labeled_end", (double)o->labeled_end);
    if (o->unlabeled)
        cJSON_AddStringToObject(p, "unlabeled", o->unlabeled);
    st_student_provenance(&o->student, p);
    cJSON *members = cJSON_AddArrayToObject(p, "teachers");
    for (int k = 0; k < (tg ? st_targets_member_count(tg) : st_pool_member_count(pool)); k++)
        cJSON_AddItemToArray(members, cJSON_CreateString(tg ? st_targets_member_describe(tg, k)
                                                            : st_pool_member_describe(pool, k)));
    if (acc >= 0)
        cJSON_AddNumberToObject(p, "test_accuracy", acc);
    char *text = cJSON_PrintUnformatted(p);
    cJSON_Delete(p);
    return text;
}

int st_distill_save_student(const st_distill_opts *o, const ed_trainer *t, const st_pool *pool,
                            const st_targets *tg, long steps, double acc, ed_err *err)
{
    ed_model_meta meta = {0};
    snprintf(meta.member, sizeof meta.member, "%s", o->member);
    meta.input_scale = o->train.input_scale;
    meta.input_offset = o->train.input_offset;
    char *prov = s_provenance(o, pool, tg, steps, acc);
    snprintf(meta.provenance, sizeof meta.provenance, "%s", prov ? prov : "{}");
    free(prov);
    return ed_model_save(o->out, t->model, &meta, err);
}
