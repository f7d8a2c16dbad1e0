/*
 * tw_train: `teacher_worker train`: supervised training of one ensemble member (or of a student on
 * hard labels alone, for comparison) on a labeled dataset, with progress, per-epoch evaluation and
 * JSON metrics, ending in an atomically written model file that records how it was made. With
 * --checkpoint it writes checkpoints (tw_train_ckpt) after every epoch and every
 * --checkpoint-every steps, and --resume continues such a run to the same model, bit for bit.
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
#include "ed_fs.h"
#include "ed_log.h"
#include "ed_model_file.h"
#include "ed_progress.h"
#include "ed_train_flags.h"
#include "ed_trainer.h"
#include "tw_train_ckpt.h"

typedef struct {
    const char *train_images, *train_labels, *test_images, *test_labels;
    long train_start, train_end;
    const char *member, *out, *metrics;
    const char *checkpoint;
    long checkpoint_every;
    bool resume, resume_if_present;
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
    tw_train_pos pos; /* where the run is (r->pos.step: steps done in all) */
    char *config;     /* checkpoint config (with --checkpoint) */
    bool resume;      /* the epoch r->pos.epoch is resumed from a checkpoint */
} s_run;

/* What one epoch did in this process (its sums are in r->pos). */
typedef struct {
    double secs;
    long seen_here;
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
    r->pos = (tw_train_pos){.epoch = 1, .test_acc = -1.0, .metrics_bytes = -1};
    ed_loader_rng_get(r->loader, &r->pos.epoch_start);
    return 0;
}

/* With --checkpoint: the config; with a checkpoint to resume from (ck): the trainer and position
 * restored from it. Then opens the metrics file (cut back to its length at the checkpoint). */
static int s_checkpoint_setup(s_run *r, const ed_checkpoint *ck, ed_err *err)
{
    const tw_train_opts *o = r->o;
    if (o->checkpoint) {
        r->config = tw_train_ckpt_config(&o->train, o->train_images, o->train_labels,
                                         o->train_start, o->train_end, r->n_train);
        if (!r->config)
            return ed_err_set(err, ED_ENOMEM, "cannot build the checkpoint config");
    }
    if (ck) {
        if (ed_checkpoint_match_config(ck, r->config, err))
            return ed_err_wrap(err, "cannot resume from %s", o->checkpoint);
        if (tw_train_ckpt_restore(ck, o->checkpoint, r->t, &r->plan, &r->pos, err))
            return ed_err_wrap(err, "cannot resume");
        r->resume = true;
        ed_log_info("resuming from %s: epoch %d, step %ld of %ld", o->checkpoint, r->pos.epoch,
                    r->pos.step, r->plan.total_steps);
    }
    if (o->metrics && !(r->metrics = ed_fs_reopen_cut(o->metrics, r->pos.metrics_bytes, "metrics")))
        return ed_err_set(err, ED_EIO, "%s: cannot open metrics file", o->metrics);
    return 0;
}

/* Writes a checkpoint of the run as it is (with --checkpoint). */
static int s_checkpoint(s_run *r, ed_err *err)
{
    if (!r->o->checkpoint)
        return 0;
    r->pos.metrics_bytes = ed_fs_file_bytes(r->metrics);
    if (tw_train_ckpt_save(r->o->checkpoint, r->config, r->t, &r->pos, err))
        return ed_err_wrap(err, "checkpoint at step %ld", r->pos.step);
    return 0;
}

/* Starts epoch `epoch`: rewinds the loader (after the first epoch); a fresh epoch records the
 * loader's shuffle state and zeroes the sums; a resumed one restores that state and skips the
 * batches already trained on. */
static int s_epoch_start(s_run *r, int epoch, ed_err *err)
{
    if (epoch > 1 && ed_loader_reset(r->loader, err))
        return err->code;
    if (!r->resume) {
        ed_loader_rng_get(r->loader, &r->pos.epoch_start);
        r->pos.epoch = epoch;
        r->pos.epoch_step = 0;
        r->pos.loss_sum = 0.0;
        r->pos.seen = r->pos.correct = 0;
        return 0;
    }
    r->resume = false;
    ed_loader_rng_set(r->loader, &r->pos.epoch_start);
    ed_batch b;
    for (long i = 0; i < r->pos.epoch_step; i++) {
        int n = ed_loader_next(r->loader, &b, err);
        if (n < 0)
            return n;
        if (n == 0)
            return ed_err_set(err, ED_EFORMAT,
                              "%s: epoch %d ended after %ld batches while skipping the %ld "
                              "trained before the checkpoint",
                              r->o->train_images, epoch, i, r->pos.epoch_step);
    }
    return 0;
}

