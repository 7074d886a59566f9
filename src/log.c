// SPDX-License-Identifier: MIT
/* Logging: stderr in the foreground, syslog once daemonized. */
#include "log.h"

#include <fuse_log.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static bool log_syslog;
static bool log_debug_on;

__attribute__((format(printf, 2, 0))) static void log_vmsg(int prio, const char *fmt, va_list ap)
{
	char line[1024];
	size_t len;

	if (prio == LOG_DEBUG && !log_debug_on)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	/* libfuse ends its messages with a newline; we add our own */
	len = strlen(line);
	while (len > 0 && line[len - 1] == '\n')
		line[--len] = '\0';
	if (log_syslog)
		syslog(prio, "%s", line);
	else
		fprintf(stderr, "ingestfs: %s\n", line);
}

void log_msg(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(prio, fmt, ap);
	va_end(ap);
}

/*
 * libfuse sometimes builds one message from several calls; collect the
 * pieces until a newline so each message stays one line.
 */
__attribute__((format(printf, 2, 0))) static void log_fuse(enum fuse_log_level level,
							   const char *fmt, va_list ap)
{
	static __thread char pending[1024];
	static __thread size_t used;
	int n;

	n = vsnprintf(pending + used, sizeof(pending) - used, fmt, ap);
	if (n > 0)
		used += (size_t)n < sizeof(pending) - used ? (size_t)n : sizeof(pending) - 1 - used;
	if (used == 0 || (pending[used - 1] != '\n' && used < sizeof(pending) - 1))
		return;
	/* fuse_log_level uses syslog's numbering */
	log_msg((int)level, "%s", pending);
	used = 0;
	pending[0] = '\0';
}

void log_init(bool use_syslog, bool debug)
{
	log_debug_on = debug;
	if (use_syslog && !log_syslog)
		openlog("ingestfs", LOG_PID, LOG_DAEMON);
	log_syslog = use_syslog;
	fuse_set_log_func(log_fuse);
}

bool log_debug_enabled(void)
{
	return log_debug_on;
}
