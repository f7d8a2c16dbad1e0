/*
 * teacher_worker: the process that hosts ONE ensemble member. Subcommands:
 *   train   train the member on labeled data and write its model file
 *   serve   load a model file and answer logit requests over ZeroMQ
 *   keygen  make a CurveZMQ key pair (docs/SECURITY.md)
 */
#include <stdio.h>
#include <string.h>

#include "ed_blas.h"
#include "ed_log.h"
#include "tw_commands.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} s_commands[] = {
    {"train", tw_train_main, "train one ensemble member on labeled data, save its model file"},
    {"serve", tw_serve_main, "serve a model's logits over ZeroMQ (tcp:// or ipc://)"},
    {"keygen", tw_keygen_main, "make a CurveZMQ key pair (PREFIX.key secret, PREFIX.pub public)"},
};

static void s_usage(FILE *out)
{
    fprintf(out, "usage: teacher_worker COMMAND [options]\n\n"
                 "Hosts one member of a distillation ensemble.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        fprintf(out, "  %-8s %s\n", s_commands[i].name, s_commands[i].help);
    fprintf(out, "\nRun 'teacher_worker COMMAND --help' for the options of a command.\n");
}

int main(int argc, char **argv)
{
    ed_log_init("teacher_worker");
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
    fprintf(stderr, "teacher_worker: unknown command '%s' (see teacher_worker --help)\n", argv[1]);
    return 2;
}
