/*
 * tw_train: `teacher_worker train`: supervised training of one ensemble member (or of a student on
 * hard labels alone, for comparison) on a labeled dataset, with progress, per-epoch evaluation and
 * JSON metrics, ending in an atomically written model file that records how it was made.
 */
#include "tw_commands.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_blas.h"
#include "ed_cli.h"
#include "ed_clock.h"
#include "ed_data.h"
#include "ed_loader.h"
#include "ed_eval.h"
#include "ed_log.h"
#include "ed_model_file.h"
#include "ed_progress.h"
#include "ed_train_flags.h"
#include "ed_trainer.h"

typedef struct {
    const char *train_images, *train_labels, *test_images, *test_labels;
    long train_start, train_end;
    const char *member, *out, *metrics;
    ed_train_flags train;
    bool quiet;
} tw_train_opts;

static cJSON *s_provenance(const tw_train_opts *o, long steps, double test_acc, double seconds)
{
    cJSON *p = ed_train_flags_provenance(&o->train, "teacher_worker train");
    if (!p)
        return NULL;
    cJSON_AddNumberToObject(p, "steps_done", (double)steps);
    cJSON_AddStringToObject(p, "train_images", o->train_images);
    cJSON_AddStringToObject(p, "train_labels", o->train_labels);
    cJSON_AddNumberToObject(p, "train_start", (double)o->train_start);
    cJSON_AddNumberToObject(p, "train_end", (double)o->train_end);
    if (test_acc >= 0)
        cJSON_AddNumberToObject(p, "test_accuracy", test_acc);
    cJSON_AddNumberToObject(p, "train_seconds", seconds);
    return p;
}

static int s_evaluate(const ed_trainer *t, const tw_train_opts *o, ed_eval_result *res, ed_err *err)
{
    ed_dataset_spec spec = {o->test_images, o->test_labels, 0, -1};
    return ed_eval_net(t->model, t->input_scale, t->input_offset, &spec, 256, res, err);
}

/* One training run: its plan, data, trainer and where it is. */
typedef struct {
    const tw_train_opts *o;
    ed_train_plan plan;
    ed_loader *loader;
    ed_trainer *t;
    FILE *metrics;
    long n_train;
    long step; /* steps done in all */
} s_run;

/* What one epoch did. */
typedef struct {
    double loss_sum, secs;
    long seen, correct;
} s_epoch_stats;

/* Opens the labeled training data (checked against the architecture), plans the run and builds
 * the loader and the trainer. */
static int s_setup(s_run *r, const ed_stack *arch, ed_err *err)
{
    const tw_train_opts *o = r->o;
    ed_dataset_spec spec = {o->train_images, o->train_labels, o->train_start, o->train_end};
    ed_stream *s = ed_stream_open(&spec, err);
    if (!s)
        return err->code;
    if (!ed_stream_has_labels(s)) {
        ed_stream_destroy(&s);
        return ed_err_set(err, ED_EINVAL, "training needs --train-labels");
    }
    if ((size_t)ed_stream_dim(s) != ed_stack_in_size(arch)) {
        ed_err_set(err, ED_ESHAPE, "%s has %d values per sample but --arch %s starts with %zu",
                   o->train_images, ed_stream_dim(s), o->train.arch, ed_stack_in_size(arch));
        ed_stream_destroy(&s);
        return err->code;
    }
    r->n_train = ed_stream_count(s);
    ed_train_flags_plan(&o->train, r->n_train, &r->plan);
    ed_loader_config lc = {.batch_size = o->train.batch_size,
                           .shuffle_buffer = o->train.shuffle_buffer,
                           .seed = o->train.seed ^ 0x5348554646ULL,
                           .drop_last = false};
    r->loader = ed_loader_new(&s, &lc, err);
    if (!r->loader)
        return err->code;

    ed_net *m = ed_net_new(arch);
    if (!m)
        return ed_err_set(err, ED_ENOMEM, "cannot allocate a %s model", o->train.arch);
    ed_rng init_rng;
    ed_rng_seed(&init_rng, o->train.seed);
    ed_net_init(m, &init_rng);
    ed_augment aug;
    if (ed_train_flags_augment(&o->train, &aug, err)) {
        ed_net_destroy(&m);
        return err->code;
    }
    const ed_trainer_config tc = {.opt = r->plan.opt,
                                  .max_batch = o->train.batch_size,
                                  .dropout_in = o->train.dropout_in,
                                  .dropout_hidden = o->train.dropout_hidden,
                                  .input_scale = o->train.input_scale,
                                  .input_offset = o->train.input_offset,
                                  .seed = o->train.seed + 1,
                                  .augment = aug};
    r->t = ed_trainer_new(&m, &tc, err);
    if (!r->t)
        return err->code;
    if (o->metrics && !(r->metrics = fopen(o->metrics, "w")))
        return ed_err_set(err, ED_EIO, "%s: cannot open metrics file", o->metrics);
    return 0;
}

