/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_VIEW_H
#define INGESTFS_VIEW_H

/*
 * Views group a snapshot's tasks by a field's value:
 *
 *   .by-state/<STATE>/<id>  ->  ../../<id>
 *
 * A view is part of its snapshot: built once with it (view_build, from
 * snapshot.c), immutable after, freed with it.  Values are the field's
 * text when it is a JSON string and a valid name (name.h); each value
 * folder lists its tasks in ascending task key order.  Value names live in
 * the snapshot's arena.  Knows the snapshot's layout; no I/O, no locks.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;
struct snapshot;
struct snap_task;

enum snap_view_kind { SNAP_VIEW_STATE, SNAP_VIEW_OPERATION, SNAP_NVIEWS };

/* One value of a view: a folder listing the tasks with that value. */
struct snap_value {
	uint64_t vkey;		     /* keyed hash of view + value: order, cookie, node id */
	uint32_t name_off, name_len; /* the value, in the arena */
	uint32_t first, count;	     /* members[first, first + count) */
};

struct snap_view {
	size_t nvalues;
	struct snap_value *values; /* sorted by vkey */
	uint32_t *members;	   /* task indices; ascending task key per value */
};

extern const char *const snap_view_names[SNAP_NVIEWS]; /* ".by-state", ".by-operation" */

/*
 * view_build - build @s's view @view from its tasks, adding value names to
 * @a (the arena being filled; s->arena is not set yet).  0 or
 * -ENOMEM/-E2BIG; what was allocated is freed with the snapshot.
 */
int view_build(struct snapshot *s, struct arena *a, const uint64_t hash_key[2],
	       enum snap_view_kind view);

/*
 * view_task_value - the value task @t shows in @view (@len bytes in
 * @arena, not NUL-terminated: the file's text without its newline), or
 * NULL when it shows in none.
 */
const char *view_task_value(const char *arena, enum snap_view_kind view, const struct snap_task *t,
			    size_t *len);

/* view_value_hash - the vkey of @name in @view */
uint64_t view_value_hash(const uint64_t hash_key[2], enum snap_view_kind view, const char *name,
			 size_t len);
/* view_of - the view a view root node id (3, 4) names, or -1 */
int view_of(uint64_t nodeid);
/* view_find_value - the value folder @name of @view, or NULL */
const struct snap_value *view_find_value(const struct snapshot *s, const uint64_t hash_key[2],
					 enum snap_view_kind view, const char *name, size_t len);
const struct snap_value *view_find_vkey(const struct snapshot *s, enum snap_view_kind view,
					uint64_t vkey);
/* view_seek_value - index of the first value of @view whose readdir cookie is > @off */
size_t view_seek_value(const struct snapshot *s, enum snap_view_kind view, uint64_t off);
/* view_has_task - true when task @t belongs to value @v of @view */
bool view_has_task(const struct snapshot *s, enum snap_view_kind view, const struct snap_value *v,
		   const struct snap_task *t);

/*
 * view_same_value - whether tasks @o and @n (of two snapshots) have the
 * same value in @view, known from the file version alone: one node id is
 * one content, and the string flag says whether that content is a name.
 */
bool view_same_value(const struct snap_task *o, const struct snap_task *n,
		     enum snap_view_kind view);

#endif
