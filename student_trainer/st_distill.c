/*
 * st_distill: `student_trainer distill`: the main job. Streams labeled + unlabeled batches, sends
 * each to every ensemble member through the pool (several batches in flight), combines the members'
 * softened outputs per sample, and trains the student on
 *     alpha * T^2 * CE(q, softmax(s / T)) + (1 - alpha) * CE(y, softmax(s))   (labeled rows)
 *     alpha * T^2 * CE(q, softmax(s / T))                                     (unlabeled rows)
 * or L2 logit matching. Evaluates each epoch, writes JSON metrics and the student model file.
 *
 * Checkpoints (--checkpoint FILE, ed_checkpoint) are written every --checkpoint-every steps, at the
 * end of each epoch, on SIGINT/SIGTERM (after the current step; exit status 128 + signal) and when
 * the teachers fail. They hold the student and optimizer state after the last completed step, the
 * epoch and the steps done in it, the epoch's partial metric sums, and the RNG states the epoch
 * STARTED from. Batches already in flight to the teachers are not saved: --resume restarts the
 * epoch from its start states and draws and discards the batches already trained on (without
 * sending them to the teachers), so the resumed run trains on exactly the batches the uninterrupted
 * run would have, and ends with the same student bit for bit (deterministic teachers, same BLAS
 * settings). The metrics and dump files are cut back to their length at the checkpoint.
 */
#include "st_commands.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ed_blas.h"
#include "ed_checkpoint.h"
#include "ed_cli.h"
#include "ed_eval.h"
#include "ed_log.h"
#include "ed_loss.h"
#include "ed_model_file.h"
#include "ed_progress.h"
#include "ed_train_flags.h"
#include "ed_trainer.h"
#include "st_mixer.h"
#include "st_curve.h"
#include "st_distill_metrics.h"
#include "st_pool.h"


typedef struct {
    const char *teachers;
    const char *labeled_images, *labeled_labels, *unlabeled, *test_images, *test_labels;
    long labeled_start, labeled_end, unlabeled_start, unlabeled_end;
    const char *member, *out, *metrics, *dump_targets;
    const char *checkpoint;
    long checkpoint_every;
    bool resume, resume_if_present;
    const char *combine, *soft_loss;
    float temperature, alpha;
    ed_train_flags train;       /* student architecture, optimizer, schedule, batching, seed, ... */
    int inflight;
    float timeout, connect_timeout, max_wait, resolve_interval, health_interval;
    int quorum;
    bool quiet;
    const char *curve_secret, *curve_server_keys;
    const st_curve *curve;  /* loaded from the two above; curve->on false: plaintext */
} st_distill_opts;

/* Peak resident set size of this process, in MiB. */
static double s_max_rss_mib(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0.0;
}

typedef struct {
    double loss, soft, hard;
    long samples, labeled, correct, steps;
    long degraded;              /* batches averaged over fewer than all members */
    long *missing;              /* [member] batches that member was missing from */
} st_epoch_sums;

/* ---- signals: the handler only records the signal; the loop checks it between steps ---------- */

static volatile sig_atomic_t s_stop_signal;

static void s_on_signal(int sig)
{
    s_stop_signal = sig;
}

/* Installs the SIGINT/SIGTERM handlers (one-shot: a second signal gets the default action, so a
 * second Ctrl-C still kills a stuck run; checkpoint writes are atomic either way). */
static void s_signals_install(struct sigaction old[2])
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND; /* no SA_RESTART: blocking waits return early with EINTR */
    s_stop_signal = 0;
    sigaction(SIGINT, &sa, &old[0]);
    sigaction(SIGTERM, &sa, &old[1]);
}

static void s_signals_restore(const struct sigaction old[2])
{
    sigaction(SIGINT, &old[0], NULL);
    sigaction(SIGTERM, &old[1], NULL);
}

/* ---- checkpoints -------------------------------------------------------------------------------- */

/* Where the run is: what a checkpoint records besides the trainer. */
typedef struct {
    int epoch;                  /* the epoch under way (1-based; epochs + 1 when the run is done) */
    long step;                  /* steps completed in all */
    st_mixer_state epoch_start; /* the mixer's RNG states at the start of `epoch` */
    double test_acc;            /* last test accuracy, -1 if none */
    long metrics_bytes;         /* length of the metrics file, -1 when none or stdout */
    long dump_bytes;            /* length of the targets dump, -1 when none */
} st_position;

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The settings a resumed run must share with the run that wrote the checkpoint (keys are the flag
 * names; "labeled-count"/"unlabeled-count" are the samples found in the files, "teachers" the
 * members' weight fingerprints, sorted). Settings that do not change the trained student (inflight,
 * timeouts, test files, output paths, BLAS threads) may change. Caller frees. */
