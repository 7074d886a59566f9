// SPDX-License-Identifier: MIT
/* Snapshot differences, as the kernel's caches need to hear them. */
#include "diff.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "view.h"

static size_t diff_task(const struct snapshot *old, const struct snap_task *o,
			const struct snapshot *new, const struct snap_task *n,
			const struct snap_diff_ops *ops, void *arg)
{
	uint64_t dir = snap_dir_nodeid(n->key);
	bool listing = false;
	size_t calls = 0;

	for (int k = 0; k < SNAP_NKINDS; k++) {
		if (o->file[k].nodeid == n->file[k].nodeid)
			continue;
		ops->entry(arg, dir, snap_file_names[k], strlen(snap_file_names[k]));
		calls++;
		if (!o->file[k].nodeid != !n->file[k].nodeid)
			listing = true;
	}
	if (listing || o->mtime != n->mtime) {
		ops->inode(arg, dir);
		calls++;
	}
	if (o->mtime != n->mtime) {
		/* the view links carry the task's time as their mtime */
		for (int v = 0; v < SNAP_NVIEWS; v++)
			ops->inode(arg, snap_link_nodeid(n->key, (enum snap_view_kind)v));
		calls += SNAP_NVIEWS;
	}
	return calls;
}

/*
 * A folder's node id outlives the task: the kernel may keep a detached
 * folder entry with a child still in use, and reattach it when the id
 * comes back.  So a task that goes or comes also drops its children.
 */
static size_t forget_children(uint64_t key, const struct snap_diff_ops *ops, void *arg)
{
	for (int k = 0; k < SNAP_NKINDS; k++)
		ops->entry(arg, snap_dir_nodeid(key), snap_file_names[k],
			   strlen(snap_file_names[k]));
	return SNAP_NKINDS;
}

/* Value folders whose listing changed, to invalidate each once. */
struct touched {
	uint64_t *v;
	size_t n, cap;
};

static void touch(struct touched *t, uint64_t vkey)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		uint64_t *v = realloc(t->v, cap * sizeof(*v));

		if (!v)
			return; /* then the kernel keeps that listing until its timeout */
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n++] = vkey;
}

static int u64_cmp(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	return *x < *y ? -1 : *x > *y;
}

/* A task's membership in @view moved from @o (in @old) to @n (in @new). */
static size_t diff_membership(const struct snapshot *old, const struct snap_task *o,
			      const struct snapshot *new, const struct snap_task *n,
			      const uint64_t hash_key[2], enum snap_view_kind view,
			      const struct snap_diff_ops *ops, void *arg, struct touched *tv)
{
	size_t olen = 0, nlen = 0, calls = 0;
	const char *ov, *nv, *id;
	const struct snap_task *t = n ? n : o;

	if (o && n && view_same_value(o, n, view))
		return 0; /* the same version of the field: nothing moved */
	ov = o ? view_task_value(old->arena, view, o, &olen) : NULL;
	nv = n ? view_task_value(new->arena, view, n, &nlen) : NULL;
	id = n ? snap_task_id(new, n) : snap_task_id(old, o);
	if (ov && nv && olen == nlen && memcmp(ov, nv, olen) == 0)
		return 0;
	if (ov) {
		uint64_t vk = view_value_hash(hash_key, view, ov, olen);

		ops->entry(arg, snap_value_nodeid(vk), id, t->id_len);
		touch(tv, vk);
		calls++;
	}
	if (nv) {
		uint64_t vk = view_value_hash(hash_key, view, nv, nlen);

		ops->entry(arg, snap_value_nodeid(vk), id, t->id_len);
		touch(tv, vk);
		calls++;
	}
	return calls;
}

