/*
 * st_label: `student_trainer label`: streams input files through the teachers, in file order, and
 * writes the members' raw logits into a target store (ed_target_store, docs/TARGET_STORE.md) that
 * `distill --targets` trains from later, with any T, alpha, combination and loss.
 *
 * The store's samples are the inputs concatenated: the --labeled-images range first (when given),
 * then every --unlabeled file (a list, directories and globs, in a stable order; with one file, its
 * --unlabeled-start/--unlabeled-end range). `--shard I/N` labels the I-th contiguous range of N,
 * so N jobs (a Slurm array, a Kubernetes indexed Job) write the N shards of one store in parallel.
 * Memory: the pool's in-flight batches and the writer's one-sample buffer; one input open at a
 * time.
 * `--resume` continues a shard after a crash from its last durable progress record. Every member
 * must answer every batch (a store with holes would train on garbage): a batch the pool releases
 * without a member stops the run; --resume continues it.
 */
#include "st_label.h"

#include "st_commands.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ed_clock.h"
#include "ed_blas.h"
#include "ed_cli.h"
#include "ed_http.h"
#include "ed_log.h"
#include "ed_paths.h"
#include "ed_proc.h"
#include "ed_progress.h"
#include "ed_target_store.h"
#include "st_pool.h"
#include "st_pool_flags.h"
#include "st_stop.h"

typedef struct {
    st_pool_flags pool; /* --teachers, in flight, deadlines, quorum, CURVE */
    const char *store, *shard, *dtype, *metrics;
    const char *labeled_images, *unlabeled;
    long labeled_start, labeled_end, unlabeled_start, unlabeled_end;
    int classes, top_k, batch_size, blas_threads;
    bool resume, quiet;
    const char *metrics_listen; /* --metrics-listen */
} st_label_opts;

int st_label_inputs(const ed_dataset_spec *specs, int n, ed_ts_layout *lay, int *dim,
                    ed_dtype *dtype, ed_err *err)
{
    if (n < 1)
        return ed_err_set(err, ED_EINVAL,
                          "nothing to label: give --unlabeled and/or --labeled-images");
    lay->inputs = calloc((size_t)n, sizeof *lay->inputs);
    if (!lay->inputs)
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    int64_t offset = 0;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        ed_dataset_spec spec = {specs[i].images, NULL, specs[i].start, specs[i].end};
        ed_stream *s = ed_stream_open(&spec, err);
        if (!s)
            return err->code;
        ed_ts_input *in = &lay->inputs[i];
        lay->n_inputs = i + 1;
        in->path = strdup(spec.images);
        in->start = spec.start;
        in->end = spec.start + ed_stream_count(s);
        in->offset = offset;
        offset += ed_stream_count(s);
        if (i == 0) {
            *dim = ed_stream_dim(s);
            *dtype = ed_stream_dtype(s);
        }
        if (ed_stream_count(s) == 0) {
            /* A store never keeps an empty input: its reader would refuse the range. */
            rc = ed_err_set(err, ED_EINVAL,
                            "%s: the range [%ld, %ld) holds no sample, so there is nothing to "
                            "label from it: leave the file out (for the unlabeled stream alone, "
                            "no --labeled-images)",
                            spec.images, spec.start, spec.start);
        } else if (i > 0 && (ed_stream_dim(s) != *dim || ed_stream_dtype(s) != *dtype)) {
            rc = ed_err_set(err, ED_ESHAPE, "%s has %d %s values per sample, %s has %d %s",
                            spec.images, ed_stream_dim(s), ed_dtype_name(ed_stream_dtype(s)),
                            lay->inputs[0].path, *dim, ed_dtype_name(*dtype));
        }
        ed_stream_destroy(&s);
        if (!rc && !in->path)
            rc = ed_err_set(err, ED_ENOMEM, "out of memory");
        if (!rc)
            rc = ed_ts_file_identity(spec.images, in, err);
    }
    lay->total = offset;
    return rc;
}

