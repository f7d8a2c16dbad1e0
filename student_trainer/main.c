/*
 * student_trainer: trains and evaluates the compact student. Subcommands:
 *   distill   train the student on the ensemble's soft targets (+ hard labels)
 *   eval      accuracy / loss / confusion of one model file or an ensemble of model files
 *   label     store the ensemble's raw logits for input files (a target store, sharded)
 *   export    write a model file as ONNX (for onnxruntime, OpenCV dnn, ...)
 *   status    every teacher's member, fingerprint, arch, state and round trip
 *   plot      learning curves of one or several runs' metrics files (gnuplot)
 */
#include "ed_blas.h"
#include "ed_cli.h"
#include "ed_log.h"
#include "st_commands.h"

int main(int argc, char **argv)
{
    ed_log_init("student_trainer");
    ed_blas_setup(argv);
    static const ed_cli_command commands[] = {
        {"distill", st_distill_main, "distill an ensemble of teachers into a compact student"},
        {"label", st_label_main,
         "label input files with the ensemble once: write a target store (sharded)"},
        {"eval", st_eval_main,
         "evaluate a model file or an ensemble of model files on labeled data"},
        {"export", st_export_main, "write a model file as an ONNX model (opset 13)"},
        {"status", st_status_main,
         "ask every teacher for its member info; exit 1 when a member has no live replica"},
        {"plot", st_plot_main,
         "learning curves of distill runs (metrics files) as a PNG, drawn by gnuplot"},
    };
    return ed_cli_dispatch("student_trainer",
                           "Distills an ensemble of teachers into a compact student.", commands,
                           (int)(sizeof commands / sizeof commands[0]), argc, argv);
}
