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
 *
 * This file is the run (s_distill: opening the data, teachers and trainer, the epoch loop,
 * stopping); the command line and its checks live in st_distill_opts.c, checkpoint arithmetic,
 * config comparison and the student model file in st_distill_ckpt.c, the metrics record and epoch
 * log line in st_distill_metrics.c, --augment (each batch shifted/flipped before the teachers
 * label it) in st_augment.c.
 */
#include "st_commands.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ed_blas.h"
#include "ed_checkpoint.h"
#include "ed_clock.h"
#include "ed_eval.h"
#include "ed_log.h"
#include "ed_loss.h"
#include "ed_progress.h"
#include "ed_train_flags.h"
#include "ed_trainer.h"
#include "ed_fs.h"
#include "st_augment.h"
#include "st_distill_ckpt.h"
#include "st_distill_internal.h"
#include "st_distill_metrics.h"
#include "st_metrics.h"
#include "st_mixer.h"
#include "st_pool.h"
#include "st_stop.h"
#include "st_student.h"
#include "st_target_cache.h"
#include "st_targets.h"

/* ---- the members: live teachers (pool), a target store (tg), or both (tg mixes them) -------- */

static int s_members(const st_pool *pool, const st_targets *tg)
{
    return tg ? st_targets_member_count(tg) : st_pool_member_count(pool);
}

static const char *s_member_describe(const st_pool *pool, const st_targets *tg, int k)
{
    return tg ? st_targets_member_describe(tg, k) : st_pool_member_describe(pool, k);
}

static int s_submit(st_pool *pool, st_targets *tg, int slot, const ed_batch *b, ed_err *err)
{
    return tg ? st_targets_submit(tg, slot, b, err) : st_pool_submit(pool, slot, b, err);
}

static int s_wait(st_pool *pool, st_targets *tg, int slot, ed_batch *b, const float *const **logits,
                  ed_err *err)
{
    return tg ? st_targets_wait(tg, slot, b, logits, err)
              : st_pool_wait(pool, slot, b, logits, err);
}

static void s_stats_take(st_pool *pool, st_pool_stats *ps)
{
    if (pool)
        st_pool_stats_take(pool, ps);
    else
        *ps = (st_pool_stats){0};
}

/* ---- the run --------------------------------------------------------------------------------- */

/* How a part of the run ended. */
typedef enum { S_OK = 0, S_FAIL, S_TEACHERS, S_STOPPED } s_outcome;

/* Everything one run holds; s_distill owns it and s_run_free releases it. */
typedef struct {
    const st_distill_opts *o;
    ed_err err;
    ed_train_plan plan;
    st_mixer *mix;
    st_pool *pool;  /* live teachers (NULL: --targets alone) */
    st_targets *tg; /* --targets / --cache-targets: the store (mixes with pool) */
    ed_trainer *t;
    st_student_slots *ss; /* privileged information: the student's batches in flight, or NULL */
    st_augment *aug;      /* --augment: shifts/flips of each batch before the teachers, or NULL */
    FILE *metrics, *dump;
    const float **member_logits; /* [ST_POOL_MAX_MEMBERS] the logits of the members present */
    long *missing;               /* [K] */
    char *config;                /* the checkpoint config (JSON) */
    ed_checkpoint *ck;           /* the checkpoint to resume from, until restored */
    st_metrics *om;              /* operations metrics (--metrics-listen), NULL when off */
    double blocked_s;            /* how long the loop waited for the batch being trained on */
    int K, C;
    st_position pos;
    st_epoch_sums sums, resumed; /* this epoch's; the resumed epoch's as checkpointed */
    long step, first_step;
    int resume_epoch;
    bool resuming;
    bool ck_written; /* a checkpoint of the current position is on disk */
    double test_acc, t_start;
} s_run;

/* Opens the checkpoint to resume from, if any. 0, or 2 (usage error, reported). */
static int s_open_resume_checkpoint(s_run *r)
{
    if (st_distill_ckpt_open(r->o, &r->ck, &r->err)) {
        ed_log_error("%s", r->err.msg);
        return 2;
    }
    return 0;
}

/* The teachers and/or the target store: --targets (with --teachers: mixed), --cache-targets
 * (the teachers' replies fill the store, later epochs read it: st_target_cache), or live teachers.
 */
