/*
 * ed_bench: in-process measurements behind `make bench` (bench/run.sh drives the rest).
 *
 *   ed_bench forward  : a member's forward pass (ed_mlp_forward) against cblas_sgemm alone on the
 *                       same shapes, in GFLOP/s, interleaved repeat by repeat in one process.
 *   ed_bench step     : one student training step (ed_trainer_distill_step: targets, scaling,
 *                       forward, soft + hard loss, backward, Adam) against the same step's sgemm
 * calls alone. ed_bench conv     : a conv layer's forward at batch 128 (ed_conv_forward: im2col,
 * sgemm, bias scatter) against the sgemm calls of its lowering alone, in GFLOP/s. ed_bench request
 * : round trip of a LogitRequest to a running `teacher_worker serve` (DEALER socket, edistill.proto
 * through ed_wire) against the in-process forward of the same model (ed_member_forward: scaling +
 * forward), alternating request by request, with p50 / p99 per batch size; the logits must agree
 * exactly. ed_bench pair     : logits/s of two workers serving the same weights (an edistill model
 * file and its ONNX export), requests alternating; same fingerprint and logits required.
 * ed_bench limit    : the BLAS limit of on-the-fly distillation: the sgemm calls of one step of the
 *                     reference workload alone (K member forwards + the student's forward and
 *                     backward, same shapes and transposes), in GFLOP/s and samples/s; bench/run.sh
 *                     divides the measured distillation rate by it (distill_vs_limit).
 *
 * Each prints one JSON object on stdout. Times are medians over repeats, so one noisy repeat on a
 * shared machine moves nothing. Not a test: it never fails on slow numbers, only on broken ones.
 */
#include <cblas.h>
#include <stdbool.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ed_blas.h"
#include "ed_cli.h"
#include "ed_clock.h"
#include "ed_data.h"
#include "ed_loss.h"
#include "ed_member.h"
#include "ed_mem.h"
#include "ed_mlp.h"
#include "ed_layer_ops.h"
#include "ed_net.h"
#include "ed_par.h"
#include "ed_rng.h"
#include "ed_trainer.h"
#include "ed_wire.h"

#define S_MAX_SIZES 8

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile q in [0, 1] of n values (sorts v in place; nearest rank). */
static double s_quantile(double *v, int n, double q)
{
    if (n < 1)
        return 0.0;
    qsort(v, (size_t)n, sizeof *v, s_cmp_double);
    int i = (int)(q * (double)(n - 1) + 0.5);
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/* The baselines' buffers come from the same allocator as the models' (huge pages from 2 MiB on),
 * so that a ratio compares the code, not the page size. */
static float *s_alloc_floats(size_t n)
{
    return ed_mem_alloc((n ? n : 1) * sizeof(float));
}

static void s_fill_uniform(float *x, size_t n, ed_rng *r)
{
    for (size_t i = 0; i < n; i++)
        x[i] = ed_rng_uniform(r);
}

static ed_mlp *s_random_model(const char *arch_text, ed_rng *r, ed_err *err)
{
    ed_arch a;
    if (ed_arch_parse(arch_text, &a, err) < 0)
        return NULL;
    ed_mlp *m = ed_mlp_new(&a);
    if (!m) {
        ed_err_set(err, ED_ENOMEM, "cannot allocate a %s model", arch_text);
        return NULL;
    }
    ed_mlp_init(m, r);
    return m;
}

/* ---------------------------------------------------------------------------------------------- */
/* forward                                                                                        */

typedef struct {
    const ed_arch *a;
    int batch;
    const float *const *W;
    float *const *act; /* act[l]: (batch, widths[l]) */
} s_fwd_shapes;

/* The sgemm calls of a forward pass alone (same shapes, transposes and buffers). */
static void s_sgemm_forward(const s_fwd_shapes *s)
{
    for (int l = 0; l < s->a->n_layers; l++) {
        const int in = s->a->widths[l], out = s->a->widths[l + 1];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->batch, out, in, 1.0f, s->act[l], in,
                    s->W[l], in, 0.0f, s->act[l + 1], out);
    }
}