static size_t diff_view(const struct snapshot *old, const struct snapshot *new,
			const uint64_t hash_key[2], enum snap_view_kind view,
			const struct snap_diff_ops *ops, void *arg)
{
	const struct snap_view *ov = &old->view[view], *nv = &new->view[view];
	struct touched tv = { 0 };
	size_t i = 0, j = 0, calls = 0;
	bool listing = false;

	/* values that appeared or went away */
	while (i < ov->nvalues || j < nv->nvalues) {
		const struct snap_value *o = i < ov->nvalues ? &ov->values[i] : NULL;
		const struct snap_value *n = j < nv->nvalues ? &nv->values[j] : NULL;

		if (o && n && o->vkey == n->vkey) {
			i++, j++;
		} else if (o && (!n || o->vkey < n->vkey)) {
			ops->entry(arg, SNAP_VIEW_ROOT_NODEID + view, old->arena + o->name_off,
				   o->name_len);
			listing = true;
			calls++;
			i++;
		} else {
			ops->entry(arg, SNAP_VIEW_ROOT_NODEID + view, new->arena + n->name_off,
				   n->name_len);
			listing = true;
			calls++;
			j++;
		}
	}
	if (listing) {
		ops->inode(arg, SNAP_VIEW_ROOT_NODEID + view);
		calls++;
	}
	/* tasks that moved between values, came or went */
	for (i = 0, j = 0; i < old->ntasks || j < new->ntasks;) {
		const struct snap_task *o = i < old->ntasks ? &old->tasks[i] : NULL;
		const struct snap_task *n = j < new->ntasks ? &new->tasks[j] : NULL;

		if (o && n && o->key == n->key) {
			calls += diff_membership(old, o, new, n, hash_key, view, ops, arg, &tv);
			i++, j++;
		} else if (o && (!n || o->key < n->key)) {
			calls += diff_membership(old, o, new, NULL, hash_key, view, ops, arg, &tv);
			i++;
		} else {
			calls += diff_membership(old, NULL, new, n, hash_key, view, ops, arg, &tv);
			j++;
		}
	}
	if (tv.n) {
		qsort(tv.v, tv.n, sizeof(*tv.v), u64_cmp);
		for (size_t k = 0; k < tv.n; k++) {
			if (k && tv.v[k] == tv.v[k - 1])
				continue;
			ops->inode(arg, snap_value_nodeid(tv.v[k]));
			calls++;
		}
	}
	free(tv.v);
	return calls;
}

size_t diff_snapshots(const struct snapshot *old, const struct snapshot *new,
		      const uint64_t hash_key[2], const struct snap_diff_ops *ops, void *arg)
{
	size_t i = 0, j = 0, calls = 0;
	bool root = false;

	while (i < old->ntasks || j < new->ntasks) {
		const struct snap_task *o = i < old->ntasks ? &old->tasks[i] : NULL;
		const struct snap_task *n = j < new->ntasks ? &new->tasks[j] : NULL;

		if (o && n && o->key == n->key) {
			calls += diff_task(old, o, new, n, ops, arg);
			i++, j++;
		} else if (o && (!n || o->key < n->key)) {
			ops->entry(arg, SNAP_ROOT_NODEID, snap_task_id(old, o), o->id_len);
			calls += 1 + forget_children(o->key, ops, arg);
			root = true;
			i++;
		} else {
			/* also drops a cached negative entry for the new name */
			ops->entry(arg, SNAP_ROOT_NODEID, snap_task_id(new, n), n->id_len);
			calls += 1 + forget_children(n->key, ops, arg);
			root = true;
			j++;
		}
	}
	if (root || old->mtime_ns != new->mtime_ns) {
		ops->inode(arg, SNAP_ROOT_NODEID);
		calls++;
	}
	for (int v = 0; v < SNAP_NVIEWS; v++)
		calls += diff_view(old, new, hash_key, (enum snap_view_kind)v, ops, arg);
	return calls;
}

void diff_for_each_gone(const struct snapshot *old, const struct snapshot *new,
			void (*fn)(void *arg, const struct snapshot *old,
				   const struct snap_node *node),
			void *arg)
{
	size_t i = 0, j = 0;

	while (i < old->nnodes) {
		if (j < new->nnodes &&new->nodes[j].nodeid < old->nodes[i].nodeid) {
			j++;
		} else if (j < new->nnodes &&new->nodes[j].nodeid == old->nodes[i].nodeid) {
			i++, j++;
		} else {
			fn(arg, old, &old->nodes[i]);
			i++;
		}
	}
}
