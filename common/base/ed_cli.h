/*
 * ed_cli: table-driven command-line parsing for edistill's subcommands.
 *
 * Each command declares a table of long options bound to typed variables that already hold their
 * defaults; ed_cli_parse fills them from an optional environment variable first, then from argv,
 * and generates --help from the same table (showing each default), so help and behaviour cannot
 * drift.
 *
 *     int epochs = 10; char *out = NULL;
 *     const ed_cli_opt opts[] = {
 *         {"epochs", ED_CLI_INT, &epochs, "N", "passes over the training data", NULL, false},
 *         {"out", ED_CLI_STR, &out, "FILE", "model file to write", "EDISTILL_OUT", true},
 *     };
 *     ed_cli_spec spec = {"teacher_worker train", "Train one ensemble member.", opts, 2, NULL};
 *     int rc = ed_cli_parse(&spec, argc, argv, &err);  // 1: help printed; < 0: err.msg says why
 */
#ifndef ED_CLI_H
#define ED_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "ed_error.h"

typedef enum {
    ED_CLI_STR,   /* char ** (points into argv / environ; not copied) */
    ED_CLI_INT,   /* int * */
    ED_CLI_LONG,  /* long * */
    ED_CLI_U64,   /* uint64_t * */
    ED_CLI_FLOAT, /* float * */
    ED_CLI_FLAG,  /* bool *: set to true when present, takes no value */
    ED_CLI_TYPE_COUNT
} ed_cli_type;

typedef struct {
    const char *name; /* long name without the leading "--" */
    ed_cli_type type;
    void *target;
    const char *metavar; /* shown in help: "N", "FILE" */
    const char *help;
    const char *env; /* environment variable giving a default, or NULL */
    bool required;   /* must be set by argv or env */
} ed_cli_opt;

typedef struct {
    const char *usage;   /* "teacher_worker train [options]" */
    const char *summary; /* one paragraph shown under the usage line */
    const ed_cli_opt *opts;
    int n_opts;
    const char *epilog; /* examples, or NULL */
} ed_cli_spec;

/* Parses argv[1..argc-1] ("--name value", "--name=value", "--flag", "-h"/"--help").
 * Returns 0 on success, 1 when help was printed to stdout (the caller exits 0), or ED_EINVAL with
 * err naming the option and the bad value (unknown option, missing value, unparsable or
 * out-of-range number, missing required option, stray positional argument). */
int ed_cli_parse(const ed_cli_spec *spec, int argc, char **argv, ed_err *err);

void ed_cli_print_help(const ed_cli_spec *spec, FILE *out);

/* ed_cli_parse for a command's entry point: returns true when the command should go on; false when
 * it should return *exit_code: 0 after --help, 2 after a bad option (reported on stderr as
 * "NAME: reason"). */
bool ed_cli_parse_command(const ed_cli_spec *spec, const char *name, int argc, char **argv,
                          int *exit_code);

/* The one way a command reports the error that ends it: "COMMAND: message" on stderr, the message
 * of err (or the text of its code when the message is empty). The caller then returns its exit
 * status. */
void ed_cli_report(const char *command, const ed_err *err);

/* The same for an error the command words itself (printf format). */
__attribute__((format(printf, 2, 3))) void ed_cli_reportf(const char *command, const char *fmt,
                                                          ...);

/* A subcommand of a program: `program NAME [options]` runs fn(argc - 1, argv + 1). */
typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} ed_cli_command;

/* Runs the subcommand named by argv[1]; prints the program's usage (commands and their one-line
 * help) for --help/-h/help (exit status 0) or when the command is missing or unknown (status 2). */
int ed_cli_dispatch(const char *program, const char *summary, const ed_cli_command *cmds, int n,
                    int argc, char **argv);

#endif