static int s_cmd_forward(int argc, char **argv)
{
    const char *arch = "784,1200,1200,10";
    int batch = 256, repeats = 9, iters = 20, threads = 0;
    const ed_cli_opt opts[] = {
        {"arch", ED_CLI_STR, &arch, "W0,W1,..", "member architecture", NULL, false},
        {"batch", ED_CLI_INT, &batch, "N", "rows per forward pass", NULL, false},
        {"repeats", ED_CLI_INT, &repeats, "N", "repeats (median reported)", NULL, false},
        {"iters", ED_CLI_INT, &iters, "N", "passes timed per repeat", NULL, false},
        {"blas-threads", ED_CLI_INT, &threads, "N", "OpenBLAS threads (0: default)", NULL, false},
    };
    const ed_cli_spec spec = {"ed_bench forward [options]",
                              "Member forward pass vs cblas_sgemm alone on the same shapes.", opts,
                              (int)(sizeof opts / sizeof opts[0]), NULL};
    ed_err err = {0};
    int rc = ed_cli_parse(&spec, argc, argv, &err);
    if (rc)
        return rc > 0 ? 0 : (fprintf(stderr, "ed_bench forward: %s\n", err.msg), 2);
    if (batch < 1 || repeats < 1 || iters < 1)
        return fprintf(stderr, "ed_bench forward: batch, repeats and iters must be >= 1\n"), 2;
    ed_blas_set_threads(threads);
    ed_rng r;
    ed_rng_seed(&r, 7);
    ed_mlp *m = s_random_model(arch, &r, &err);
    if (!m)
        return fprintf(stderr, "ed_bench forward: %s\n", err.msg), 1;
    const ed_arch *a = &m->arch;
    ed_mlp_ws *ws = ed_mlp_ws_new(a, batch, false);
    float *x = s_alloc_floats((size_t)batch * (size_t)ed_arch_in(a));
    /* separate buffers for the sgemm-only runs */
    float *act[ED_MLP_MAX_LAYERS + 1] = {0};
    bool ok = ws && x;
    for (int l = 0; l <= a->n_layers && ok; l++)
        ok = (act[l] = s_alloc_floats((size_t)batch * (size_t)a->widths[l])) != NULL;
    double *fwd = calloc((size_t)repeats, sizeof *fwd),
           *gemm = calloc((size_t)repeats, sizeof *gemm);
    if (!ok || !fwd || !gemm)
        return fprintf(stderr, "ed_bench forward: out of memory\n"), 1;
    s_fill_uniform(x, (size_t)batch * (size_t)ed_arch_in(a), &r);
    memcpy(act[0], x, sizeof(float) * (size_t)batch * (size_t)ed_arch_in(a));
    const s_fwd_shapes sh = {a, batch, (const float *const *)m->W, act};
    const double flops = ed_arch_forward_flops(a) * batch;
    const float *z = NULL;
    for (int i = 0; i < 3; i++) { /* warm-up: threads started, pages touched */
        ed_mlp_forward(m, ws, x, batch, false, NULL, &z, &err);
        s_sgemm_forward(&sh);
    }
    for (int rep = 0; rep < repeats; rep++) {
        double t0 = ed_now();
        for (int i = 0; i < iters; i++)
            if (ed_mlp_forward(m, ws, x, batch, false, NULL, &z, &err) < 0)
                return fprintf(stderr, "ed_bench forward: %s\n", err.msg), 1;
        double t1 = ed_now();
        for (int i = 0; i < iters; i++)
            s_sgemm_forward(&sh);
        double t2 = ed_now();
        fwd[rep] = flops * iters / (t1 - t0) / 1e9;
        gemm[rep] = flops * iters / (t2 - t1) / 1e9;
    }
    double f = s_quantile(fwd, repeats, 0.5), g = s_quantile(gemm, repeats, 0.5);
    printf("{\"arch\":\"%s\",\"batch\":%d,\"repeats\":%d,\"iters\":%d,\"blas\":\"%s\","
           "\"forward_gflops\":%.2f,\"sgemm_gflops\":%.2f,\"ratio\":%.4f,\"goal\":0.85}\n",
           arch, batch, repeats, iters, ed_blas_describe(), f, g, g > 0 ? f / g : 0.0);
    for (int l = 0; l <= a->n_layers; l++)
        free(act[l]);
    free(fwd);
    free(gemm);
    free(x);
    ed_mlp_ws_destroy(&ws);
    ed_mlp_destroy(&m);
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* step                                                                                           */

/* The sgemm calls of one training step alone: forward, then dW for every layer and dX for every
 * layer but the first, with the shapes and transposes of ed_mlp_backward. */
static void s_sgemm_step(const ed_arch *a, int B, float *const *W, float *const *act,
                         float *const *dW, float *const *dbuf)
{
    for (int l = 0; l < a->n_layers; l++) {
        const int in = a->widths[l], out = a->widths[l + 1];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, out, in, 1.0f, act[l], in, W[l], in,
                    0.0f, act[l + 1], out);
    }
    const float *dH = act[a->n_layers];
    int cur = 0;
    for (int l = a->n_layers - 1; l >= 0; l--) {
        const int in = a->widths[l], out = a->widths[l + 1];
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, B, 1.0f, dH, out, act[l], in,
                    0.0f, dW[l], in);
        if (l == 0)
            break;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in, out, 1.0f, dH, out, W[l], in,
                    0.0f, dbuf[cur], in);
        dH = dbuf[cur];
        cur ^= 1;
    }
}

static double s_step_flops(const ed_arch *a, int B)
{
    double f = 3.0 * ed_arch_forward_flops(a) * B;            /* forward, dW, dX */
    return f - 2.0 * (double)a->widths[0] * a->widths[1] * B; /* no dX for the input layer */
}