static int s_open_targets(s_run *r, const ed_dataset_spec *lab, const ed_dataset_spec *unl,
                          const st_pool_config *pc)
{
    const st_distill_opts *o = r->o;
    const ed_dataset_spec *u = o->unlabeled ? unl : NULL;
    const long nl = st_mixer_labeled_count(r->mix), nu = st_mixer_unlabeled_count(r->mix);
    if (o->targets &&
        !(r->tg = st_targets_open(o->targets, lab, nl, u, nu, r->C, o->train.batch_size,
                                  o->pool.inflight, o->pool.teachers != NULL, &r->err)))
        return r->err.code;
    if (!o->pool.teachers)
        return 0;
    if (!(r->pool = st_pool_open(o->pool.teachers, pc, &r->err)))
        return r->err.code;
    st_pool_set_stop_flag(r->pool, st_stop_flag());
    if (r->tg && st_targets_attach_pool(r->tg, r->pool, &r->err))
        return r->err.code;
    if (o->cache_targets &&
        !(r->tg = st_target_cache_open(o->cache_targets, r->pool, lab, nl, u, nu, r->C,
                                       o->train.batch_size, o->pool.inflight, &r->err)))
        return r->err.code;
    return 0;
}

/* Opens the data, the teachers and the student's trainer. */
static int s_open(s_run *r)
{
    const st_distill_opts *o = r->o;
    /* The listener first: /healthz answers (and /readyz says 503) while data and teachers load. */
    if (o->metrics_listen && *o->metrics_listen) {
        if (!(r->om = st_metrics_new(o->metrics_listen, ST_METRICS_DISTILL, &r->err)))
            return r->err.code;
        ed_log_info("metrics on http://%s/metrics (/healthz, /readyz)", st_metrics_address(r->om));
    }
    ed_dataset_spec lab = {o->labeled_images, o->labeled_labels, o->labeled_start, o->labeled_end};
    ed_dataset_spec unl = {o->unlabeled, NULL, o->unlabeled_start, o->unlabeled_end};
    r->mix = st_mixer_open(&lab, o->unlabeled ? &unl : NULL, o->train.batch_size,
                           o->train.shuffle_buffer, o->train.seed, &r->err);
    if (!r->mix || st_student_attach(&o->student, r->mix, &lab, o->unlabeled ? &unl : NULL,
                                     o->pool.inflight, &r->ss, &r->err))
        return r->err.code;
    const int D = st_mixer_dim(r->mix), SD = st_mixer_student_dim(r->mix);
    r->C = ed_stack_classes(&r->o->arch);
    if ((size_t)SD != ed_stack_in_size(&r->o->arch))
        return ed_err_set(&r->err, ED_ESHAPE,
                          "the %s have %d values per sample but --arch %s "
                          "starts with %zu",
                          st_mixer_has_student(r->mix) ? "student's data" : "data", SD,
                          o->train.arch, ed_stack_in_size(&r->o->arch));
    if (st_augment_open(&r->aug, &o->train, &o->arch, D, st_mixer_dtype(r->mix),
                        o->train.batch_size, &r->err))
        return r->err.code;
    ed_train_flags_plan(
        &o->train, st_mixer_labeled_count(r->mix) + st_mixer_unlabeled_count(r->mix), &r->plan);
    st_pool_config pc = {.input_dim = D,
                         .classes = r->C,
                         .max_batch = o->train.batch_size,
                         .dtype = st_mixer_dtype(r->mix)};
    st_pool_flags_apply(&o->pool, &pc);
    pc.observe = r->om ? st_metrics_observe : NULL;
    pc.observe_arg = r->om;
    if (s_open_targets(r, &lab, &unl, &pc))
        return r->err.code;
    st_metrics_attach(r->om, r->pool, o->pool.quorum); /* pool NULL: targets from a store */
    r->K = s_members(r->pool, r->tg);
    for (int k = 0; k < r->K; k++)
        ed_log_info("member %d: %s", k, s_member_describe(r->pool, r->tg, k));
    ed_net *m = ed_net_new(&r->o->arch);
    if (!m)
        return ed_err_set(&r->err, ED_ENOMEM, "cannot allocate a %s student", o->train.arch);
    ed_rng init_rng;
    ed_rng_seed(&init_rng, o->train.seed);
    ed_net_init(m, &init_rng);
    const ed_trainer_config tc = {.opt = r->plan.opt,
                                  .max_batch = o->train.batch_size,
                                  .dropout_in = o->train.dropout_in,
                                  .dropout_hidden = o->train.dropout_hidden,
                                  .input_scale = o->train.input_scale,
                                  .input_offset = o->train.input_offset,
                                  .seed = o->train.seed + 1};
    r->t = ed_trainer_new(&m, &tc, &r->err);
    if (!r->t)
        return r->err.code;
    r->member_logits = calloc(ST_POOL_MAX_MEMBERS, sizeof *r->member_logits);
    r->missing = calloc((size_t)r->K, sizeof *r->missing);
    r->config = st_distill_ckpt_config(o, r->mix, r->pool, r->tg);
    if (!r->member_logits || !r->missing || !r->config)
        return ed_err_set(&r->err, ED_ENOMEM, "out of memory");
    return 0;
}

