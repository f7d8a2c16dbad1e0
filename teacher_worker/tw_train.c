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

static int s_train(const tw_train_opts *o)
{
    ed_err err = {0};
    int rc = 1;
    ed_trainer *t = NULL;
    ed_loader *loader = NULL;
    FILE *metrics = NULL;
    ed_stack arch;
    if (ed_train_flags_validate(&o->train, &arch, &err)) {
        fprintf(stderr, "teacher_worker train: %s\n", err.msg);
        return 2;
    }
    ed_blas_set_threads(o->train.blas_threads);

    ed_dataset_spec spec = {o->train_images, o->train_labels, o->train_start, o->train_end};
    ed_stream *s = ed_stream_open(&spec, &err);
    if (!s)
        goto fail;
    if (!ed_stream_has_labels(s)) {
        ed_err_set(&err, ED_EINVAL, "training needs --train-labels");
        ed_stream_destroy(&s);
        goto fail;
    }
    if ((size_t)ed_stream_dim(s) != ed_stack_in_size(&arch)) {
        ed_err_set(&err, ED_ESHAPE, "%s has %d values per sample but --arch %s starts with %zu",
                   o->train_images, ed_stream_dim(s), o->train.arch, ed_stack_in_size(&arch));
        ed_stream_destroy(&s);
        goto fail;
    }
    const long n_train = ed_stream_count(s);
    ed_train_plan plan;
    ed_train_flags_plan(&o->train, n_train, &plan);
    const ed_opt_config oc = plan.opt;
    const long total_steps = plan.total_steps;
    const int epochs = plan.epochs;

    ed_loader_config lc = {.batch_size = o->train.batch_size, .shuffle_buffer = o->train.shuffle_buffer,
                           .seed = o->train.seed ^ 0x5348554646ULL, .drop_last = false};
    loader = ed_loader_new(&s, &lc, &err);
    if (!loader)
        goto fail;

    ed_net *m = ed_net_new(&arch);
    if (!m) {
        ed_err_set(&err, ED_ENOMEM, "cannot allocate a %s model", o->train.arch);
        goto fail;
    }
    ed_rng init_rng;
    ed_rng_seed(&init_rng, o->train.seed);
    ed_net_init(m, &init_rng);
    const ed_trainer_config tc = {.opt = oc, .max_batch = o->train.batch_size,
                                  .dropout_in = o->train.dropout_in,
                                  .dropout_hidden = o->train.dropout_hidden,
                                  .input_scale = o->train.input_scale,
                                  .input_offset = o->train.input_offset, .seed = o->train.seed + 1};
    t = ed_trainer_new(&m, &tc, &err);
    if (!t)
        goto fail;
    if (o->metrics) {
        metrics = fopen(o->metrics, "w");
        if (!metrics) {
            ed_err_set(&err, ED_EIO, "%s: cannot open metrics file", o->metrics);
            goto fail;
        }
    }

    if (!o->quiet)
        ed_log_info("training %s (%zu parameters) on %ld samples of %s: %ld steps (%d epochs) "
                    "of batch %d, %s lr %g %s",
                    o->train.arch, t->model->n_params, n_train, o->train_images, total_steps, epochs,
                    o->train.batch_size, o->train.optimizer, (double)o->train.lr, o->train.schedule);
    const ed_loss_config loss_cfg = {.label_smoothing = o->train.label_smoothing};
    const double t_start = ed_now();
    long step = 0;
    double test_acc = -1.0;
    for (int epoch = 1; epoch <= epochs && step < total_steps; epoch++) {
        char what[64];
        snprintf(what, sizeof what, "epoch %d/%d", epoch, epochs);
        ed_progress prog;
        long epoch_steps = ed_train_plan_epoch_steps(&plan, epoch);
        ed_progress_start(&prog, what, epoch_steps, o->quiet ? 0 : 5.0);
        double loss_sum = 0.0, t_epoch = ed_now();
        long seen = 0, correct = 0, epoch_done = 0;
        ed_batch b;
        int n;
        if (epoch > 1 && ed_loader_reset(loader, &err))
            goto fail;
        while (step < total_steps && (n = ed_loader_next(loader, &b, &err)) != 0) {
            if (n < 0)
                goto fail;
            ed_step_stats st;
            if (ed_trainer_step(t, &b, &loss_cfg, &st, &err)) {
                ed_err_wrap(&err, "%s, epoch %d step %ld", o->train_images, epoch, step);
                goto fail;
            }
            if (!isfinite(st.loss)) {
                ed_err_set(&err, ED_EINVAL,
                           "loss became %g at epoch %d step %ld: lower --lr (now %g)", st.loss,
                           epoch, step, (double)o->train.lr);
                goto fail;
            }
            loss_sum += st.loss * st.n;
            seen += st.n;
            correct += st.correct;
            step++;
            epoch_done++;
            char extra[96];
            snprintf(extra, sizeof extra, "loss %.4f acc %.2f%%", loss_sum / (double)seen,
                     100.0 * (double)correct / (double)seen);
            ed_progress_update(&prog, epoch_done, extra);
        }
        double secs = ed_now() - t_epoch;
        ed_eval_result res = {0};
        bool have_test = o->test_images && o->test_labels;
        if (have_test) {
            if (s_evaluate(t, o, &res, &err))
                goto fail;
            test_acc = ed_eval_accuracy(&res);
        }
        if (!o->quiet) {
            if (have_test)
                ed_log_info("epoch %d/%d: train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | "
                            "%.1fs, %.0f samples/s",
                            epoch, epochs, loss_sum / (double)seen, 100.0 * correct / (double)seen,
                            res.loss, 100.0 * test_acc, secs, (double)seen / secs);
            else
                ed_log_info("epoch %d/%d: train loss %.4f acc %.2f%% | %.1fs, %.0f samples/s", epoch,
                            epochs, loss_sum / (double)seen, 100.0 * correct / (double)seen, secs,
                            (double)seen / secs);
        }
        if (metrics) {
            cJSON *rec = cJSON_CreateObject();
            if (rec) {
                cJSON_AddNumberToObject(rec, "epoch", epoch);
                cJSON_AddNumberToObject(rec, "step", (double)step);
                cJSON_AddNumberToObject(rec, "lr", (double)ed_opt_lr_at(&oc, step > 0 ? step - 1 : 0));
                cJSON_AddNumberToObject(rec, "train_loss", loss_sum / (double)seen);
                cJSON_AddNumberToObject(rec, "train_accuracy", (double)correct / (double)seen);
                cJSON_AddNumberToObject(rec, "samples_per_s", (double)seen / secs);
                cJSON_AddNumberToObject(rec, "seconds", secs);
                if (have_test) {
                    cJSON_AddNumberToObject(rec, "test_loss", res.loss);
                    cJSON_AddNumberToObject(rec, "test_accuracy", test_acc);
                }
            }
            char *line = rec ? cJSON_PrintUnformatted(rec) : NULL;
            cJSON_Delete(rec);
            if (line) {
                fprintf(metrics, "%s\n", line);
                fflush(metrics);
            } else {
                ed_log_warn("out of memory: epoch %d's metrics line not written", epoch);
            }
            cJSON_free(line);
        }
        ed_eval_result_free(&res);
    }
    double train_secs = ed_now() - t_start;

    ed_model_meta meta = {0};
    snprintf(meta.member, sizeof meta.member, "%s", o->member);
    meta.input_scale = o->train.input_scale;
    meta.input_offset = o->train.input_offset;
    cJSON *prov = s_provenance(o, step, test_acc, train_secs);
    char *prov_text = cJSON_PrintUnformatted(prov);
    cJSON_Delete(prov);
    snprintf(meta.provenance, sizeof meta.provenance, "%s", prov_text ? prov_text : "{}");
    free(prov_text);
    if (ed_model_save(o->out, t->model, &meta, &err))
        goto fail;
    char fp[32];
    ed_fingerprint_format(meta.fingerprint, fp, sizeof fp);
    if (test_acc >= 0)
        printf("%s: member %s, test accuracy %.4f, %ld steps in %.1fs, %s\n", o->out, o->member,
               test_acc, step, train_secs, fp);
    else
        printf("%s: member %s, %ld steps in %.1fs, %s\n", o->out, o->member, step, train_secs, fp);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "teacher_worker train: %s\n", err.msg[0] ? err.msg : ed_strerror(err.code));