static int s_cmd_step(int argc, char **argv)
{
    const char *arch = "784,800,800,10";
    int batch = 128, repeats = 9, iters = 20, threads = 0, classes_labeled = 1;
    float T = 4.0f, alpha = 0.9f, dropout_in = 0.0f, dropout_hidden = 0.0f;
    const ed_cli_opt opts[] = {
        {"arch", ED_CLI_STR, &arch, "W0,W1,..", "student architecture", NULL, false},
        {"batch", ED_CLI_INT, &batch, "N", "rows per step", NULL, false},
        {"repeats", ED_CLI_INT, &repeats, "N", "repeats (median reported)", NULL, false},
        {"iters", ED_CLI_INT, &iters, "N", "steps timed per repeat", NULL, false},
        {"temperature", ED_CLI_FLOAT, &T, "T", "soft-target temperature", NULL, false},
        {"alpha", ED_CLI_FLOAT, &alpha, "A", "weight of the soft term", NULL, false},
        {"dropout-in", ED_CLI_FLOAT, &dropout_in, "P", "input dropout", NULL, false},
        {"dropout-hidden", ED_CLI_FLOAT, &dropout_hidden, "P", "hidden dropout", NULL, false},
        {"labeled", ED_CLI_INT, &classes_labeled, "0|1", "rows carry labels (hard term)", NULL,
         false},
        {"blas-threads", ED_CLI_INT, &threads, "N", "OpenBLAS threads (0: default)", NULL, false},
    };
    const ed_cli_spec spec = {
        "ed_bench step [options]",
        "One student step (forward, loss, backward, Adam) vs its sgemm calls.", opts,
        (int)(sizeof opts / sizeof opts[0]), NULL};
    ed_err err = {0};
    int rc = ed_cli_parse(&spec, argc, argv, &err);
    if (rc)
        return rc > 0 ? 0 : (fprintf(stderr, "ed_bench step: %s\n", err.msg), 2);
    if (batch < 1 || repeats < 1 || iters < 1)
        return fprintf(stderr, "ed_bench step: batch, repeats and iters must be >= 1\n"), 2;
    ed_blas_set_threads(threads);
    ed_rng r;
    ed_rng_seed(&r, 11);
    ed_mlp *m = s_random_model(arch, &r, &err);
    if (!m)
        return fprintf(stderr, "ed_bench step: %s\n", err.msg), 1;
    const ed_arch a = m->arch;
    const int D = ed_arch_in(&a), C = ed_arch_out(&a);
    /* the trainer takes the same weights as a (legacy MLP) layer stack; m stays, untouched, for the
     * sgemm-only runs */
    ed_stack sa;
    ed_net *nm = ed_stack_from_mlp(&a, &sa, &err) == ED_OK ? ed_net_new(&sa) : NULL;
    if (nm)
        memcpy(nm->params, m->params, sizeof(float) * m->n_params);
    ed_mlp *m2 = m;
    ed_mlp_ws *ws2 = ed_mlp_ws_new(&a, batch, true);
    ed_opt_config oc = ed_opt_config_default(); /* Adam, lr 1e-3 */
    const ed_trainer_config tc = {.opt = oc,
                                  .max_batch = batch,
                                  .dropout_in = dropout_in,
                                  .dropout_hidden = dropout_hidden,
                                  .input_scale = 1.0f / 255.0f,
                                  .seed = 3};
    ed_trainer *t = ed_trainer_new(&nm, &tc, &err);
    uint8_t *x = malloc((size_t)batch * (size_t)D);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)batch);
    float *q = s_alloc_floats((size_t)batch * (size_t)C);
    double *st_g = calloc((size_t)repeats, sizeof *st_g),
           *gm_g = calloc((size_t)repeats, sizeof *gm_g);
    if (!t || !m2 || !ws2 || !x || !y || !q || !st_g || !gm_g)
        return fprintf(stderr, "ed_bench step: out of memory%s%s\n", err.msg[0] ? ": " : "",
                       err.msg),
               1;
    for (int i = 0; i < batch * D; i++)
        x[i] = (uint8_t)(ed_rng_next(&r) >> 56);
    for (int i = 0; i < batch; i++)
        y[i] = classes_labeled ? (int32_t)(ed_rng_next(&r) % (uint64_t)C) : -1;
    s_fill_uniform(q, (size_t)batch * (size_t)C, &r); /* one member's logits */
    const float *const zt[1] = {q};
    ed_batch_to_float(&(ed_batch){.n = batch, .dim = D, .dtype = ED_DTYPE_U8, .x = x},
                      1.0f / 255.0f, 0.0f, ws2->act[0]);
    const ed_batch b = {.n = batch, .dim = D, .dtype = ED_DTYPE_U8, .x = x, .y = y};
    const ed_loss_config lc = {.alpha = alpha, .temperature = T, .soft_loss = ED_SOFT_CE};
    const double flops = s_step_flops(&a, batch);
    ed_step_stats st;
    for (int i = 0; i < 3; i++) {
        if (ed_trainer_distill_step(t, &b, zt, 1, &lc, &st, &err) < 0)
            return fprintf(stderr, "ed_bench step: %s\n", err.msg), 1;
        s_sgemm_step(&a, batch, m2->W, ws2->act, ws2->dW, ws2->dbuf);
    }
    for (int rep = 0; rep < repeats; rep++) {
        double t0 = ed_now();
        for (int i = 0; i < iters; i++)
            if (ed_trainer_distill_step(t, &b, zt, 1, &lc, &st, &err) < 0)
                return fprintf(stderr, "ed_bench step: %s\n", err.msg), 1;
        double t1 = ed_now();
        for (int i = 0; i < iters; i++)
            s_sgemm_step(&a, batch, m2->W, ws2->act, ws2->dW, ws2->dbuf);
        double t2 = ed_now();
        st_g[rep] = flops * iters / (t1 - t0) / 1e9;
        gm_g[rep] = flops * iters / (t2 - t1) / 1e9;
    }
    double s = s_quantile(st_g, repeats, 0.5), g = s_quantile(gm_g, repeats, 0.5);
    printf("{\"arch\":\"%s\",\"batch\":%d,\"optimizer\":\"adam\",\"repeats\":%d,\"iters\":%d,"
           "\"blas\":\"%s\",\"step_ms\":%.3f,\"sgemm_ms\":%.3f,\"step_gflops\":%.2f,"
           "\"sgemm_gflops\":%.2f,\"ratio\":%.4f,\"goal\":0.70,\"final_loss\":%.5f}\n",
           arch, batch, repeats, iters, ed_blas_describe(), s > 0 ? 1e3 * flops / s / 1e9 : 0.0,
           g > 0 ? 1e3 * flops / g / 1e9 : 0.0, s, g, g > 0 ? s / g : 0.0, st.loss);
    free(st_g);
    free(gm_g);
    free(x);
    free(y);
    free(q);
    ed_trainer_destroy(&t);
    ed_mlp_ws_destroy(&ws2);
    ed_mlp_destroy(&m2);
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* request                                                                                        */