int st_label_dataset_inputs(const ed_dataset_spec *spec, long count, ed_dataset_spec **out, int *n,
                            char ***files, int *nf, ed_err *err)
{
    struct stat sb;
    *files = NULL;
    *nf = 0;
    const bool exists = stat(spec->images, &sb) == 0;
    if ((exists && S_ISDIR(sb.st_mode)) || (!exists && strpbrk(spec->images, ",*?["))) {
        int rc = ed_paths_expand(spec->images, files, nf, err);
        if (rc)
            return rc;
    }
    const int k = *nf > 1 ? *nf : 1;
    *out = calloc((size_t)k, sizeof **out);
    if (!*out)
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    *n = k;
    if (*nf <= 1) {
        (*out)[0] = (ed_dataset_spec){*nf == 1 ? (*files)[0] : spec->images, NULL, spec->start,
                                      spec->start + count};
        return 0;
    }
    long total = 0;
    for (int i = 0; i < k; i++) {
        ed_dataset_spec one = {(*files)[i], NULL, 0, -1};
        ed_stream *st = ed_stream_open(&one, err);
        if (!st)
            return err->code;
        one.end = ed_stream_count(st);
        total += one.end;
        ed_stream_destroy(&st);
        (*out)[i] = one;
    }
    if (spec->start != 0 || count != total)
        return ed_err_set(err, ED_EINVAL,
                          "%s: a store keeps whole files of a sharded input: use all "
                          "%ld samples of its %d files (not [%ld, %ld))",
                          spec->images, total, k, spec->start, spec->start + count);
    return 0;
}

/* label's inputs: --labeled-images (its range) first, then the --unlabeled list. */
static int s_inputs(const st_label_opts *o, ed_ts_layout *lay, int *dim, ed_dtype *dtype,
                    ed_err *err)
{
    char **files = NULL;
    int nf = 0, rc = 0;
    if (o->unlabeled && (rc = ed_paths_expand(o->unlabeled, &files, &nf, err)))
        return ed_err_wrap(err, "--unlabeled");
    if (nf > 1 && (o->unlabeled_start != 0 || o->unlabeled_end >= 0)) {
        ed_paths_free(&files, nf);
        return ed_err_set(err, ED_EINVAL,
                          "--unlabeled-start/--unlabeled-end need a single "
                          "--unlabeled file (%d given)",
                          nf);
    }
    ed_dataset_spec *specs = calloc((size_t)nf + 1, sizeof *specs);
    int n = 0;
    if (!specs)
        rc = ed_err_set(err, ED_ENOMEM, "out of memory");
    else if (o->labeled_images)
        specs[n++] = (ed_dataset_spec){o->labeled_images, NULL, o->labeled_start, o->labeled_end};
    for (int i = 0; specs && i < nf; i++)
        specs[n++] = (ed_dataset_spec){files[i], NULL, nf == 1 ? o->unlabeled_start : 0,
                                       nf == 1 ? o->unlabeled_end : -1};
    if (!rc)
        rc = st_label_inputs(specs, n, lay, dim, dtype, err);
    free(specs);
    ed_paths_free(&files, nf);
    return rc;
}

void st_label_members(const st_pool *pool, ed_ts_layout *lay)
{
    lay->n_members = st_pool_member_count(pool);
    for (int k = 0; k < lay->n_members && k < ED_TS_MAX_MEMBERS; k++) {
        const char *d = st_pool_member_describe(pool, k), *f = strstr(d, "fnv1a64:");
        snprintf(lay->member[k].name, sizeof lay->member[k].name, "%s",
                 st_pool_member_name(pool, k));
        snprintf(lay->member[k].fingerprint, sizeof lay->member[k].fingerprint, "%.24s", f ? f : d);
    }
}

/* The batch reader: the store's samples [next, end) in order, one input open at a time. */
typedef struct {
    const ed_ts_layout *lay;
    int input; /* current input, -1 before the first */
    ed_stream *s;
    int64_t next, end; /* store numbers */
    unsigned char *x;
    int32_t *y;
    int64_t *idx;
} s_reader;

