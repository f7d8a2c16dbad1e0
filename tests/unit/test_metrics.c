/* test_metrics: the Prometheus registry (exposition text byte for byte, escaping, histogram
 * buckets, name rules, get-or-create, concurrent atomic updates), the --metrics-listen parser and
 * the JSON log format (parsed back with cJSON). promtool and a real Prometheus check the same
 * output end to end in tests/e2e/metrics.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "ed_http.h"
#include "ed_log.h"
#include "ed_metrics.h"
#include "tu.h"

static void test_render_exact(void **state)
{
    (void)state;
    ed_metrics *r = ed_metrics_new();
    ed_err err = {0};
    ed_label a = {"kind", "logit"}, b = {"kind", "info"};
    ed_metric *c1 = ed_metrics_counter(r, "x_requests_total", "Requests.", &a, 1, &err);
    ed_metric *c2 = ed_metrics_counter(r, "x_requests_total", "Requests.", &b, 1, &err);
    assert_non_null(c1);
    assert_non_null(c2);
    assert_ptr_equal(ed_metrics_counter(r, "x_requests_total", "Requests.", &a, 1, &err), c1);
    ed_metric *g = ed_metrics_gauge(r, "x_depth", "Depth\\of\nqueue.", NULL, 0, &err);
    double bounds[] = {0.5, 1, 2.5};
    ed_metric *h = ed_metrics_histogram(r, "x_seconds", "Latency.", NULL, 0, bounds, 3, &err);
    assert_non_null(h);
    ed_metric_inc(c1);
    ed_metric_add(c1, 2);
    ed_metric_add(c1, -5); /* ignored: counters never go down */
    ed_metric_set(g, -1.25);
    ed_metric_observe(h, 0.5); /* le is inclusive */
    ed_metric_observe(h, 0.75);
    ed_metric_observe(h, 100);
    char *text = ed_metrics_render(r, NULL);
    const char *want = "# HELP x_requests_total Requests.\n"
                       "# TYPE x_requests_total counter\n"
                       "x_requests_total{kind=\"logit\"} 3\n"
                       "x_requests_total{kind=\"info\"} 0\n"
                       "# HELP x_depth Depth\\\\of\\nqueue.\n"
                       "# TYPE x_depth gauge\n"
                       "x_depth -1.25\n"
                       "# HELP x_seconds Latency.\n"
                       "# TYPE x_seconds histogram\n"
                       "x_seconds_bucket{le=\"0.5\"} 1\n"
                       "x_seconds_bucket{le=\"1\"} 2\n"
                       "x_seconds_bucket{le=\"2.5\"} 2\n"
                       "x_seconds_bucket{le=\"+Inf\"} 3\n"
                       "x_seconds_sum 101.25\n"
                       "x_seconds_count 3\n";
    assert_string_equal(text, want);
    assert_true(ed_metric_value(h) == 3.0);
    free(text);
    ed_metrics_destroy(&r);
    assert_null(r);
    ed_metric_inc(NULL); /* metrics off: every update is a no-op */
    ed_metric_observe(NULL, 1);
}

static void test_escaping(void **state)
{
    (void)state;
    ed_metrics *r = ed_metrics_new();
    ed_err err = {0};
    ed_label l[] = {{"member", "a\"b\\c\nd\xff\xc3\xa9"}, {"arch", ""}};
    assert_non_null(ed_metrics_gauge(r, "x_info", "Info.", l, 2, &err));
    char *text = ed_metrics_render(r, NULL);
    assert_non_null(strstr(text, "x_info{member=\"a\\\"b\\\\c\\nd?\xc3\xa9\",arch=\"\"} 0\n"));
    free(text);
    ed_metrics_destroy(&r);
}