static int s_parse_sizes(const char *text, int *out, int max)
{
    int n = 0;
    const char *p = text;
    while (*p && n < max) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > (1 << 20))
            return -1;
        out[n++] = (int)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

/* Sends msg on sock and waits (up to timeout_ms) for one reply, decoded into *reply. */
static int s_round_trip(void *sock, const ed_msg *msg, ed_msg *reply, int timeout_ms, ed_err *err)
{
    size_t len = ed_wire_packed_size(msg);
    zmq_msg_t zm;
    if (zmq_msg_init_size(&zm, len) != 0)
        return ed_err_set(err, ED_ENOMEM, "cannot allocate a %zu-byte request", len);
    ed_wire_pack(msg, zmq_msg_data(&zm));
    if (zmq_msg_send(&zm, sock, 0) < 0) {
        zmq_msg_close(&zm);
        return ed_err_set(err, ED_EPEER, "send: %s", zmq_strerror(zmq_errno()));
    }
    zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, timeout_ms) <= 0)
        return ed_err_set(err, ED_ETIMEDOUT, "no reply within %d ms", timeout_ms);
    zmq_msg_init(&zm);
    if (zmq_msg_recv(&zm, sock, 0) < 0) {
        zmq_msg_close(&zm);
        return ed_err_set(err, ED_EPEER, "recv: %s", zmq_strerror(zmq_errno()));
    }
    int rc = ed_wire_decode(zmq_msg_data(&zm), zmq_msg_size(&zm), reply, err);
    zmq_msg_close(&zm);
    return rc;
}