static int s_read_batch(s_reader *r, int max, ed_batch *b, ed_err *err)
{
    int n = 0;
    size_t sb = 0;
    while (n < max && r->next < r->end) {
        const ed_ts_input *in = r->input >= 0 ? &r->lay->inputs[r->input] : NULL;
        if (!in || r->next >= in->offset + (in->end - in->start)) {
            ed_stream_destroy(&r->s);
            while (++r->input < r->lay->n_inputs) {
                in = &r->lay->inputs[r->input];
                if (r->next < in->offset + (in->end - in->start))
                    break;
            }
            ed_dataset_spec spec = {in->path, NULL, in->start + (r->next - in->offset), in->end};
            if (!(r->s = ed_stream_open(&spec, err)))
                return err->code;
        }
        sb = (size_t)ed_stream_dim(r->s) * ed_dtype_size(ed_stream_dtype(r->s));
        int64_t left_in = in->offset + (in->end - in->start) - r->next;
        long want = (long)(max - n < left_in ? max - n : left_in);
        if (want > r->end - r->next)
            want = (long)(r->end - r->next);
        long got = ed_stream_read(r->s, r->x + (size_t)n * sb, r->y + n, want, err);
        if (got < 0)
            return (int)got;
        if (got == 0)
            return ed_err_set(err, ED_ETRUNC, "%s ended before its declared count", in->path);
        for (long i = 0; i < got; i++)
            r->idx[n + i] = r->next + i;
        n += (int)got;
        r->next += got;
    }
    *b = (ed_batch){.n = n,
                    .dim = r->s ? ed_stream_dim(r->s) : 0,
                    .dtype = r->s ? ed_stream_dtype(r->s) : ED_DTYPE_U8,
                    .x = r->x,
                    .y = r->y,
                    .idx = r->idx};
    return n;
}

/* Fills the pipeline, then: wait for the oldest batch, append it, refill its slot. */
static int s_pipeline(const st_label_run *o, st_pool *pool, ed_ts_writer *w, s_reader *rd,
                      ed_err *err)
{
    const int K = st_pool_member_count(pool);
    int inflight = 0, head = 0, tail = 0;
    ed_progress prog;
    const int64_t begin = ed_ts_writer_next(w), total = ed_ts_writer_end(w) - begin;
    ed_progress_start(&prog, "label", (long)total, o->quiet ? 0 : 5.0);
    for (;;) {
        while (inflight < o->inflight && rd->next < rd->end && !(o->stop && *o->stop)) {
            ed_batch b;
            int n = s_read_batch(rd, o->batch_size, &b, err);
            if (n < 0)
                return n;
            int rc = st_pool_submit(pool, tail, &b, err);
            if (rc)
                return rc;
            tail = (tail + 1) % o->inflight;
            inflight++;
        }
        if (inflight == 0)
            break;
        ed_batch b;
        const float *const *logits;
        int rc = st_pool_wait(pool, head, &b, &logits, err);
        if (rc)
            return rc;
        for (int k = 0; k < K; k++)
            if (!logits[k]) {
                st_metrics_label_missing(o->om);
                return ed_err_set(err, ED_EPEER,
                                  "member %s did not answer a batch: a store needs "
                                  "every member's logits (continue with --resume once it is back)",
                                  st_pool_member_describe(pool, k));
            }
        if (st_pool_member_count(pool) != K)
            return ed_err_set(err, ED_EPEER,
                              "a new member joined during labeling: a store's "
                              "members are fixed (label again with the new ensemble)");
        if ((rc = ed_ts_writer_append(w, b.n, logits, err)))
            return rc;
        st_metrics_label_written(o->om, b.n, (size_t)b.n * ed_ts_writer_sample_bytes(w),
                                 ed_ts_writer_next(w) - ed_ts_writer_begin(w));
        head = (head + 1) % o->inflight;
        inflight--;
        ed_progress_update(&prog, (long)(ed_ts_writer_next(w) - begin), NULL);
    }
    return o->stop && *o->stop ? ED_ESTOPPED : 0;
}

