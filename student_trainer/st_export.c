/*
 * st_export: `student_trainer export --model M.safetensors --onnx M.onnx`: writes any edistill
 * model file (the student, or a member) as an ONNX model that runs without edistill (onnxruntime,
 * OpenCV dnn): raw-pixel float input with the model's scaling baked in as the first nodes, logits
 * out, the fingerprint and member in the metadata (common/onnx/ed_onnx_write.h).
 */
#include "st_commands.h"

#include <stdio.h>

#include "ed_cli.h"
#include "ed_model_file.h"
#include "ed_onnx_model.h"

int st_export_main(int argc, char **argv)
{
    const char *model = NULL, *onnx = NULL;
    const ed_cli_opt opts[] = {
        {"model", ED_CLI_STR, &model, "FILE", "edistill model file to export", NULL, true},
        {"onnx", ED_CLI_STR, &onnx, "FILE", "ONNX file to write", NULL, true},
    };
    const ed_cli_spec spec = {
        "student_trainer export --model FILE --onnx FILE.onnx",
        "Export an edistill model as ONNX (opset 13). The ONNX model takes raw pixels as float32\n"
        "(N, D) with a dynamic batch N, applies the model's input scaling itself and outputs "
        "logits.",
        opts, (int)(sizeof opts / sizeof opts[0]),
        "example:\n  student_trainer export --model student.safetensors --onnx student.onnx"};
    int rc;
    if (!ed_cli_parse_command(&spec, "student_trainer export", argc, argv, &rc))
        return rc;
    ed_err err = {0};
    ed_net *m = NULL;
    ed_model_meta meta;
    rc = ed_model_load(model, &m, &meta, &err);
    if (rc == ED_OK)
        rc = ed_onnx_model_export(m, &meta, onnx, &err);
    ed_net_destroy(&m);
    if (rc < 0) {
        ed_cli_report("student_trainer export", &err);
        return 1;
    }
    char fp[32];
    ed_fingerprint_format(meta.fingerprint, fp, sizeof fp);
    printf("wrote %s (member %s, %s)\n", onnx, meta.member, fp);
    return 0;
}
