/*
 * tw_import: `teacher_worker import MEMBER.onnx --out MEMBER.safetensors`: converts an ONNX model
 * once into an edistill model file (ed_onnx_model_load + ed_model_save), with the ONNX file's name
 * and producer and the input scaling in the provenance, so later runs skip the ONNX parse and the
 * file carries edistill's fingerprint check. `serve --model MEMBER.onnx` does the same import in
 * memory at every start.
 */
#include "tw_commands.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ed_cli.h"
#include "ed_log.h"
#include "ed_model_file.h"
#include "ed_onnx_model.h"

int tw_import_main(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *member = NULL;
    ed_onnx_import_opts io = ed_onnx_import_defaults();
    /* `import FILE.onnx --out ...`: the first argument may be the input without --onnx. */
    char *args[64];
    int n = 0;
    for (int i = 0; i < argc && n < 64; i++) {
        if (i == 1 && argv[i][0] != '-')
            in = argv[i];
        else
            args[n++] = argv[i];
    }
    const ed_cli_opt opts[] = {
        {"onnx", ED_CLI_STR, &in, "FILE", "ONNX model to import (or give it as the first argument)",
         NULL, false},
        {"out", ED_CLI_STR, &out, "FILE", "edistill model file to write (safetensors)", NULL, true},
        {"member", ED_CLI_STR, &member, "NAME", "member name (default: the file's base name)", NULL,
         false},
        {"input-scale", ED_CLI_FLOAT, &io.input_scale, "X",
         "raw pixel -> model input is x * X + OFFSET (nan = 1/255, or 1 for an edistill-exported "
         "model)",
         NULL, false},
        {"input-offset", ED_CLI_FLOAT, &io.input_offset, "OFFSET", "see --input-scale (nan = 0)",
         NULL, false},
    };
    const ed_cli_spec spec = {"teacher_worker import FILE.onnx --out FILE.safetensors [options]",
                              "Convert an ONNX model (opsets 11-17: Gemm, MatMul+Add, Relu, "
                              "Flatten, ... see README \"Bring your\n"
                              "own teachers\") into an edistill model file. Unsupported graphs are "
                              "refused with the node, op and\n"
                              "reason.",
                              opts, (int)(sizeof opts / sizeof opts[0]),
                              "example:\n  teacher_worker import member-a.onnx --out "
                              "member-a.safetensors --input-scale 0.00392157"};
    int rc;
    if (argc > 64) {
        ed_cli_reportf("teacher_worker import", "too many arguments");
        return 2;
    }
    if (!ed_cli_parse_command(&spec, "teacher_worker import", n, args, &rc))
        return rc;
    if (!in) {
        ed_cli_reportf("teacher_worker import", "no ONNX file given");
        return 2;
    }
    io.member = member;
    ed_err err = {0};
    ed_net *m = NULL;
    ed_model_meta meta;
    rc = ed_onnx_model_load(in, &io, &m, &meta, &err);
    if (rc == ED_OK)
        rc = ed_model_save(out, m, &meta, &err);
    ed_net_destroy(&m);
    if (rc < 0) {
        ed_cli_report("teacher_worker import", &err);
        return 1;
    }
    char fp[32];
    ed_fingerprint_format(meta.fingerprint, fp, sizeof fp);
    printf("wrote %s (member %s, %s)\n", out, meta.member, fp);
    return 0;
}