/* Trains one epoch (or what is left of the run's steps), with a progress line. */
static int s_epoch(s_run *r, int epoch, s_epoch_stats *es, ed_err *err)
{
    const tw_train_opts *o = r->o;
    char what[64];
    snprintf(what, sizeof what, "epoch %d/%d", epoch, r->plan.epochs);
    ed_progress prog;
    ed_progress_start(&prog, what, ed_train_plan_epoch_steps(&r->plan, epoch), o->quiet ? 0 : 5.0);
    const ed_loss_config loss_cfg = {.label_smoothing = o->train.label_smoothing};
    *es = (s_epoch_stats){0};
    double t_epoch = ed_now();
    long epoch_done = 0;
    ed_batch b;
    int n;
    if (epoch > 1 && ed_loader_reset(r->loader, err))
        return err->code;
    while (r->step < r->plan.total_steps && (n = ed_loader_next(r->loader, &b, err)) != 0) {
        if (n < 0)
            return n;
        ed_step_stats st;
        if (ed_trainer_step(r->t, &b, &loss_cfg, &st, err))
            return ed_err_wrap(err, "%s, epoch %d step %ld", o->train_images, epoch, r->step);
        if (!isfinite(st.loss))
            return ed_err_set(err, ED_EINVAL,
                              "loss became %g at epoch %d step %ld: lower --lr (now %g)", st.loss,
                              epoch, r->step, (double)o->train.lr);
        es->loss_sum += st.loss * st.n;
        es->seen += st.n;
        es->correct += st.correct;
        r->step++;
        epoch_done++;
        char extra[96];
        snprintf(extra, sizeof extra, "loss %.4f acc %.2f%%", es->loss_sum / (double)es->seen,
                 100.0 * (double)es->correct / (double)es->seen);
        ed_progress_update(&prog, epoch_done, extra);
    }
    es->secs = ed_now() - t_epoch;
    return 0;
}

