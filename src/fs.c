// SPDX-License-Identifier: MIT
/* FUSE operations over immutable snapshots: the table, attributes, reads, invalidation. */
#include "fs_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

struct fs *fs_new(uid_t uid, gid_t gid)
{
	struct fs *fs = calloc(1, sizeof(*fs));

	if (!fs)
		return NULL;
	fs->uid = uid;
	fs->gid = gid;
	pthread_mutex_init(&fs->push.mu, NULL);
	pthread_mutex_init(&fs->push.busy, NULL);
	return fs;
}

void fs_free(struct fs *fs)
{
	if (!fs)
		return;
	if (fs->push.on)
		log_debug("pushed %lu files into the page cache", atomic_load(&fs->push.stored));
	pthread_mutex_destroy(&fs->push.mu);
	pthread_mutex_destroy(&fs->push.busy);
	free(fs);
}

void fs_set_push(struct fs *fs, bool on)
{
	fs->push.on = on;
}

void fs_set_cache(struct fs *fs, struct cache *cache)
{
	fs->cache = cache;
}

void fs_set_session(struct fs *fs, struct fuse_session *se)
{
	fs->se = se;
}

/* ---- attributes ---- */

struct timespec fs_time_ns(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };

	if (ts.tv_nsec < 0) {
		ts.tv_sec--;
		ts.tv_nsec += 1000000000;
	}
	return ts;
}

struct timespec fs_time_s(int64_t s)
{
	return (struct timespec){ .tv_sec = s };
}

/* a file's ctime is its mtime: both say when this version was first seen */
static void set_times(struct stat *st, struct timespec t)
{
	st->st_mtim = st->st_ctim = st->st_atim = t;
}

void fs_fill_dir(const struct fs *fs, struct stat *st, uint64_t ino, struct timespec mtime,
		 size_t subdirs)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2 + subdirs;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_blksize = 4096;
	set_times(st, mtime);
}

void fs_fill_file(const struct fs *fs, struct stat *st, uint64_t ino, struct timespec mtime,
		  size_t size)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_size = (off_t)size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	set_times(st, mtime);
}

void fs_fill_task_file(const struct fs *fs, struct stat *st, const struct snap_task *t,
		       enum snap_kind kind)
{
	const struct snap_file *f = &t->file[kind];

	fs_fill_file(fs, st, f->nodeid, fs_time_ns(f->mtime_ns), f->len);
}

void fs_fill_entry(struct fuse_entry_param *e, uint64_t nodeid, double entry_timeout)
{
	e->ino = nodeid;
	e->generation = 0; /* node ids are never reused */
	e->attr_timeout = FS_CACHE_TIMEOUT;
	e->entry_timeout = entry_timeout;
}

/* ---- what a node id is ---- */

enum node_type fs_node_type(uint64_t nodeid)
{
	if (nodeid == SNAP_ROOT_NODEID)
		return NODE_ROOT;
	if (view_of(nodeid) >= 0)
		return NODE_VIEW_ROOT;
	if (nodeid < SNAP_FIRST_FILE_NODEID)
		return NODE_NONE;
	if (!snap_is_dir_nodeid(nodeid))
		return NODE_FILE; /* a file version or a .status version */
	switch (nodeid & 7) {
	case 0:
		return NODE_TASK;
	case SNAP_LOW_LINK + SNAP_VIEW_STATE:
	case SNAP_LOW_LINK + SNAP_VIEW_OPERATION:
		return NODE_LINK;
	case SNAP_LOW_VALUE:
		return NODE_VALUE;
	default:
		return NODE_NONE;
	}
}

/* The value folder a node id names, in whichever view has it. */
const struct snap_value *fs_find_value_node(const struct snapshot *s, uint64_t nodeid,
					    enum snap_view_kind *view)
{
	for (int v = 0; v < SNAP_NVIEWS; v++) {
		const struct snap_value *val =
			view_find_vkey(s, (enum snap_view_kind)v, snap_dir_key(nodeid));

		if (val) {
			*view = (enum snap_view_kind)v;
			return val;
		}
	}
	return NULL;
}

void fs_fill_link(const struct fs *fs, struct stat *st, enum snap_view_kind view,
		  const struct snap_task *t)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = snap_link_nodeid(t->key, view);
	st->st_mode = S_IFLNK | 0777;
	st->st_nlink = 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_size = (off_t)(6 + t->id_len); /* "../../" + id */
	st->st_blksize = 4096;
	set_times(st, fs_time_s(t->mtime));
}

