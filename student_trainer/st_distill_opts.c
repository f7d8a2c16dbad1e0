/*
 * st_distill_opts: the command line of `student_trainer distill`: defaults, the option table (the
 * teacher-pool options come from st_pool_flags, the training options from ed_train_flags), the
 * checks that need several options at once, and the CURVE keys. The run itself is st_distill.c.
 */
#include "st_distill_internal.h"

#include <string.h>

#include "ed_cli.h"
#include "ed_data.h"
#include "ed_http.h"
#include "ed_log.h"

/* The checks of option values and combinations; fills o->arch and o->loss. 0 or ED_EINVAL. */
static int s_validate(st_distill_opts *o, ed_err *err)
{
    if (!o->pool.teachers && !o->targets)
        return ed_err_set(err, ED_EINVAL,
                          "give --teachers LIST (live teachers) or --targets STORE (a target "
                          "store written by `student_trainer label`), or both");
    if (o->cache_targets && (!o->pool.teachers || o->targets))
        return ed_err_set(err, ED_EINVAL,
                          "--cache-targets needs --teachers (to fill it) and no --targets");
    if ((o->test_images == NULL) != (o->test_labels == NULL))
        return ed_err_set(err, ED_EINVAL, "give both --test-images and --test-labels");
    if (ed_train_flags_validate(&o->train, &o->arch, err) ||
        st_student_check(&o->student, o->unlabeled, err))
        return ED_EINVAL;
    ed_augment aug;
    if (ed_train_flags_augment(&o->train, &aug, err) == 0 && ed_augment_on(&aug) &&
        (o->targets || o->cache_targets || st_student_on(&o->student)))
        return ed_err_set(err, ED_EINVAL,
                          "--augment needs live teachers that see the student's images: stored "
                          "soft targets (--targets, --cache-targets) are for the unaugmented "
                          "samples, and a student view (--student-view, --*-student-images) "
                          "would not be shifted with them");
    int combine = ed_combine_parse(o->combine), soft = ed_soft_loss_parse(o->soft_loss);
    if (combine < 0 || soft < 0)
        return ed_err_set(err, ED_EINVAL, "%s: unknown value \"%s\" (see --help)",
                          combine < 0 ? "--combine" : "--soft-loss",
                          combine < 0 ? o->combine : o->soft_loss);
    if (!(o->temperature > 0) || o->alpha < 0 || o->alpha > 1)
        return ed_err_set(err, ED_EINVAL, "need --temperature > 0 and 0 <= --alpha <= 1");
    o->loss = (ed_loss_config){.combine = (ed_combine_mode)combine,
                               .temperature = o->temperature,
                               .alpha = o->alpha,
                               .soft_loss = (ed_soft_loss)soft,
                               .label_smoothing = o->train.label_smoothing};
    static const char *const overlap[] = {"off", "on", "auto"}; /* st_pool_overlap's order */
    int ov = -1;
    for (int i = 0; i < 3; i++)
        if (!strcmp(o->inprocess_overlap, overlap[i]))
            ov = i;
    if (ov < 0)
        return ed_err_set(err, ED_EINVAL, "--inprocess-overlap: \"%s\" is not auto, on or off",
                          o->inprocess_overlap);
    o->pool.overlap = (st_pool_overlap)ov;
    /* A target store trains the student alone for most steps (--cache-targets: every epoch after
     * the first): there the teacher thread would idle and the student run on 1 OpenBLAS thread. */
    if (o->pool.overlap == ST_POOL_OVERLAP_AUTO && (o->targets || o->cache_targets))
        o->pool.overlap = ST_POOL_OVERLAP_OFF;
    return st_pool_flags_check(&o->pool, err);
}

/* The defaults of every option. */
static void s_defaults(st_distill_opts *o)
{
    *o = (st_distill_opts){
        .pool = st_pool_flags_defaults(),
        .labeled_images = ED_DATA_DEFAULT_DIR "train-images-idx3-ubyte.gz",
        .labeled_labels = ED_DATA_DEFAULT_DIR "train-labels-idx1-ubyte.gz",
        .unlabeled = NULL,
        .test_images = NULL,
        .test_labels = NULL,
        .labeled_start = 0,
        .labeled_end = -1,
        .unlabeled_start = 0,
        .unlabeled_end = -1,
        .member = "student",
        .out = NULL,
        .metrics = NULL,
        .dump_targets = NULL,
        .combine = "prob",
        .soft_loss = "ce",
        .temperature = 4.0f,
        .alpha = 0.9f,
        .train = ed_train_flags_defaults("784,400,400,10"),
        .quiet = false,
        .checkpoint = NULL,
        .checkpoint_every = 200,
        .resume = false,
        .resume_if_present = false,
        .inprocess_overlap = "auto",
    };
}