/* The epoch's log line and metrics record; res is NULL without a test set. */
static void s_epoch_report(const s_run *r, int epoch, const s_epoch_stats *es,
                           const ed_eval_result *res)
{
    const double loss = es->loss_sum / (double)es->seen,
                 acc = (double)es->correct / (double)es->seen;
    const double test_acc = res ? ed_eval_accuracy(res) : -1.0;
    if (!r->o->quiet) {
        if (res)
            ed_log_info("epoch %d/%d: train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | "
                        "%.1fs, %.0f samples/s",
                        epoch, r->plan.epochs, loss, 100.0 * acc, res->loss, 100.0 * test_acc,
                        es->secs, (double)es->seen / es->secs);
        else
            ed_log_info("epoch %d/%d: train loss %.4f acc %.2f%% | %.1fs, %.0f samples/s", epoch,
                        r->plan.epochs, loss, 100.0 * acc, es->secs, (double)es->seen / es->secs);
    }
    if (r->metrics) {
        cJSON *rec = cJSON_CreateObject();
        if (rec) {
            cJSON_AddNumberToObject(rec, "epoch", epoch);
            cJSON_AddNumberToObject(rec, "step", (double)r->step);
            cJSON_AddNumberToObject(
                rec, "lr", (double)ed_opt_lr_at(&r->plan.opt, r->step > 0 ? r->step - 1 : 0));
            cJSON_AddNumberToObject(rec, "train_loss", loss);
            cJSON_AddNumberToObject(rec, "train_accuracy", acc);
            cJSON_AddNumberToObject(rec, "samples_per_s", (double)es->seen / es->secs);
            cJSON_AddNumberToObject(rec, "seconds", es->secs);
            if (res) {
                cJSON_AddNumberToObject(rec, "test_loss", res->loss);
                cJSON_AddNumberToObject(rec, "test_accuracy", test_acc);
            }
        }
        char *line = rec ? cJSON_PrintUnformatted(rec) : NULL;
        cJSON_Delete(rec);
        if (line) {
            fprintf(r->metrics, "%s\n", line);
            fflush(r->metrics);
        } else {
            ed_log_warn("out of memory: epoch %d's metrics line not written", epoch);
        }
        cJSON_free(line);
    }
}

/* Writes the model file with its provenance and prints the one-line summary. */
static int s_save(const s_run *r, double test_acc, double train_secs, ed_err *err)
{
    const tw_train_opts *o = r->o;
    ed_model_meta meta = {0};
    snprintf(meta.member, sizeof meta.member, "%s", o->member);
    meta.input_scale = o->train.input_scale;
    meta.input_offset = o->train.input_offset;
    cJSON *prov = s_provenance(o, r->step, test_acc, train_secs);
    char *prov_text = cJSON_PrintUnformatted(prov);
    cJSON_Delete(prov);
    snprintf(meta.provenance, sizeof meta.provenance, "%s", prov_text ? prov_text : "{}");
    free(prov_text);
    if (ed_model_save(o->out, r->t->model, &meta, err))
        return err->code;
    char fp[32];
    ed_fingerprint_format(meta.fingerprint, fp, sizeof fp);
    if (test_acc >= 0)
        printf("%s: member %s, test accuracy %.4f, %ld steps in %.1fs, %s\n", o->out, o->member,
               test_acc, r->step, train_secs, fp);
    else
        printf("%s: member %s, %ld steps in %.1fs, %s\n", o->out, o->member, r->step, train_secs,
               fp);
    return 0;
}

static int s_train(const tw_train_opts *o)
{
    ed_err err = {0};
    int rc = 1;
    s_run r = {.o = o};
    ed_stack arch;
    if (ed_train_flags_validate(&o->train, &arch, &err)) {
        ed_cli_report("teacher_worker train", &err);
        return 2;
    }
    ed_blas_set_threads(o->train.blas_threads);
    if (s_setup(&r, &arch, &err))
        goto fail;
    if (!o->quiet)
        ed_log_info("training %s (%zu parameters) on %ld samples of %s: %ld steps (%d epochs) "
                    "of batch %d, %s lr %g %s, augmentation %s",
                    o->train.arch, r.t->model->n_params, r.n_train, o->train_images,
                    r.plan.total_steps, r.plan.epochs, o->train.batch_size, o->train.optimizer,
                    (double)o->train.lr, o->train.schedule, r.t->augment.text);
    const double t_start = ed_now();
    double test_acc = -1.0;
    for (int epoch = 1; epoch <= r.plan.epochs && r.step < r.plan.total_steps; epoch++) {
        s_epoch_stats es;
        if (s_epoch(&r, epoch, &es, &err))
            goto fail;
        ed_eval_result res = {0};
        bool have_test = o->test_images && o->test_labels;
        if (have_test) {
            if (s_evaluate(r.t, o, &res, &err))
                goto fail;
            test_acc = ed_eval_accuracy(&res);
        }
        s_epoch_report(&r, epoch, &es, have_test ? &res : NULL);
        ed_eval_result_free(&res);
    }
    if (s_save(&r, test_acc, ed_now() - t_start, &err))
        goto fail;
    rc = 0;
    goto done;
fail:
    ed_cli_report("teacher_worker train", &err);
done:
    if (r.metrics)
        fclose(r.metrics);
    ed_loader_destroy(&r.loader);
    ed_trainer_destroy(&r.t);
    return rc;
}