/* A view root or value folder; they change only by invalidation. */
void fs_fill_view_dir(const struct fs *fs, struct stat *st, uint64_t ino, const struct snapshot *s)
{
	fs_fill_dir(fs, st, ino, fs_time_ns(s->views_mtime_ns), 0);
}

/* ---- getattr and read ---- */

/*
 * .events grows in place: its size is never cached (attribute timeout 0),
 * so stat and fstat always show what a read gets.
 */
static void fs_getattr_events(fuse_req_t req, struct fs *fs, uint64_t nodeid)
{
	struct stat st;
	uint64_t len;
	int64_t mtime;
	int ret = cache_feed_stat(fs->cache, nodeid, &len, &mtime);

	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	fs_fill_file(fs, &st, nodeid, fs_time_ns(mtime), len);
	fuse_reply_attr(req, &st, 0);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct snapshot *s = cache_acquire(fs->cache);
	const struct snap_value *val;
	const struct snap_task *t;
	enum snap_view_kind view;
	enum snap_kind kind;
	struct blob *b;
	struct stat st;

	switch (fs_node_type(ino)) {
	case NODE_ROOT:
		fs_fill_dir(fs, &st, SNAP_ROOT_NODEID, fs_time_ns(s->mtime_ns), s->ntasks);
		break;
	case NODE_VIEW_ROOT:
		fs_fill_view_dir(fs, &st, ino, s);
		st.st_nlink += s->view[view_of(ino)].nvalues;
		break;
	case NODE_TASK:
		t = snapshot_find_key(s, snap_dir_key(ino));
		if (!t)
			goto out_enoent;
		fs_fill_dir(fs, &st, ino, fs_time_s(t->mtime), 0);
		break;
	case NODE_LINK:
		t = snapshot_find_key(s, snap_dir_key(ino));
		if (!t)
			goto out_enoent;
		fs_fill_link(fs, &st, (enum snap_view_kind)((ino & 7) - SNAP_LOW_LINK), t);
		break;
	case NODE_VALUE:
		val = fs_find_value_node(s, ino, &view);
		if (!val)
			goto out_enoent;
		fs_fill_view_dir(fs, &st, ino, s);
		break;
	case NODE_FILE:
		if (snap_is_events_nodeid(ino)) {
			snapshot_put(s);
			fs_getattr_events(req, fs, ino);
			return;
		}
		if (snapshot_find_node(s, ino, &t, &kind)) {
			fs_fill_task_file(fs, &st, t, kind);
		} else if ((b = cache_blob_get(fs->cache, ino))) {
			fs_fill_file(fs, &st, b->ino, fs_time_ns(b->mtime_ns), b->len);
			blob_put(b);
		} else {
			goto out_enoent;
		}
		break;
	default:
		goto out_enoent;
	}
	snapshot_put(s);
	fuse_reply_attr(req, &st, FS_CACHE_TIMEOUT);
	return;

out_enoent:
	snapshot_put(s);
	fuse_reply_err(req, ENOENT);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct snapshot *s;
	const struct snap_task *t;
	char target[6 + 256];

	if (fs_node_type(ino) != NODE_LINK) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	s = cache_acquire(fs->cache);
	t = snapshot_find_key(s, snap_dir_key(ino));
	if (!t) {
		snapshot_put(s);
		fuse_reply_err(req, ENOENT);
		return;
	}
	/* the same target in every value folder: the link names the task */
	snprintf(target, sizeof(target), "../../%s", snap_task_id(s, t));
	snapshot_put(s);
	fuse_reply_readlink(req, target);
}

static void reply_slice(fuse_req_t req, const char *data, size_t len, size_t size, off_t off)
{
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if ((uint64_t)off >= len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > len - (size_t)off)
		size = len - (size_t)off;
	fuse_reply_buf(req, data + off, size);
}