/* Restores the checkpoint, if resuming, and opens the output files (cut back when resuming). */
static int s_resume_and_outputs(s_run *r)
{
    const st_distill_opts *o = r->o;
    r->resumed = (st_epoch_sums){.missing = r->missing};
    st_mixer_state_get(r->mix, &r->pos.epoch_start);
    r->resuming = r->ck != NULL;
    if (r->ck) {
        if (ed_checkpoint_match_config(r->ck, r->config, &r->err))
            return ed_err_wrap(&r->err,
                               "cannot resume from %s: this run's settings differ from "
                               "the run that wrote it (give the same settings, or start a new "
                               "run with another --checkpoint)",
                               o->checkpoint);
        if (st_distill_ckpt_restore(r->ck, o->checkpoint, r->t, r->K, &r->plan, &r->pos,
                                    &r->resumed, &r->err))
            return r->err.code;
        ed_checkpoint_destroy(&r->ck);
        if (r->pos.step == r->plan.total_steps)
            ed_log_info("the run saved in %s is complete (%ld steps): rewriting the model file "
                        "only",
                        o->checkpoint, r->plan.total_steps);
        else
            ed_log_info("resuming from %s: epoch %d, step %ld of %ld (%ld into the epoch)",
                        o->checkpoint, r->pos.epoch, r->pos.step, r->plan.total_steps,
                        r->resumed.steps);
    }
    r->resume_epoch = r->pos.epoch;
    if (o->metrics) {
        r->metrics = !strcmp(o->metrics, "-") ? stdout
                     : r->resuming ? ed_fs_reopen_cut(o->metrics, r->pos.metrics_bytes, "metrics")
                                   : fopen(o->metrics, "w");
        if (!r->metrics)
            return ed_err_set(&r->err, ED_EIO, "%s: cannot open metrics file", o->metrics);
    }
    if (o->dump_targets &&
        !(r->dump = r->resuming ? ed_fs_reopen_cut(o->dump_targets, r->pos.dump_bytes, "targets")
                                : fopen(o->dump_targets, "wb")))
        return ed_err_set(&r->err, ED_EIO, "%s: cannot open targets file", o->dump_targets);
    return 0;
}

/* Saves the checkpoint of position pos with sums (mid-epoch, or the next epoch's start). */
static int s_checkpoint(s_run *r, st_position *pos, const st_epoch_sums *sums, ed_err *err)
{
    pos->metrics_bytes = ed_fs_file_bytes(r->metrics);
    pos->dump_bytes = ed_fs_file_bytes(r->dump);
    int rc = st_distill_ckpt_save(r->o->checkpoint, r->config, r->t, pos, sums, r->K, err);
    r->ck_written = rc == 0;
    if (rc == 0)
        st_metrics_checkpoint(r->om);
    return rc;
}

/* Trains one step on slot `head`'s batch and its members' logits; checkpoints between steps when
 * due (or on a signal). */
