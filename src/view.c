// SPDX-License-Identifier: MIT
/* Views: a snapshot's tasks grouped by state and by operation. */
#include "view.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "bigmem.h"
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

/*
 * A view is built from its distinct values, which are few (a handful of
 * states and operations) but need not be (the API may send anything): each
 * task's value is hashed and looked up in a table keyed by that hash; then
 * the values are put in key order and the tasks dealt out to them in task
 * order, without sorting the tasks.  Of two values with the same key (a
 * collision), the one of the lower task stays and the other shows nowhere.
 */
struct view_value {
	uint64_t vkey;
	uint32_t off, len; /* its text: the first task's file, in the arena */
	uint32_t first;	   /* the lowest task with it */
	uint32_t count;	   /* tasks with it */
	uint32_t slot;	   /* 1 + its index in view.values; 0: shown nowhere */
	bool valid;	   /* a name (name.h) */
};

struct view_table {
	struct view_value *v;
	size_t n, cap;
	uint32_t *slots; /* 1 + index into v, by vkey; a power of 2 */
	size_t mask;
};

static int table_grow(struct view_table *t)
{
	size_t cap = t->slots ? (t->mask + 1) * 2 : 64;
	uint32_t *slots = calloc(cap, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < t->n; i++) {
		size_t h = (size_t)t->v[i].vkey & (cap - 1);

		while (slots[h])
			h = (h + 1) & (cap - 1);
		slots[h] = (uint32_t)i + 1;
	}
	free(t->slots);
	t->slots = slots;
	t->mask = cap - 1;
	return 0;
}

/* The value of @text with key @vkey, added when new (first seen at @task); NULL: no memory. */
static struct view_value *table_get(struct view_table *t, const char *arena, uint64_t vkey,
				    uint32_t off, uint32_t len, uint32_t task)
{
	size_t h;

	if ((!t->slots || 2 * (t->n + 1) > t->mask + 1) && table_grow(t) < 0)
		return NULL;
	for (h = (size_t)vkey & t->mask; t->slots[h]; h = (h + 1) & t->mask) {
		struct view_value *val = &t->v[t->slots[h] - 1];

		if (val->vkey == vkey && val->len == len &&
		    memcmp(arena + val->off, arena + off, len) == 0)
			return val;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct view_value *v = realloc(t->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		t->v = v;
		t->cap = cap;
	}
	t->slots[h] = (uint32_t)t->n + 1;
	t->v[t->n] = (struct view_value){ .vkey = vkey, .off = off, .len = len, .first = task };
	t->v[t->n].valid = name_valid(arena + off, len);
	return &t->v[t->n++];
}

static int value_cmp(const void *a, const void *b)
{
	const struct view_value *x = *(const struct view_value *const *)a;
	const struct view_value *y = *(const struct view_value *const *)b;

	if (x->vkey != y->vkey)
		return x->vkey < y->vkey ? -1 : 1;
	return x->first < y->first ? -1 : x->first > y->first;
}

int view_build(struct snapshot *s, struct arena *a, const uint64_t hash_key[2],
	       enum snap_view_kind view)
{
	enum snap_kind k = view_field[view];
	struct snap_view *v = &s->view[view];
	struct view_table t = { 0 };
	struct view_value **byk = NULL;
	uint32_t *of = big_malloc(sizeof(*of) * (s->ntasks + 1)); /* task -> 1 + value, 0: none */
	size_t m = 0;
	int ret = -ENOMEM;

	v->members = big_malloc(sizeof(*v->members) * (s->ntasks + 1));
	if (!of || !v->members)
		goto out;
	for (size_t i = 0; i < s->ntasks; i++) {
		const struct snap_task *task = &s->tasks[i];
		const struct snap_file *f = &task->file[k];
		struct view_value *val;

		of[i] = 0;
		/* a JSON string of 1 to 255 bytes; its text (without the newline) */
		if (!f->nodeid || !(task->strings & (1u << k)) || f->len < 2 || f->len > 256)
			continue;
		val = table_get(&t, a->buf,
				view_value_hash(hash_key, view, a->buf + f->off, f->len - 1),
				f->off, f->len - 1, (uint32_t)i);
		if (!val)
			goto out;
		if (val->valid) {
			val->count++;
			of[i] = (uint32_t)(val - t.v) + 1;
		}
	}
	/* the values in key order; of equal keys, the first task's stays */
	byk = malloc(sizeof(*byk) * (t.n + 1));
	v->values = malloc(sizeof(*v->values) * (t.n + 1));
	if (!byk || !v->values)
		goto out;
	for (size_t i = 0; i < t.n; i++)
		byk[i] = &t.v[i];
	qsort(byk, t.n, sizeof(*byk), value_cmp);
	v->nvalues = 0;
	for (size_t i = 0; i < t.n; i++) {
		struct view_value *val = byk[i];
		struct snap_value *sv;
		char namebuf[256];
		int64_t off;

		if (!val->valid || !val->count ||
		    (v->nvalues && v->values[v->nvalues - 1].vkey == val->vkey))
			continue;
		/* copied so it ends in a NUL, as readdir needs; via a local copy
		 * because arena_add() may move the buffer the text is in */
		memcpy(namebuf, a->buf + val->off, val->len);
		off = arena_add(a, namebuf, val->len, false);
		if (off < 0) {
			ret = (int)off;
			goto out;
		}
		sv = &v->values[v->nvalues];
		*sv = (struct snap_value){ .vkey = val->vkey,
					   .name_off = (uint32_t)off,
					   .name_len = val->len,
					   .first = (uint32_t)m };
		m += val->count;
		val->slot = (uint32_t)++v->nvalues;
	}
	/* deal the tasks out in task order: each value's members ascend */
	for (size_t i = 0; i < s->ntasks; i++) {
		const struct view_value *val = of[i] ? &t.v[of[i] - 1] : NULL;
		struct snap_value *sv;

		if (!val || !val->slot)
			continue;
		sv = &v->values[val->slot - 1];
		v->members[sv->first + sv->count++] = (uint32_t)i;
	}
	ret = 0;
out:
	free(byk);
	free(of);
	free(t.v);
	free(t.slots);
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