int tw_train_main(int argc, char **argv)
{
    tw_train_opts o = {
        .train_images = ED_DATA_DEFAULT_DIR "train-images-idx3-ubyte.gz",
        .train_labels = ED_DATA_DEFAULT_DIR "train-labels-idx1-ubyte.gz",
        .train_start = 0,
        .train_end = -1,
        .member = "member",
        .train = ed_train_flags_defaults("784,1200,1200,10"),
    };
    ed_cli_opt opts[10 + ED_TRAIN_FLAGS_OPTS] = {
        {"train-images", ED_CLI_STR, &o.train_images, "FILE",
         "training samples (IDX, .npy, CSV; .gz ok)", NULL, false},
        {"train-labels", ED_CLI_STR, &o.train_labels, "FILE", "training labels", NULL, false},
        {"train-start", ED_CLI_LONG, &o.train_start, "N", "first training sample used", NULL,
         false},
        {"train-end", ED_CLI_LONG, &o.train_end, "N", "one past the last training sample (-1: all)",
         NULL, false},
        {"test-images", ED_CLI_STR, &o.test_images, "FILE",
         "test samples, evaluated after each epoch", NULL, false},
        {"test-labels", ED_CLI_STR, &o.test_labels, "FILE", "test labels", NULL, false},
        {"member", ED_CLI_STR, &o.member, "NAME", "member name recorded in the model file", NULL,
         false},
        {"out", ED_CLI_STR, &o.out, "FILE", "model file to write (safetensors)", NULL, true},
        {"metrics", ED_CLI_STR, &o.metrics, "FILE", "write one JSON line of metrics per epoch",
         NULL, false},
        {"quiet", ED_CLI_FLAG, &o.quiet, NULL, "no progress output", NULL, false},
    };
    int n_opts = 10 + ed_train_flags_options(&o.train, opts + 10);
    const ed_cli_spec spec = {
        "teacher_worker train --out FILE [options]",
        "Trains one ensemble member (a ReLU MLP or any layer stack, e.g. a CNN) on labeled data\n"
        "with cross-entropy, shows progress, evaluates on the test set after each epoch when one "
        "is\n"
        "given, and writes the model file atomically. Defaults read Fashion-MNIST "
        "from " ED_DATA_DEFAULT_DIR ".",
        opts, n_opts,
        "example:\n  teacher_worker train --arch 784,1200,1200,10 --epochs 20 --dropout-in 0.2 \\\n"
        "      --dropout-hidden 0.5 --seed 1 --member m1 --out models/m1.safetensors \\\n"
        "      --test-images " ED_DATA_DEFAULT_DIR "t10k-images-idx3-ubyte.gz \\\n"
        "      --test-labels " ED_DATA_DEFAULT_DIR "t10k-labels-idx1-ubyte.gz\n"
        "  teacher_worker train --arch 1x28x28:conv32k3p1,bn,relu,maxpool2,conv64k3p1,bn,relu,\\\n"
        "maxpool2,flatten,dense128,relu,dropout0.3,dense10 --epochs 15 --augment shift:2,flip \\\n"
        "      --member c1 --out c1.safetensors"};
    int rc;
    if (!ed_cli_parse_command(&spec, "teacher_worker train", argc, argv, &rc))
        return rc;
    if ((o.test_images == NULL) != (o.test_labels == NULL)) {
        ed_cli_reportf("teacher_worker train", "give both --test-images and --test-labels");
        return 2;
    }
    return s_train(&o);
}
