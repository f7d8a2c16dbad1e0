/* ed_train_flags: shared training options, their checks and the run plan (see ed_train_flags.h). */
#include "ed_train_flags.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ed_version.h"

ed_train_flags ed_train_flags_defaults(const char *arch)
{
    return (ed_train_flags){.arch = arch,
                            .optimizer = "adam",
                            .schedule = "cosine",
                            .seed = 1,
                            .epochs = 10,
                            .batch_size = 128,
                            .lr = 1e-3f,
                            .momentum = 0.9f,
                            .shuffle_buffer = 65536,
                            .input_scale = 1.0f / 255.0f};
}

int ed_train_flags_options(ed_train_flags *f, ed_cli_opt *out)
{
    const ed_cli_opt opts[ED_TRAIN_FLAGS_OPTS] = {
        {"arch", ED_CLI_STR, &f->arch, "ARCH",
         "MLP widths 784,1200,10 (input first, classes last) or a layer stack CxHxW:layers, e.g. "
         "1x28x28:conv32k3p1,bn,relu,maxpool2,flatten,dense10 (layers: convCkK[sS][pP], "
         "maxpoolK[sS], avgpoolK[sS], gap, flatten, denseN, relu, dropoutP, bn)",
         NULL, false},
        {"seed", ED_CLI_U64, &f->seed, "N", "seed of initialization, dropout and data order", NULL,
         false},
        {"epochs", ED_CLI_INT, &f->epochs, "N", "passes over the training data", NULL, false},
        {"steps", ED_CLI_LONG, &f->steps, "N", "train exactly N steps instead (cycling the data)",
         NULL, false},
        {"batch-size", ED_CLI_INT, &f->batch_size, "N", "samples per step", NULL, false},
        {"optimizer", ED_CLI_STR, &f->optimizer, "NAME", "adam or sgd", NULL, false},
        {"lr", ED_CLI_FLOAT, &f->lr, "X", "learning rate", NULL, false},
        {"lr-min", ED_CLI_FLOAT, &f->lr_min, "X", "final learning rate of the cosine schedule",
         NULL, false},
        {"schedule", ED_CLI_STR, &f->schedule, "NAME",
         "constant, cosine or step (halve each epoch)", NULL, false},
        {"warmup-steps", ED_CLI_LONG, &f->warmup_steps, "N", "linear learning-rate warm-up", NULL,
         false},
        {"momentum", ED_CLI_FLOAT, &f->momentum, "X", "SGD momentum", NULL, false},
        {"weight-decay", ED_CLI_FLOAT, &f->weight_decay, "X", "weight decay (decoupled for adam)",
         NULL, false},
        {"dropout-in", ED_CLI_FLOAT, &f->dropout_in, "P", "dropout rate on the input", NULL, false},
        {"dropout-hidden", ED_CLI_FLOAT, &f->dropout_hidden, "P", "dropout rate on hidden units",
         NULL, false},
        {"label-smoothing", ED_CLI_FLOAT, &f->label_smoothing, "EPS",
         "label smoothing of the hard-label targets", NULL, false},
        {"shuffle-buffer", ED_CLI_LONG, &f->shuffle_buffer, "N",
         "samples held for shuffling, per data source (memory bound)", NULL, false},
        {"input-scale", ED_CLI_FLOAT, &f->input_scale, "X",
         "x = raw * scale + offset, recorded in the model", NULL, false},
        {"input-offset", ED_CLI_FLOAT, &f->input_offset, "X", "see --input-scale", NULL, false},
        {"blas-threads", ED_CLI_INT, &f->blas_threads, "N",
         "OpenBLAS threads (0: OpenBLAS default)", NULL, false},
        {"augment", ED_CLI_STR, &f->augment, "LIST",
         "training-time augmentation of image inputs: shift:S (random shifts of up to S "
         "pixels, zero-padded), flip (random horizontal flips), erase:P (with probability P, "
         "a random rectangle set to 0: random erasing), e.g. shift:2,flip,erase:0.5; none by "
         "default. train: needs a CxHxW --arch input (1x28x28:flatten,dense256,... for an "
         "MLP); distill: each batch is augmented before the teachers label it, so the student "
         "learns their targets for the very images it sees (CxHxW from the student's --arch, "
         "else square single-channel samples)",
         NULL, false},
    };
    memcpy(out, opts, sizeof opts);
    return ED_TRAIN_FLAGS_OPTS;
}

