/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_LOG_H
#define INGESTFS_LOG_H

#include <stdbool.h>
#include <syslog.h>
#include <time.h>

/*
 * log_init - choose where messages go: stderr (foreground) or syslog
 * (LOG_DAEMON, ident "ingestfs"); with @debug, log_debug lines are kept.
 * Also routes libfuse's own messages through log_msg.  Not thread-safe:
 * call before any thread starts.
 */
void log_init(bool use_syslog, bool debug);

/* log_debug_enabled - true when -d was given; cheap, lock-free */
bool log_debug_enabled(void);

/* log_msg - one line at syslog priority @prio; no trailing newline needed */
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...)  log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                   \
	do {                                             \
		if (log_debug_enabled())                 \
			log_msg(LOG_DEBUG, __VA_ARGS__); \
	} while (0)

/* clock_ms - milliseconds of @id (CLOCK_THREAD_CPUTIME_ID, CLOCK_MONOTONIC),
 * for the timings that log lines and .status report */
static inline double clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

#endif
