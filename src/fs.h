/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_FS_H
#define INGESTFS_FS_H

#include <fuse_lowlevel.h>
#include <stdbool.h>

#include "cache.h"

/*
 * The FUSE low-level operations.  They read snapshots from the cache and
 * never touch the network.  The kernel may cache everything for a long
 * time: a file's node id always means the same bytes, and the refresher
 * invalidates exactly the names and folders that changed (fs_notify).
 */
struct fs;

/* fs_new - a file system whose files are owned by @uid/@gid; NULL on ENOMEM */
struct fs *fs_new(uid_t uid, gid_t gid);
/* fs_set_cache - the data it serves; call before mounting */
void fs_set_cache(struct fs *fs, struct cache *cache);
void fs_free(struct fs *fs);
/*
 * fs_set_push - whether a reader that reads task folders whole gets their
 * other files stored into the page cache ahead of its reads (fs_push.c);
 * only with more than one worker thread.  Off until set.
 */
void fs_set_push(struct fs *fs, bool on);

/* fs_ops - the operation table; pass the struct fs as userdata */
const struct fuse_lowlevel_ops *fs_ops(void);

/* fs_set_session - where invalidations go; call before cache_start() */
void fs_set_session(struct fs *fs, struct fuse_session *se);

/* fs_notify - callbacks for cache_start() that invalidate kernel caches */
struct cache_notify fs_notify(struct fs *fs);

#endif
