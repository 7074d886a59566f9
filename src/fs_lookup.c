// SPDX-License-Identifier: MIT
/* Names to node ids: lookup, and the forget that ends a lookup count. */
#include "fs_priv.h"

#include <errno.h>
#include <string.h>

/* No such name: cached until the refresher says the name appeared (fs_entry_timeout). */
static void reply_negative(fuse_req_t req, double timeout)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.entry_timeout = timeout;
	fuse_reply_entry(req, &e);
}

static void lookup_status(fuse_req_t req, struct fs *fs)
{
	struct fuse_entry_param e;
	uint64_t nodeid;
	struct blob *b = cache_status_blob(fs->cache, &nodeid);

	if (!b) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memset(&e, 0, sizeof(e));
	fs_fill_file(fs, &e.attr, b->ino, fs_time_ns(b->mtime_ns), b->len);
	/* every path walk renders a new version: never cache the name */
	fs_fill_entry(&e, nodeid, 0);
	if (fuse_reply_entry(req, &e) < 0)
		cache_forget(fs->cache, nodeid, 1);
	blob_put(b);
}

/* .events and .events.1: never cached by name, since rotation renames them */
static void lookup_events(fuse_req_t req, struct fs *fs, bool previous)
{
	uint64_t nodeid = cache_feed_nodeid(fs->cache, previous), len;
	struct fuse_entry_param e;
	int64_t mtime;

	memset(&e, 0, sizeof(e));
	if (!nodeid || cache_feed_stat(fs->cache, nodeid, &len, &mtime) < 0) {
		fuse_reply_entry(req, &e); /* negative, timeout 0 */
		return;
	}
	fs_fill_file(fs, &e.attr, nodeid, fs_time_ns(mtime), len);
	e.ino = nodeid;
	fuse_reply_entry(req, &e);
}

static void lookup_root(fuse_req_t req, struct fs *fs, const char *name)
{
	struct snapshot *s;
	const struct snap_task *t;
	struct fuse_entry_param e;

	if (strcmp(name, ".status") == 0) {
		lookup_status(req, fs);
		return;
	}
	if (strcmp(name, ".events") == 0 || strcmp(name, ".events.1") == 0) {
		lookup_events(req, fs, name[7] == '.');
		return;
	}
	s = cache_acquire(fs->cache);
	for (int v = 0; v < SNAP_NVIEWS; v++) {
		if (strcmp(name, snap_view_names[v]) != 0)
			continue;
		memset(&e, 0, sizeof(e));
		fs_fill_view_dir(fs, &e.attr, SNAP_VIEW_ROOT_NODEID + (uint64_t)v, s);
		e.attr.st_nlink += s->view[v].nvalues;
		fs_fill_entry(&e, SNAP_VIEW_ROOT_NODEID + (uint64_t)v, fs_entry_timeout(s));
		snapshot_put(s);
		fuse_reply_entry(req, &e);
		return;
	}
	t = snapshot_find(s, cache_hash_key(fs->cache), name, strlen(name));
	if (!t) {
		reply_negative(req, fs_entry_timeout(s));
		snapshot_put(s);
		return;
	}
	memset(&e, 0, sizeof(e));
	fs_fill_dir(fs, &e.attr, snap_dir_nodeid(t->key), fs_time_s(t->mtime), 0);
	fs_fill_entry(&e, snap_dir_nodeid(t->key), fs_entry_timeout(s));
	snapshot_put(s);
	fuse_reply_entry(req, &e);
}

static void lookup_task(fuse_req_t req, struct fs *fs, uint64_t parent, const char *name)
{
	struct fuse_entry_param e;
	const struct snap_task *t;
	struct snapshot *s;
	int kind = snapshot_kind(name);
	uint64_t nodeid;

	cache_lock(fs->cache);
	s = cache_current_locked(fs->cache);
	t = snapshot_find_key(s, snap_dir_key(parent));
	if (!t) {
		cache_unlock(fs->cache);
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (kind < 0 || !t->file[kind].nodeid) {
		double timeout = fs_entry_timeout(s);

		cache_unlock(fs->cache); /* not held across a reply */
		reply_negative(req, timeout);
		return;
	}
	nodeid = t->file[kind].nodeid;
	/* counted under the lock, so a swap sees it and keeps the bytes */
	if (cache_ref_locked(fs->cache, nodeid, 1) < 0) {
		cache_unlock(fs->cache);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memset(&e, 0, sizeof(e));
	fs_fill_task_file(fs, &e.attr, t, (enum snap_kind)kind);
	fs_fill_entry(&e, nodeid, fs_entry_timeout(s));
	cache_unlock(fs->cache);
	if (fuse_reply_entry(req, &e) < 0)
		cache_forget(fs->cache, nodeid, 1);
}

static void lookup_view_root(fuse_req_t req, struct fs *fs, enum snap_view_kind view,
			     const char *name)
{
	struct snapshot *s = cache_acquire(fs->cache);
	const struct snap_value *v =
		view_find_value(s, cache_hash_key(fs->cache), view, name, strlen(name));
	struct fuse_entry_param e;

	if (!v) {
		reply_negative(req, fs_entry_timeout(s));
		snapshot_put(s);
		return;
	}
	memset(&e, 0, sizeof(e));
	fs_fill_view_dir(fs, &e.attr, snap_value_nodeid(v->vkey), s);
	fs_fill_entry(&e, snap_value_nodeid(v->vkey), fs_entry_timeout(s));
	snapshot_put(s);
	fuse_reply_entry(req, &e);
}

static void lookup_value(fuse_req_t req, struct fs *fs, uint64_t parent, const char *name)
{
	struct snapshot *s = cache_acquire(fs->cache);
	const struct snap_value *v;
	const struct snap_task *t;
	struct fuse_entry_param e;
	enum snap_view_kind view;

	v = fs_find_value_node(s, parent, &view);
	if (!v) {
		snapshot_put(s);
		fuse_reply_err(req, ENOENT);
		return;
	}
	t = snapshot_find(s, cache_hash_key(fs->cache), name, strlen(name));
	if (!t || !view_has_task(s, view, v, t)) {
		reply_negative(req, fs_entry_timeout(s));
		snapshot_put(s);
		return;
	}
	memset(&e, 0, sizeof(e));
	fs_fill_link(fs, &e.attr, view, t);
	fs_fill_entry(&e, snap_link_nodeid(t->key, view), fs_entry_timeout(s));
	snapshot_put(s);
	fuse_reply_entry(req, &e);
}

void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);

	switch (fs_node_type(parent)) {
	case NODE_ROOT:
		lookup_root(req, fs, name);
		break;
	case NODE_VIEW_ROOT:
		lookup_view_root(req, fs, (enum snap_view_kind)view_of(parent), name);
		break;
	case NODE_TASK:
		lookup_task(req, fs, parent, name);
		break;
	case NODE_VALUE:
		lookup_value(req, fs, parent, name);
		break;
	default:
		fuse_reply_err(req, ENOTDIR);
	}
}

void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	/* only file and .status versions are counted */
	if (fs_node_type(ino) == NODE_FILE)
		cache_forget(fs_of(req)->cache, ino, nlookup);
	fuse_reply_none(req);
}

void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs *fs = fs_of(req);

	for (size_t i = 0; i < count; i++)
		if (fs_node_type(forgets[i].ino) == NODE_FILE)
			cache_forget(fs->cache, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}