/* One JSON line of throughput for `make bench` (label_vs_forward). */
static int s_write_metrics(const st_label_run *run, const ed_ts_layout *lay, int64_t samples,
                           double secs, ed_err *err)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "shard", run->shard);
    cJSON_AddNumberToObject(o, "shards", run->n_shards);
    cJSON_AddNumberToObject(o, "members", lay->n_members);
    cJSON_AddNumberToObject(o, "samples", (double)samples);
    cJSON_AddNumberToObject(o, "seconds", secs);
    cJSON_AddNumberToObject(o, "samples_per_s", secs > 0 ? (double)samples / secs : 0.0);
    cJSON_AddNumberToObject(o, "max_rss_mib", ed_proc_peak_rss_bytes() / (1024.0 * 1024.0));
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    FILE *f = text ? fopen(run->metrics, "a") : NULL;
    int rc = f && fprintf(f, "%s\n", text) > 0 ? 0
                                               : ed_err_set(err, ED_EIO,
                                                            "%s: cannot write "
                                                            "the metrics",
                                                            run->metrics);
    if (f && fclose(f) != 0 && !rc)
        rc = ed_err_set(err, ED_EIO, "%s: cannot write the metrics", run->metrics);
    free(text);
    return rc;
}

int st_label_store(st_pool *pool, const ed_ts_layout *lay, const st_label_run *run, ed_err *err)
{
    s_reader rd = {.input = -1, .lay = lay};
    ed_ts_writer *w =
        ed_ts_writer_open(run->store, lay, run->shard, run->n_shards, run->resume, err);
    if (!w)
        return err->code;
    int rc = 0;
    rd.next = ed_ts_writer_next(w);
    rd.end = ed_ts_writer_end(w);
    st_metrics_label_shard(run->om, run->store, run->shard, run->n_shards,
                           rd.end - ed_ts_writer_begin(w), rd.next - ed_ts_writer_begin(w));
    rd.x = malloc((size_t)run->batch_size * (size_t)run->sample_bytes);
    rd.y = malloc(sizeof(int32_t) * (size_t)run->batch_size);
    rd.idx = malloc(sizeof(int64_t) * (size_t)run->batch_size);
    if (!rd.x || !rd.y || !rd.idx)
        rc = ed_err_set(err, ED_ENOMEM, "out of memory");
    if (!rc && rd.next == rd.end)
        ed_log_info("%s: shard %d of %d is complete already", run->store, run->shard,
                    run->n_shards);
    else if (!rc)
        ed_log_info("labeling samples [%lld, %lld) of %lld (shard %d of %d) with %d member%s into "
                    "%s (%s%s)",
                    (long long)rd.next, (long long)rd.end, (long long)lay->total, run->shard,
                    run->n_shards, lay->n_members, lay->n_members == 1 ? "" : "s", run->store,
                    ed_ts_dtype_name(lay->dtype), lay->top_k ? ", top-k" : "");
    const double t0 = ed_now();
    const int64_t first = rd.next;
    if (!rc)
        rc = s_pipeline(run, pool, w, &rd, err);
    if (!rc)
        rc = ed_ts_writer_commit(w, err);
    if (rc == ED_ESTOPPED) { /* keep every sample labeled so far: --resume continues after it */
        ed_err sync_err = {0};
        if (ed_ts_writer_sync(w, &sync_err))
            ed_log_warn("%s", sync_err.msg);
        ed_err_set(err, ED_ESTOPPED, "stopped after sample %lld", (long long)ed_ts_writer_next(w));
    }
    if (!rc && run->metrics)
        rc = s_write_metrics(run, lay, rd.end - first, ed_now() - t0, err);
    if (!rc) {
        double secs = ed_now() - t0;
        printf("%s: shard %d of %d complete: samples [%lld, %lld), %d members, %s%s, %lld labeled "
               "now in %.1fs (%.0f samples/s)\n",
               run->store, run->shard, run->n_shards, (long long)ed_ts_writer_begin(w),
               (long long)rd.end, lay->n_members, ed_ts_dtype_name(lay->dtype),
               lay->top_k ? " top-k" : "", (long long)(rd.end - first), secs,
               secs > 0 ? (double)(rd.end - first) / secs : 0.0);
    }
    ed_stream_destroy(&rd.s);
    free(rd.x);
    free(rd.y);
    free(rd.idx);
    ed_ts_writer_destroy(&w);
    return rc;
}

