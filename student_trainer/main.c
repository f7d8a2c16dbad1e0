/*
 * student_trainer: trains and evaluates the compact student. Subcommands:
 *   distill   train the student on the ensemble's soft targets (+ hard labels)
 *   eval      accuracy / loss / confusion of one model file or an ensemble of model files
 */
#include <stdio.h>
#include <string.h>

#include "ed_blas.h"
#include "ed_log.h"
#include "st_commands.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} s_commands[] = {
    {"distill", st_distill_main, "distill an ensemble of teachers into a compact student"},
    {"eval", st_eval_main, "evaluate a model file or an ensemble of model files on labeled data"},
};

static void s_usage(FILE *out)
{
    fprintf(out, "usage: student_trainer COMMAND [options]\n\n"
                 "Distills an ensemble of teachers into a compact student.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        fprintf(out, "  %-8s %s\n", s_commands[i].name, s_commands[i].help);
    fprintf(out, "\nRun 'student_trainer COMMAND --help' for the options of a command.\n");
}

int main(int argc, char **argv)
{
    ed_log_init("student_trainer");
    ed_blas_setup(argv);
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        s_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        if (!strcmp(argv[1], s_commands[i].name))
            return s_commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "student_trainer: unknown command '%s' (see student_trainer --help)\n", argv[1]);
    return 2;
}
