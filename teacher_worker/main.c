/*
 * teacher_worker: the process that hosts ONE ensemble member. Subcommands:
 *   train   train the member on labeled data and write its model file
 *   serve   load a model file and answer logit requests over ZeroMQ
 *   keygen  make a CurveZMQ key pair (docs/SECURITY.md)
 *   import  convert an ONNX model into an edistill model file
 */
#include "ed_blas.h"
#include "ed_cli.h"
#include "ed_log.h"
#include "tw_commands.h"

int main(int argc, char **argv)
{
    ed_log_init("teacher_worker");
    ed_blas_setup(argv);
    static const ed_cli_command commands[] = {
        {"train", tw_train_main, "train one ensemble member on labeled data, save its model file"},
        {"serve", tw_serve_main, "serve a model's logits over ZeroMQ (tcp:// or ipc://)"},
        {"import", tw_import_main,
         "convert an ONNX model into an edistill model file (safetensors)"},
        {"keygen", tw_keygen_main,
         "make a CurveZMQ key pair (PREFIX.key secret, PREFIX.pub public)"},
    };
    return ed_cli_dispatch("teacher_worker", "Hosts one member of a distillation ensemble.",
                           commands, (int)(sizeof commands / sizeof commands[0]), argc, argv);
}