int ed_train_flags_validate(const ed_train_flags *f, ed_stack *arch, ed_err *err)
{
    if (ed_stack_parse(f->arch, arch, err))
        return ed_err_wrap(err, "--arch");
    if (!arch->mlp && (f->dropout_in != 0.0f || f->dropout_hidden != 0.0f))
        return ed_err_set(err, ED_EINVAL,
                          "--dropout-in/--dropout-hidden apply to MLP archs only: put dropoutP "
                          "layers in a layer-stack --arch");
    if (ed_opt_kind_parse(f->optimizer) < 0)
        return ed_err_set(err, ED_EINVAL, "--optimizer '%s' is not known (adam, sgd)",
                          f->optimizer);
    if (ed_lr_schedule_parse(f->schedule) < 0)
        return ed_err_set(err, ED_EINVAL, "--schedule '%s' is not known (constant, cosine, step)",
                          f->schedule);
    if (f->epochs < 1 && f->steps < 1)
        return ed_err_set(err, ED_EINVAL, "give --epochs >= 1 or --steps >= 1");
    if (f->batch_size < 1)
        return ed_err_set(err, ED_EINVAL, "--batch-size must be >= 1, not %d", f->batch_size);
    if (!(f->lr > 0))
        return ed_err_set(err, ED_EINVAL, "--lr must be > 0, not %g", (double)f->lr);
    if (f->dropout_in < 0 || f->dropout_in >= 1)
        return ed_err_set(err, ED_EINVAL, "--dropout-in %g is outside [0, 1)",
                          (double)f->dropout_in);
    if (f->dropout_hidden < 0 || f->dropout_hidden >= 1)
        return ed_err_set(err, ED_EINVAL, "--dropout-hidden %g is outside [0, 1)",
                          (double)f->dropout_hidden);
    if (f->label_smoothing < 0 || f->label_smoothing >= 1)
        return ed_err_set(err, ED_EINVAL, "--label-smoothing %g is outside [0, 1)",
                          (double)f->label_smoothing);
    if (f->warmup_steps < 0)
        return ed_err_set(err, ED_EINVAL, "--warmup-steps must be >= 0");
    ed_augment aug;
    if (ed_augment_parse(f->augment, &aug, err))
        return ed_err_wrap(err, "--augment");
    return 0;
}

int ed_train_flags_check_augment_input(const ed_train_flags *f, const ed_stack *arch, ed_err *err)
{
    ed_augment aug;
    if (ed_train_flags_augment(f, &aug, err))
        return err->code;
    const ed_shape in = arch->input;
    if (ed_augment_on(&aug) && (in.h < 2 || in.w < 2))
        return ed_err_set(err, ED_EINVAL,
                          "--augment %s needs an image input: --arch %s has a flat %dx%dx%d input; "
                          "give the shape, e.g. --arch 1x28x28:flatten,dense256,relu,dense10 "
                          "(an MLP) or a CNN",
                          aug.text, f->arch, in.c, in.h, in.w);
    if (ed_augment_check(&aug, in.c, in.h, in.w, err))
        return ed_err_wrap(err, "--augment with --arch %s", f->arch);
    return 0;
}

int ed_train_flags_augment(const ed_train_flags *f, ed_augment *out, ed_err *err)
{
    if (ed_augment_parse(f->augment, out, err))
        return ed_err_wrap(err, "--augment");
    return 0;
}

long ed_train_plan_epoch_steps(const ed_train_plan *plan, long epoch)
{
    if (epoch < 1 || epoch > plan->epochs)
        return 0;
    long left = plan->total_steps - (epoch - 1) * plan->steps_per_epoch;
    return left < plan->steps_per_epoch ? left : plan->steps_per_epoch;
}