done:
    if (metrics)
        fclose(metrics);
    ed_loader_destroy(&loader);
    ed_trainer_destroy(&t);
    return rc;
}

int tw_train_main(int argc, char **argv)
{
    tw_train_opts o = {
        .train_images = ED_DATA_DEFAULT_DIR "train-images-idx3-ubyte.gz",
        .train_labels = ED_DATA_DEFAULT_DIR "train-labels-idx1-ubyte.gz",
        .train_start = 0, .train_end = -1, .member = "member",
        .train = {.arch = "784,1200,1200,10", .optimizer = "adam", .schedule = "cosine", .seed = 1,
                  .epochs = 10, .batch_size = 128, .lr = 1e-3f, .momentum = 0.9f,
                  .shuffle_buffer = 65536, .input_scale = 1.0f / 255.0f},
    };
    ed_cli_opt opts[10 + ED_TRAIN_FLAGS_OPTS] = {
        {"train-images", ED_CLI_STR, &o.train_images, "FILE", "training samples (IDX, .npy, CSV; .gz ok)", NULL, false},
        {"train-labels", ED_CLI_STR, &o.train_labels, "FILE", "training labels", NULL, false},
        {"train-start", ED_CLI_LONG, &o.train_start, "N", "first training sample used", NULL, false},
        {"train-end", ED_CLI_LONG, &o.train_end, "N", "one past the last training sample (-1: all)", NULL, false},
        {"test-images", ED_CLI_STR, &o.test_images, "FILE", "test samples, evaluated after each epoch", NULL, false},
        {"test-labels", ED_CLI_STR, &o.test_labels, "FILE", "test labels", NULL, false},
        {"member", ED_CLI_STR, &o.member, "NAME", "member name recorded in the model file", NULL, false},
        {"out", ED_CLI_STR, &o.out, "FILE", "model file to write (safetensors)", NULL, true},
        {"metrics", ED_CLI_STR, &o.metrics, "FILE", "write one JSON line of metrics per epoch", NULL, false},
        {"quiet", ED_CLI_FLAG, &o.quiet, NULL, "no progress output", NULL, false},
    };
    int n_opts = 10 + ed_train_flags_options(&o.train, opts + 10);
    const ed_cli_spec spec = {
        "teacher_worker train --out FILE [options]",
        "Trains one ensemble member (a ReLU MLP or any layer stack, e.g. a CNN) on labeled data\n"
        "with cross-entropy, shows progress, evaluates on the test set after each epoch when one is\n"
        "given, and writes the model file atomically. Defaults read Fashion-MNIST from " ED_DATA_DEFAULT_DIR ".",
        opts, n_opts,
        "example:\n  teacher_worker train --arch 784,1200,1200,10 --epochs 20 --dropout-in 0.2 \\\n"
        "      --dropout-hidden 0.5 --seed 1 --member m1 --out models/m1.safetensors \\\n"
        "      --test-images " ED_DATA_DEFAULT_DIR "t10k-images-idx3-ubyte.gz \\\n"
        "      --test-labels " ED_DATA_DEFAULT_DIR "t10k-labels-idx1-ubyte.gz\n"
        "  teacher_worker train --arch 1x28x28:conv32k3p1,bn,relu,maxpool2,conv64k3p1,bn,relu,\\\n"
        "maxpool2,flatten,dense128,relu,dropout0.3,dense10 --epochs 15 --member c1 --out c1.safetensors"};
    int rc;
    if (!ed_cli_parse_command(&spec, "teacher_worker train", argc, argv, &rc))
        return rc;
    if ((o.test_images == NULL) != (o.test_labels == NULL)) {
        fprintf(stderr, "teacher_worker train: give both --test-images and --test-labels\n");
        return 2;
    }
    return s_train(&o);
}
