/* lib/log.h: leveled logging to stderr (journald captures it under systemd).
 *
 * Each .c file that logs defines LOG_CATEGORY before including this header.
 * Functions that handle an error log it once with log_error_errno(), which
 * also returns the code. lib/ itself logs at debug level only. A hook lets the
 * daemon forward records as "logging" events; it is called with the log lock
 * not held and must be thread-safe. */
#pragma once

#include "lib/macros.h"

enum berth_log_level {
	BERTH_LOG_ERROR,
	BERTH_LOG_WARN,
	BERTH_LOG_INFO,
	BERTH_LOG_DEBUG,
	BERTH_LOG_MAX,
};

#ifndef LOG_CATEGORY
#define LOG_CATEGORY "berth"
#endif

typedef void (*berth_log_hook_fn)(enum berth_log_level level, const char *category, const char *msg,
				  void *data);

void berth_log_set_level(enum berth_log_level level);
enum berth_log_level berth_log_get_level(void);
void berth_log_set_hook(berth_log_hook_fn hook, void *data);
/* Parse "error", "warn", "info", "debug"; -EINVAL otherwise. */
int berth_log_level_parse(const char *s, enum berth_log_level *ret);
const char *berth_log_level_name(enum berth_log_level level);

/* Returns `ret` unchanged so callers can `return log_...(r, ...)`. */
int berth_log(enum berth_log_level level, const char *category, int ret, const char *fmt, ...)
	_printf_(4, 5);

#define log_error(...) berth_log(BERTH_LOG_ERROR, LOG_CATEGORY, 0, __VA_ARGS__)
#define log_warn(...) berth_log(BERTH_LOG_WARN, LOG_CATEGORY, 0, __VA_ARGS__)
#define log_info(...) berth_log(BERTH_LOG_INFO, LOG_CATEGORY, 0, __VA_ARGS__)
#define log_debug(...) berth_log(BERTH_LOG_DEBUG, LOG_CATEGORY, 0, __VA_ARGS__)
#define log_error_errno(r, ...) berth_log(BERTH_LOG_ERROR, LOG_CATEGORY, (r), __VA_ARGS__)
#define log_warn_errno(r, ...) berth_log(BERTH_LOG_WARN, LOG_CATEGORY, (r), __VA_ARGS__)
