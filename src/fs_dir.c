// SPDX-License-Identifier: MIT
/* Directory listings: readdir and readdirplus of every kind of folder. */
#include "fs_priv.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct dirbuf {
	char *buf;
	size_t size, used;
};

/* Add one entry; false when it does not fit (and nothing was added). */
static bool dirbuf_add(fuse_req_t req, struct dirbuf *d, bool plus, const char *name,
		       const struct fuse_entry_param *e, off_t next)
{
	size_t room = d->size - d->used, n;

	if (plus)
		n = fuse_add_direntry_plus(req, d->buf + d->used, room, name, e, next);
	else
		n = fuse_add_direntry(req, d->buf + d->used, room, name, &e->attr, next);
	if (n > room)
		return false;
	d->used += n;
	return true;
}

static bool add_dots(fuse_req_t req, struct fs *fs, struct dirbuf *d, bool plus, off_t off,
		     uint64_t self)
{
	struct fuse_entry_param e;

	/* ino 0: no attributes and no lookup count for "." and ".." */
	memset(&e, 0, sizeof(e));
	e.attr.st_mode = S_IFDIR;
	if (off < 1) {
		e.attr.st_ino = self;
		if (!dirbuf_add(req, d, plus, ".", &e, 1))
			return false;
	}
	if (off < 2) {
		e.attr.st_ino = SNAP_ROOT_NODEID;
		if (!dirbuf_add(req, d, plus, "..", &e, 2))
			return false;
	}
	return true;
}

static void readdir_root(fuse_req_t req, struct fs *fs, struct dirbuf *d, bool plus, off_t off)
{
	struct snapshot *s = cache_acquire(fs->cache);
	struct fuse_entry_param e;

	if (add_dots(req, fs, d, plus, off, SNAP_ROOT_NODEID)) {
		/* cookies are keys: a listing that changes between calls neither
		 * repeats nor skips the names that stayed */
		for (size_t i = snapshot_seek(s, (uint64_t)off); i < s->ntasks; i++) {
			const struct snap_task *t = &s->tasks[i];

			memset(&e, 0, sizeof(e));
			fs_fill_dir(fs, &e.attr, snap_dir_nodeid(t->key), fs_time_s(t->mtime), 0);
			fs_fill_entry(&e, snap_dir_nodeid(t->key), fs_entry_timeout(s));
			if (!dirbuf_add(req, d, plus, snap_task_id(s, t), &e,
					(off_t)(t->key + SNAP_DIR_OFFSET)))
				break;
		}
	}
	snapshot_put(s);
	fuse_reply_buf(req, d->buf, d->used);
}

static void readdir_task(fuse_req_t req, struct fs *fs, struct dirbuf *d, bool plus, uint64_t ino,
			 off_t off)
{
	uint64_t counted[SNAP_NKINDS];
	struct fuse_entry_param e;
	const struct snapshot *s;
	const struct snap_task *t;
	size_t ncounted = 0, prev_used;

	cache_lock(fs->cache);
	s = cache_current_locked(fs->cache);
	t = snapshot_find_key(s, snap_dir_key(ino));
	if (!t) {
		cache_unlock(fs->cache);
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (add_dots(req, fs, d, plus, off, ino)) {
		for (int k = 0; k < SNAP_NKINDS; k++) {
			if (!t->file[k].nodeid || SNAP_DIR_OFFSET + k <= off)
				continue;
			memset(&e, 0, sizeof(e));
			fs_fill_task_file(fs, &e.attr, t, (enum snap_kind)k);
			fs_fill_entry(&e, t->file[k].nodeid, fs_entry_timeout(s));
			prev_used = d->used;
			if (!dirbuf_add(req, d, plus, snap_file_names[k], &e, SNAP_DIR_OFFSET + k))
				break;
			if (!plus)
				continue;
			/* readdirplus hands out node ids: count them like lookups */
			if (cache_ref_locked(fs->cache, e.ino, 1) < 0) {
				d->used = prev_used;
				break;
			}
			counted[ncounted++] = e.ino;
		}
	}
	cache_unlock(fs->cache);
	if (fuse_reply_buf(req, d->buf, d->used) < 0)
		for (size_t i = 0; i < ncounted; i++)
			cache_forget(fs->cache, counted[i], 1);
}

static void readdir_view_root(fuse_req_t req, struct fs *fs, struct dirbuf *d, bool plus,
			      uint64_t ino, off_t off)
{
	struct snapshot *s = cache_acquire(fs->cache);
	const struct snap_view *v = &s->view[view_of(ino)];
	struct fuse_entry_param e;

	if (add_dots(req, fs, d, plus, off, ino)) {
		size_t first = view_seek_value(s, view_of(ino), (uint64_t)off);

		for (size_t i = first; i < v->nvalues; i++) {
			const struct snap_value *val = &v->values[i];

			memset(&e, 0, sizeof(e));
			fs_fill_view_dir(fs, &e.attr, snap_value_nodeid(val->vkey), s);
			fs_fill_entry(&e, snap_value_nodeid(val->vkey), fs_entry_timeout(s));
			if (!dirbuf_add(req, d, plus, s->arena + val->name_off, &e,
					(off_t)(val->vkey + SNAP_DIR_OFFSET)))
				break;
		}
	}
	snapshot_put(s);
	fuse_reply_buf(req, d->buf, d->used);
}

static void readdir_value(fuse_req_t req, struct fs *fs, struct dirbuf *d, bool plus, uint64_t ino,
			  off_t off)
{
	struct snapshot *s = cache_acquire(fs->cache);
	const struct snap_value *val;
	enum snap_view_kind view;
	struct fuse_entry_param e;

	val = fs_find_value_node(s, ino, &view);
	if (!val) {
		snapshot_put(s);
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (add_dots(req, fs, d, plus, off, ino)) {
		const uint32_t *m = s->view[view].members + val->first;
		size_t lo = 0, hi = val->count;

		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (s->tasks[m[mid]].key + SNAP_DIR_OFFSET <= (uint64_t)off)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (size_t i = lo; i < val->count; i++) {
			const struct snap_task *t = &s->tasks[m[i]];

			memset(&e, 0, sizeof(e));
			fs_fill_link(fs, &e.attr, view, t);
			fs_fill_entry(&e, snap_link_nodeid(t->key, view), fs_entry_timeout(s));
			if (!dirbuf_add(req, d, plus, snap_task_id(s, t), &e,
					(off_t)(t->key + SNAP_DIR_OFFSET)))
				break;
		}
	}
	snapshot_put(s);
	fuse_reply_buf(req, d->buf, d->used);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
	struct fs *fs = fs_of(req);
	struct dirbuf d = { .size = size };

	enum node_type type = fs_node_type(ino);

	if (type != NODE_ROOT && type != NODE_VIEW_ROOT && type != NODE_TASK &&
	    type != NODE_VALUE) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	d.buf = malloc(size ? size : 1);
	if (!d.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (type == NODE_ROOT)
		readdir_root(req, fs, &d, plus, off);
	else if (type == NODE_VIEW_ROOT)
		readdir_view_root(req, fs, &d, plus, ino, off);
	else if (type == NODE_VALUE)
		readdir_value(req, fs, &d, plus, ino, off);
	else
		readdir_task(req, fs, &d, plus, ino, off);
	free(d.buf);
}

void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, false);
}

void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, true);
}
