// SPDX-License-Identifier: MIT
/* libFuzzer: API answer bytes -> snapshot, carry-over, diff, lookups. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "name.h"
#include "scan.h"
#include "snapshot.h"
#include "view.h"

static void count_entry(void *arg, uint64_t parent, const char *name, size_t len)
{
	(*(size_t *)arg)++;
}

static void count_inode(void *arg, uint64_t nodeid)
{
	(*(size_t *)arg)++;
}

static void count_gone(void *arg, const struct snapshot *old, const struct snap_node *n)
{
	(*(size_t *)arg)++;
}

static void no_defect(void *arg, const struct scan_item *it)
{
	if (it->defect)
		abort();
	(*(size_t *)arg)++;
}

/* Every raw.json the mount shows must be strict JSON: one object, nothing after it. */
static void check_raw(const struct snapshot *s, const struct snap_task *t)
{
	static const char head[] = "{\"items\": [", tail[] = "]}";
	const struct snap_file *f = &t->file[SNAP_RAW];
	size_t len = sizeof(head) - 1 + f->len + sizeof(tail) - 1, items = 0;
	char *wrap = malloc(len), err[160], *to_free;
	const char *data = snap_file_read(s, t, SNAP_RAW, &to_free);
	struct scan_result res;

	if (!wrap || !data) {
		free(wrap);
		free(to_free);
		return;
	}
	memcpy(wrap, head, sizeof(head) - 1);
	memcpy(wrap + sizeof(head) - 1, data, f->len);
	free(to_free);
	memcpy(wrap + sizeof(head) - 1 + f->len, tail, sizeof(tail) - 1);
	if (scan_answer(wrap, len, no_defect, &items, &res, err, sizeof(err)) < 0 || items != 1)
		abort();
	free(wrap);
}

/*
 * What a snapshot's indexes must be, however they were built (sorted from
 * scratch, or carried over from the previous snapshot): the node index
 * sorted, unique and naming every file; the answer order a permutation of
 * the tasks; each view's values in key order, their members ascending and
 * holding exactly the tasks that show that value.
 */
static void check_index(const struct snapshot *s)
{
	size_t files = 0, shown[SNAP_NVIEWS] = { 0 };
	char *seen = calloc(s->ntasks + 1, 1);

	if (!seen)
		return;
	for (size_t i = 0; i < s->nnodes; i++) {
		const struct snap_node *n = &s->nodes[i];

		if ((i && s->nodes[i - 1].nodeid >= n->nodeid) || n->task >= s->ntasks ||
		    n->kind >= SNAP_NKINDS || s->tasks[n->task].file[n->kind].nodeid != n->nodeid)
			abort();
	}
	for (size_t i = 0; i < s->ntasks; i++) {
		for (int k = 0; k < SNAP_NKINDS; k++)
			files += s->tasks[i].file[k].nodeid != 0;
		for (int v = 0; v < SNAP_NVIEWS; v++) {
			size_t len;

			shown[v] += view_task_value(s->arena, (enum snap_view_kind)v, &s->tasks[i],
						    &len) != NULL;
		}
		if (s->order[i] >= s->ntasks || seen[s->order[i]]++)
			abort();
	}
	if (files != s->nnodes)
		abort();
	for (int v = 0; v < SNAP_NVIEWS; v++) {
		const struct snap_view *w = &s->view[v];
		size_t members = 0;

		for (size_t i = 0; i < w->nvalues; i++) {
			const struct snap_value *val = &w->values[i];

			if ((i && w->values[i - 1].vkey >= val->vkey) || val->first != members ||
			    !val->count || !name_valid(s->arena + val->name_off, val->name_len))
				abort();
			for (size_t m = val->first; m < val->first + val->count; m++) {
				if ((m > val->first && w->members[m - 1] >= w->members[m]) ||
				    w->members[m] >= s->ntasks ||
				    !view_has_task(s, (enum snap_view_kind)v, val,
						   &s->tasks[w->members[m]]))
					abort();
			}
			members += val->count;
		}
		/* every task that shows a value is in it (a vkey collision aside: 2^-59) */
		if (members != shown[v])
			abort();
	}
	free(seen);
}