/* A read of .events sees whole refreshes' lines: the feed grows only between reads. */
static void fs_read_events(fuse_req_t req, struct fs *fs, uint64_t nodeid, size_t size, off_t off)
{
	char *buf;
	ssize_t n;

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* the feed cannot grow between the read and the kernel taking the reply */
	cache_feed_hold(fs->cache);
	n = cache_feed_read(fs->cache, nodeid, buf, size, (uint64_t)off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	cache_feed_release(fs->cache);
	free(buf);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	const struct snap_task *t;
	enum snap_kind kind;
	struct snapshot *s;
	struct blob *b;

	if (fs_node_type(ino) != NODE_FILE) {
		fuse_reply_err(req, fs_node_type(ino) == NODE_LINK ? EINVAL : EISDIR);
		return;
	}
	if (snap_is_events_nodeid(ino)) {
		fs_read_events(req, fs, ino, size, off);
		return;
	}
	s = cache_acquire(fs->cache);
	if (snapshot_find_node(s, ino, &t, &kind)) {
		char *to_free;
		const char *data = snap_file_read(s, t, kind, &to_free);

		if (data && off == 0)
			fs_push_siblings(fs, fuse_req_ctx(req)->pid, s, t, kind);
		if (data)
			reply_slice(req, data, t->file[kind].len, size, off);
		else
			fuse_reply_err(req, ENOMEM);
		free(to_free);
	} else if ((b = cache_blob_get(fs->cache, ino))) {
		reply_slice(req, b->data, b->len, size, off);
		blob_put(b);
	} else {
		fuse_reply_err(req, ESTALE);
	}
	snapshot_put(s);
}

/*
 * No open or opendir: the kernel then skips those round trips for good and
 * keeps page and readdir caches, which is right since node ids are immutable.
 */
static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (fs_of(req)->no_open) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	/* an older kernel: the same effect, one open at a time */
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (fs_of(req)->no_opendir) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	fi->keep_cache = 1;
	fi->cache_readdir = 1;
	fuse_reply_open(req, fi);
}

/* ---- init and the operation table ---- */

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;

	fs->no_open = (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) != 0;
	fs->no_opendir = (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0;
	if (conn->capable & FUSE_CAP_READDIRPLUS) {
		conn->want |= FUSE_CAP_READDIRPLUS;
		conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	}
	/*
	 * Content changes come with new node ids; mtime must not flush pages.
	 * Not FUSE_CAP_EXPLICIT_INVAL_DATA: .events grows in place, and a
	 * reader that stats the new size must not then read the zeros the
	 * kernel put past the old end of a cached page.  Without it the kernel
	 * drops the pages when it sees the size change; no other file's size
	 * ever changes.
	 */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	conn->want &= ~FUSE_CAP_EXPLICIT_INVAL_DATA;
	/* a link's target never changes for its node id */
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
}

static const struct fuse_lowlevel_ops fs_lowlevel_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.getattr = fs_getattr,
	.readlink = fs_readlink,
	.open = fs_open,
	.read = fs_read,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.readdirplus = fs_readdirplus,
	.statfs = fs_statfs,
	.setattr = fs_erofs_setattr,
	.mknod = fs_erofs_mknod,
	.mkdir = fs_erofs_mkdir,
	.unlink = fs_erofs_name,
	.rmdir = fs_erofs_name,
	.symlink = fs_erofs_symlink,
	.rename = fs_erofs_rename,
	.link = fs_erofs_link,
	.write = fs_erofs_write,
	.create = fs_erofs_create,
	.setxattr = fs_erofs_setxattr,
	.removexattr = fs_erofs_removexattr,
	.fallocate = fs_erofs_fallocate,
};

const struct fuse_lowlevel_ops *fs_ops(void)
{
	return &fs_lowlevel_ops;
}

/* ---- invalidation ---- */

static void fs_inval_entry(void *arg, uint64_t parent, const char *name, size_t len)
{
	struct fs *fs = arg;
	int ret = fuse_lowlevel_notify_inval_entry(fs->se, parent, name, len);

	/* -ENOENT: the kernel had nothing cached for that name */
	if (ret < 0 && ret != -ENOENT)
		log_debug("invalidate entry %.*s: %s", (int)len, name, strerror(-ret));
}

static void fs_inval_inode(void *arg, uint64_t nodeid)
{
	struct fs *fs = arg;
	int ret = fuse_lowlevel_notify_inval_inode(fs->se, nodeid, 0, 0);

	if (ret < 0 && ret != -ENOENT)
		log_debug("invalidate inode %llx: %s", (unsigned long long)nodeid, strerror(-ret));
}

struct cache_notify fs_notify(struct fs *fs)
{
	struct cache_notify n = { .entry = fs_inval_entry, .inode = fs_inval_inode, .arg = fs };

	return n;
}