static int s_cmd_request(int argc, char **argv)
{
    const char *endpoint = NULL, *model_path = NULL, *sizes_text = "32,128,512";
    int iters = 200, threads = 0;
    const ed_cli_opt opts[] = {
        {"endpoint", ED_CLI_STR, &endpoint, "EP", "teacher_worker serve endpoint (tcp://...)", NULL,
         true},
        {"model", ED_CLI_STR, &model_path, "FILE", "the model file that worker serves", NULL, true},
        {"batches", ED_CLI_STR, &sizes_text, "N,N,..", "batch sizes", NULL, false},
        {"iters", ED_CLI_INT, &iters, "N", "round trips per batch size", NULL, false},
        {"blas-threads", ED_CLI_INT, &threads, "N", "OpenBLAS threads of the in-process forward",
         NULL, false},
    };
    const ed_cli_spec spec = {"ed_bench request --endpoint EP --model FILE [options]",
                              "LogitRequest round trip to a worker vs the in-process forward.",
                              opts, (int)(sizeof opts / sizeof opts[0]), NULL};
    ed_err err = {0};
    int rc = ed_cli_parse(&spec, argc, argv, &err);
    if (rc)
        return rc > 0 ? 0 : (fprintf(stderr, "ed_bench request: %s\n", err.msg), 2);
    int sizes[S_MAX_SIZES];
    int n_sizes = s_parse_sizes(sizes_text, sizes, S_MAX_SIZES);
    if (n_sizes < 1 || iters < 2)
        return fprintf(stderr, "ed_bench request: bad --batches or --iters\n"), 2;
    ed_blas_set_threads(threads);
    int max_b = 0;
    for (int i = 0; i < n_sizes; i++)
        max_b = sizes[i] > max_b ? sizes[i] : max_b;

    ed_member *m = ed_member_open(model_path, max_b, &err);
    if (!m)
        return fprintf(stderr, "ed_bench request: %s\n", err.msg), 1;
    const int D = ed_member_input_dim(m), C = ed_member_classes(m);
    float *z = malloc(sizeof(float) * (size_t)max_b * (size_t)C);
    uint8_t *x = malloc((size_t)max_b * (size_t)D);
    double *remote = calloc((size_t)iters, sizeof *remote),
           *local = calloc((size_t)iters, sizeof *local);
    void *ctx = zmq_ctx_new();
    void *sock = ctx ? zmq_socket(ctx, ZMQ_DEALER) : NULL;
    if (!z || !x || !remote || !local || !sock)
        return fprintf(stderr, "ed_bench request: out of memory\n"), 1;
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(sock, endpoint) != 0)
        return fprintf(stderr, "ed_bench request: connect %s: %s\n", endpoint,
                       zmq_strerror(zmq_errno())),
               1;
    ed_rng r;
    ed_rng_seed(&r, 5);
    for (int i = 0; i < max_b * D; i++)
        x[i] = (uint8_t)(ed_rng_next(&r) >> 56);

    /* The worker must serve the same model: compare fingerprints. */
    const char *fp = ed_member_fingerprint(m);
    ed_msg info_req = {.kind = ED_MSG_INFO_REQUEST, .u.info_request_id = 1}, reply;
    if (s_round_trip(sock, &info_req, &reply, 30000, &err) < 0 || reply.kind != ED_MSG_MEMBER_INFO)
        return fprintf(stderr, "ed_bench request: %s: no member info: %s\n", endpoint, err.msg), 1;
    if (strcmp(reply.u.info.fingerprint, fp) != 0)
        return fprintf(stderr, "ed_bench request: %s serves %s, --model is %s\n", endpoint,
                       reply.u.info.fingerprint, fp),
               1;
    ed_wire_msg_clear(&reply);

    printf("{\"endpoint\":\"%s\",\"arch\":\"%s\",\"iters\":%d,\"blas\":\"%s\",\"batches\":{",
           endpoint, ed_member_arch(m), iters, ed_blas_describe());
    uint64_t id = 100;
    for (int si = 0; si < n_sizes; si++) {
        const int B = sizes[si];
        const ed_msg req = {
            .kind = ED_MSG_LOGIT_REQUEST,
            .u.request = {
                .dtype = ED_DTYPE_U8, .batch = (uint32_t)B, .dim = (uint32_t)D, .data = x}};
        double max_diff = 0.0;
        for (int it = -5; it < iters; it++) { /* 5 warm-up rounds */
            /* in-process: what an in-process pool member does per batch */
            double t0 = ed_now();
            if (ed_member_forward(m, x, ED_DTYPE_U8, B, z, &err) < 0)
                return fprintf(stderr, "ed_bench request: %s\n", err.msg), 1;
            double t1 = ed_now();
            ed_msg rq = req;
            rq.u.request.request_id = ++id;
            if (s_round_trip(sock, &rq, &reply, 30000, &err) < 0)
                return fprintf(stderr, "ed_bench request: %s: %s\n", endpoint, err.msg), 1;
            double t2 = ed_now();
            if (reply.kind != ED_MSG_LOGIT_REPLY || reply.u.reply.request_id != id ||
                (int)reply.u.reply.batch != B || (int)reply.u.reply.classes != C)
                return fprintf(stderr, "ed_bench request: unexpected reply (%s)\n",
                               reply.kind == ED_MSG_ERROR ? reply.u.error.message
                                                          : ed_msg_kind_name(reply.kind)),
                       1;
            for (int k = 0; k < B * C; k++) {
                double d = (double)reply.u.reply.logits[k] - (double)z[k];
                d = d < 0 ? -d : d;
                max_diff = d > max_diff ? d : max_diff;
            }
            ed_wire_msg_clear(&reply);
            if (it >= 0) {
                local[it] = 1e3 * (t1 - t0);
                remote[it] = 1e3 * (t2 - t1);
            }
        }
        double lp50 = s_quantile(local, iters, 0.5), lp99 = s_quantile(local, iters, 0.99);
        double rp50 = s_quantile(remote, iters, 0.5), rp99 = s_quantile(remote, iters, 0.99);
        printf("%s\"%d\":{\"remote_ms\":{\"p50\":%.4f,\"p99\":%.4f},\"inprocess_ms\":{\"p50\":%.4f,"
               "\"p99\":%.4f},\"ratio_p50\":%.4f,\"ratio_p99\":%.4f,\"max_abs_diff\":%.3g}",
               si ? "," : "", B, rp50, rp99, lp50, lp99, lp50 > 0 ? rp50 / lp50 : 0.0,
               lp99 > 0 ? rp99 / lp99 : 0.0, max_diff);
        fflush(stdout);
    }
    printf("},\"goal\":1.10}\n");
    zmq_close(sock);
    zmq_ctx_term(ctx);
    free(x);
    free(remote);
    free(local);
    free(z);
    ed_member_destroy(&m);
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* conv                                                                                           */
/* ---------------------------------------------------------------------------------------------- */

/* The sgemm calls of the conv lowering alone (same shapes, buffers and threads as ed_conv_forward:
 * per sample, [W | b] (OC, ckk + 1), already in gemm, times the col slot of the thread's first
 * sample into y; the samples split over the BLAS threads, each sgemm on one thread). */
typedef struct {
    const ed_layer *L;
    float *y;
    const float *col, *Wb;
} s_conv_sgemm_job;

static void s_conv_sgemm_range(size_t lo, size_t hi, void *ctx)
{
    const s_conv_sgemm_job *j = ctx;
    const int OC = j->L->units, ckk = j->L->in.c * j->L->k * j->L->k;
    const int ohw = j->L->out.h * j->L->out.w;
    const float *col = j->col + lo / 16 * (size_t)(ckk + 1) * ohw;
    for (size_t g = lo / 16; g < hi / 16; g++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, ohw, ckk + 1, 1.0f, j->Wb,
                    ckk + 1, col, ohw, 0.0f, j->y + g * (size_t)OC * ohw, ohw);
}

static void s_sgemm_conv(const ed_layer *L, float *y, const float *col, const float *gemm, int B,
                         int chunk)
{
    const int threads = ed_blas_single_begin();
    for (int n0 = 0; n0 < B; n0 += chunk) {
        const int G = B - n0 < chunk ? B - n0 : chunk;
        s_conv_sgemm_job j = {L, y + (size_t)n0 * ed_shape_size(L->out), col, gemm};
        ed_par_for_threads((size_t)G * 16, 16, threads, s_conv_sgemm_range, &j);
    }
    ed_blas_single_end();
}