static s_outcome s_train_batch(s_run *r, int head, long epoch_steps, const ed_batch *b,
                               const float *const *logits)
{
    const st_distill_opts *o = r->o;
    st_epoch_sums *sums = &r->sums;
    /* Members can join during the run (elastic membership): average over every member that
     * answered this batch; members that had no live replica make it degraded. */
    const int Kb = s_members(r->pool, r->tg);
    int present = 0;
    bool degraded = false;
    for (int k = 0; k < Kb; k++) {
        if (logits[k])
            r->member_logits[present++] = logits[k];
        if (r->tg ? st_targets_missed(r->tg, head, k) : st_pool_missed(r->pool, head, k)) {
            degraded = true;
            if (k < r->K)
                sums->missing[k]++;
        }
    }
    sums->degraded += degraded;
    ed_step_stats st;
    if (ed_trainer_distill_step(r->t, b, r->member_logits, present, &r->o->loss, &st, &r->err)) {
        ed_err_wrap(&r->err, "epoch %d step %ld", r->pos.epoch, r->step);
        return S_FAIL;
    }
    const size_t nq = (size_t)b->n * (size_t)r->C;
    if (r->dump && fwrite(ed_trainer_targets(r->t), sizeof(float), nq, r->dump) != nq) {
        ed_err_set(&r->err, ED_EIO, "%s: write failed", o->dump_targets);
        return S_FAIL;
    }
    if (!isfinite(st.loss)) {
        ed_err_set(&r->err, ED_EINVAL, "loss became %g at epoch %d step %ld: lower --lr (now %g)",
                   st.loss, r->pos.epoch, r->step, (double)o->train.lr);
        return S_FAIL;
    }
    r->step++;
    sums->steps++;
    sums->samples += st.n;
    sums->labeled += st.n_labeled;
    sums->correct += st.correct;
    sums->loss += st.loss * st.n;
    sums->soft += st.soft_loss * st.n;
    sums->hard += st.hard_loss * st.n_labeled;
    r->pos.step = r->step;
    st_metrics_step(r->om, &st, r->pos.epoch, degraded, r->blocked_s,
                    sums->labeled ? (double)sums->correct / (double)sums->labeled : -1.0);
    /* A checkpoint between steps is always consistent: it never depends on the batches in flight.
     * The one at the end of the epoch is s_epoch_end's. */
    r->ck_written = false;
    if (o->checkpoint && sums->steps < epoch_steps &&
        (*st_stop_flag() || (o->checkpoint_every > 0 && r->step % o->checkpoint_every == 0))) {
        if (s_checkpoint(r, &r->pos, sums, &r->err))
            return S_FAIL;
        ed_log_debug("checkpoint at step %ld -> %s", r->step, o->checkpoint);
    }
    if (*st_stop_flag() && sums->steps < epoch_steps)
        return S_STOPPED; /* else: finish the epoch, which writes its checkpoint */
    return S_OK;
}

/* Draws the next batch into slot (if the epoch has more) and submits it; *inflight counts it. */
static s_outcome s_submit_next(s_run *r, int slot, long epoch_steps, long *submitted, int *inflight)
{
    if (*submitted >= epoch_steps)
        return S_OK;
    ed_batch b;
    int n = st_mixer_next(r->mix, &b, &r->err);
    if (n < 0)
        return S_FAIL;
    if (n == 0)
        return S_OK;
    st_augment_batch(r->aug, (uint64_t)(r->step + *inflight), &b); /* trained at that step */
    if (st_student_slots_put(r->ss, slot, r->mix, &b, &r->err))
        return S_FAIL;
    if (s_submit(r->pool, r->tg, slot, &b, &r->err))
        return S_TEACHERS;
    ++*inflight;
    ++*submitted;
    return S_OK;
}

/* Positions the mixer at the start of `epoch`: replayed to the checkpoint when resuming into it. */
static int s_epoch_begin(s_run *r, int epoch)
{
    r->sums = (st_epoch_sums){.missing = r->missing};
    if (epoch == r->resume_epoch && r->resuming) {
        /* Replay this epoch from its start states, skipping the batches already trained on. */
        r->sums = r->resumed;
        if (st_mixer_restart(r->mix, &r->pos.epoch_start, &r->err) ||
            st_mixer_skip(r->mix, r->sums.steps, &r->err))
            return ed_err_wrap(&r->err, "replaying epoch %d to step %ld", epoch, r->sums.steps);
    } else {
        memset(r->missing, 0, sizeof(long) * (size_t)r->K);
        if (epoch > 1 && st_mixer_reset(r->mix, &r->err))
            return r->err.code;
        st_mixer_state_get(r->mix, &r->pos.epoch_start);
    }
    r->pos.epoch = epoch;
    return 0;
}

