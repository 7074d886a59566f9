/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_ARENA_H
#define INGESTFS_ARENA_H

/*
 * A growing byte buffer that a snapshot's strings and file contents are
 * packed into, addressed by 32-bit offsets (so a snapshot's arena is at
 * most 4 GiB).  Every string added ends in a NUL, so ids and names can be
 * used as C strings.  The owner frees buf; there is no lock.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena {
	char *buf; /* malloc'd; moves when it grows */
	size_t len, cap;
};

/*
 * arena_add - append @len bytes of @data (+ "\n" if @nl) and a NUL.
 * Returns the offset, or -E2BIG past 4 GiB, or -ENOMEM.  @data must not
 * point into the arena itself: it may move.
 */
int64_t arena_add(struct arena *a, const char *data, size_t len, bool nl);

#endif