bool st_distill_opts_parse(st_distill_opts *o, int argc, char **argv, int *rc)
{
    s_defaults(o);
    ed_cli_opt opts[32 + ST_POOL_FLAGS_OPTS + ED_TRAIN_FLAGS_OPTS + ST_STUDENT_OPTS] = {
        {"targets", ED_CLI_STR, &o->targets, "STORE",
         "train from a target store (student_trainer label) instead of live teachers; it must hold "
         "this run's data files and ranges (with --teachers: the datasets it lacks go to the "
         "teachers)",
         NULL, false},
        {"cache-targets", ED_CLI_STR, &o->cache_targets, "STORE",
         "with --teachers: the first epoch stores the teachers' replies in STORE (float32; kept, "
         "resumable), the next epochs train from it without asking the teachers",
         NULL, false},
        {"labeled-images", ED_CLI_STR, &o->labeled_images, "FILE",
         "labeled samples (IDX, .npy, CSV; .gz ok)", NULL, false},
        {"labeled-labels", ED_CLI_STR, &o->labeled_labels, "FILE", "their labels", NULL, false},
        {"labeled-start", ED_CLI_LONG, &o->labeled_start, "N", "first labeled sample used", NULL,
         false},
        {"labeled-end", ED_CLI_LONG, &o->labeled_end, "N",
         "one past the last labeled sample (-1: all)", NULL, false},
        {"unlabeled", ED_CLI_STR, &o->unlabeled, "FILE",
         "unlabeled samples, streamed (soft loss only)", NULL, false},
        {"unlabeled-start", ED_CLI_LONG, &o->unlabeled_start, "N", "first unlabeled sample used",
         NULL, false},
        {"unlabeled-end", ED_CLI_LONG, &o->unlabeled_end, "N",
         "one past the last unlabeled sample (-1: all)", NULL, false},
        {"test-images", ED_CLI_STR, &o->test_images, "FILE",
         "test samples, evaluated after each epoch", NULL, false},
        {"test-labels", ED_CLI_STR, &o->test_labels, "FILE", "test labels", NULL, false},
        {"member", ED_CLI_STR, &o->member, "NAME", "name recorded in the student model file", NULL,
         false},
        {"out", ED_CLI_STR, &o->out, "FILE", "student model file, rewritten atomically each epoch",
         NULL, true},
        {"metrics", ED_CLI_STR, &o->metrics, "FILE",
         "one JSON line of metrics per epoch ('-': stdout)", NULL, false},
        {"temperature", ED_CLI_FLOAT, &o->temperature, "T",
         "softmax temperature of the soft targets", NULL, false},
        {"alpha", ED_CLI_FLOAT, &o->alpha, "A", "weight of the soft loss (1 - A on the hard loss)",
         NULL, false},
        {"combine", ED_CLI_STR, &o->combine, "MODE",
         "prob (mean of softmax(z/T)) or logit (softmax(mean z / T))", NULL, false},
        {"soft-loss", ED_CLI_STR, &o->soft_loss, "KIND",
         "ce (T^2 * soft cross-entropy) or l2 (logit matching)", NULL, false},
        {"dump-targets", ED_CLI_STR, &o->dump_targets, "FILE",
         "write every batch's soft targets as raw float32", NULL, false},
        {"checkpoint", ED_CLI_STR, &o->checkpoint, "FILE",
         "checkpoint file for an exact resume, rewritten atomically (refused if it exists, unless "
         "resuming)",
         "EDISTILL_CHECKPOINT", false},
        {"checkpoint-every", ED_CLI_LONG, &o->checkpoint_every, "N",
         "steps between checkpoints (0: only at epoch ends, on SIGINT/SIGTERM and teacher failure)",
         NULL, false},
        {"resume", ED_CLI_FLAG, &o->resume, NULL,
         "continue the run saved in --checkpoint (error if there is none, or if a setting differs)",
         NULL, false},
        {"resume-if-present", ED_CLI_FLAG, &o->resume_if_present, NULL,
         "like --resume, but start a new run when there is no checkpoint yet (for "
         "restart-on-failure schedulers)",
         NULL, false},
        {"quiet", ED_CLI_FLAG, &o->quiet, NULL, "no progress output", NULL, false},
        {"metrics-listen", ED_CLI_STR, &o->metrics_listen, "HOST:PORT", ED_HTTP_LISTEN_HELP,
         ED_HTTP_LISTEN_ENV, false},
        {"inprocess-overlap", ED_CLI_STR, &o->inprocess_overlap, "auto|on|off",
         "in-process members (model files in --teachers) on a teacher thread that computes the "
         "next batches while the student trains, 1 OpenBLAS thread each; auto: on when OpenBLAS "
         "runs 2 threads (--blas-threads 2 or its default on 2 cores) and there is no target "
         "store (--targets, --cache-targets). Same targets and student as off at 1 OpenBLAS "
         "thread",
         NULL, false},
        {"metrics-linger", ED_CLI_FLOAT, &o->metrics_linger, "SECONDS",
         "after a finished run, keep serving /metrics this long so Prometheus scrapes the final "
         "values",
         NULL, false},
    };
    int n_opts = 0;
    while (opts[n_opts].name)
        n_opts++;
    n_opts += st_pool_flags_options(&o->pool, ST_POOL_FLAGS_ALL, false, NULL, opts + n_opts);
    n_opts += ed_train_flags_options(&o->train, opts + n_opts);
    n_opts += st_student_options(&o->student, opts + n_opts);
    const ed_cli_spec spec = {
        "student_trainer distill (--teachers LIST | --targets STORE) --out FILE [options]",
        "Distills an ensemble into a compact student: every batch of labeled and unlabeled data\n"
        "goes to every member; their softened outputs, averaged per sample, are the soft targets.\n"
        "Replicas (teachers with the same weights fingerprint) count once in the average.\n"
        "With --checkpoint, SIGINT/SIGTERM finish the current step, write the checkpoint and exit\n"
        "with status 130/143; rerun the same command with --resume to continue exactly.",
        opts, n_opts,
        "example:\n  student_trainer distill --teachers tcp://127.0.0.1:5555,tcp://127.0.0.1:5556 "
        "\\\n"
        "      --labeled-end 3000 --unlabeled " ED_DATA_DEFAULT_DIR
        "train-images-idx3-ubyte.gz \\\n"
        "      --unlabeled-start 3000 --out models/student.safetensors --metrics -"};
    ed_err err = {0};
    if (!ed_cli_parse_command(&spec, "student_trainer distill", argc, argv, rc))
        return false;
    *rc = 2;
    if (s_validate(o, &err) < 0) {
        ed_log_error("%s", err.msg);
        return false;
    }
    return true;
}