/* The epoch's pipeline: fill the slots, then wait for the oldest, train on it, refill it. */
static s_outcome s_epoch_steps(s_run *r, int epoch, long epoch_steps)
{
    const st_distill_opts *o = r->o;
    char what[64];
    snprintf(what, sizeof what, "epoch %d/%d", epoch, r->plan.epochs);
    ed_progress prog;
    ed_progress_start(&prog, what, epoch_steps, o->quiet ? 0 : 5.0);
    int inflight = 0, head = 0;
    long submitted = r->sums.steps;
    s_outcome out = S_OK;
    for (int s = 0; s < o->pool.inflight && out == S_OK && inflight == s; s++)
        out = s_submit_next(r, s, epoch_steps, &submitted, &inflight); /* stops at the data's end */
    while (out == S_OK && inflight > 0) {
        ed_batch b;
        const float *const *logits;
        const double t_wait = ed_now();
        if (s_wait(r->pool, r->tg, head, &b, &logits, &r->err)) {
            if (r->err.code != ED_ESTOPPED)
                ed_err_wrap(&r->err, "epoch %d step %ld", epoch, r->step);
            return S_TEACHERS;
        }
        inflight--;
        r->blocked_s = ed_now() - t_wait;
        ed_batch sb; /* the student's rows of these samples (b itself without a student view) */
        if (st_student_slots_get(r->ss, head, &b, &sb, &r->err))
            return S_FAIL;
        out = s_train_batch(r, head, epoch_steps, &sb, logits);
        if (out == S_OK)
            out = s_submit_next(r, head, epoch_steps, &submitted, &inflight);
        head = (head + 1) % o->pool.inflight;
        char extra[128];
        const st_epoch_sums *sm = &r->sums;
        snprintf(extra, sizeof extra, "loss %.4f soft %.4f hard %.4f",
                 sm->loss / (double)sm->samples, sm->soft / (double)sm->samples,
                 sm->labeled ? sm->hard / (double)sm->labeled : 0.0);
        ed_progress_update(&prog, sm->steps, extra);
    }
    return out;
}

/* The epoch's log line. */
/* After an epoch: test evaluation, the model file, the log and metrics lines, the checkpoint of
 * the next epoch's start. */
static int s_epoch_end(s_run *r, int epoch, double secs, long samples_before)
{
    const st_distill_opts *o = r->o;
    st_pool_stats ps;
    s_stats_take(r->pool, &ps);
    ed_eval_result res = {0};
    const bool have_test = o->test_images && o->test_labels;
    if (have_test) {
        ed_dataset_spec ts = {o->test_images, o->test_labels, 0, -1};
        if (ed_eval_net_view(r->t->model, r->t->input_scale, r->t->input_offset, &ts,
                             &o->student.view, 256, &res, &r->err))
            return r->err.code;
        r->test_acc = ed_eval_accuracy(&res);
    }
    const st_epoch_sums *sm = &r->sums;
    const double rate = secs > 0 ? (double)(sm->samples - samples_before) / secs : 0.0;
    const st_epoch_record rec = {.epoch = epoch,
                                 .epochs = r->plan.epochs,
                                 .step = r->step,
                                 .samples = sm->samples,
                                 .labeled = sm->labeled,
                                 .correct = sm->correct,
                                 .steps = sm->steps,
                                 .degraded = sm->degraded,
                                 .loss_sum = sm->loss,
                                 .soft_sum = sm->soft,
                                 .hard_sum = sm->hard,
                                 .seconds = secs,
                                 .samples_per_s = rate,
                                 .pool = &ps,
                                 .members = r->pool,
                                 .missing = r->missing,
                                 .K = r->K,
                                 .have_test = have_test,
                                 .test_loss = res.loss,
                                 .test_accuracy = r->test_acc,
                                 .resumed_at_step =
                                     epoch == r->resume_epoch && r->resuming ? r->first_step : -1};
    int rc = st_distill_save_student(o, r->t, r->pool, r->tg, r->step, r->test_acc, &r->err);
    if (!rc)
        st_metrics_epoch(r->om, epoch, have_test ? r->test_acc : -1.0);
    if (!rc && !o->quiet)
        st_distill_metrics_log(&rec);
    if (r->tg)
        st_targets_epoch_log(r->tg, epoch);
    if (!rc && r->metrics)
        rc = st_distill_metrics_write(r->metrics, o->metrics, &rec, &r->err);
    ed_eval_result_free(&res);
    if (rc)
        return rc;
    if (sm->degraded)
        ed_log_warn("epoch %d: %ld of %ld batches averaged over fewer than %d members", epoch,
                    sm->degraded, sm->steps, r->K);
    if (o->checkpoint) {
        /* The next epoch starts from the RNG states the last batch left (reset keeps them). */
        st_position next = r->pos;
        next.epoch = epoch + 1;
        next.test_acc = r->test_acc;
        st_mixer_state_get(r->mix, &next.epoch_start);
        st_epoch_sums empty = {.missing = r->missing};
        memset(r->missing, 0, sizeof(long) * (size_t)r->K);
        if (s_checkpoint(r, &next, &empty, &r->err))
            return r->err.code;
        ed_log_debug("checkpoint at the end of epoch %d -> %s", epoch, o->checkpoint);
    }
    return 0;
}

