/* ed_cli: table-driven option parsing and generated --help (see ed_cli.h). */
#include "ed_cli.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int s_set_value(const ed_cli_opt *o, const char *value, const char *origin, ed_err *err)
{
    char *end = NULL;
    errno = 0;
    switch (o->type) {
    case ED_CLI_STR:
        *(const char **)o->target = value;
        return 0;
    case ED_CLI_INT: {
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < -2147483647L || v > 2147483647L)
            break;
        *(int *)o->target = (int)v;
        return 0;
    }
    case ED_CLI_LONG: {
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end)
            break;
        *(long *)o->target = v;
        return 0;
    }
    case ED_CLI_U64: {
        if (value[0] == '-')
            break;
        unsigned long long v = strtoull(value, &end, 0);
        if (errno || end == value || *end)
            break;
        *(uint64_t *)o->target = (uint64_t)v;
        return 0;
    }
    case ED_CLI_FLOAT: {
        float v = strtof(value, &end);
        if (errno || end == value || *end || !isfinite(v))
            break;
        *(float *)o->target = v;
        return 0;
    }
    case ED_CLI_FLAG: {
        if (!strcmp(value, "1") || !strcmp(value, "true") || !strcmp(value, "yes")) {
            *(bool *)o->target = true;
            return 0;
        }
        if (!strcmp(value, "0") || !strcmp(value, "false") || !strcmp(value, "no") || !*value) {
            *(bool *)o->target = false;
            return 0;
        }
        break;
    }
    default:
        break;
    }
    static const char *const kinds[ED_CLI_TYPE_COUNT] = {"a string",   "an integer",
                                                         "an integer", "a non-negative integer",
                                                         "a number",   "true or false"};
    return ed_err_set(err, ED_EINVAL, "%s --%s: '%s' is not %s", origin, o->name, value,
                      kinds[o->type]);
}

static const ed_cli_opt *s_find(const ed_cli_spec *spec, const char *name, size_t len)
{
    for (int i = 0; i < spec->n_opts; i++)
        if (strlen(spec->opts[i].name) == len && !strncmp(spec->opts[i].name, name, len))
            return &spec->opts[i];
    return NULL;
}

static void s_format_default(const ed_cli_opt *o, char *buf, size_t size)
{
    buf[0] = '\0';
    switch (o->type) {
    case ED_CLI_STR: {
        const char *s = *(const char **)o->target;
        if (s)
            snprintf(buf, size, "%s", s);
        break;
    }
    case ED_CLI_INT:
        snprintf(buf, size, "%d", *(int *)o->target);
        break;
    case ED_CLI_LONG:
        snprintf(buf, size, "%ld", *(long *)o->target);
        break;
    case ED_CLI_U64:
        snprintf(buf, size, "%" PRIu64, *(uint64_t *)o->target);
        break;
    case ED_CLI_FLOAT:
        snprintf(buf, size, "%g", (double)*(float *)o->target);
        break;
    default:
        break;
    }
}

void ed_cli_print_help(const ed_cli_spec *spec, FILE *out)
{
    fprintf(out, "usage: %s\n\n%s\n\noptions:\n", spec->usage, spec->summary);
    for (int i = 0; i < spec->n_opts; i++) {
        const ed_cli_opt *o = &spec->opts[i];
        char left[96];
        if (o->type == ED_CLI_FLAG)
            snprintf(left, sizeof left, "--%s", o->name);
        else
            snprintf(left, sizeof left, "--%s %s", o->name, o->metavar ? o->metavar : "VALUE");
        char def[256];
        s_format_default(o, def, sizeof def);
        fprintf(out, "  %-28s %s", left, o->help);
        if (o->required)
            fprintf(out, " (required)");
        else if (def[0])
            fprintf(out, " [default: %s]", def);
        if (o->env)
            fprintf(out, " [env: %s]", o->env);
        fputc('\n', out);
    }
    fprintf(out, "  %-28s %s\n", "-h, --help", "show this help and exit");
    if (spec->epilog)
        fprintf(out, "\n%s\n", spec->epilog);
}