static int s_cmd_conv(int argc, char **argv)
{
    const char *arch = "32x14x14:conv64k3p1,flatten";
    int batch = 128, repeats = 9, iters = 10, threads = 0, chunk = 0;
    const ed_cli_opt opts[] = {
        {"arch", ED_CLI_STR, &arch, "ARCH", "a stack whose first layer is the conv to time", NULL,
         false},
        {"chunk", ED_CLI_INT, &chunk, "N", "samples lowered at once (0: the workspace's choice)",
         NULL, false},
        {"batch", ED_CLI_INT, &batch, "N", "samples per forward pass", NULL, false},
        {"repeats", ED_CLI_INT, &repeats, "N", "repeats (median reported)", NULL, false},
        {"iters", ED_CLI_INT, &iters, "N", "passes timed per repeat", NULL, false},
        {"blas-threads", ED_CLI_INT, &threads, "N", "OpenBLAS threads (0: default)", NULL, false},
    };
    const ed_cli_spec spec = {
        "ed_bench conv [options]",
        "A conv layer's forward (im2col + sgemm + bias) vs its sgemm calls alone.", opts,
        (int)(sizeof opts / sizeof opts[0]), NULL};
    ed_err err = {0};
    int rc = ed_cli_parse(&spec, argc, argv, &err);
    if (rc)
        return rc > 0 ? 0 : (fprintf(stderr, "ed_bench conv: %s\n", err.msg), 2);
    ed_stack st;
    if (ed_stack_parse(arch, &st, &err) || st.layers[0].kind != ED_LAYER_CONV || batch < 1 ||
        repeats < 1 || iters < 1)
        return fprintf(stderr, "ed_bench conv: %s\n",
                       err.msg[0] ? err.msg
                                  : "need a conv first, "
                                    "batch, repeats and iters >= 1"),
               2;
    ed_blas_set_threads(threads);
    ed_rng r;
    ed_rng_seed(&r, 5);
    ed_net *m = ed_net_new(&st);
    ed_net_ws *ws = m ? ed_net_ws_new(&st, batch, false) : NULL;
    double *cv = calloc((size_t)repeats, sizeof *cv), *gm = calloc((size_t)repeats, sizeof *gm);
    if (!ws || !cv || !gm)
        return fprintf(stderr, "ed_bench conv: out of memory\n"), 1;
    ed_net_init(m, &r);
    if (chunk > 0 && chunk < ws->conv_chunk)
        ws->conv_chunk = chunk; /* lowering only: the buffers were sized for more */
    const ed_layer *L = &st.layers[0];
    s_fill_uniform(ws->act[0], (size_t)batch * ed_shape_size(L->in), &r);
    const double flops = 2.0 * (double)ed_shape_size(L->out) * L->in.c * L->k * L->k * batch;
    for (int i = 0; i < 3; i++) {
        ed_conv_forward(ws->act[1], ws->act[0], m->W[0], m->b[0], ws->col, ws->gemm, batch,
                        ws->conv_chunk, L);
        s_sgemm_conv(L, ws->act[1], ws->col, ws->gemm, batch, ws->conv_chunk);
    }
    /* The two sides alternate pass by pass (a shared machine's load hits both alike); the ratio
     * is the median of the repeats' ratios. */
    double *rt = calloc((size_t)repeats, sizeof *rt);
    if (!rt)
        return fprintf(stderr, "ed_bench conv: out of memory\n"), 1;
    for (int rep = 0; rep < repeats; rep++) {
        double tc = 0.0, tg = 0.0;
        for (int i = 0; i < iters; i++) {
            double t0 = ed_now();
            ed_conv_forward(ws->act[1], ws->act[0], m->W[0], m->b[0], ws->col, ws->gemm, batch,
                            ws->conv_chunk, L);
            double t1 = ed_now();
            s_sgemm_conv(L, ws->act[1], ws->col, ws->gemm, batch, ws->conv_chunk);
            tc += t1 - t0;
            tg += ed_now() - t1;
        }
        cv[rep] = flops * iters / tc / 1e9;
        gm[rep] = flops * iters / tg / 1e9;
        rt[rep] = tg / tc;
    }
    double c = s_quantile(cv, repeats, 0.5), g = s_quantile(gm, repeats, 0.5);
    double ratio = s_quantile(rt, repeats, 0.5);
    free(rt);
    printf("{\"arch\":\"%s\",\"batch\":%d,\"chunk\":%d,\"repeats\":%d,\"iters\":%d,"
           "\"blas\":\"%s\",\"conv_gflops\":%.2f,\"sgemm_gflops\":%.2f,\"ratio\":%.4f,"
           "\"goal\":0.75}\n",
           arch, batch, ws->conv_chunk, repeats, iters, ed_blas_describe(), c, g, ratio);
    free(cv);
    free(gm);
    ed_net_ws_destroy(&ws);
    ed_net_destroy(&m);
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* pair: two workers serving the same weights (e.g. an edistill file and its ONNX export)         */

/* Alternates batch-B logit requests between endpoint A and endpoint B (one DEALER each) and prints
 * each side's median logits/s and the ratio B/A. Both must serve the same fingerprint and return
 * the same logits (max |diff| is reported). */
static int s_cmd_pair(int argc, char **argv)
{
    const char *ep[2] = {NULL, NULL};
    int iters = 200, B = 128, D = 784;
    const ed_cli_opt opts[] = {
        {"native", ED_CLI_STR, &ep[0], "EP", "worker serving the edistill model file", NULL, true},
        {"onnx", ED_CLI_STR, &ep[1], "EP", "worker serving the same weights as ONNX", NULL, true},
        {"batch", ED_CLI_INT, &B, "N", "samples per request", NULL, false},
        {"dim", ED_CLI_INT, &D, "N", "input features", NULL, false},
        {"iters", ED_CLI_INT, &iters, "N", "round trips per side", NULL, false},
    };
    const ed_cli_spec spec = {
        "ed_bench pair --native EP --onnx EP [options]",
        "logits/s of two workers serving the same weights, requests alternating.", opts,
        (int)(sizeof opts / sizeof opts[0]), NULL};
    ed_err err = {0};
    int rc = ed_cli_parse(&spec, argc, argv, &err);
    if (rc)
        return rc > 0 ? 0 : (fprintf(stderr, "ed_bench pair: %s\n", err.msg), 2);
    if (iters < 2 || B < 1 || D < 1 || B > 4096 || D > (1 << 20))
        return fprintf(stderr, "ed_bench pair: bad --iters, --batch or --dim\n"), 2;
    void *ctx = zmq_ctx_new();
    void *sock[2] = {NULL, NULL};
    uint8_t *x = malloc((size_t)B * (size_t)D);
    double *t[2] = {calloc((size_t)iters, sizeof(double)), calloc((size_t)iters, sizeof(double))};
    float *first = malloc((size_t)B * 4096 * sizeof(float));
    char fp[2][64];
    if (!ctx || !x || !t[0] || !t[1] || !first)
        return fprintf(stderr, "ed_bench pair: out of memory\n"), 1;
    ed_rng r;
    ed_rng_seed(&r, 6);
    for (int i = 0; i < B * D; i++)
        x[i] = (uint8_t)(ed_rng_next(&r) >> 56);
    for (int s = 0; s < 2; s++) {
        int linger = 0;
        sock[s] = zmq_socket(ctx, ZMQ_DEALER);
        zmq_setsockopt(sock[s], ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_connect(sock[s], ep[s]) != 0)
            return fprintf(stderr, "ed_bench pair: connect %s: %s\n", ep[s],
                           zmq_strerror(zmq_errno())),
                   1;
        ed_msg info_req = {.kind = ED_MSG_INFO_REQUEST, .u.info_request_id = 1}, reply;
        if (s_round_trip(sock[s], &info_req, &reply, 30000, &err) < 0 ||
            reply.kind != ED_MSG_MEMBER_INFO)
            return fprintf(stderr, "ed_bench pair: %s: no member info: %s\n", ep[s], err.msg), 1;
        snprintf(fp[s], sizeof fp[s], "%s", reply.u.info.fingerprint);
        ed_wire_msg_clear(&reply);
    }
    if (strcmp(fp[0], fp[1]) != 0)
        return fprintf(stderr, "ed_bench pair: the workers serve different weights (%s, %s)\n",
                       fp[0], fp[1]),
               1;
    const ed_msg req = {
        .kind = ED_MSG_LOGIT_REQUEST,
        .u.request = {.dtype = ED_DTYPE_U8, .batch = (uint32_t)B, .dim = (uint32_t)D, .data = x}};
    uint64_t id = 100;
    double max_diff = 0.0;
    int C = 0;
    for (int it = -5; it < iters; it++) {
        for (int s = 0; s < 2; s++) {
            ed_msg rq = req, reply;
            rq.u.request.request_id = ++id;
            double t0 = ed_now();
            if (s_round_trip(sock[s], &rq, &reply, 30000, &err) < 0)
                return fprintf(stderr, "ed_bench pair: %s: %s\n", ep[s], err.msg), 1;
            double t1 = ed_now();
            if (reply.kind != ED_MSG_LOGIT_REPLY || (int)reply.u.reply.batch != B ||
                reply.u.reply.classes > 4096)
                return fprintf(stderr, "ed_bench pair: %s: unexpected reply\n", ep[s]), 1;
            C = (int)reply.u.reply.classes;
            for (int k = 0; k < B * C; k++) {
                if (s == 0)
                    first[k] = reply.u.reply.logits[k];
                double d = (double)reply.u.reply.logits[k] - (double)first[k];
                max_diff = fabs(d) > max_diff ? fabs(d) : max_diff;
            }
            ed_wire_msg_clear(&reply);
            if (it >= 0)
                t[s][it] = t1 - t0;
        }
    }
    double m0 = s_quantile(t[0], iters, 0.5), m1 = s_quantile(t[1], iters, 0.5);
    printf("{\"batch\":%d,\"iters\":%d,\"fingerprint\":\"%s\",\"native_logits_per_s\":%.1f,"
           "\"onnx_logits_per_s\":%.1f,\"ratio\":%.4f,\"max_abs_diff\":%.3g,\"goal\":0.95}\n",
           B, iters, fp[0], B / m0, B / m1, m0 / m1, max_diff);
    for (int s = 0; s < 2; s++) {
        zmq_close(sock[s]);
        free(t[s]);
    }
    zmq_ctx_term(ctx);
    free(x);
    free(first);
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* limit                                                                                          */

static int s_cmd_limit(int argc, char **argv)
{
    const char *member_arch = "784,1200,1200,10", *student_arch = "784,800,800,10";
    int members = 5, batch = 128, repeats = 9, iters = 10, threads = 0;
    bool same = false;
    const ed_cli_opt opts[] = {
        {"members", ED_CLI_INT, &members, "K", "ensemble members forwarded per step", NULL, false},
        {"member-arch", ED_CLI_STR, &member_arch, "W0,W1,..", "member architecture", NULL, false},
        {"student-arch", ED_CLI_STR, &student_arch, "W0,W1,..", "student architecture", NULL,
         false},
        {"batch", ED_CLI_INT, &batch, "N", "rows per step", NULL, false},
        {"repeats", ED_CLI_INT, &repeats, "N", "repeats (median reported)", NULL, false},
        {"iters", ED_CLI_INT, &iters, "N", "steps timed per repeat", NULL, false},
        {"blas-threads", ED_CLI_INT, &threads, "N", "OpenBLAS threads (0: default)", NULL, false},
        {"same-weights", ED_CLI_FLAG, &same, NULL,
         "forward the K members through one weight set and workspace (cache-warm; the step "
         "itself reads K members' weights)",
         NULL, false},
    };
    const ed_cli_spec spec = {
        "ed_bench limit [options]",
        "The sgemm calls of one on-the-fly distillation step alone (K member forwards, each with\n"
        "its own weights and workspace as in the step, the student's forward and backward): the\n"
        "GEMM FLOPs per sample and the rate the BLAS reaches on them, i.e. the samples/s no\n"
        "implementation of the step can beat on these threads.",
        opts, (int)(sizeof opts / sizeof opts[0]), NULL};
    ed_err err = {0};
    int rc = ed_cli_parse(&spec, argc, argv, &err);
    if (rc)
        return rc > 0 ? 0 : (fprintf(stderr, "ed_bench limit: %s\n", err.msg), 2);
    if (members < 0 || members > 64 || batch < 1 || repeats < 1 || iters < 1)
        return fprintf(stderr, "ed_bench limit: 0 <= members <= 64; batch, repeats, iters >= 1\n"),
               2;
    ed_blas_set_threads(threads);
    ed_rng r;
    ed_rng_seed(&r, 13);
    const int distinct = same || members == 0 ? 1 : members; /* weight sets and workspaces */
    ed_mlp *mm[64] = {NULL}, *sm = NULL;
    ed_mlp_ws *mws[64] = {NULL}, *sws = NULL;
    for (int k = 0; k < distinct; k++)
        if (!(mm[k] = s_random_model(member_arch, &r, &err)))
            return fprintf(stderr, "ed_bench limit: %s\n", err.msg), 1;
    if (!(sm = s_random_model(student_arch, &r, &err)))
        return fprintf(stderr, "ed_bench limit: %s\n", err.msg), 1;
    const ed_arch *ma = &mm[0]->arch;
    double *rate = calloc((size_t)repeats, sizeof *rate);
    sws = ed_mlp_ws_new(&sm->arch, batch, true);
    if (!sws || !rate)
        return fprintf(stderr, "ed_bench limit: out of memory\n"), 1;
    s_fwd_shapes msh[64];
    for (int k = 0; k < distinct; k++) {
        if (!(mws[k] = ed_mlp_ws_new(ma, batch, false)))
            return fprintf(stderr, "ed_bench limit: out of memory\n"), 1;
        s_fill_uniform(mws[k]->act[0], (size_t)batch * (size_t)ed_arch_in(ma), &r);
        msh[k] = (s_fwd_shapes){ma, batch, (const float *const *)mm[k]->W, mws[k]->act};
    }
    s_fill_uniform(sws->act[0], (size_t)batch * (size_t)ed_arch_in(&sm->arch), &r);
    const double flops_step =
        members * ed_arch_forward_flops(ma) * batch + s_step_flops(&sm->arch, batch);
    for (int rep = -1; rep < repeats; rep++) { /* rep -1: warm-up */
        double t0 = ed_now();
        for (int i = 0; i < iters; i++) {
            for (int k = 0; k < members; k++)
                s_sgemm_forward(&msh[k % distinct]);
            s_sgemm_step(&sm->arch, batch, sm->W, sws->act, sws->dW, sws->dbuf);
        }
        if (rep >= 0)
            rate[rep] = flops_step * iters / (ed_now() - t0) / 1e9;
    }
    const double g = s_quantile(rate, repeats, 0.5), per_sample = flops_step / batch;
    printf("{\"members\":%d,\"member_arch\":\"%s\",\"student_arch\":\"%s\",\"batch\":%d,"
           "\"repeats\":%d,\"iters\":%d,\"blas\":\"%s\",\"threads\":%d,\"weight_sets\":%d,"
           "\"gemm_mflop_per_sample\":%.3f,\"sgemm_gflops\":%.2f,\"limit_samples_per_s\":%.1f}\n",
           members, member_arch, student_arch, batch, repeats, iters, ed_blas_describe(), threads,
           distinct, per_sample / 1e6, g, g * 1e9 / per_sample);
    free(rate);
    for (int k = 0; k < distinct; k++) {
        ed_mlp_ws_destroy(&mws[k]);
        ed_mlp_destroy(&mm[k]);
    }
    ed_mlp_ws_destroy(&sws);
    ed_mlp_destroy(&sm);
    return 0;
}

int main(int argc, char **argv)
{
    ed_blas_setup(argv);
    if (argc >= 2 && !strcmp(argv[1], "forward"))
        return s_cmd_forward(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "step"))
        return s_cmd_step(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "conv"))
        return s_cmd_conv(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "request"))
        return s_cmd_request(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "pair"))
        return s_cmd_pair(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "limit"))
        return s_cmd_limit(argc - 1, argv + 1);
    fprintf(argc >= 2 && strcmp(argv[1], "--help") ? stderr : stdout,
            "usage: ed_bench forward|step|conv|request|pair|limit [options]   (each has --help)\n");
    return argc >= 2 && !strcmp(argv[1], "--help") ? 0 : 2;
}