static int s_label(const st_label_opts *o)
{
    ed_err err = {0};
    ed_ts_layout lay = {.classes = o->classes, .top_k = o->top_k};
    st_pool *pool = NULL;
    int shard = 0, n_shards = 1, dim = 0, rc = 1;
    ed_dtype dtype = ED_DTYPE_U8;
    int dt = ed_ts_dtype_parse(o->dtype);
    if (dt < 0 || o->classes < 1 || o->classes > ED_TS_MAX_CLASSES || o->top_k < 0 ||
        o->top_k > o->classes || o->batch_size < 1) {
        ed_cli_reportf("student_trainer label",
                       "need --dtype float16|float32, 1 <= --classes <= %d, "
                       "0 <= --top-k <= classes, --batch-size >= 1",
                       ED_TS_MAX_CLASSES);
        return 2;
    }
    lay.dtype = (ed_ts_dtype)dt;
    if (o->shard && ed_ts_shard_parse(o->shard, &shard, &n_shards, &err)) {
        ed_cli_report("student_trainer label", &err);
        return 2;
    }
    ed_blas_set_threads(o->blas_threads);
    st_metrics *om = NULL; /* first: /healthz answers while the inputs are read */
    if (o->metrics_listen && *o->metrics_listen) {
        if (!(om = st_metrics_new(o->metrics_listen, ST_METRICS_LABEL, &err)))
            goto fail;
        ed_log_info("metrics on http://%s/metrics (/healthz, /readyz)", st_metrics_address(om));
    }
    if (s_inputs(o, &lay, &dim, &dtype, &err))
        goto fail;
    st_pool_config pc = {
        .input_dim = dim, .classes = o->classes, .max_batch = o->batch_size, .dtype = dtype};
    st_pool_flags_apply(&o->pool, &pc);
    pc.observe = om ? st_metrics_observe : NULL;
    pc.observe_arg = om;
    if (!(pool = st_pool_open(o->pool.teachers, &pc, &err)))
        goto fail;
    st_metrics_attach(om, pool, o->pool.quorum);
    st_pool_set_stop_flag(pool, st_stop_flag());
    st_label_members(pool, &lay);
    const st_label_run run = {.store = o->store,
                              .shard = shard,
                              .n_shards = n_shards,
                              .resume = o->resume,
                              .batch_size = o->batch_size,
                              .inflight = o->pool.inflight,
                              .quiet = o->quiet,
                              .sample_bytes = (size_t)dim * ed_dtype_size(dtype),
                              .stop = st_stop_flag(),
                              .metrics = o->metrics,
                              .om = om};
    st_stop_guard stop_guard;
    st_stop_install(&stop_guard);
    int lrc = st_label_store(pool, &lay, &run, &err);
    st_stop_restore(&stop_guard);
    if (lrc && *st_stop_flag()) {
        ed_cli_reportf("student_trainer label",
                       "stopped by signal %d (%s): continue with the same command plus --resume",
                       (int)*st_stop_flag(), err.msg);
        rc = 128 + (int)*st_stop_flag();
        goto done;
    }
    if (lrc)
        goto fail;
    rc = 0;
    goto done;
fail:
    ed_cli_report("student_trainer label", &err);
done:
    st_pool_close(&pool);
    st_metrics_destroy(&om);
    ed_ts_layout_free(&lay);
    return rc;
}

