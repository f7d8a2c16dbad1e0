/*
 * ed_log: leveled logging to stderr with a timestamp and the program name.
 *
 * The level comes from ed_log_set_level() or the EDISTILL_LOG environment variable
 * (debug, info, warn, error; default info). The format comes from EDISTILL_LOG_FORMAT: `text`
 * (default: "12:00:00.123 teacher_worker info: message") or `json`: one object per line,
 *     {"time":"2026-12-03T12:00:00.123Z","level":"info","program":"teacher_worker","pid":42,
 *      "message":"...","member":"m0","endpoint":"tcp://..."}
 * written with cJSON (so any bytes in a message are escaped), with the context fields set by
 * ed_log_set_field. Thread-safe: each record is one fprintf.
 */
#ifndef ED_LOG_H
#define ED_LOG_H

typedef enum {
    ED_LOG_DEBUG,
    ED_LOG_INFO,
    ED_LOG_WARN,
    ED_LOG_ERROR,
    ED_LOG_LEVEL_COUNT
} ed_log_level;

typedef enum { ED_LOG_TEXT, ED_LOG_JSON } ed_log_format;

#define ED_LOG_MAX_FIELDS 8

/* Sets the program name shown in each record and reads EDISTILL_LOG and EDISTILL_LOG_FORMAT (an
 * unknown value is reported once on stderr and the default kept). Call once from main(). */
void ed_log_init(const char *program);

void ed_log_set_level(ed_log_level level);

void ed_log_set_format(ed_log_format format);

/* Adds or replaces a context field of every later JSON record ("member", "endpoint"); value NULL
 * removes it. Key and value are copied. Ignored when ED_LOG_MAX_FIELDS are already set. The text
 * format does not show fields. */
void ed_log_set_field(const char *key, const char *value);

int ed_log_enabled(ed_log_level level);

void ed_log(ed_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ed_log_debug(...) ed_log(ED_LOG_DEBUG, __VA_ARGS__)
#define ed_log_info(...) ed_log(ED_LOG_INFO, __VA_ARGS__)
#define ed_log_warn(...) ed_log(ED_LOG_WARN, __VA_ARGS__)
#define ed_log_error(...) ed_log(ED_LOG_ERROR, __VA_ARGS__)

#endif