/* Trains one epoch (or what is left of it and of the run's steps), with a progress line. */
static int s_epoch(s_run *r, int epoch, s_epoch_stats *es, ed_err *err)
{
    const tw_train_opts *o = r->o;
    tw_train_pos *pos = &r->pos;
    char what[64];
    snprintf(what, sizeof what, "epoch %d/%d", epoch, r->plan.epochs);
    const ed_loss_config loss_cfg = {.label_smoothing = o->train.label_smoothing};
    *es = (s_epoch_stats){0};
    double t_epoch = ed_now();
    if (s_epoch_start(r, epoch, err))
        return err->code;
    ed_progress prog;
    ed_progress_start(&prog, what, ed_train_plan_epoch_steps(&r->plan, epoch), o->quiet ? 0 : 5.0);
    ed_batch b;
    int n;
    while (pos->step < r->plan.total_steps && (n = ed_loader_next(r->loader, &b, err)) != 0) {
        if (n < 0)
            return n;
        ed_step_stats st;
        if (ed_trainer_step(r->t, &b, &loss_cfg, &st, err))
            return ed_err_wrap(err, "%s, epoch %d step %ld", o->train_images, epoch, pos->step);
        if (!isfinite(st.loss))
            return ed_err_set(err, ED_EINVAL,
                              "loss became %g at epoch %d step %ld: lower --lr (now %g)", st.loss,
                              epoch, pos->step, (double)o->train.lr);
        pos->loss_sum += st.loss * st.n;
        pos->seen += st.n;
        pos->correct += st.correct;
        es->seen_here += st.n;
        pos->step++;
        pos->epoch_step++;
        char extra[96];
        snprintf(extra, sizeof extra, "loss %.4f acc %.2f%%", pos->loss_sum / (double)pos->seen,
                 100.0 * (double)pos->correct / (double)pos->seen);
        ed_progress_update(&prog, pos->epoch_step, extra);
        if (o->checkpoint_every > 0 && pos->step % o->checkpoint_every == 0 &&
            pos->step < r->plan.total_steps && s_checkpoint(r, err))
            return err->code;
    }
    es->secs = ed_now() - t_epoch;
    return 0;
}