int st_label_main(int argc, char **argv)
{
    st_label_opts o = {
        .pool = st_pool_flags_defaults(),
        .dtype = "float16",
        .labeled_start = 0,
        .labeled_end = -1,
        .unlabeled_start = 0,
        .unlabeled_end = -1,
        .classes = 10,
        .top_k = 0,
        .batch_size = 256,
    };
    ed_cli_opt opts[24 + ST_POOL_FLAGS_OPTS] = {
        {"store", ED_CLI_STR, &o.store, "DIR",
         "the target store (a directory of shards, docs/TARGET_STORE.md)", "EDISTILL_STORE", true},
        {"shard", ED_CLI_STR, &o.shard, "I/N",
         "label the I-th of N contiguous ranges (one job of N; default 0/1)", "EDISTILL_SHARD",
         false},
        {"labeled-images", ED_CLI_STR, &o.labeled_images, "FILE",
         "label this file's range first (the labeled set a distill run will use)", NULL, false},
        {"labeled-start", ED_CLI_LONG, &o.labeled_start, "N", "first sample of --labeled-images",
         NULL, false},
        {"labeled-end", ED_CLI_LONG, &o.labeled_end, "N", "one past its last sample (-1: all)",
         NULL, false},
        {"unlabeled", ED_CLI_STR, &o.unlabeled, "LIST",
         "input files: comma-separated files, directories or globs, in this order (IDX, .npy, CSV; "
         ".gz ok)",
         NULL, false},
        {"unlabeled-start", ED_CLI_LONG, &o.unlabeled_start, "N",
         "first sample (a single --unlabeled file)", NULL, false},
        {"unlabeled-end", ED_CLI_LONG, &o.unlabeled_end, "N", "one past the last sample (-1: all)",
         NULL, false},
        {"classes", ED_CLI_INT, &o.classes, "C", "classes the members output", NULL, false},
        {"dtype", ED_CLI_STR, &o.dtype, "TYPE", "float16 (default) or float32 (bit-exact logits)",
         NULL, false},
        {"top-k", ED_CLI_INT, &o.top_k, "K",
         "keep only the K largest logits per member and the mean of the rest (0: all)", NULL,
         false},
        {"batch-size", ED_CLI_INT, &o.batch_size, "N", "samples per teacher request", NULL, false},
        {"blas-threads", ED_CLI_INT, &o.blas_threads, "N",
         "OpenBLAS threads of in-process teachers (0: default)", NULL, false},
        {"resume", ED_CLI_FLAG, &o.resume, NULL,
         "continue an interrupted shard (or accept a complete one)", NULL, false},
        {"metrics", ED_CLI_STR, &o.metrics, "FILE",
         "append one JSON line (samples, seconds, samples/s, peak RSS) when done", NULL, false},
        {"quiet", ED_CLI_FLAG, &o.quiet, NULL, "no progress output", NULL, false},
        {"metrics-listen", ED_CLI_STR, &o.metrics_listen, "HOST:PORT", ED_HTTP_LISTEN_HELP,
         ED_HTTP_LISTEN_ENV, false},
    };
    int n_opts = 0;
    while (opts[n_opts].name)
        n_opts++;
    n_opts += st_pool_flags_options(&o.pool, ST_POOL_FLAGS_ALL, true,
                                    "members that must answer (a batch without all of them stops "
                                    "the run)",
                                    opts + n_opts);
    const ed_cli_spec spec = {
        "student_trainer label --teachers LIST --store DIR [--shard I/N] [options]",
        "Streams input files through the ensemble once and stores every member's raw logits\n"
        "(docs/TARGET_STORE.md); `student_trainer distill --targets DIR` trains from them.\n"
        "N jobs with --shard 0/N .. N-1/N write one store together; SIGINT/SIGTERM stop after\n"
        "the batch in hand; --resume continues.",
        opts, n_opts,
        "example:\n  student_trainer label --teachers m1.safetensors,m2.safetensors \\\n"
        "      --unlabeled /data/shards/ --store store/ --shard 3/8"};
    int rc;
    if (!ed_cli_parse_command(&spec, "student_trainer label", argc, argv, &rc))
        return rc;
    ed_err err = {0};
    if (st_pool_flags_check(&o.pool, &err) < 0) {
        ed_cli_report("student_trainer label", &err);
        return 2;
    }
    return s_label(&o);
}