/* Two snapshots the same in all a reader can see: tasks, files, bytes, ids, times. */
static void check_same(const struct snapshot *x, const struct snapshot *y)
{
	if (x->ntasks != y->ntasks || x->nnodes != y->nnodes || x->mtime_ns != y->mtime_ns)
		abort();
	for (size_t i = 0; i < x->ntasks; i++) {
		const struct snap_task *a = &x->tasks[i], *b = &y->tasks[i];

		if (a->key != b->key || a->mtime != b->mtime || a->strings != b->strings ||
		    a->item_hash != b->item_hash || a->id_len != b->id_len ||
		    memcmp(snap_task_id(x, a), snap_task_id(y, b), a->id_len) != 0)
			abort();
		for (int k = 0; k < SNAP_NKINDS; k++) {
			const struct snap_file *f = &a->file[k], *g = &b->file[k];

			char *fx, *fy;
			const char *dx, *dy;

			if (f->nodeid != g->nodeid || f->mtime_ns != g->mtime_ns ||
			    f->len != g->len)
				abort();
			if (!f->nodeid)
				continue;
			dx = snap_file_read(x, a, (enum snap_kind)k, &fx);
			dy = snap_file_read(y, b, (enum snap_kind)k, &fy);
			if (dx && dy && memcmp(dx, dy, f->len) != 0)
				abort();
			free(fx);
			free(fy);
		}
	}
	for (int v = 0; v < SNAP_NVIEWS; v++) {
		const struct snap_view *a = &x->view[v], *b = &y->view[v];

		if (a->nvalues != b->nvalues)
			abort();
		for (size_t i = 0; i < a->nvalues; i++)
			if (a->values[i].vkey != b->values[i].vkey ||
			    a->values[i].count != b->values[i].count ||
			    memcmp(a->members + a->values[i].first, b->members + b->values[i].first,
				   sizeof(*a->members) * a->values[i].count) != 0)
				abort();
	}
	if (x->ntasks && memcmp(x->order, y->order, sizeof(*x->order) * x->ntasks) != 0)
		abort();
	check_index(x);
	check_index(y);
}

/*
 * A second answer after the first (the input split at its first NUL, which
 * no answer can hold): built with the first as @prev, reusing the tasks
 * whose item bytes did not change, it must equal a build that parses
 * every item, from the same allocator and clock.
 */