static void test_rules(void **state)
{
    (void)state;
    ed_metrics *r = ed_metrics_new();
    ed_err err = {0};
    ed_label good = {"kind", "a"}, other = {"code", "a"}, le = {"le", "1"}, dunder = {"__x", "1"};
    assert_null(ed_metrics_counter(r, "x_requests", "no suffix", NULL, 0, &err));
    assert_int_equal(err.code, ED_EINVAL);
    assert_non_null(strstr(err.msg, "_total"));
    assert_null(ed_metrics_gauge(r, "9bad", "", NULL, 0, &err));
    assert_null(ed_metrics_gauge(r, "bad-name", "", NULL, 0, &err));
    assert_null(ed_metrics_gauge(r, "x_g", "", &le, 1, &err));
    assert_null(ed_metrics_gauge(r, "x_g", "", &dunder, 1, &err));
    assert_non_null(ed_metrics_gauge(r, "x_g", "", &good, 1, &err));
    assert_null(ed_metrics_gauge(r, "x_g", "", &other, 1, &err)); /* other label names */
    assert_non_null(strstr(err.msg, "x_g"));
    double down[] = {2, 1}, inf[] = {1, 1.0 / 0.0};
    assert_null(ed_metrics_histogram(r, "x_h", "", NULL, 0, down, 2, &err));
    assert_null(ed_metrics_histogram(r, "x_h", "", NULL, 0, inf, 2, &err));
    assert_null(ed_metrics_gauge(NULL, "x_off", "", NULL, 0, &err)); /* metrics off */
    ed_metrics_destroy(&r);
}

static ed_metric *s_shared;
static void *s_adder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000; i++) {
        ed_metric_inc(s_shared);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    ed_metrics *r = ed_metrics_new();
    s_shared = ed_metrics_counter(r, "x_total", "", NULL, 0, NULL);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, s_adder, NULL), 0);
    for (int i = 0; i < 50; i++) { /* scrapes while the counter moves */
        char *text = ed_metrics_render(r, NULL);
        assert_non_null(text);
        free(text);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_true(ed_metric_value(s_shared) == 400000.0);
    ed_metrics_destroy(&r);
}

static void test_listen_parse(void **state)
{
    (void)state;
    char host[64];
    int port = -1;
    ed_err err = {0};
    assert_int_equal(ed_http_parse_listen("9100", host, sizeof host, &port, &err), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 9100);
    assert_int_equal(ed_http_parse_listen("0.0.0.0:0", host, sizeof host, &port, &err), 0);
    assert_string_equal(host, "0.0.0.0");
    assert_int_equal(port, 0);
    assert_int_equal(ed_http_parse_listen("localhost:80", host, sizeof host, &port, &err), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(ed_http_parse_listen("[::1]:9", host, sizeof host, &port, &err), 0);
    assert_string_equal(host, "::1");
    const char *bad[] = {
        "",       "65536",  "-1",       "x",         ":9", "1.2.3:9", "host.example:9",
        "[::1]9", "[zz]:9", "1.2.3.4:", "1.2.3.4:+5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ed_http_parse_listen(bad[i], host, sizeof host, &port, &err), ED_EINVAL);
        assert_non_null(strstr(err.msg, "--metrics-listen"));
    }
}

static void test_json_log(void **state)
{
    (void)state;
    char *path = tu_temp_path(".log");
    fflush(stderr);
    int saved = dup(2);
    FILE *f = freopen(path, "w", stderr);
    assert_non_null(f);
    ed_log_init("test_metrics");
    ed_log_set_format(ED_LOG_JSON);
    ed_log_set_field("member", "m\"0");
    ed_log_info("quote \" backslash \\ newline\n end");
    ed_log_set_field("member", NULL);
    ed_log_warn("second");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ed_log_set_format(ED_LOG_TEXT);
    size_t n = 0;
    char *raw = tu_read_file(path, &n);
    assert_non_null(raw);
    char *text = calloc(n + 1, 1); /* tu_read_file does not NUL-terminate */
    assert_non_null(text);
    memcpy(text, raw, n);
    free(raw);
    char *nl = strchr(text, '\n');
    assert_non_null(nl);
    *nl = '\0';
    cJSON *o = cJSON_Parse(text);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "message")->valuestring,
                        "quote \" backslash \\ newline\n end");
    assert_string_equal(cJSON_GetObjectItem(o, "level")->valuestring, "info");
    assert_string_equal(cJSON_GetObjectItem(o, "program")->valuestring, "test_metrics");
    assert_string_equal(cJSON_GetObjectItem(o, "member")->valuestring, "m\"0");
    assert_true(cJSON_GetObjectItem(o, "pid")->valuedouble == (double)getpid());
    assert_int_equal(strlen(cJSON_GetObjectItem(o, "time")->valuestring), 24);
    cJSON_Delete(o);
    o = cJSON_Parse(nl + 1);
    assert_non_null(o);
    assert_null(cJSON_GetObjectItem(o, "member"));
    assert_string_equal(cJSON_GetObjectItem(o, "level")->valuestring, "warn");
    cJSON_Delete(o);
    free(text);
    unlink(path);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_exact), cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_rules),        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_listen_parse), cmocka_unit_test(test_json_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