static char *s_config_json(const st_distill_opts *o, const st_mixer *mix, const st_pool *pool)
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
    /* Members by weights fingerprint, sorted: endpoints may move. */
    int K = st_pool_member_count(pool);
    char (*fps)[64] = calloc((size_t)K + 1, sizeof *fps);
    cJSON *teachers = cJSON_AddArrayToObject(c, "teachers");
    if (fps) {
        for (int k = 0; k < K; k++)
            snprintf(fps[k], sizeof fps[k], "%s", st_pool_member_fingerprint(pool, k));
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
static int s_checkpoint_save(const char *path, const char *config, const ed_trainer *t,
                             const st_position *pos, const st_epoch_sums *sums, int K, ed_err *err)
{
    ed_checkpoint *c = ed_checkpoint_new(config, err);
    if (!c)
        return err->code;
    int rc = ed_checkpoint_put_trainer(c, t, err);
    const struct { const char *key; int64_t v; } ints[] = {
        {"epoch", pos->epoch}, {"step", pos->step}, {"epoch_step", sums->steps},
        {"metrics_bytes", pos->metrics_bytes}, {"dump_bytes", pos->dump_bytes},
        {"members", K}, {"sums.samples", sums->samples}, {"sums.labeled", sums->labeled},
        {"sums.correct", sums->correct}, {"sums.degraded", sums->degraded},
    };
    for (size_t i = 0; !rc && i < sizeof ints / sizeof ints[0]; i++)
        rc = ed_checkpoint_put_int(c, ints[i].key, ints[i].v, err);
    const struct { const char *key; double v; } reals[] = {
        {"sums.loss", sums->loss}, {"sums.soft", sums->soft}, {"sums.hard", sums->hard},
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
static int s_checkpoint_restore(const ed_checkpoint *c, const char *path, ed_trainer *t, int K,
                                int epochs, long steps_per_epoch, long total_steps,
                                st_position *pos, st_epoch_sums *sums, ed_err *err)
{
    int64_t iv[10];
    const char *ikeys[] = {"epoch", "step", "epoch_step", "metrics_bytes", "dump_bytes",
                           "members", "sums.samples", "sums.labeled", "sums.correct",
                           "sums.degraded"};
    int rc = ed_checkpoint_get_trainer(c, t, err);
    for (int i = 0; !rc && i < 10; i++)
        rc = ed_checkpoint_get_int(c, ikeys[i], &iv[i], err);
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
        rc = ed_err_set(err, ED_EFORMAT, "it counts %lld members, this run has %d", (long long)iv[5], K);
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
    const ed_train_plan plan = {.steps_per_epoch = steps_per_epoch, .total_steps = total_steps,
                                .epochs = epochs};
    long epoch_steps = ed_train_plan_epoch_steps(&plan, (long)iv[0]);
    bool done = iv[0] == epochs + 1 && iv[1] == total_steps && iv[2] == 0;
    if (!done && (iv[0] < 1 || iv[0] > epochs || iv[2] < 0 || iv[2] > epoch_steps ||
                  iv[1] != (iv[0] - 1) * steps_per_epoch + iv[2] || (int64_t)t->opt->t != iv[1]))
        return ed_err_set(err, ED_EFORMAT, "%s: inconsistent position (epoch %lld, step %lld, %lld "
                          "steps into the epoch, optimizer at %ld) for %d epochs of %ld steps",
                          path, (long long)iv[0], (long long)iv[1], (long long)iv[2], t->opt->t,
                          epochs, steps_per_epoch);
    return 0;
}

/* Opens an output file for appending after cutting it back to `bytes` (its length when the
 * checkpoint was written), or fresh when bytes < 0. */
static FILE *s_open_resumed(const char *path, long bytes, const char *what)
{
    if (bytes < 0)
        return fopen(path, "wb");
    FILE *f;
    struct stat sb;
    if (stat(path, &sb) != 0 || sb.st_size < bytes)
        ed_log_warn("%s: %s file %s than when the checkpoint was written; appending", path, what,
                    stat(path, &sb) != 0 ? "missing, so it now lacks the lines from before" : "shorter");
    else if (truncate(path, (off_t)bytes) != 0)
        ed_log_warn("%s: cannot cut the %s file back to %ld bytes: %s", path, what, bytes,
                    strerror(errno));
    f = fopen(path, "ab");
    if (f)
        fseek(f, 0, SEEK_END); /* ftell in append mode is the end only after the first write */
    return f;
}

/* Length of an output file so far (flushed), -1 for none or stdout. */
static long s_file_bytes(FILE *f)
{
    if (!f || f == stdout)
        return -1;
    fflush(f);
    return ftell(f);
}

static char *s_provenance(const st_distill_opts *o, const st_pool *pool, long steps, double acc)
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
    cJSON *members = cJSON_AddArrayToObject(p, "teachers");
    for (int k = 0; k < st_pool_member_count(pool); k++)
        cJSON_AddItemToArray(members, cJSON_CreateString(st_pool_member_describe(pool, k)));
    if (acc >= 0)
        cJSON_AddNumberToObject(p, "test_accuracy", acc);
    char *text = cJSON_PrintUnformatted(p);
    cJSON_Delete(p);
    return text;
}

static int s_save(const st_distill_opts *o, const ed_trainer *t, const st_pool *pool, long steps,
                  double acc, ed_err *err)
{
    ed_model_meta meta = {0};
    snprintf(meta.member, sizeof meta.member, "%s", o->member);
    meta.input_scale = o->train.input_scale;
    meta.input_offset = o->train.input_offset;
    char *prov = s_provenance(o, pool, steps, acc);
    snprintf(meta.provenance, sizeof meta.provenance, "%s", prov ? prov : "{}");
    free(prov);
    return ed_model_save(o->out, t->model, &meta, err);
}

static int s_distill(const st_distill_opts *o)
{
    ed_err err = {0};
    int rc = 1;
    st_mixer *mix = NULL;
    st_pool *pool = NULL;
    ed_trainer *t = NULL;
    FILE *metrics = NULL, *dump = NULL;
    const float **member_logits = NULL;
    long *missing = NULL;
    char *config = NULL;
    ed_checkpoint *ck = NULL;
    struct sigaction old_sig[2];
    bool signals_installed = false;
    st_position pos = {.epoch = 1, .step = 0, .test_acc = -1.0, .metrics_bytes = -1,
                       .dump_bytes = -1};
    st_epoch_sums sums = {0};
    long step = 0;
    bool ck_written = false;    /* a checkpoint of the current position is on disk */
    ed_arch arch;
    if (ed_train_flags_validate(&o->train, &arch, &err)) {
        ed_log_error("%s", err.msg);
        return 2;
    }
    int combine = ed_combine_parse(o->combine), soft = ed_soft_loss_parse(o->soft_loss);
    const char *bad = combine < 0 ? "--combine" : soft < 0 ? "--soft-loss" : NULL;
    if (bad) {
        ed_log_error("%s: unknown value (see --help)", bad);
        return 2;
    }
    if (!(o->temperature > 0) || o->alpha < 0 || o->alpha > 1 || o->inflight < 1) {
        ed_log_error("need --temperature > 0, 0 <= --alpha <= 1 and --inflight >= 1");
        return 2;
    }
    const bool want_resume = o->resume || o->resume_if_present;
    if ((want_resume && !o->checkpoint) || o->checkpoint_every < 0) {
        ed_log_error("%s", o->checkpoint_every < 0 ? "--checkpoint-every must be >= 0"
                                                   : "--resume needs --checkpoint FILE");
        return 2;
    }
    if (o->checkpoint) {
        /* Read the checkpoint before connecting to anyone: a bad one fails fast. */
        struct stat sb;
        bool exists = stat(o->checkpoint, &sb) == 0;
        if (exists && !want_resume) {
            ed_log_error("%s already exists: pass --resume to continue that run, or remove it to "
                         "start over", o->checkpoint);
            return 2;
        }
        if (!exists && o->resume && !o->resume_if_present) {
            ed_log_error("--resume: no checkpoint at %s (use --resume-if-present to start a new "
                         "run when there is none)", o->checkpoint);
            return 2;
        }
        if (exists) {
            ck = ed_checkpoint_read(o->checkpoint, &err);
            if (!ck) {
                ed_log_error("cannot resume: %s", err.msg);
                return 2;
            }
        } else if (want_resume) {
            ed_log_info("no checkpoint at %s yet: starting a new run", o->checkpoint);
        }
    }
    ed_blas_set_threads(o->train.blas_threads);

    ed_dataset_spec lab = {o->labeled_images, o->labeled_labels, o->labeled_start, o->labeled_end};
    ed_dataset_spec unl = {o->unlabeled, NULL, o->unlabeled_start, o->unlabeled_end};
    mix = st_mixer_open(&lab, o->unlabeled ? &unl : NULL, o->train.batch_size, o->train.shuffle_buffer, o->train.seed,
                        &err);
    if (!mix)
        goto fail;
    const int D = st_mixer_dim(mix), C = ed_arch_out(&arch);
    if (D != ed_arch_in(&arch)) {
        ed_err_set(&err, ED_ESHAPE, "the data have %d values per sample but --arch %s starts with %d",
                   D, o->train.arch, ed_arch_in(&arch));
        goto fail;
    }
    ed_train_plan plan;
    ed_train_flags_plan(&o->train, st_mixer_labeled_count(mix) + st_mixer_unlabeled_count(mix), &plan);
    const long steps_per_epoch = plan.steps_per_epoch, total_steps = plan.total_steps;
    const int epochs = plan.epochs;

    st_pool_config pc = {.input_dim = D, .classes = C, .max_batch = o->train.batch_size,
                         .depth = o->inflight, .dtype = st_mixer_dtype(mix),
                         .timeout_s = o->timeout, .connect_timeout_s = o->connect_timeout,
                         .quorum = o->quorum, .max_wait_s = o->max_wait,
                         .resolve_interval_s = o->resolve_interval,
                         .health_interval_s = o->health_interval};
    st_curve_apply(o->curve, &pc);
    pool = st_pool_open(o->teachers, &pc, &err);
    if (!pool)
        goto fail;
    st_pool_set_stop_flag(pool, &s_stop_signal);
    const int K = st_pool_member_count(pool);
    for (int k = 0; k < K; k++)
        ed_log_info("member %d: %s", k, st_pool_member_describe(pool, k));

    const ed_opt_config oc = plan.opt;
    ed_mlp *m = ed_mlp_new(&arch);
    if (!m) {
        ed_err_set(&err, ED_ENOMEM, "cannot allocate a %s student", o->train.arch);
        goto fail;
    }
    ed_rng init_rng;
    ed_rng_seed(&init_rng, o->train.seed);
    ed_mlp_init(m, &init_rng);
    const ed_trainer_config tc = {.opt = oc, .max_batch = o->train.batch_size,
                                  .dropout_in = o->train.dropout_in,
                                  .dropout_hidden = o->train.dropout_hidden,
                                  .input_scale = o->train.input_scale,
                                  .input_offset = o->train.input_offset, .seed = o->train.seed + 1};
    t = ed_trainer_new(&m, &tc, &err);
    member_logits = calloc(ST_POOL_MAX_MEMBERS, sizeof *member_logits);
    missing = calloc((size_t)K, sizeof *missing);
    if (!t || !member_logits || !missing) {
        if (t)
            ed_err_set(&err, ED_ENOMEM, "out of memory");
        goto fail;
    }
    config = s_config_json(o, mix, pool);
    if (!config) {
        ed_err_set(&err, ED_ENOMEM, "out of memory");
        goto fail;
    }
    st_epoch_sums resumed = {.missing = missing};
    st_mixer_state_get(mix, &pos.epoch_start);
    const bool resuming = ck != NULL;
    if (ck) {
        if (ed_checkpoint_match_config(ck, config, &err)) {
            ed_err_wrap(&err, "cannot resume from %s: this run's settings differ from the run that "
                        "wrote it (give the same settings, or start a new run with another "
                        "--checkpoint)", o->checkpoint);
            goto fail;
        }
        if (s_checkpoint_restore(ck, o->checkpoint, t, K, epochs, steps_per_epoch, total_steps, &pos,
                                 &resumed, &err))
            goto fail;
        ed_checkpoint_destroy(&ck);
        if (pos.step == total_steps)
            ed_log_info("the run saved in %s is complete (%ld steps): rewriting the model file only",
                        o->checkpoint, total_steps);
        else
            ed_log_info("resuming from %s: epoch %d, step %ld of %ld (%ld into the epoch)",
                        o->checkpoint, pos.epoch, pos.step, total_steps, resumed.steps);
    }
    const int resume_epoch = pos.epoch;
    if (o->metrics) {
        metrics = !strcmp(o->metrics, "-") ? stdout
                  : resuming ? s_open_resumed(o->metrics, pos.metrics_bytes, "metrics")
                             : fopen(o->metrics, "w");
        if (!metrics) {
            ed_err_set(&err, ED_EIO, "%s: cannot open metrics file", o->metrics);
            goto fail;
        }
    }
    if (o->dump_targets &&
        !(dump = resuming ? s_open_resumed(o->dump_targets, pos.dump_bytes, "targets")
                          : fopen(o->dump_targets, "wb"))) {
        ed_err_set(&err, ED_EIO, "%s: cannot open targets file", o->dump_targets);
        goto fail;
    }
    ed_log_info("distilling %d member%s into %s (%zu parameters): %ld labeled + %ld unlabeled "
                "samples per epoch, %ld steps (%d epochs) of batch %d, T %g, alpha %g, %s/%s, "
                "%d batches in flight",
                K, K == 1 ? "" : "s", o->train.arch, t->model->n_params, st_mixer_labeled_count(mix),
                st_mixer_unlabeled_count(mix), total_steps, epochs, o->train.batch_size,
                (double)o->temperature, (double)o->alpha, o->combine, o->soft_loss, o->inflight);

    const ed_loss_config lc = {.combine = (ed_combine_mode)combine, .temperature = o->temperature,
                               .alpha = o->alpha, .soft_loss = (ed_soft_loss)soft,
                               .label_smoothing = o->train.label_smoothing};
    const double t_start = ed_now();
    const long first_step = pos.step;
    step = pos.step;
    double test_acc = pos.test_acc;
    s_signals_install(old_sig);
    signals_installed = true;
    for (int epoch = pos.epoch; epoch <= epochs; epoch++) {
        sums = (st_epoch_sums){.missing = missing};
        if (epoch == resume_epoch && resuming) {
            /* Replay this epoch from its start states, skipping the batches already trained on. */
            sums = resumed;
            if (st_mixer_restart(mix, &pos.epoch_start, &err) ||
                st_mixer_skip(mix, sums.steps, &err)) {
                ed_err_wrap(&err, "replaying epoch %d to step %ld", epoch, sums.steps);
                goto fail;
            }
        } else {
            memset(missing, 0, sizeof(long) * (size_t)K);
            if (epoch > 1 && st_mixer_reset(mix, &err))
                goto fail;
            st_mixer_state_get(mix, &pos.epoch_start);
        }
        pos.epoch = epoch;
        char what[64];
        snprintf(what, sizeof what, "epoch %d/%d", epoch, epochs);
        long epoch_steps = ed_train_plan_epoch_steps(&plan, epoch);
        ed_progress prog;
        ed_progress_start(&prog, what, epoch_steps, o->quiet ? 0 : 5.0);
        const long samples_before = sums.samples;
        st_pool_stats ps_discard;
        st_pool_stats_take(pool, &ps_discard);
        double t_epoch = ed_now();
        /* Fill the pipeline, then: wait for the oldest slot, train on it, refill that slot. */
        int inflight = 0, head = 0;
        long submitted = sums.steps;
        for (int s = 0; s < o->inflight && submitted < epoch_steps; s++) {
            ed_batch b;
            int n = st_mixer_next(mix, &b, &err);
            if (n < 0)
                goto fail;
            if (n == 0)
                break;
            if (st_pool_submit(pool, s, &b, &err))
                goto fail_teachers;
            inflight++;
            submitted++;
        }
        while (inflight > 0) {
            ed_batch b;
            const float *const *logits;
            if (st_pool_wait(pool, head, &b, &logits, &err)) {
                if (err.code != ED_ESTOPPED)
                    ed_err_wrap(&err, "epoch %d step %ld", epoch, step);
                goto fail_teachers;
            }
            inflight--;
            /* Members can join during the run (elastic membership): average over every member
             * that answered this batch; members that had no live replica make it degraded. */
            const int Kb = st_pool_member_count(pool);
            int present = 0;
            bool degraded = false;
            for (int k = 0; k < Kb; k++) {
                if (logits[k])
                    member_logits[present++] = logits[k];
                if (st_pool_missed(pool, head, k)) {
                    degraded = true;
                    if (k < K)
                        sums.missing[k]++;
                }
            }
            sums.degraded += degraded;
            ed_step_stats st;
            if (ed_trainer_distill_step(t, &b, member_logits, present, &lc, &st, &err)) {
                ed_err_wrap(&err, "epoch %d step %ld", epoch, step);
                goto fail;
            }
            const size_t nq = (size_t)b.n * (size_t)C;
            if (dump && fwrite(ed_trainer_targets(t), sizeof(float), nq, dump) != nq) {
                ed_err_set(&err, ED_EIO, "%s: write failed", o->dump_targets);
                goto fail;
            }
            if (!isfinite(st.loss)) {
                ed_err_set(&err, ED_EINVAL, "loss became %g at epoch %d step %ld: lower --lr (now %g)",
                           st.loss, epoch, step, (double)o->train.lr);
                goto fail;
            }
            step++;
            sums.steps++;
            sums.samples += st.n;
            sums.labeled += st.n_labeled;
            sums.correct += st.correct;
            sums.loss += st.loss * st.n;
            sums.soft += st.soft_loss * st.n;
            sums.hard += st.hard_loss * st.n_labeled;
            pos.step = step;
            /* A checkpoint between steps is always consistent: it never depends on the batches in
             * flight. The one at the end of the epoch follows below. */
            if (o->checkpoint && sums.steps < epoch_steps &&
                (s_stop_signal || (o->checkpoint_every > 0 && step % o->checkpoint_every == 0))) {
                pos.metrics_bytes = s_file_bytes(metrics);
                pos.dump_bytes = s_file_bytes(dump);
                if (s_checkpoint_save(o->checkpoint, config, t, &pos, &sums, K, &err))
                    goto fail;
                ck_written = true;
                ed_log_debug("checkpoint at step %ld -> %s", step, o->checkpoint);
            } else {
                ck_written = false;
            }
            if (s_stop_signal && sums.steps < epoch_steps)
                goto interrupted; /* else: finish the epoch, which writes its checkpoint */
            if (submitted < epoch_steps) {
                ed_batch nb;
                int n = st_mixer_next(mix, &nb, &err);
                if (n < 0)
                    goto fail;
                if (n > 0) {
                    if (st_pool_submit(pool, head, &nb, &err))
                        goto fail_teachers;
                    inflight++;
                    submitted++;
                }
            }
            head = (head + 1) % o->inflight;
            char extra[128];
            snprintf(extra, sizeof extra, "loss %.4f soft %.4f hard %.4f",
                     sums.loss / (double)sums.samples, sums.soft / (double)sums.samples,
                     sums.labeled ? sums.hard / (double)sums.labeled : 0.0);
            ed_progress_update(&prog, sums.steps, extra);
        }
        double secs = ed_now() - t_epoch;
        st_pool_stats ps;
        st_pool_stats_take(pool, &ps);
        ed_eval_result res = {0};
        bool have_test = o->test_images && o->test_labels;
        if (have_test) {
            ed_dataset_spec ts = {o->test_images, o->test_labels, 0, -1};
            if (ed_eval_mlp(t->model, t->input_scale, t->input_offset, &ts, 256, &res, &err))
                goto fail;
            test_acc = ed_eval_accuracy(&res);
        }
        if (s_save(o, t, pool, step, test_acc, &err)) {
            ed_eval_result_free(&res);
            goto fail;
        }
        const double rate = secs > 0 ? (double)(sums.samples - samples_before) / secs : 0.0;
        if (!o->quiet)
            ed_log_info("epoch %d/%d: loss %.4f (soft %.4f, hard %.4f)%s%.2f%% | %.1fs, %.0f samples/s, "
                        "teacher latency p50 %.1f ms p99 %.1f ms, waited %.1fs",
                        epoch, epochs, sums.loss / (double)sums.samples,
                        sums.soft / (double)sums.samples,
                        sums.labeled ? sums.hard / (double)sums.labeled : 0.0,
                        have_test ? " | test acc " : " | train acc (labeled) ",
                        100.0 * (have_test ? test_acc
                                           : (sums.labeled ? (double)sums.correct / (double)sums.labeled : 0.0)),
                        secs, rate, ps.latency_p50_ms, ps.latency_p99_ms, ps.wait_ms / 1000.0);
        if (metrics) {
            const st_epoch_record rec = {
                .epoch = epoch, .step = step, .samples = sums.samples, .labeled = sums.labeled,
                .correct = sums.correct, .steps = sums.steps, .degraded = sums.degraded,
                .loss_sum = sums.loss, .soft_sum = sums.soft, .hard_sum = sums.hard,
                .seconds = secs, .samples_per_s = rate, .pool = &ps, .members = pool,
                .missing = missing, .K = K, .max_rss_mib = s_max_rss_mib(),
                .have_test = have_test, .test_loss = res.loss, .test_accuracy = test_acc,
                .resumed_at_step = epoch == resume_epoch && resuming ? first_step : -1};
            if (st_distill_metrics_write(metrics, o->metrics, &rec, &err)) {
                ed_eval_result_free(&res);
                goto fail;
            }
        }
        if (sums.degraded)
            ed_log_warn("epoch %d: %ld of %ld batches averaged over fewer than %d members", epoch,
                        sums.degraded, sums.steps, K);
        ed_eval_result_free(&res);
        if (o->checkpoint) {
            /* The next epoch starts from the RNG states the last batch left (reset keeps them). */
            st_position next = pos;
            next.epoch = epoch + 1;
            next.test_acc = test_acc;
            next.metrics_bytes = s_file_bytes(metrics);
            next.dump_bytes = s_file_bytes(dump);
            st_mixer_state_get(mix, &next.epoch_start);
            st_epoch_sums empty = {.missing = missing};
            memset(missing, 0, sizeof(long) * (size_t)K);
            if (s_checkpoint_save(o->checkpoint, config, t, &next, &empty, K, &err))
                goto fail;
            ck_written = true;
            ed_log_debug("checkpoint at the end of epoch %d -> %s", epoch, o->checkpoint);
        }
        if (s_stop_signal && epoch < epochs)
            goto interrupted;
    }
    if (step == first_step && first_step > 0 && s_save(o, t, pool, step, test_acc, &err))
        goto fail; /* resumed a finished run: make sure the model file is the final one */
    char fp[32];
    ed_fingerprint_format(ed_fingerprint(t->model->params, t->model->n_params), fp, sizeof fp);
    if (test_acc >= 0)
        printf("%s: student %s, test accuracy %.4f, %ld steps in %.1fs, %s\n", o->out, o->member,
               test_acc, step, ed_now() - t_start, fp);
    else
        printf("%s: student %s, %ld steps in %.1fs, %s\n", o->out, o->member, step,
               ed_now() - t_start, fp);
    rc = 0;
    goto done;
interrupted:
    /* Say what is on disk: a signal at step 0 (waiting for dead teachers) leaves no checkpoint. */
    if (!o->checkpoint)
        ed_log_error("stopped by %s after step %ld of %ld; no --checkpoint given: the progress is "
                     "lost", s_stop_signal == SIGINT ? "SIGINT" : "SIGTERM", step, total_steps);
    else if (ck_written)
        ed_log_error("stopped by %s after step %ld of %ld; checkpoint written to %s: continue "
                     "with the same command plus --resume", s_stop_signal == SIGINT ? "SIGINT"
                     : "SIGTERM", step, total_steps, o->checkpoint);
    else if (step == 0)
        ed_log_error("stopped by %s before the first step; no checkpoint written (%s does not "
                     "exist): run the same command again", s_stop_signal == SIGINT ? "SIGINT"
                     : "SIGTERM", o->checkpoint);
    else
        ed_log_error("stopped by %s after step %ld of %ld; the checkpoint could not be written to "
                     "%s (see the error above)", s_stop_signal == SIGINT ? "SIGINT" : "SIGTERM",
                     step, total_steps, o->checkpoint);
    rc = 128 + (int)s_stop_signal;
    goto done;
fail_teachers:
    /* The teachers failed between steps: save the progress so a resume loses nothing. */
    if (o->checkpoint && step > 0) {
        ed_err cerr = {0};
        pos.step = step;
        pos.metrics_bytes = s_file_bytes(metrics);
        pos.dump_bytes = s_file_bytes(dump);
        if (s_checkpoint_save(o->checkpoint, config, t, &pos, &sums, K, &cerr))
            ed_log_error("cannot write the checkpoint: %s", cerr.msg);
        else {
            ck_written = true;
            ed_log_info("checkpoint at step %ld written to %s: continue with --resume once the "
                        "teachers are back", step, o->checkpoint);
        }
    }
    if (err.code == ED_ESTOPPED && s_stop_signal)
        goto interrupted; /* a signal while the pool waited for dead teachers */
fail:
    ed_log_error("%s", err.msg[0] ? err.msg : ed_strerror(err.code));
done:
    if (signals_installed)
        s_signals_restore(old_sig);
    free(config);
    ed_checkpoint_destroy(&ck);
    if (metrics && metrics != stdout)
        fclose(metrics);
    if (dump)
        fclose(dump);
    free(member_logits);
    free(missing);
    ed_trainer_destroy(&t);
    st_pool_close(&pool);
    st_mixer_destroy(&mix);
    return rc;
}

int st_distill_main(int argc, char **argv)
{
    st_distill_opts o = {
        .teachers = NULL,
        .labeled_images = ED_DATA_DEFAULT_DIR "train-images-idx3-ubyte.gz",
        .labeled_labels = ED_DATA_DEFAULT_DIR "train-labels-idx1-ubyte.gz",
        .unlabeled = NULL, .test_images = NULL, .test_labels = NULL,
        .labeled_start = 0, .labeled_end = -1, .unlabeled_start = 0, .unlabeled_end = -1,
        .member = "student", .out = NULL, .metrics = NULL, .dump_targets = NULL,
        .combine = "prob", .soft_loss = "ce", .temperature = 4.0f, .alpha = 0.9f,
        .train = {.arch = "784,400,400,10", .optimizer = "adam", .schedule = "cosine", .seed = 1,
                  .epochs = 10, .batch_size = 128, .lr = 1e-3f, .momentum = 0.9f,
                  .shuffle_buffer = 65536, .input_scale = 1.0f / 255.0f},
        .inflight = 4, .timeout = 10.0f, .connect_timeout = 60.0f, .max_wait = 60.0f,
        .resolve_interval = 10.0f, .health_interval = 2.0f, .quorum = 0, .quiet = false,
        .checkpoint = NULL, .checkpoint_every = 200, .resume = false, .resume_if_present = false,
    };
    ed_cli_opt opts[40 + ED_TRAIN_FLAGS_OPTS] = {
        {"teachers", ED_CLI_STR, &o.teachers, "LIST", "comma-separated teacher endpoints (tcp://, ipc://) and/or model files (in-process)", "EDISTILL_TEACHERS", true},
        {"labeled-images", ED_CLI_STR, &o.labeled_images, "FILE", "labeled samples (IDX, .npy, CSV; .gz ok)", NULL, false},
        {"labeled-labels", ED_CLI_STR, &o.labeled_labels, "FILE", "their labels", NULL, false},
        {"labeled-start", ED_CLI_LONG, &o.labeled_start, "N", "first labeled sample used", NULL, false},
        {"labeled-end", ED_CLI_LONG, &o.labeled_end, "N", "one past the last labeled sample (-1: all)", NULL, false},
        {"unlabeled", ED_CLI_STR, &o.unlabeled, "FILE", "unlabeled samples, streamed (soft loss only)", NULL, false},
        {"unlabeled-start", ED_CLI_LONG, &o.unlabeled_start, "N", "first unlabeled sample used", NULL, false},
        {"unlabeled-end", ED_CLI_LONG, &o.unlabeled_end, "N", "one past the last unlabeled sample (-1: all)", NULL, false},
        {"test-images", ED_CLI_STR, &o.test_images, "FILE", "test samples, evaluated after each epoch", NULL, false},
        {"test-labels", ED_CLI_STR, &o.test_labels, "FILE", "test labels", NULL, false},
        {"member", ED_CLI_STR, &o.member, "NAME", "name recorded in the student model file", NULL, false},
        {"out", ED_CLI_STR, &o.out, "FILE", "student model file, rewritten atomically each epoch", NULL, true},
        {"metrics", ED_CLI_STR, &o.metrics, "FILE", "one JSON line of metrics per epoch ('-': stdout)", NULL, false},
        {"temperature", ED_CLI_FLOAT, &o.temperature, "T", "softmax temperature of the soft targets", NULL, false},
        {"alpha", ED_CLI_FLOAT, &o.alpha, "A", "weight of the soft loss (1 - A on the hard loss)", NULL, false},
        {"combine", ED_CLI_STR, &o.combine, "MODE", "prob (mean of softmax(z/T)) or logit (softmax(mean z / T))", NULL, false},
        {"soft-loss", ED_CLI_STR, &o.soft_loss, "KIND", "ce (T^2 * soft cross-entropy) or l2 (logit matching)", NULL, false},
        {"inflight", ED_CLI_INT, &o.inflight, "N", "batches in flight to the teachers", NULL, false},
        {"timeout", ED_CLI_FLOAT, &o.timeout, "SECONDS", "deadline of one teacher request; a teacher that misses it is marked down", NULL, false},
        {"quorum", ED_CLI_INT, &o.quorum, "K", "members that must answer a batch (0: all); fewer answers -> a degraded batch", NULL, false},
        {"max-wait", ED_CLI_FLOAT, &o.max_wait, "SECONDS", "how long a batch waits for its quorum before the run stops", NULL, false},
        {"resolve-interval", ED_CLI_FLOAT, &o.resolve_interval, "SECONDS", "re-resolve teacher host names (elastic membership)", NULL, false},
        {"health-interval", ED_CLI_FLOAT, &o.health_interval, "SECONDS", "ping idle and down teachers", NULL, false},
        {"connect-timeout", ED_CLI_FLOAT, &o.connect_timeout, "SECONDS", "wait for teachers to report ready", NULL, false},
        {"dump-targets", ED_CLI_STR, &o.dump_targets, "FILE", "write every batch's soft targets as raw float32", NULL, false},
        {"checkpoint", ED_CLI_STR, &o.checkpoint, "FILE", "checkpoint file for an exact resume, rewritten atomically (refused if it exists, unless resuming)", "EDISTILL_CHECKPOINT", false},
        {"checkpoint-every", ED_CLI_LONG, &o.checkpoint_every, "N", "steps between checkpoints (0: only at epoch ends, on SIGINT/SIGTERM and teacher failure)", NULL, false},
        {"resume", ED_CLI_FLAG, &o.resume, NULL, "continue the run saved in --checkpoint (error if there is none, or if a setting differs)", NULL, false},
        {"resume-if-present", ED_CLI_FLAG, &o.resume_if_present, NULL, "like --resume, but start a new run when there is no checkpoint yet (for restart-on-failure schedulers)", NULL, false},
        {"quiet", ED_CLI_FLAG, &o.quiet, NULL, "no progress output", NULL, false},
        {"curve-secret", ED_CLI_STR, &o.curve_secret, "FILE", "CurveZMQ: this trainer's secret key file (teacher_worker keygen; mode 0600); its .pub goes into the workers' --curve-clients", "EDISTILL_CURVE_CLIENT_SECRET", false},
        {"curve-server-keys", ED_CLI_STR, &o.curve_server_keys, "FILE", "the teachers' public key: one .pub file shared by all, or a file of `TEACHERS-ENTRY KEY` lines (docs/SECURITY.md)", "EDISTILL_CURVE_SERVER_KEYS", false},
    };
    int n_opts = 0;
    while (opts[n_opts].name)
        n_opts++;
    n_opts += ed_train_flags_options(&o.train, opts + n_opts);
    const ed_cli_spec spec = {
        "student_trainer distill --teachers LIST --out FILE [options]",
        "Distills an ensemble into a compact student: every batch of labeled and unlabeled data\n"
        "goes to every member; their softened outputs, averaged per sample, are the soft targets.\n"
        "Replicas (teachers with the same weights fingerprint) count once in the average.\n"
        "With --checkpoint, SIGINT/SIGTERM finish the current step, write the checkpoint and exit\n"
        "with status 130/143; rerun the same command with --resume to continue exactly.",
        opts, n_opts,
        "example:\n  student_trainer distill --teachers tcp://127.0.0.1:5555,tcp://127.0.0.1:5556 \\\n"
        "      --labeled-end 3000 --unlabeled " ED_DATA_DEFAULT_DIR "train-images-idx3-ubyte.gz \\\n"
        "      --unlabeled-start 3000 --out models/student.safetensors --metrics -"};
    ed_err err = {0};
    int rc;
    if (!ed_cli_parse_command(&spec, "student_trainer distill", argc, argv, &rc))
        return rc;
    if ((o.test_images == NULL) != (o.test_labels == NULL)) {
        ed_log_error("give both --test-images and --test-labels");
        return 2;
    }
    static st_curve curve; /* the pool keeps pointers into it */
    if (st_curve_load(&curve, o.curve_secret, o.curve_server_keys, &err) < 0) {
        ed_log_error("%s", err.msg);
        return 2;
    }
    o.curve = &curve;
    return s_distill(&o);
}
