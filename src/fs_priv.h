/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_FS_PRIV_H
#define INGESTFS_FS_PRIV_H

/*
 * Internals of the FUSE side, shared by the fs_*.c files and included by
 * nothing else; main.c and the tests see only fs.h.  These files know the
 * cache's public API and snapshot.h's node id rules, never the network.
 * struct fs belongs to main.c (fs_new, fs_free); a handler borrows it as
 * the request's userdata.  The fs files have no lock of their own: a
 * snapshot comes referenced from cache_acquire() (the handler puts it), or
 * borrowed between cache_lock() and cache_unlock(), and a file node id
 * handed to the kernel is counted with cache_ref_locked() under that lock
 * and given back with cache_forget() when the reply fails.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "fs.h"

/*
 * Kernel cache lifetime, s.  Long is safe: node ids of files are never
 * reused for other bytes, and folders are invalidated when they change.
 */
#define FS_CACHE_TIMEOUT 86400.0

/*
 * How long the kernel may keep a name (or its absence) taken from @s:
 * a day, or not at all while a newer snapshot is being put in place
 * (cache_retire: the names it changes are being forgotten, and must not
 * be learnt again from @s).
 */
static inline double fs_entry_timeout(const struct snapshot *s)
{
	return atomic_load(&s->retiring) ? 0 : FS_CACHE_TIMEOUT;
}

/* fs_push.c: a folder's other files stored into the page cache */
/* one reader (a thread, by the pid a request carries) and its last folder */
struct fs_push_reader {
	pid_t pid;     /* 0: a free slot */
	unsigned read; /* its files read, a bit per kind */
	bool pushed;   /* its files were pushed (or two were read) */
	uint64_t key;  /* the folder of the reader's last read from a file's start */
	uint64_t used; /* when last seen: the least recently seen slot is reused */
};

#define FS_PUSH_READERS 8

struct fs_push {
	bool on;	      /* more than one worker thread: fs_set_push() */
	pthread_mutex_t mu;   /* the readers, below */
	pthread_mutex_t busy; /* held by the one push under way */
	uint64_t tick;
	struct fs_push_reader reader[FS_PUSH_READERS];
	atomic_ulong stored; /* files stored: said at exit with -d */
};

struct fs {
	struct fs_push push;
	bool no_open;	 /* the kernel takes ENOSYS from open: set in init */
	bool no_opendir; /* ...and from opendir */
	struct cache *cache;
	struct fuse_session *se;
	uid_t uid;
	gid_t gid;
};

static inline struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* ---- what a node id is, and its attributes (fs.c) ---- */

enum node_type {
	NODE_ROOT,
	NODE_VIEW_ROOT,
	NODE_TASK,
	NODE_LINK,
	NODE_VALUE,
	NODE_FILE,
	NODE_NONE
};

enum node_type fs_node_type(uint64_t nodeid);
/* fs_find_value_node - the value folder @nodeid names, borrowed from @s; or NULL */
const struct snap_value *fs_find_value_node(const struct snapshot *s, uint64_t nodeid,
					    enum snap_view_kind *view);

/* The fill helpers overwrite all of *@st; fs_fill_entry sets *@e's node id and timeouts. */
/* times: nanoseconds, or whole seconds for a task's own timestamp */
struct timespec fs_time_ns(int64_t ns);
struct timespec fs_time_s(int64_t s);
void fs_fill_dir(const struct fs *fs, struct stat *st, uint64_t ino, struct timespec mtime,
		 size_t subdirs);
void fs_fill_file(const struct fs *fs, struct stat *st, uint64_t ino, struct timespec mtime,
		  size_t size);
void fs_fill_task_file(const struct fs *fs, struct stat *st, const struct snap_task *t,
		       enum snap_kind kind);
void fs_fill_link(const struct fs *fs, struct stat *st, enum snap_view_kind view,
		  const struct snap_task *t);
void fs_fill_view_dir(const struct fs *fs, struct stat *st, uint64_t ino, const struct snapshot *s);
void fs_fill_entry(struct fuse_entry_param *e, uint64_t nodeid, double entry_timeout);

/* ---- handlers for the operation table in fs.c ---- */

/* fs_lookup.c */
void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);

/* fs_push.c: after a read from the start of @t's file @kind, before the reply */
void fs_push_siblings(struct fs *fs, pid_t pid, const struct snapshot *s, const struct snap_task *t,
		      enum snap_kind kind);

/* fs_dir.c */
void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);

/* fs_ro.c */
void fs_statfs(fuse_req_t req, fuse_ino_t ino);
void fs_erofs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		      struct fuse_file_info *fi);
void fs_erofs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void fs_erofs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void fs_erofs_name(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_erofs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void fs_erofs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		     const char *newname, unsigned int flags);
void fs_erofs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void fs_erofs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi);
void fs_erofs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     struct fuse_file_info *fi);
void fs_erofs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		       size_t size, int flags);
void fs_erofs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);
void fs_erofs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			struct fuse_file_info *fi);

#endif
