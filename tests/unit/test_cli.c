/* test_cli: table-driven option parsing: values, env defaults, errors that name the option. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ed_cli.h"

typedef struct {
    const char *out;
    int epochs;
    long steps;
    uint64_t seed;
    float lr;
    bool quiet;
} s_opts;

static int s_parse(s_opts *o, int argc, char **argv, ed_err *err)
{
    const ed_cli_opt opts[] = {
        {"out", ED_CLI_STR, &o->out, "FILE", "output", "TEST_CLI_OUT", true},
        {"epochs", ED_CLI_INT, &o->epochs, "N", "epochs", NULL, false},
        {"steps", ED_CLI_LONG, &o->steps, "N", "steps", NULL, false},
        {"seed", ED_CLI_U64, &o->seed, "N", "seed", NULL, false},
        {"lr", ED_CLI_FLOAT, &o->lr, "X", "lr", NULL, false},
        {"quiet", ED_CLI_FLAG, &o->quiet, NULL, "quiet", NULL, false},
    };
    ed_cli_spec spec = {"test", "A test.", opts, 6, NULL};
    return ed_cli_parse(&spec, argc, argv, err);
}

static void test_values(void **state)
{
    (void)state;
    unsetenv("TEST_CLI_OUT");
    s_opts o = {.epochs = 3, .lr = 0.5f};
    char *argv[] = {"t",      "--out", "a.st", "--epochs=7", "--steps", "-1",
                    "--seed", "0x10",  "--lr", "1e-3",       "--quiet"};
    ed_err err = {0};
    assert_int_equal(s_parse(&o, 11, argv, &err), 0);
    assert_string_equal(o.out, "a.st");
    assert_int_equal(o.epochs, 7);
    assert_int_equal(o.steps, -1);
    assert_int_equal(o.seed, 16);
    assert_true(o.lr > 0.00099f && o.lr < 0.00101f);
    assert_true(o.quiet);
}

static void test_env_default_and_override(void **state)
{
    (void)state;
    setenv("TEST_CLI_OUT", "from-env", 1);
    s_opts o = {0};
    char *argv1[] = {"t"};
    assert_int_equal(s_parse(&o, 1, argv1, NULL), 0);
    assert_string_equal(o.out, "from-env");
    char *argv2[] = {"t", "--out", "from-argv"};
    assert_int_equal(s_parse(&o, 3, argv2, NULL), 0);
    assert_string_equal(o.out, "from-argv");
    unsetenv("TEST_CLI_OUT");
}

static void test_errors(void **state)
{
    (void)state;
    unsetenv("TEST_CLI_OUT");
    struct {
        int argc;
        char *argv[4];
        const char *msg;
    } cases[] = {
        {1, {"t"}, "missing required option --out (or environment TEST_CLI_OUT)"},
        {3, {"t", "--bogus", "1"}, "unknown option '--bogus'"},
        {2, {"t", "--out"}, "option --out needs a value"},
        {4, {"t", "--out", "x", "--epochs"}, "needs a value"},
        {4, {"t", "--out", "x", "stray"}, "unexpected argument 'stray'"},
        {3, {"t", "--out=x", "--epochs=2.5"}, "--epochs: '2.5' is not an integer"},
        {3, {"t", "--out=x", "--epochs=99999999999"}, "is not an integer"},
        {3, {"t", "--out=x", "--seed=-1"}, "--seed: '-1' is not a non-negative integer"},
        {3, {"t", "--out=x", "--lr=nan"}, "--lr: 'nan' is not a number"},
        {3, {"t", "--out=x", "--quiet=maybe"}, "--quiet: 'maybe' is not true or false"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_opts o = {0};
        ed_err err = {0};
        assert_int_equal(s_parse(&o, cases[i].argc, cases[i].argv, &err), ED_EINVAL);
        if (!strstr(err.msg, cases[i].msg))
            fail_msg("case %zu: message '%s' lacks '%s'", i, err.msg, cases[i].msg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_env_default_and_override),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
