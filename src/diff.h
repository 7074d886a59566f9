/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_DIFF_H
#define INGESTFS_DIFF_H

/*
 * What changed between two snapshots, in the kernel's terms: names whose
 * meaning changed (entry invalidations) and folders whose attributes or
 * listing changed (inode invalidations), for task folders, the root and
 * the views; and which file versions (node ids) went away.  Pure: reads
 * two immutable snapshots, calls back, keeps nothing.  The caller
 * (cache.c) turns the calls into fuse_lowlevel_notify_* without a lock.
 */

#include <stddef.h>
#include <stdint.h>

#include "snapshot.h"

struct snap_diff_ops {
	/* the name @name in folder @parent now means something else */
	void (*entry)(void *arg, uint64_t parent, const char *name, size_t len);
	/* the attributes or listing of folder @nodeid changed */
	void (*inode)(void *arg, uint64_t nodeid);
};

/*
 * diff_snapshots - report every change from @old to @new through @ops:
 * each added, removed or changed name, and each folder whose listing or
 * attributes changed (the root last).  Returns the number of calls.
 */
size_t diff_snapshots(const struct snapshot *old, const struct snapshot *new,
		      const uint64_t hash_key[2], const struct snap_diff_ops *ops, void *arg);

/*
 * diff_for_each_gone - call @fn for each file node id of @old that
 * @new no longer has (its content changed or it went away).
 */
void diff_for_each_gone(const struct snapshot *old, const struct snapshot *new,
			void (*fn)(void *arg, const struct snapshot *old,
				   const struct snap_node *node),
			void *arg);

#endif
