/* ed_log: leveled stderr logging (see ed_log.h). */
#include "ed_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *s_program = "edistill";
static ed_log_level s_level = ED_LOG_INFO;
static const char *const s_level_names[ED_LOG_LEVEL_COUNT] = {"debug", "info", "warn", "error"};

void ed_log_init(const char *program)
{
    if (program)
        s_program = program;
    const char *env = getenv("EDISTILL_LOG");
    if (!env)
        return;
    for (int i = 0; i < ED_LOG_LEVEL_COUNT; i++)
        if (strcmp(env, s_level_names[i]) == 0)
            s_level = (ed_log_level)i;
}

void ed_log_set_level(ed_log_level level)
{
    s_level = level;
}

int ed_log_enabled(ed_log_level level)
{
    return level >= s_level;
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
    fprintf(stderr, "%02d:%02d:%02d.%03ld %s %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, s_program, s_level_names[level], msg);
}