int ed_train_plan_check_position(const ed_train_plan *plan, int64_t epoch, int64_t step,
                                 int64_t epoch_step, long opt_t, const char *path, ed_err *err)
{
    const long epoch_steps = ed_train_plan_epoch_steps(plan, (long)epoch);
    const bool done = epoch == plan->epochs + 1 && step == plan->total_steps && epoch_step == 0;
    if ((done ||
         (epoch >= 1 && epoch <= plan->epochs && epoch_step >= 0 && epoch_step <= epoch_steps &&
          step == (epoch - 1) * plan->steps_per_epoch + epoch_step)) &&
        (int64_t)opt_t == step)
        return 0;
    return ed_err_set(err, ED_EFORMAT,
                      "%s: inconsistent position (epoch %lld, step %lld, %lld steps into the "
                      "epoch, optimizer at %ld) for %d epochs of %ld steps",
                      path, (long long)epoch, (long long)step, (long long)epoch_step, opt_t,
                      plan->epochs, plan->steps_per_epoch);
}

void ed_train_flags_plan(const ed_train_flags *f, long samples_per_epoch, ed_train_plan *plan)
{
    plan->steps_per_epoch = (samples_per_epoch + f->batch_size - 1) / f->batch_size;
    if (plan->steps_per_epoch < 1)
        plan->steps_per_epoch = 1;
    plan->total_steps = f->steps > 0 ? f->steps : plan->steps_per_epoch * f->epochs;
    plan->epochs = (int)((plan->total_steps + plan->steps_per_epoch - 1) / plan->steps_per_epoch);
    ed_opt_config *oc = &plan->opt;
    *oc = ed_opt_config_default();
    oc->kind = (ed_opt_kind)ed_opt_kind_parse(f->optimizer);
    oc->schedule = (ed_lr_schedule)ed_lr_schedule_parse(f->schedule);
    oc->lr = f->lr;
    oc->lr_min = f->lr_min;
    oc->momentum = f->momentum;
    oc->weight_decay = f->weight_decay;
    oc->warmup_steps = f->warmup_steps;
    oc->total_steps = plan->total_steps - f->warmup_steps;
    oc->step_size = plan->steps_per_epoch;
    oc->gamma = 0.5f;
}

void ed_train_flags_to_json(const ed_train_flags *f, cJSON *obj)
{
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)f->seed);
    cJSON_AddStringToObject(obj, "arch", f->arch);
    cJSON_AddStringToObject(obj, "seed", seed);
    if (f->steps > 0)
        cJSON_AddNumberToObject(obj, "steps", (double)f->steps);
    else
        cJSON_AddNumberToObject(obj, "epochs", f->epochs);
    cJSON_AddNumberToObject(obj, "batch-size", f->batch_size);
    cJSON_AddStringToObject(obj, "optimizer", f->optimizer);
    cJSON_AddNumberToObject(obj, "lr", f->lr);
    cJSON_AddNumberToObject(obj, "lr-min", f->lr_min);
    cJSON_AddStringToObject(obj, "schedule", f->schedule);
    cJSON_AddNumberToObject(obj, "warmup-steps", (double)f->warmup_steps);
    cJSON_AddNumberToObject(obj, "momentum", f->momentum);
    cJSON_AddNumberToObject(obj, "weight-decay", f->weight_decay);
    cJSON_AddNumberToObject(obj, "dropout-in", f->dropout_in);
    cJSON_AddNumberToObject(obj, "dropout-hidden", f->dropout_hidden);
    cJSON_AddNumberToObject(obj, "label-smoothing", f->label_smoothing);
    cJSON_AddNumberToObject(obj, "shuffle-buffer", (double)f->shuffle_buffer);
    cJSON_AddNumberToObject(obj, "input-scale", f->input_scale);
    cJSON_AddNumberToObject(obj, "input-offset", f->input_offset);
    ed_augment aug;
    ed_err err = {0};
    if (ed_augment_parse(f->augment, &aug, &err) == 0 && ed_augment_on(&aug))
        cJSON_AddStringToObject(obj, "augment", aug.text);
}

cJSON *ed_train_flags_provenance(const ed_train_flags *f, const char *tool)
{
    cJSON *p = cJSON_CreateObject();
    if (!p)
        return NULL;
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    cJSON_AddStringToObject(p, "tool", tool);
    cJSON_AddStringToObject(p, "edistill_version", ed_version());
    cJSON_AddStringToObject(p, "created", when);
    ed_train_flags_to_json(f, p);
    return p;
}
