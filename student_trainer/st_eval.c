/*
 * st_eval: `student_trainer eval`: loads one or more model files and reports accuracy, mean NLL and
 * a per-class confusion summary on a labeled dataset; several files are evaluated one by one and as
 * an ensemble (arithmetic mean of their probabilities).
 */
#include "st_commands.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_cli.h"
#include "ed_eval.h"
#include "ed_log.h"
#include "ed_member.h"

#define ST_MAX_MODELS 64

typedef struct {
    const char *models, *images, *labels, *json;
    const char *view; /* --student-view: evaluate on a view of --images (ed_view) */
    int batch_size;
    bool no_confusion;
} st_eval_opts;

static int s_split_models(char *list, char **paths, int max, ed_err *err)
{
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (n == max)
            return ed_err_set(err, ED_EINVAL, "--models: more than %d files", max);
        paths[n++] = tok;
    }
    if (n == 0)
        return ed_err_set(err, ED_EINVAL, "--models: no model file given");
    return n;
}

/* {"accuracy", "loss", "n"} of one result, under `name` (a path: escaped by cJSON). */
static void s_json_result(cJSON *root, const char *name, const ed_eval_result *r)
{
    cJSON *o = cJSON_AddObjectToObject(root, name);
    if (!o)
        return;
    cJSON_AddNumberToObject(o, "accuracy", ed_eval_accuracy(r));
    cJSON_AddNumberToObject(o, "loss", r->loss);
    cJSON_AddNumberToObject(o, "n", (double)r->n);
}

/* Writes {path: result, ..., "ensemble": result} to path with cJSON. */
static int s_write_json(const char *path, char *const *paths, const ed_eval_result *results, int K,
                        ed_err *err)
{
    cJSON *root = cJSON_CreateObject();
    for (int k = 0; root && k < K; k++)
        s_json_result(root, paths[k], &results[k]);
    if (root && K > 1)
        s_json_result(root, "ensemble", &results[K]);
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text)
        return ed_err_set(err, ED_ENOMEM, "out of memory writing %s", path);
    FILE *f = fopen(path, "w");
    int bad = !f || fputs(text, f) < 0 || fputc('\n', f) == EOF;
    if (f && fclose(f))
        bad = 1;
    cJSON_free(text);
    if (bad)
        return ed_err_set(err, ED_EIO, "%s: cannot write JSON results", path);
    return 0;
}

int st_eval_main(int argc, char **argv)
{
    st_eval_opts o = {.models = NULL,
                      .images = ED_DATA_DEFAULT_DIR "t10k-images-idx3-ubyte.gz",
                      .labels = ED_DATA_DEFAULT_DIR "t10k-labels-idx1-ubyte.gz",
                      .json = NULL,
                      .batch_size = 256,
                      .no_confusion = false};
    const ed_cli_opt opts[] = {
        {"models", ED_CLI_STR, &o.models, "F1[,F2..]",
         "model files; several are also evaluated as an ensemble", NULL, true},
        {"images", ED_CLI_STR, &o.images, "FILE", "samples (IDX, .npy, CSV; .gz ok)", NULL, false},
        {"labels", ED_CLI_STR, &o.labels, "FILE", "labels", NULL, false},
        {"batch-size", ED_CLI_INT, &o.batch_size, "N", "samples per forward pass", NULL, false},
        {"json", ED_CLI_STR, &o.json, "FILE", "also write the results as JSON", NULL, false},
        {"student-view", ED_CLI_STR, &o.view, "VIEW",
         "read --images through a view first (avgpool:K, as distill --student-view): a student "
         "trained on a view, evaluated on the original files",
         NULL, false},
        {"no-confusion", ED_CLI_FLAG, &o.no_confusion, NULL, "skip the per-class summary", NULL,
         false},
    };
    const ed_cli_spec spec = {"student_trainer eval --models F1[,F2,...] [options]",
                              "Accuracy, loss and per-class confusion of model files on a labeled "
                              "set (default: the Fashion-MNIST test set).",
                              opts, (int)(sizeof opts / sizeof opts[0]), NULL};
    ed_err err = {0};
    int rc;
    if (!ed_cli_parse_command(&spec, "student_trainer eval", argc, argv, &rc))
        return rc;

    char *list = strdup(o.models);
    char *paths[ST_MAX_MODELS];
    ed_member *members[ST_MAX_MODELS] = {0};
    ed_eval_result results[ST_MAX_MODELS + 1];
    memset(results, 0, sizeof results);
    int K = list ? s_split_models(list, paths, ST_MAX_MODELS, &err)
                 : ed_err_set(&err, ED_ENOMEM, "out of memory");
    rc = 1;
    ed_view view;
    if (K < 0)
        goto fail;
    if (ed_view_parse(o.view, &view, &err)) {
        ed_err_wrap(&err, "--student-view");
        goto fail;
    }
    for (int k = 0; k < K; k++)
        if (!(members[k] = ed_member_open(paths[k], o.batch_size, &err)))
            goto fail;
    ed_dataset_spec data = {o.images, o.labels, 0, -1};
    for (int k = 0; k < K; k++)
        if (ed_eval_run_view(&members[k], 1, &data, &view, o.batch_size, &results[k], &err)) {
            ed_err_wrap(&err, "evaluating %s", paths[k]);
            goto fail;
        }
    if (K > 1 && ed_eval_run_view(members, K, &data, &view, o.batch_size, &results[K], &err))
        goto fail;

    printf("%-40s %-16s %9s %8s\n", "model", "member", "accuracy", "loss");
    for (int k = 0; k < K; k++)
        printf("%-40s %-16s %8.2f%% %8.4f\n", paths[k], ed_member_name(members[k]),
               100.0 * ed_eval_accuracy(&results[k]), results[k].loss);
    const ed_eval_result *summary = K > 1 ? &results[K] : &results[0];
    if (K > 1)
        printf("%-40s %-16s %8.2f%% %8.4f\n", "ensemble (mean probability)", "-",
               100.0 * ed_eval_accuracy(summary), summary->loss);
    if (!o.no_confusion) {
        printf("\nper-class summary (%s):\n", K > 1 ? "ensemble" : paths[0]);
        ed_eval_print_confusion(summary, stdout);
    }
    if (o.json && s_write_json(o.json, paths, results, K, &err))
        goto fail;
    rc = 0;
    goto done;
fail:
    ed_log_error("%s", err.msg);
done:
    for (int k = 0; k <= K && k <= ST_MAX_MODELS; k++)
        ed_eval_result_free(&results[k]);
    for (int k = 0; k < ST_MAX_MODELS; k++)
        ed_member_destroy(&members[k]);
    free(list);
    return rc;
}
