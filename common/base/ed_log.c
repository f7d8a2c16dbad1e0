/* ed_log: leveled stderr logging, text or JSON lines (see ed_log.h). */
#include "ed_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

static const char *s_program = "edistill";
static ed_log_level s_level = ED_LOG_INFO;
static ed_log_format s_format = ED_LOG_TEXT;
static const char *const s_level_names[ED_LOG_LEVEL_COUNT] = {"debug", "info", "warn", "error"};

/* Context fields of JSON records; guarded by s_fields_mu. */
static pthread_mutex_t s_fields_mu = PTHREAD_MUTEX_INITIALIZER;
static char *s_field_keys[ED_LOG_MAX_FIELDS], *s_field_values[ED_LOG_MAX_FIELDS];

void ed_log_init(const char *program)
{
    if (program)
        s_program = program;
    const char *env = getenv("EDISTILL_LOG");
    for (int i = 0; env && i < ED_LOG_LEVEL_COUNT; i++)
        if (strcmp(env, s_level_names[i]) == 0)
            s_level = (ed_log_level)i;
    const char *fmt = getenv("EDISTILL_LOG_FORMAT");
    if (fmt && strcmp(fmt, "json") == 0)
        s_format = ED_LOG_JSON;
    else if (fmt && *fmt && strcmp(fmt, "text") != 0)
        fprintf(stderr, "%s: EDISTILL_LOG_FORMAT='%s' is not text or json; using text\n", s_program,
                fmt);
}

void ed_log_set_level(ed_log_level level)
{
    s_level = level;
}

void ed_log_set_format(ed_log_format format)
{
    s_format = format;
}

void ed_log_set_field(const char *key, const char *value)
{
    if (!key)
        return;
    pthread_mutex_lock(&s_fields_mu);
    int slot = -1;
    for (int i = 0; i < ED_LOG_MAX_FIELDS; i++) {
        if (s_field_keys[i] && strcmp(s_field_keys[i], key) == 0) {
            slot = i;
            break;
        }
        if (!s_field_keys[i] && slot < 0)
            slot = i;
    }
    if (slot >= 0) {
        free(s_field_keys[slot]);
        free(s_field_values[slot]);
        s_field_keys[slot] = value ? strdup(key) : NULL;
        s_field_values[slot] = value ? strdup(value) : NULL;
        if (!s_field_keys[slot] || !s_field_values[slot]) {
            free(s_field_keys[slot]);
            free(s_field_values[slot]);
            s_field_keys[slot] = s_field_values[slot] = NULL;
        }
    }
    pthread_mutex_unlock(&s_fields_mu);
}

int ed_log_enabled(ed_log_level level)
{
    return level >= s_level;
}

/* One JSON line; falls back to the text form when cJSON cannot allocate. */
static int s_log_json(ed_log_level level, const struct timespec *ts, const struct tm *tm,
                      const char *msg)
{
    char when[96];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm->tm_year + 1900,
             tm->tm_mon + 1, tm->tm_mday, tm->tm_hour, tm->tm_min, tm->tm_sec,
             ts->tv_nsec / 1000000);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return -1;
    cJSON_AddStringToObject(o, "time", when);
    cJSON_AddStringToObject(o, "level", s_level_names[level]);
    cJSON_AddStringToObject(o, "program", s_program);
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    cJSON_AddStringToObject(o, "message", msg);
    pthread_mutex_lock(&s_fields_mu);
    for (int i = 0; i < ED_LOG_MAX_FIELDS; i++)
        if (s_field_keys[i] && !cJSON_GetObjectItemCaseSensitive(o, s_field_keys[i]))
            cJSON_AddStringToObject(o, s_field_keys[i], s_field_values[i]);
    pthread_mutex_unlock(&s_fields_mu);
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!line)
        return -1;
    fprintf(stderr, "%s\n", line);
    cJSON_free(line);
    return 0;
}

void ed_log(ed_log_level level, const char *fmt, ...)
{
    if (level < s_level || level >= ED_LOG_LEVEL_COUNT)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    if (s_format == ED_LOG_JSON && s_log_json(level, &ts, &tm, msg) == 0)
        return;
    fprintf(stderr, "%02d:%02d:%02d.%03ld %s %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, s_program, s_level_names[level], msg);
}
