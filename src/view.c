// SPDX-License-Identifier: MIT
/* Views: a snapshot's tasks grouped by state and by operation. */
#include "view.h"

#include "radix.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "hash.h"
#include "name.h"
#include "snapshot.h"
#include "sorted.h"

const char *const snap_view_names[SNAP_NVIEWS] = {
	[SNAP_VIEW_STATE] = ".by-state",
	[SNAP_VIEW_OPERATION] = ".by-operation",
};

/* the field each view groups by */
static const enum snap_kind view_field[SNAP_NVIEWS] = {
	[SNAP_VIEW_STATE] = SNAP_STATE,
	[SNAP_VIEW_OPERATION] = SNAP_OPERATION,
};

uint64_t view_value_hash(const uint64_t hash_key[2], enum snap_view_kind view, const char *name,
			 size_t len)
{
	unsigned char buf[1 + 256];

	/* a separate domain per view, so a value never hashes like an id */
	buf[0] = (unsigned char)(0xf0 + view);
	if (len > 255)
		len = 255;
	memcpy(buf + 1, name, len);
	return hash_siphash24(hash_key, buf, len + 1) & SNAP_KEY_MASK;
}

/* String fields with safe names only. */
const char *view_task_value(const char *arena, enum snap_view_kind view, const struct snap_task *t,
			    size_t *len)
{
	enum snap_kind k = view_field[view];
	const struct snap_file *f = &t->file[k];

	if (!f->nodeid || !(t->strings & (1u << k)) || f->len < 2)
		return NULL;
	*len = f->len - 1; /* without the newline */
	if (!name_valid(arena + f->off, *len))
		return NULL;
	return arena + f->off;
}

bool view_same_value(const struct snap_task *o, const struct snap_task *n, enum snap_view_kind view)
{
	enum snap_kind k = view_field[view];

	return o->file[k].nodeid == n->file[k].nodeid &&
	       (o->strings & (1u << k)) == (n->strings & (1u << k));
}

struct view_pair {
	uint64_t vkey;
	uint32_t task;
};

static int view_pair_cmp(const void *a, const void *b)
{
	const struct view_pair *x = a, *y = b;

	if (x->vkey != y->vkey)
		return x->vkey < y->vkey ? -1 : 1;
	return x->task < y->task ? -1 : x->task > y->task;
}

int view_build(struct snapshot *s, struct arena *a, const uint64_t hash_key[2],
	       enum snap_view_kind view)
{
	struct snap_view *v = &s->view[view];
	struct view_pair *pairs;
	char namebuf[256];
	size_t n = 0;
	int ret = -ENOMEM;

	pairs = malloc(sizeof(*pairs) * (s->ntasks + 1));
	v->members = malloc(sizeof(*v->members) * (s->ntasks + 1));
	v->values = malloc(sizeof(*v->values) * (s->ntasks + 1));
	if (!pairs || !v->members || !v->values)
		goto out;
	for (size_t i = 0; i < s->ntasks; i++) {
		size_t len;
		const char *val = view_task_value(a->buf, view, &s->tasks[i], &len);

		if (!val)
			continue;
		pairs[n].vkey = view_value_hash(hash_key, view, val, len);
		pairs[n].task = (uint32_t)i;
		n++;
	}
	/* stable: a value's members stay in task order */
	if (radix_sort_u64(pairs, n, sizeof(*pairs), offsetof(struct view_pair, vkey)) < 0)
		qsort(pairs, n, sizeof(*pairs), view_pair_cmp);
	v->nvalues = 0;
	for (size_t i = 0, m = 0; i < n; i++) {
		struct snap_value *val = v->nvalues ? &v->values[v->nvalues - 1] : NULL;
		/* checked by view_task_value above; the arena may have moved since */
		const struct snap_file *f = &s->tasks[pairs[i].task].file[view_field[view]];
		const char *name = a->buf + f->off;
		size_t len = f->len - 1;
		int64_t off;

		if (val && val->vkey == pairs[i].vkey) {
			/* same key, other text: a hash collision; leave it out */
			if (val->name_len != len || memcmp(a->buf + val->name_off, name, len))
				continue;
			v->members[m++] = pairs[i].task;
			val->count++;
			continue;
		}
		/* copied so it ends in a NUL, as readdir needs; via a local copy
		 * because arena_add() may move the buffer @name points into */
		memcpy(namebuf, name, len);
		off = arena_add(a, namebuf, len, false);
		if (off < 0) {
			ret = (int)off;
			goto out;
		}
		val = &v->values[v->nvalues++];
		val->vkey = pairs[i].vkey;
		val->name_off = (uint32_t)off;
		val->name_len = (uint32_t)len;
		val->first = (uint32_t)m;
		val->count = 1;
		v->members[m++] = pairs[i].task;
	}
	ret = 0;
out:
	free(pairs);
	return ret;
}

int view_of(uint64_t nodeid)
{
	if (nodeid >= SNAP_VIEW_ROOT_NODEID && nodeid < SNAP_VIEW_ROOT_NODEID + SNAP_NVIEWS)
		return (int)(nodeid - SNAP_VIEW_ROOT_NODEID);
	return -1;
}

const struct snap_value *view_find_vkey(const struct snapshot *s, enum snap_view_kind view,
					uint64_t vkey)
{
	const struct snap_view *v = &s->view[view];
	size_t lo = LOWER_BOUND(v->values, v->nvalues, vkey, vkey);

	return lo < v->nvalues && v->values[lo].vkey == vkey ? &v->values[lo] : NULL;
}

const struct snap_value *view_find_value(const struct snapshot *s, const uint64_t hash_key[2],
					 enum snap_view_kind view, const char *name, size_t len)
{
	const struct snap_value *v;

	if (!name_valid(name, len))
		return NULL;
	v = view_find_vkey(s, view, view_value_hash(hash_key, view, name, len));
	if (v && v->name_len == len && memcmp(s->arena + v->name_off, name, len) == 0)
		return v;
	return NULL;
}

size_t view_seek_value(const struct snapshot *s, enum snap_view_kind view, uint64_t off)
{
	const struct snap_view *v = &s->view[view];

	/* cookie = vkey + SNAP_DIR_OFFSET; want the first cookie > off */
	if (off < SNAP_DIR_OFFSET)
		return 0;
	return LOWER_BOUND(v->values, v->nvalues, vkey, off - SNAP_DIR_OFFSET + 1);
}

bool view_has_task(const struct snapshot *s, enum snap_view_kind view, const struct snap_value *v,
		   const struct snap_task *t)
{
	size_t len;
	const char *val = view_task_value(s->arena, view, t, &len);

	return val && len == v->name_len && memcmp(val, s->arena + v->name_off, len) == 0;
}
