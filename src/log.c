// SPDX-License-Identifier: MIT
/* Logging: stderr in the foreground, syslog once daemonized. */
#include "log.h"

#include <fuse_log.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static bool log_syslog;
static bool log_debug_on;

static void log_vmsg(int prio, const char *fmt, va_list ap)
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

static void log_fuse(enum fuse_log_level level, const char *fmt, va_list ap)
{
	/* fuse_log_level uses syslog's numbering */
	log_vmsg((int)level, fmt, ap);
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
