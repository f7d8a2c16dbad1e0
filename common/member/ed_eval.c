/* ed_eval: ensemble evaluation on a labeled dataset (see ed_eval.h). */
#include "ed_eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ed_loader.h"
#include "ed_loss.h"

/* Checks that the K members agree on shapes and take batches of batch_size. */
static int s_check_members(ed_member *const *members, int K, int batch_size, ed_err *err)
{
    if (K < 1 || batch_size < 1)
        return ed_err_set(err, ED_EINVAL, "evaluation needs at least one model and a batch >= 1");
    const int D = ed_member_input_dim(members[0]), C = ed_member_classes(members[0]);
    for (int k = 0; k < K; k++) {
        const ed_member *m = members[k];
        if (ed_member_input_dim(m) != D || ed_member_classes(m) != C)
            return ed_err_set(err, ED_ESHAPE,
                              "ensemble member %d maps %d -> %d, member 0 maps %d -> %d", k,
                              ed_member_input_dim(m), ed_member_classes(m), D, C);
        if (ed_member_max_batch(m) < batch_size)
            return ed_err_set(err, ED_EINVAL,
                              "evaluation batch %d exceeds member %d's max batch %d", batch_size, k,
                              ed_member_max_batch(m));
    }
    return 0;
}

int ed_eval_run(ed_member *const *members, int K, const ed_dataset_spec *data, int batch_size,
                ed_eval_result *res, ed_err *err)
{
    return ed_eval_run_view(members, K, data, NULL, batch_size, res, err);
}

int ed_eval_run_view(ed_member *const *members, int K, const ed_dataset_spec *data,
                     const ed_view *view, int batch_size, ed_eval_result *res, ed_err *err)
{
    memset(res, 0, sizeof *res);
    int rc = s_check_members(members, K, batch_size, err);
    if (rc)
        return rc;
    const int D = ed_member_input_dim(members[0]), C = ed_member_classes(members[0]);
    float *z = malloc(sizeof(float) * (size_t)batch_size * (size_t)C);
    float *p = malloc(sizeof(float) * (size_t)batch_size * (size_t)C);
    float *acc = malloc(sizeof(float) * (size_t)batch_size * (size_t)C);
    res->confusion = calloc((size_t)C * (size_t)C, sizeof(long));
    res->classes = C;
    ed_loader *loader = NULL;
    if (!z || !p || !acc || !res->confusion) {
        rc = ed_err_set(err, ED_ENOMEM, "cannot allocate evaluation buffers");
        goto done;
    }
    ed_stream *s = ed_stream_open(data, err);
    if (!s) {
        rc = err ? err->code : ED_EIO;
        goto done;
    }
    if (ed_stream_set_view(s, view, err)) {
        rc = err ? err->code : ED_EINVAL;
        ed_stream_destroy(&s);
        goto done;
    }
    if (!ed_stream_has_labels(s)) {
        rc = ed_err_set(err, ED_EINVAL, "%s: evaluation needs labels (give the labels file)",
                        data->images);
        ed_stream_destroy(&s);
        goto done;
    }
    if (ed_stream_dim(s) != D) {
        rc = ed_err_set(err, ED_ESHAPE, "%s: samples have %d values, the model input is %d",
                        data->images, ed_stream_dim(s), D);
        ed_stream_destroy(&s);
        goto done;
    }
    ed_loader_config lc = {
        .batch_size = batch_size, .shuffle_buffer = 0, .seed = 0, .drop_last = false};
    loader = ed_loader_new(&s, &lc, err);
    if (!loader) {
        rc = err ? err->code : ED_ENOMEM;
        goto done;
    }
    double nll = 0.0;
    ed_batch b;
    int n;
    while ((n = ed_loader_next(loader, &b, err)) > 0) {
        memset(acc, 0, sizeof(float) * (size_t)n * (size_t)C);
        for (int k = 0; k < K; k++) {
            rc = ed_member_forward(members[k], b.x, b.dtype, n, z, err);
            if (rc)
                goto done;
            ed_softmax_temp(z, p, n, C, 1.0f);
            for (int i = 0; i < n * C; i++)
                acc[i] += p[i] / (float)K;
        }
        for (int i = 0; i < n; i++) {
            int y = b.y[i];
            if (y < 0 || y >= C) {
                rc = ed_err_set(err, ED_EFORMAT, "%s: label %d is not a class of a %d-class model",
                                data->labels, y, C);
                goto done;
            }
            int pred = ed_argmax(acc + (size_t)i * C, C);
            res->confusion[(size_t)y * C + pred]++;
            res->correct += pred == y;
            nll -= log(fmax((double)acc[(size_t)i * C + y], 1e-30));
        }
        res->n += n;
    }
    if (n < 0)
        rc = n;
    res->loss = res->n ? nll / (double)res->n : 0.0;
done:
    free(z);
    free(p);
    free(acc);
    ed_loader_destroy(&loader);
    if (rc)
        ed_eval_result_free(res);
    return rc;
}

int ed_eval_net(const ed_net *model, float input_scale, float input_offset,
                const ed_dataset_spec *data, int batch_size, ed_eval_result *res, ed_err *err)
{
    return ed_eval_net_view(model, input_scale, input_offset, data, NULL, batch_size, res, err);
}

int ed_eval_net_view(const ed_net *model, float input_scale, float input_offset,
                     const ed_dataset_spec *data, const ed_view *view, int batch_size,
                     ed_eval_result *res, ed_err *err)
{
    memset(res, 0, sizeof *res);
    ed_member *m = ed_member_wrap_net(model, input_scale, input_offset, NULL, batch_size, err);
    if (!m)
        return err ? err->code : ED_ENOMEM;
    int rc = ed_eval_run_view(&m, 1, data, view, batch_size, res, err);
    ed_member_destroy(&m);
    return rc;
}

void ed_eval_result_free(ed_eval_result *res)
{
    if (!res)
        return;
    free(res->confusion);
    res->confusion = NULL;
}

void ed_eval_print_confusion(const ed_eval_result *res, FILE *out)
{
    const int C = res->classes;
    fprintf(out, "class   samples  accuracy  most confused with\n");
    for (int y = 0; y < C; y++) {
        long total = 0, worst = -1, worst_n = 0;
        for (int c = 0; c < C; c++) {
            long v = res->confusion[(size_t)y * C + c];
            total += v;
            if (c != y && v > worst_n) {
                worst = c;
                worst_n = v;
            }
        }
        double acc = total ? (double)res->confusion[(size_t)y * C + y] / (double)total : 0.0;
        if (worst >= 0)
            fprintf(out, "%5d  %8ld  %7.2f%%  %d (%ld)\n", y, total, 100.0 * acc, (int)worst,
                    worst_n);
        else
            fprintf(out, "%5d  %8ld  %7.2f%%  -\n", y, total, 100.0 * acc);
    }
}