/* Every epoch from the current position to the end. */
static s_outcome s_epochs(s_run *r)
{
    for (int epoch = r->pos.epoch; epoch <= r->plan.epochs; epoch++) {
        if (s_epoch_begin(r, epoch))
            return S_FAIL;
        const long samples_before = r->sums.samples;
        st_pool_stats discard;
        s_stats_take(r->pool, &discard);
        const double t_epoch = ed_now();
        s_outcome out = s_epoch_steps(r, epoch, ed_train_plan_epoch_steps(&r->plan, epoch));
        if (out != S_OK)
            return out;
        if (s_epoch_end(r, epoch, ed_now() - t_epoch, samples_before))
            return S_FAIL;
        if (*st_stop_flag() && epoch < r->plan.epochs)
            return S_STOPPED;
    }
    return S_OK;
}

/* The teachers failed between steps: saves the progress so a resume loses nothing. */
static void s_on_teachers_failed(s_run *r)
{
    if (!r->o->checkpoint || r->step == 0)
        return;
    ed_err cerr = {0};
    r->pos.step = r->step;
    if (s_checkpoint(r, &r->pos, &r->sums, &cerr))
        ed_log_error("cannot write the checkpoint: %s", cerr.msg);
    else
        ed_log_info("checkpoint at step %ld written to %s: continue with --resume once the "
                    "teachers are back",
                    r->step, r->o->checkpoint);
}

/* Says how a run stopped by a signal ended, and what is on disk (a signal before the first step,
 * e.g. while waiting for dead teachers, leaves no checkpoint). Returns the exit status. */
static int s_report_stop(const s_run *r)
{
    const char *sig = *st_stop_flag() == SIGINT ? "SIGINT" : "SIGTERM";
    const char *ck = r->o->checkpoint;
    const long total = r->plan.total_steps;
    if (!ck)
        ed_log_error("stopped by %s after step %ld of %ld; no --checkpoint given: the progress is "
                     "lost",
                     sig, r->step, total);
    else if (r->ck_written)
        ed_log_error("stopped by %s after step %ld of %ld; checkpoint written to %s: continue "
                     "with the same command plus --resume",
                     sig, r->step, total, ck);
    else if (r->step == 0)
        ed_log_error("stopped by %s before the first step; no checkpoint written (%s does not "
                     "exist): run the same command again",
                     sig, ck);
    else
        ed_log_error("stopped by %s after step %ld of %ld; the checkpoint could not be written to "
                     "%s (see the error above)",
                     sig, r->step, total, ck);
    return 128 + (int)*st_stop_flag();
}

