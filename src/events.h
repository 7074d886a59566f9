/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_EVENTS_H
#define INGESTFS_EVENTS_H

/*
 * The change feed's lines: what changed from one snapshot to the next,
 * one tab-separated line per change:
 *
 *   TIME \t ID \t KIND \t FIELD \t OLD \t NEW \n
 *
 * TIME is the refresh's, ISO 8601 UTC to the second.  KIND is added,
 * removed or changed.  FIELD is state, operation or timestamp for a
 * changed field, and - for a whole task (added, removed).  An added task
 * shows its state as NEW, a removed one its last state as OLD.
 *
 * Values are escaped so that no value can forge a field or a line: a
 * backslash is \\, a tab \t, a newline \n, a carriage return \r, any other
 * byte below 0x20 and 0x7f \xHH.  A missing value (no such field, or the
 * side of an added or removed task that has none) is a lone -, and a value
 * that is exactly - is written \-.
 *
 * Pure: snapshots in, bytes out; no clock, no I/O, no locks.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapshot.h"

struct events_buf {
	char *p; /* malloc'd; the caller frees */
	size_t len, cap;
	bool oom; /* an append failed: the buffer is incomplete */
};

/* events_escape - append @len bytes of a value, escaped as above */
void events_escape(struct events_buf *b, const char *s, size_t len);

/*
 * events_lines - append one line per change from @old to @new (both
 * sorted by key, as snapshots are) to @out, stamped @when_ns.  Returns
 * the number of lines; out->oom tells whether all of them fit.  A file
 * changed exactly when its node id changed (snapshot.c keeps the node id
 * of unchanged bytes), so the walk compares ids, not bytes.
 */
size_t events_lines(const struct snapshot *old, const struct snapshot *new, int64_t when_ns,
		    struct events_buf *out);

#endif
