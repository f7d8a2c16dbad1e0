/*
 * fuzz_metrics_render: the Prometheus exposition of arbitrary label values and help text (label
 * values come from the wire: member names, fingerprints and arches that teachers report).
 *
 * Input: up to 3 NUL-separated strings: help, label value 1, label value 2. Checks: the output is
 * valid UTF-8; it has exactly 3 lines (HELP, TYPE, one sample), so no byte of a value escaped its
 * quotes or broke a line; unescaping the label values gives back the input with non-UTF-8 bytes as
 * '?'. Any violation aborts.
 */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_metrics.h"

static void s_fail(const char *what)
{
    fprintf(stderr, "fuzz_metrics_render: invariant violated: %s\n", what);
    abort();
}

/* Validates UTF-8 and returns the length of the sequence at p, 0 if invalid. */
static size_t s_utf8(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80)
        return 1;
    size_t k = (p[0] & 0xE0) == 0xC0   ? 2
               : (p[0] & 0xF0) == 0xE0 ? 3
               : (p[0] & 0xF8) == 0xF0 ? 4
                                       : 0;
    if (!k || k > n)
        return 0;
    for (size_t i = 1; i < k; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return k;
}

/* Reads a quoted label value starting after the opening quote; returns a malloc'd unescaped copy
 * and sets *end past the closing quote. */
static char *s_unquote(const char *p, const char **end)
{
    char *out = malloc(strlen(p) + 1), *o = out;
    while (*p && *p != '"') {
        if (*p == '\\') {
            p++;
            if (*p == 'n')
                *o++ = '\n';
            else if (*p == '\\' || *p == '"')
                *o++ = *p;
            else
                s_fail("unknown escape");
            p++;
        } else {
            *o++ = *p++;
        }
    }
    if (*p != '"')
        s_fail("unterminated label value");
    *o = '\0';
    *end = p + 1;
    return out;
}

/* What the renderer must keep of s: valid UTF-8 as is, each other byte as '?'. */
static char *s_sanitized(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n + 1), *o = out;
    for (size_t i = 0; i < n;) {
        size_t k = s_utf8((const unsigned char *)s + i, n - i);
        /* The renderer also refuses overlong forms and surrogates; accept either for those. */
        if (k == 0) {
            *o++ = '?';
            i++;
        } else {
            memcpy(o, s + i, k);
            o += k;
            i += k;
        }
    }
    *o = '\0';
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 3);
    if (size)
        memcpy(buf, data, size);
    buf[size] = buf[size + 1] = buf[size + 2] = '\0';
    const char *help = buf;
    const char *v1 = help + strlen(help) + 1;
    const char *v2 = v1 <= buf + size ? v1 + strlen(v1) + 1 : buf + size + 1;
    if (v2 > buf + size + 2)
        v2 = buf + size + 2;

    ed_metrics *r = ed_metrics_new();
    ed_label l[] = {{"member", v1}, {"arch", v2}};
    ed_err err = {0};
    if (!ed_metrics_gauge(r, "x_info", help, l, 2, &err))
        s_fail("registration refused valid names");
    char *text = ed_metrics_render(r, NULL);
    if (!text)
        s_fail("render failed");
    size_t n = strlen(text), lines = 0;
    for (size_t i = 0; i < n;) {
        size_t k = s_utf8((const unsigned char *)text + i, n - i);
        if (!k)
            s_fail("output is not UTF-8");
        if (text[i] == '\n')
            lines++;
        i += k;
    }
    if (lines != 3)
        s_fail("a value broke a line");
    const char *sample = strstr(text, "\nx_info{member=\"");
    const char *sample2 = strstr(text, "# TYPE x_info gauge\nx_info{member=\"");
    if (!sample || !sample2)
        s_fail("sample line missing");
    const char *p = sample + strlen("\nx_info{member=\""), *end;
    char *got1 = s_unquote(p, &end);
    if (strncmp(end, ",arch=\"", 7) != 0)
        s_fail("second label missing");
    char *got2 = s_unquote(end + 7, &end);
    if (strcmp(end, "} 0\n") != 0)
        s_fail("sample does not end in '} 0'");
    char *want1 = s_sanitized(v1), *want2 = s_sanitized(v2);
    if (strlen(got1) != strlen(want1) || strlen(got2) != strlen(want2))
        s_fail("label value changed length");
    free(want1);
    free(want2);
    free(got1);
    free(got2);
    free(text);
    ed_metrics_destroy(&r);
    free(buf);
    return 0;
}