/* The run completed: the final model file when a finished run was resumed, the summary line. */
static int s_finish(s_run *r)
{
    const st_distill_opts *o = r->o;
    if (r->step == r->first_step && r->first_step > 0 &&
        st_distill_save_student(o, r->t, r->pool, r->tg, r->step, r->test_acc, &r->err))
        return r->err.code; /* resumed a finished run: make sure the model file is the final one */
    char fp[32];
    ed_fingerprint_format(ed_fingerprint(r->t->model->params, r->t->model->n_params), fp,
                          sizeof fp);
    if (r->test_acc >= 0)
        printf("%s: student %s, test accuracy %.4f, %ld steps in %.1fs, %s\n", o->out, o->member,
               r->test_acc, r->step, ed_now() - r->t_start, fp);
    else
        printf("%s: student %s, %ld steps in %.1fs, %s\n", o->out, o->member, r->step,
               ed_now() - r->t_start, fp);
    return 0;
}

static void s_run_free(s_run *r)
{
    free(r->config);
    ed_checkpoint_destroy(&r->ck);
    if (r->metrics && r->metrics != stdout)
        fclose(r->metrics);
    if (r->dump)
        fclose(r->dump);
    free(r->member_logits);
    free(r->missing);
    ed_trainer_destroy(&r->t);
    st_student_slots_destroy(&r->ss);
    st_augment_destroy(&r->aug);
    st_targets_close(&r->tg);
    st_pool_close(&r->pool);
    st_metrics_destroy(&r->om);
    st_mixer_destroy(&r->mix);
}

/* --metrics-linger: after a finished run, keep serving the final metrics for a last scrape. */
static void s_linger(const s_run *r)
{
    float s = r->o->metrics_linger;
    if (!r->om || !(s > 0))
        return;
    ed_log_info("run done: serving the final metrics for %.1fs (--metrics-linger)", (double)s);
    struct timespec ts = {(time_t)s, (long)((s - (float)(time_t)s) * 1e9f)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int s_distill(const st_distill_opts *o)
{
    s_run r = {.o = o,
               .pos = {.epoch = 1, .test_acc = -1.0, .metrics_bytes = -1, .dump_bytes = -1}};
    int rc = s_open_resume_checkpoint(&r);
    if (rc) {
        s_run_free(&r);
        return rc;
    }
    ed_blas_set_threads(o->train.blas_threads);
    s_outcome out = s_open(&r) || s_resume_and_outputs(&r) ? S_FAIL : S_OK;
    st_stop_guard stop_guard;
    bool signals = false;
    if (out == S_OK) {
        char aug[64];
        ed_log_info("distilling %d member%s into %s (%zu parameters): %ld labeled + %ld unlabeled "
                    "samples per epoch, %ld steps (%d epochs) of batch %d, T %g, alpha %g, %s/%s, "
                    "%d batches in flight, augmentation %s",
                    r.K, r.K == 1 ? "" : "s", o->train.arch, r.t->model->n_params,
                    st_mixer_labeled_count(r.mix), st_mixer_unlabeled_count(r.mix),
                    r.plan.total_steps, r.plan.epochs, o->train.batch_size, (double)o->temperature,
                    (double)o->alpha, o->combine, o->soft_loss, o->pool.inflight,
                    st_augment_describe(r.aug, aug, sizeof aug));
        r.t_start = ed_now();
        r.first_step = r.step = r.pos.step;
        r.test_acc = r.pos.test_acc;
        st_stop_install(&stop_guard);
        signals = true;
        out = s_epochs(&r);
        if (out == S_OK && s_finish(&r))
            out = S_FAIL;
        if (out == S_TEACHERS) {
            s_on_teachers_failed(&r);
            /* a signal while the pool waited for dead teachers is a stop, not a failure */
            out = r.err.code == ED_ESTOPPED && *st_stop_flag() ? S_STOPPED : S_FAIL;
        }
    }
    rc = out == S_OK ? 0 : out == S_STOPPED ? s_report_stop(&r) : 1;
    if (out == S_FAIL)
        ed_log_error("%s", r.err.msg[0] ? r.err.msg : ed_strerror(r.err.code));
    if (signals)
        st_stop_restore(&stop_guard);
    if (rc == 0)
        s_linger(&r);
    s_run_free(&r);
    return rc;
}

int st_distill_main(int argc, char **argv)
{
    st_distill_opts o;
    int rc;
    if (!st_distill_opts_parse(&o, argc, argv, &rc))
        return rc;
    return s_distill(&o);
}