static void check_reuse(const uint8_t *data, size_t size, size_t cut)
{
	struct snap_ctx ctx = { .hash_key = { 7, 11 },
				.now_ns = 1700000000000000000LL,
				.next_nodeid = 16 };
	struct snapshot *a = NULL, *b = NULL, *c = NULL, *d = NULL;
	size_t blen = size - cut - 1;
	char err[160], *copy = malloc(size + 1);
	struct snap_ctx full, stored;
	int rb, rc, rd;

	if (!copy)
		return;
	memcpy(copy, data, cut);
	if (snapshot_parse(copy, cut, NULL, &ctx, &a, err, sizeof(err)) < 0) {
		free(copy);
		return;
	}
	ctx.now_ns += 1000000000;
	full = ctx;
	full.no_reuse = true;
	stored = full;
	stored.no_template = true;
	memcpy(copy, data + cut + 1, blen);
	rb = snapshot_parse(copy, blen, a, &ctx, &b, err, sizeof(err));
	memcpy(copy, data + cut + 1, blen);
	rc = snapshot_parse(copy, blen, a, &full, &c, err, sizeof(err));
	/* and one that stores every raw.json: a rendering must be the printed bytes */
	memcpy(copy, data + cut + 1, blen);
	rd = snapshot_parse(copy, blen, a, &stored, &d, err, sizeof(err));
	if ((rb < 0) != (rc < 0) || (rc < 0) != (rd < 0) || full.reused != 0 ||
	    (rc == 0 && c->stats.unscanned != 0))
		abort();
	if (rb == 0 && (b->stats.items != c->stats.items || b->stats.skipped != c->stats.skipped ||
			b->stats.duplicates != c->stats.duplicates ||
			b->stats.total_items != c->stats.total_items))
		abort();
	if (rb == 0) {
		check_same(b, c);
		check_same(b, d);
		if (ctx.next_nodeid != full.next_nodeid || ctx.newest_ns != full.newest_ns ||
		    stored.next_nodeid != full.next_nodeid)
			abort();
	}
	snapshot_put(a);
	snapshot_put(b);
	snapshot_put(c);
	snapshot_put(d);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct snap_diff_ops ops = { count_entry, count_inode };
	struct snap_ctx ctx = { .hash_key = { 7, 11 },
				.now_ns = 1700000000000000000LL,
				.next_nodeid = 16 };
	struct snapshot *a = NULL, *b = NULL;
	size_t calls = 0;
	char err[160], *copy = malloc(size ? size : 1);
	int ret;

	if (!copy)
		return 0;
	{
		const uint8_t *nul = memchr(data, 0, size);

		if (nul) {
			check_reuse(data, size, (size_t)(nul - data));
			free(copy);
			return 0;
		}
	}
	memcpy(copy, data, size);
	{
		struct snap_ctx stored = ctx;

		stored.no_template = true;
		ret = snapshot_parse(copy, size, NULL, &ctx, &a, err, sizeof(err));
		if (ret == -EPROTO) /* the scanner and cJSON disagree */
			abort();
		if (ret < 0) {
			free(copy);
			return 0;
		}
		/* rendered raw.json files are the bytes a build that stores them has */
		memcpy(copy, data, size);
		if (snapshot_parse(copy, size, NULL, &stored, &b, err, sizeof(err)) == 0) {
			check_same(a, b);
			snapshot_put(b);
			b = NULL;
		}
	}
	/* the same answer again: nothing may change, no node id may go, nothing is parsed */
	memcpy(copy, data, size);
	ctx.now_ns += 1000000000;
	if (snapshot_parse(copy, size, a, &ctx, &b, err, sizeof(err)) < 0 ||
	    ctx.reused != a->ntasks)
		abort();
	free(copy);
	check_index(a);
	check_index(b);
	if (diff_snapshots(a, b, ctx.hash_key, &ops, &calls) != 0 || calls != 0)
		abort();
	diff_for_each_gone(a, b, count_gone, &calls);
	if (calls != 0 || a->ntasks != b->ntasks || a->nnodes != b->nnodes)
		abort();
	for (size_t i = 0; i < b->ntasks; i++) {
		const struct snap_task *t = &b->tasks[i], *ft;
		enum snap_kind k;

		if (snapshot_find(b, ctx.hash_key, snap_task_id(b, t), t->id_len) != t)
			abort();
		if (!name_valid(snap_task_id(b, t), t->id_len))
			abort();
		for (int j = 0; j < SNAP_NKINDS; j++) {
			if (!t->file[j].nodeid)
				continue;
			if (!snapshot_find_node(b, t->file[j].nodeid, &ft, &k) || ft != t ||
			    (int)k != j)
				abort();
			if (t->file[j].len == 0)
				abort();
			/* only raw.json may be rendered instead of stored */
			if (t->file[j].off == SNAP_OFF_TEMPLATE) {
				if (j != SNAP_RAW || snap_template_len(t) != t->file[j].len)
					abort();
				continue;
			}
			if (t->file[j].off + (size_t)t->file[j].len > b->arena_len ||
			    b->arena[t->file[j].off + t->file[j].len - 1] != '\n')
				abort();
		}
		if (i && b->tasks[i - 1].key >= t->key)
			abort();
		if (t->file[SNAP_RAW].nodeid)
			check_raw(b, t);
	}
	/* and against nothing: every task is an addition */
	calls = 0;
	{
		struct snapshot empty = { .ntasks = 0 };

		diff_snapshots(&empty, b, ctx.hash_key, &ops, &calls);
		/* each task's name and its four files, the root, and the views */
		if (b->ntasks && calls < b->ntasks * (1 + SNAP_NKINDS) + 1)
			abort();
	}
	snapshot_put(a);
	snapshot_put(b);
	return 0;
}