int ed_cli_parse(const ed_cli_spec *spec, int argc, char **argv, ed_err *err)
{
    int n = spec->n_opts;
    bool seen_buf[128] = {false};
    if (n > 128)
        return ed_err_set(err, ED_EINVAL, "%s: too many options in table", spec->usage);

    for (int i = 0; i < n; i++) {
        const ed_cli_opt *o = &spec->opts[i];
        const char *v = o->env ? getenv(o->env) : NULL;
        if (v && *v) {
            char origin[128];
            snprintf(origin, sizeof origin, "environment %s for", o->env);
            int rc = s_set_value(o, v, origin, err);
            if (rc)
                return rc;
            seen_buf[i] = true;
        }
    }

    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            ed_cli_print_help(spec, stdout);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0 || !arg[2])
            return ed_err_set(err, ED_EINVAL, "unexpected argument '%s' (see --help)", arg);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const ed_cli_opt *o = s_find(spec, name, len);
        if (!o)
            return ed_err_set(err, ED_EINVAL, "unknown option '--%.*s' (see --help)", (int)len,
                              name);
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (o->type == ED_CLI_FLAG) {
            value = "true";
        } else {
            if (a + 1 >= argc)
                return ed_err_set(err, ED_EINVAL, "option --%s needs a value (%s)", o->name,
                                  o->metavar ? o->metavar : "VALUE");
            value = argv[++a];
        }
        int rc = s_set_value(o, value, "option", err);
        if (rc)
            return rc;
        seen_buf[o - spec->opts] = true;
    }

    for (int i = 0; i < n; i++) {
        const ed_cli_opt *o = &spec->opts[i];
        if (o->required && !seen_buf[i]) {
            if (o->env)
                return ed_err_set(err, ED_EINVAL,
                                  "missing required option --%s (or environment %s)", o->name,
                                  o->env);
            return ed_err_set(err, ED_EINVAL, "missing required option --%s", o->name);
        }
    }
    return 0;
}

bool ed_cli_parse_command(const ed_cli_spec *spec, const char *name, int argc, char **argv,
                          int *exit_code)
{
    ed_err err = {0};
    int rc = ed_cli_parse(spec, argc, argv, &err);
    if (rc == 0)
        return true;
    if (rc < 0)
        ed_cli_report(name, &err);
    *exit_code = rc == 1 ? 0 : 2;
    return false;
}

void ed_cli_report(const char *command, const ed_err *err)
{
    const char *msg = err && err->msg[0] ? err->msg : ed_strerror(err ? err->code : ED_EINVAL);
    fprintf(stderr, "%s: %s\n", command, msg);
}

void ed_cli_reportf(const char *command, const char *fmt, ...)
{
    ed_err err = {0};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.msg, sizeof err.msg, fmt, ap);
    va_end(ap);
    err.code = ED_EINVAL;
    ed_cli_report(command, &err);
}

static void s_usage(const char *program, const char *summary, const ed_cli_command *cmds, int n,
                    FILE *out)
{
    fprintf(out, "usage: %s COMMAND [options]\n\n%s\n\ncommands:\n", program, summary);
    for (int i = 0; i < n; i++)
        fprintf(out, "  %-8s %s\n", cmds[i].name, cmds[i].help);
    fprintf(out, "\nRun '%s COMMAND --help' for the options of a command.\n", program);
}

int ed_cli_dispatch(const char *program, const char *summary, const ed_cli_command *cmds, int n,
                    int argc, char **argv)
{
    if (argc < 2) {
        s_usage(program, summary, cmds, n, stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        s_usage(program, summary, cmds, n, stdout);
        return 0;
    }
    for (int i = 0; i < n; i++)
        if (!strcmp(argv[1], cmds[i].name))
            return cmds[i].fn(argc - 1, argv + 1);
    ed_cli_reportf(program, "unknown command '%s' (see %s --help)", argv[1], program);
    return 2;
}