/* The epoch's log line and metrics record; res is NULL without a test set. */
static void s_epoch_report(const s_run *r, int epoch, const s_epoch_stats *es,
                           const ed_eval_result *res)
{
    const tw_train_pos *pos = &r->pos;
    const double loss = pos->seen ? pos->loss_sum / (double)pos->seen : 0.0,
                 acc = pos->seen ? (double)pos->correct / (double)pos->seen : 0.0,
                 speed = es->secs > 0 ? (double)es->seen_here / es->secs : 0.0;
    const double test_acc = res ? ed_eval_accuracy(res) : -1.0;
    if (!r->o->quiet) {
        if (res)
            ed_log_info("epoch %d/%d: train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | "
                        "%.1fs, %.0f samples/s",
                        epoch, r->plan.epochs, loss, 100.0 * acc, res->loss, 100.0 * test_acc,
                        es->secs, speed);
        else
            ed_log_info("epoch %d/%d: train loss %.4f acc %.2f%% | %.1fs, %.0f samples/s", epoch,
                        r->plan.epochs, loss, 100.0 * acc, es->secs, speed);
    }
    if (r->metrics) {
        cJSON *rec = cJSON_CreateObject();
        if (rec) {
            cJSON_AddNumberToObject(rec, "epoch", epoch);
            cJSON_AddNumberToObject(rec, "step", (double)pos->step);
            cJSON_AddNumberToObject(
                rec, "lr", (double)ed_opt_lr_at(&r->plan.opt, pos->step > 0 ? pos->step - 1 : 0));
            cJSON_AddNumberToObject(rec, "train_loss", loss);
            cJSON_AddNumberToObject(rec, "train_accuracy", acc);
            cJSON_AddNumberToObject(rec, "samples_per_s", speed);
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
    cJSON *prov = s_provenance(o, r->pos.step, test_acc, train_secs);
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
               test_acc, r->pos.step, train_secs, fp);
    else
        printf("%s: member %s, %ld steps in %.1fs, %s\n", o->out, o->member, r->pos.step,
               train_secs, fp);
    return 0;
}

static int s_train(const tw_train_opts *o)
{
    ed_err err = {0};
    int rc = 1;
    s_run r = {.o = o};
    ed_stack arch;
    ed_checkpoint *ck = NULL;
    if (ed_train_flags_validate(&o->train, &arch, &err) ||
        ed_train_flags_check_augment_input(&o->train, &arch, &err) ||
        (o->checkpoint_every < 0 &&
         ed_err_set(&err, ED_EINVAL, "--checkpoint-every must be >= 0")) ||
        ed_checkpoint_open_resume(o->checkpoint, o->resume, o->resume_if_present, &ck, &err)) {
        ed_cli_report("teacher_worker train", &err);
        return 2;
    }
    ed_blas_set_threads(o->train.blas_threads);
    if (s_setup(&r, &arch, &err) || s_checkpoint_setup(&r, ck, &err))
        goto fail;
    ed_checkpoint_destroy(&ck);
    if (!o->quiet)
        ed_log_info("training %s (%zu parameters) on %ld samples of %s: %ld steps (%d epochs) "
                    "of batch %d, %s lr %g %s, augmentation %s",
                    o->train.arch, r.t->model->n_params, r.n_train, o->train_images,
                    r.plan.total_steps, r.plan.epochs, o->train.batch_size, o->train.optimizer,
                    (double)o->train.lr, o->train.schedule, r.t->augment.text);
    const double t_start = ed_now();
    for (int epoch = r.pos.epoch;
         epoch <= r.plan.epochs && (r.resume || r.pos.step < r.plan.total_steps); epoch++) {
        s_epoch_stats es;
        if (s_epoch(&r, epoch, &es, &err))
            goto fail;
        ed_eval_result res = {0};
        bool have_test = o->test_images && o->test_labels;
        if (have_test) {
            if (s_evaluate(r.t, o, &res, &err))
                goto fail;
            r.pos.test_acc = ed_eval_accuracy(&res);
        }
        s_epoch_report(&r, epoch, &es, have_test ? &res : NULL);
        ed_eval_result_free(&res);
        /* The next epoch starts from here: the loader's RNG as it is (a reset keeps it). */
        r.pos = (tw_train_pos){.epoch = epoch + 1,
                               .step = r.pos.step,
                               .test_acc = r.pos.test_acc,
                               .metrics_bytes = r.pos.metrics_bytes};
        ed_loader_rng_get(r.loader, &r.pos.epoch_start);
        if (s_checkpoint(&r, &err))
            goto fail;
    }
    if (s_save(&r, r.pos.test_acc, ed_now() - t_start, &err))
        goto fail;
    rc = 0;
    goto done;
fail:
    ed_cli_report("teacher_worker train", &err);
done:
    ed_checkpoint_destroy(&ck);
    free(r.config);
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
    ed_cli_opt opts[14 + ED_TRAIN_FLAGS_OPTS] = {
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
        {"checkpoint", ED_CLI_STR, &o.checkpoint, "FILE",
         "write a checkpoint here after every epoch (and every --checkpoint-every steps); never "
         "overwrites one from another run without --resume",
         NULL, false},
        {"checkpoint-every", ED_CLI_LONG, &o.checkpoint_every, "N",
         "also checkpoint every N steps (0: at epoch ends only)", NULL, false},
        {"resume", ED_CLI_FLAG, &o.resume, NULL,
         "continue the run of --checkpoint FILE (same settings) to the same model, bit for bit",
         NULL, false},
        {"resume-if-present", ED_CLI_FLAG, &o.resume_if_present, NULL,
         "--resume when FILE exists, else start a new run", NULL, false},
        {"quiet", ED_CLI_FLAG, &o.quiet, NULL, "no progress output", NULL, false},
    };
    int n_opts = 14 + ed_train_flags_options(&o.train, opts + 14);
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
