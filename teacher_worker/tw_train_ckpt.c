/* tw_train_ckpt: checkpoints of `teacher_worker train` (see tw_train_ckpt.h). */
#include "tw_train_ckpt.h"

#include <cjson/cJSON.h>
#include <stdbool.h>

char *tw_train_ckpt_config(const ed_train_flags *f, const char *images, const char *labels,
                           long start, long end, long count)
{
    cJSON *c = cJSON_CreateObject();
    if (!c)
        return NULL;
    ed_train_flags_to_json(f, c);
    cJSON_AddStringToObject(c, "train-images", images);
    cJSON_AddStringToObject(c, "train-labels", labels);
    cJSON_AddNumberToObject(c, "train-start", (double)start);
    cJSON_AddNumberToObject(c, "train-end", (double)end);
    cJSON_AddNumberToObject(c, "train-count", (double)count);
    char *text = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    return text;
}

int tw_train_ckpt_save(const char *path, const char *config, const ed_trainer *t,
                       const tw_train_pos *pos, ed_err *err)
{
    ed_checkpoint *c = ed_checkpoint_new(config, err);
    if (!c)
        return err->code;
    int rc = ed_checkpoint_put_trainer(c, t, err);
    const struct {
        const char *key;
        int64_t v;
    } ints[] = {
        {"epoch", pos->epoch}, {"step", pos->step},       {"epoch_step", pos->epoch_step},
        {"seen", pos->seen},   {"correct", pos->correct}, {"metrics_bytes", pos->metrics_bytes},
    };
    for (size_t i = 0; !rc && i < sizeof ints / sizeof ints[0]; i++)
        rc = ed_checkpoint_put_int(c, ints[i].key, ints[i].v, err);
    if (!rc)
        rc = ed_checkpoint_put_real(c, "loss_sum", pos->loss_sum, err);
    if (!rc)
        rc = ed_checkpoint_put_real(c, "test_accuracy", pos->test_acc, err);
    if (!rc)
        rc = ed_checkpoint_put_rng(c, "loader.epoch_start", &pos->epoch_start, err);
    if (!rc)
        rc = ed_checkpoint_write(c, path, err);
    ed_checkpoint_destroy(&c);
    return rc;
}

int tw_train_ckpt_restore(const ed_checkpoint *c, const char *path, ed_trainer *t,
                          const ed_train_plan *plan, tw_train_pos *pos, ed_err *err)
{
    const char *keys[] = {"epoch", "step", "epoch_step", "seen", "correct", "metrics_bytes"};
    int64_t v[6];
    int rc = ed_checkpoint_get_trainer(c, t, err);
    if (!rc)
        rc = ed_checkpoint_get_ints(c, keys, 6, v, err);
    if (!rc)
        rc = ed_checkpoint_get_real(c, "loss_sum", &pos->loss_sum, err);
    if (!rc)
        rc = ed_checkpoint_get_real(c, "test_accuracy", &pos->test_acc, err);
    if (!rc)
        rc = ed_checkpoint_get_rng(c, "loader.epoch_start", &pos->epoch_start, err);
    if (rc)
        return ed_err_wrap(err, "%s", path);
    if (ed_train_plan_check_position(plan, v[0], v[1], v[2], t->opt->t, path, err))
        return err->code;
    if (v[3] < 0 || v[4] < 0 || v[4] > v[3])
        return ed_err_set(err, ED_EFORMAT, "%s: inconsistent counts (%lld samples, %lld correct)",
                          path, (long long)v[3], (long long)v[4]);
    pos->epoch = (int)v[0];
    pos->step = (long)v[1];
    pos->epoch_step = (long)v[2];
    pos->seen = (long)v[3];
    pos->correct = (long)v[4];
    pos->metrics_bytes = (long)v[5];
    return 0;
}
