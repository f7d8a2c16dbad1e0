/*
 * ed_log: leveled logging to stderr with a timestamp and the program name.
 *
 * The level comes from ed_log_set_level() or the EDISTILL_LOG environment variable
 * (debug, info, warn, error; default info). Thread-safe: each record is one fprintf.
 */
#ifndef ED_LOG_H
#define ED_LOG_H

typedef enum { ED_LOG_DEBUG, ED_LOG_INFO, ED_LOG_WARN, ED_LOG_ERROR, ED_LOG_LEVEL_COUNT } ed_log_level;

/* Sets the program name shown in each record and reads EDISTILL_LOG. Call once from main(). */
void ed_log_init(const char *program);

void ed_log_set_level(ed_log_level level);

int ed_log_enabled(ed_log_level level);

void ed_log(ed_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ed_log_debug(...) ed_log(ED_LOG_DEBUG, __VA_ARGS__)
#define ed_log_info(...) ed_log(ED_LOG_INFO, __VA_ARGS__)
#define ed_log_warn(...) ed_log(ED_LOG_WARN, __VA_ARGS__)
#define ed_log_error(...) ed_log(ED_LOG_ERROR, __VA_ARGS__)

#endif
