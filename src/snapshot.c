// SPDX-License-Identifier: MIT
/* An API answer's items -> an immutable snapshot; its lookups. */
#include "snapshot.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "bigmem.h"
#include "hash.h"
#include "items.h"
#include "json.h"
#include "name.h"
#include "radix.h"
#include "sorted.h"
#include "view.h"

const char *const snap_file_names[SNAP_NKINDS] = {
	[SNAP_STATE] = "state",
	[SNAP_OPERATION] = "operation",
	[SNAP_TIMESTAMP] = "timestamp",
	[SNAP_RAW] = "raw.json",
};

uint64_t snapshot_body_hash(const uint64_t hash_key[2], const char *body, size_t len)
{
	/* another domain than ids: flip the key */
	const uint64_t k[2] = { ~hash_key[0], hash_key[1] };

	return hash_siphash13(k, body, len);
}

uint64_t snapshot_hash(const uint64_t hash_key[2], const char *id, size_t len)
{
	return hash_siphash24(hash_key, id, len) & SNAP_KEY_MASK;
}

/* ---- names ---- */

int snapshot_kind(const char *name)
{
	for (int k = 0; k < SNAP_NKINDS; k++)
		if (strcmp(name, snap_file_names[k]) == 0)
			return k;
	return -1;
}

/* ---- building ---- */

static int node_cmp(const void *a, const void *b)
{
	const struct snap_node *x = a, *y = b;

	return x->nodeid < y->nodeid ? -1 : x->nodeid > y->nodeid;
}

static int64_t task_mtime(const struct json_item *item, int64_t fallback)
{
	double d;

	if (!json_item_number(item, "timestamp", &d))
		return fallback;
	if (isnan(d))
		return fallback;
	/* clamp to what a 64-bit time_t and the kernel's timespec can hold */
	if (d < -(double)(1LL << 62))
		return -(1LL << 62);
	if (d > (double)(1LL << 62))
		return 1LL << 62;
	return (int64_t)floor(d);
}

static const struct snap_task *prev_task(const struct snapshot *prev, uint64_t key, const char *id,
					 size_t len)
{
	const struct snap_task *t;

	if (!prev)
		return NULL;
	t = snapshot_find_key(prev, key);
	if (t && t->id_len == len && memcmp(snap_task_id(prev, t), id, len) == 0)
		return t;
	return NULL;
}

/*
 * The mtime of a new file version.  The first new version of an answer is
 * stamped with the time the answer arrived, but never in the same whole
 * second as any earlier stamp: rsync compares whole seconds, so a change
 * stamped in the second of the version before it could be missed.  When
 * the clock has not yet left that second, the stamp is the next second,
 * and the cache holds the snapshot back until the clock gets there
 * (wait_for_clock).  Every further stamp of the answer is 1 ns after the
 * one before, which orders the files for borg (it trusts only files older
 * than the newest it saw) without running ahead of the clock: four files
 * a task take 4 ns, far less than parsing that task takes.  So stamps only
 * grow, and a task that leaves and comes back gets newer times too.
 */
#define NS_PER_S 1000000000LL

static int64_t next_stamp(struct snap_ctx *ctx)
{
	int64_t t;

	if (ctx->newest_ns >= INT64_MAX - NS_PER_S)
		return ctx->newest_ns; /* a hostile saved state: stop counting */
	if (ctx->stamped) {
		t = ctx->newest_ns + 1;
	} else {
		int64_t next_second = (ctx->newest_ns / NS_PER_S + 1) * NS_PER_S;

		t = ctx->now_ns > next_second ? ctx->now_ns : next_second;
		ctx->stamped = true;
		ctx->first_ns = t;
	}
	ctx->newest_ns = t;
	return t;
}

/* The fixed parts of a templated raw.json, around the id (twice) and the three fields. */
static const char tpl_head[] = "{\n  \"@id\": \"/api/v4/managed-slicer/ingest-points/tasks/";
static const char tpl_type[] = "\",\n  \"@type\": \"ReservedEndpointTask\",\n  \"id\": \"";
static const char *const tpl_field[SNAP_RAW] = {
	"\",\n  \"state\": ",
	",\n  \"operation\": ",
	",\n  \"timestamp\": ",
};
static const char tpl_tail[] = "\n}\n";

size_t snap_template_len(const struct snap_task *t)
{
	size_t n = sizeof(tpl_head) - 1 + sizeof(tpl_type) - 1 + sizeof(tpl_tail) - 1;

	n += 2 * (size_t)t->id_len;
	for (int k = 0; k < SNAP_RAW; k++) {
		const struct snap_file *f = &t->file[k];

		if (!f->nodeid || f->off == SNAP_OFF_TEMPLATE)
			return 0;
		/* the value without its newline, in quotes if it was a string */
		n += strlen(tpl_field[k]) + (f->len - 1) + ((t->strings >> k) & 1 ? 2 : 0);
	}
	return n;
}

static char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

void snap_template_render(const char *arena, const struct snap_task *t, char *buf)
{
	const char *id = arena + t->id_off;
	char *p = buf;

	p = put(p, tpl_head, sizeof(tpl_head) - 1);
	p = put(p, id, t->id_len);
	p = put(p, tpl_type, sizeof(tpl_type) - 1);
	p = put(p, id, t->id_len);
	for (int k = 0; k < SNAP_RAW; k++) {
		const struct snap_file *f = &t->file[k];
		bool quoted = (t->strings >> k) & 1;

		p = put(p, tpl_field[k], strlen(tpl_field[k]));
		if (quoted)
			*p++ = '"';
		p = put(p, arena + f->off, f->len - 1);
		if (quoted)
			*p++ = '"';
	}
	put(p, tpl_tail, sizeof(tpl_tail) - 1);
}

const char *snap_file_read(const struct snapshot *s, const struct snap_task *t, enum snap_kind k,
			   char **to_free)
{
	const struct snap_file *f = &t->file[k];

	*to_free = NULL;
	if (f->off != SNAP_OFF_TEMPLATE)
		return s->arena + f->off;
	*to_free = malloc(f->len);
	if (*to_free)
		snap_template_render(s->arena, t, *to_free);
	return *to_free;
}

/* Is @text + "\n" (@len bytes without it) the content of @pf, @pt's file in @prev? */
static int same_as_prev(const struct snapshot *prev, const struct snap_task *pt,
			const struct snap_file *pf, const char *text, size_t len)
{
	char *to_free;
	const char *old;
	bool same;

	if (!pf->nodeid || pf->len != len + 1)
		return 0;
	old = snap_file_read(prev, pt, (enum snap_kind)(pf - pt->file), &to_free);
	if (!old)
		return -ENOMEM;
	same = memcmp(old, text, len) == 0 && old[len] == '\n';
	free(to_free);
	return same;
}

/*
 * File @kind of a task: @text (@len bytes, a newline added) goes into the
 * arena, unless @templated says its rendering gives it.  Same bytes as in
 * @prev: same node id and time; else a new version.
 */
static int build_file(struct arena *a, struct snap_ctx *ctx, const struct snapshot *prev,
		      const struct snap_task *pt, struct snap_file *f, enum snap_kind kind,
		      const char *text, size_t len, bool templated)
{
	int same = 0;

	if (templated) {
		f->off = SNAP_OFF_TEMPLATE;
	} else {
		int64_t off = arena_add(a, text, len, true);

		if (off < 0)
			return (int)off;
		f->off = (uint32_t)off;
	}
	if (len + 1 > UINT32_MAX)
		return -E2BIG;
	f->len = (uint32_t)(len + 1);
	if (pt && (same = same_as_prev(prev, pt, &pt->file[kind], text, len)) < 0)
		return same;
	if (same) {
		f->nodeid = pt->file[kind].nodeid;
		f->mtime_ns = pt->file[kind].mtime_ns;
		return 0;
	}
	if (ctx->next_nodeid > SNAP_LAST_FILE_NODEID)
		return -E2BIG; /* 2^61 versions: not in this universe's lifetime */
	f->nodeid = ctx->next_nodeid++;
	f->mtime_ns = next_stamp(ctx);
	return 0;
}

/* Does task @t's rendering give @raw (@len bytes, newline not counted)? */
static int raw_is_template(const struct arena *a, const struct snap_task *t, const char *raw,
			   size_t len)
{
	size_t n = snap_template_len(t);
	char stack[1024], *buf = stack;
	bool same;

	if (n != len + 1)
		return 0;
	if (n > sizeof(stack) && !(buf = malloc(n)))
		return -ENOMEM;
	snap_template_render(a->buf, t, buf);
	same = memcmp(buf, raw, len) == 0;
	if (buf != stack)
		free(buf);
	return same;
}

static int build_files(struct arena *a, struct snap_ctx *ctx, const struct snapshot *prev,
		       const struct snap_task *pt, const struct json_item *item,
		       struct snap_task *t)
{
	static const char *const fields[SNAP_RAW] = { "state", "operation", "timestamp" };
	int ret = 0;

	for (int k = 0; k < SNAP_RAW && ret == 0; k++) {
		const char *text;
		char *to_free;
		bool is_string;

		ret = json_item_field(item, fields[k], &text, &is_string, &to_free);
		if (ret < 0)
			return ret;
		if (!text)
			continue;
		if (is_string)
			t->strings |= 1u << k;
		ret = build_file(a, ctx, prev, pt, &t->file[k], (enum snap_kind)k, text,
				 strlen(text), false);
		free(to_free);
	}
	if (ret == 0) {
		char *raw = json_item_print(item);
		size_t len;
		int tpl = 0;

		if (!raw)
			return -ENOMEM;
		len = strlen(raw);
		if (!ctx->no_template)
			tpl = raw_is_template(a, t, raw, len);
		ret = tpl < 0 ? tpl
			      : build_file(a, ctx, prev, pt, &t->file[SNAP_RAW], SNAP_RAW, raw, len,
					   tpl);
		free(raw);
	}
	return ret;
}

/*
 * The item's bytes did not change: its files are @pt's, bytes, node ids
 * and times, which is what parsing it again would give.  Copied into this
 * snapshot's arena (a snapshot owns all its bytes).
 */
static int reuse_task(struct arena *a, const struct snapshot *prev, const struct snap_task *pt,
		      struct snap_task *t)
{
	t->mtime = pt->mtime;
	t->strings = pt->strings;
	t->base_pos = pt->base_pos; /* the same bytes */
	for (int k = 0; k < SNAP_NKINDS; k++) {
		const struct snap_file *pf = &pt->file[k];
		int64_t off;

		if (!pf->nodeid)
			continue;
		t->file[k] = *pf;
		if (pf->off == SNAP_OFF_TEMPLATE)
			continue; /* rendered from the fields, copied here */
		/* the stored length counts the final newline that arena_add adds */
		off = arena_add(a, prev->arena + pf->off, pf->len - 1, true);
		if (off < 0)
			return (int)off;
		t->file[k].off = (uint32_t)off;
	}
	return 0;
}

/* another domain than ids and bodies */
uint64_t snapshot_item_hash(const uint64_t hash_key[2], const char *item, size_t len)
{
	const uint64_t k[2] = { hash_key[0], ~hash_key[1] };

	return hash_siphash13(k, item, len);
}

/* Build task @t from the item @r names, parsed now and freed before returning. */
static int build_task(struct arena *a, struct snap_ctx *ctx, const struct snapshot *prev,
		      const char *body, const struct item_list *l, const struct item_ref *r,
		      struct snap_task *t)
{
	const char *id = items_id(l, r);
	const struct snap_task *pt =
		r->ptask ? &prev->tasks[r->ptask - 1] : prev_task(prev, r->key, id, r->id_len);
	struct json_item *item;
	int64_t off;
	int ret;

	memset(t, 0, sizeof(*t));
	t->key = r->key;
	off = arena_add(a, id, r->id_len, false);
	if (off < 0)
		return (int)off;
	t->id_off = (uint32_t)off;
	t->id_len = r->id_len;
	t->item_hash =
		r->ptask ? r->hash : snapshot_item_hash(ctx->hash_key, body + r->off, r->len);
	t->item_off = r->off;
	t->item_len = r->len;
	t->item_arena = r->arena < UINT32_MAX ? (uint32_t)r->arena : UINT32_MAX;
	t->item_parse = r->parse;
	if (pt && pt->item_hash == t->item_hash && !ctx->no_reuse) {
		ctx->reused++;
		return reuse_task(a, prev, pt, t);
	}
	ret = json_item_parse(body + r->off, r->len, &item);
	if (ret < 0)
		return ret;
	/* without a usable timestamp the folder keeps the time it was first seen */
	t->mtime = task_mtime(item, pt ? pt->mtime : ctx->now_ns / 1000000000);
	ret = build_files(a, ctx, prev, pt, item, t);
	json_item_free(item);
	return ret;
}

static bool same_listing(const struct snapshot *a, const struct snapshot *b)
{
	if (a->ntasks != b->ntasks)
		return false;
	for (size_t i = 0; i < a->ntasks; i++)
		if (a->tasks[i].key != b->tasks[i].key)
			return false;
	return true;
}

static int build_nodes(struct snapshot *s)
{
	size_t n = 0;

	free(s->nodes);
	s->nodes = big_malloc(sizeof(*s->nodes) * (s->ntasks * SNAP_NKINDS + 1));
	if (!s->nodes)
		return -ENOMEM;
	for (size_t i = 0; i < s->ntasks; i++) {
		for (int k = 0; k < SNAP_NKINDS; k++) {
			if (!s->tasks[i].file[k].nodeid)
				continue;
			s->nodes[n].nodeid = s->tasks[i].file[k].nodeid;
			s->nodes[n].task = (uint32_t)i;
			s->nodes[n].kind = (uint32_t)k;
			n++;
		}
	}
	s->nnodes = n;
	if (radix_sort_u64(s->nodes, n, sizeof(*s->nodes), offsetof(struct snap_node, nodeid)) < 0)
		qsort(s->nodes, n, sizeof(*s->nodes), node_cmp);
	return 0;
}

/* The tasks in the answer's order, for the next parse to walk along (items.c). */
static int build_order(struct snapshot *s, const struct item_list *l)
{
	uint32_t *at, last = 0; /* at[idx]: 1 + the task at that place in the answer */
	size_t n = 0;

	for (size_t i = 0; i < s->ntasks; i++)
		if (l->v[i].idx > last)
			last = l->v[i].idx;
	free(s->order);
	s->order = big_malloc(sizeof(*s->order) * (s->ntasks + 1));
	at = big_calloc((size_t)last + 1, sizeof(*at));
	if (!at || !s->order) {
		free(at);
		return -ENOMEM;
	}
	for (size_t i = 0; i < s->ntasks; i++)
		at[l->v[i].idx] = (uint32_t)i + 1;
	for (size_t p = 1; p <= last; p++)
		if (at[p])
			s->order[n++] = at[p] - 1;
	free(at);
	return 0;
}

/*
 * The node index of @s from @prev's: the files that kept their version
 * are @prev's nodes, in order, with their tasks' new indexes (@map); the
 * new versions were given ids above all of @prev's, in task order, so they
 * come after, in order too.  Every file is either a node kept (its id at
 * most the last kept) or appended (above all before it), so when the count
 * is short, ids were out of order: then it sorts as build_nodes does.
 */
static int build_nodes_after(struct snapshot *s, const struct snapshot *prev, const uint32_t *map)
{
	size_t n = 0, all = 0;
	uint64_t last = 0;

	s->nodes = big_malloc(sizeof(*s->nodes) * (s->ntasks * SNAP_NKINDS + 1));
	if (!s->nodes)
		return -ENOMEM;
	for (size_t i = 0; i < prev->nnodes; i++) {
		const struct snap_node *pn = &prev->nodes[i];
		uint32_t t = map[pn->task];

		if (t && s->tasks[t - 1].file[pn->kind].nodeid == pn->nodeid)
			s->nodes[n++] = (struct snap_node){ pn->nodeid, t - 1, pn->kind };
	}
	if (n)
		last = s->nodes[n - 1].nodeid;
	for (size_t i = 0; i < s->ntasks; i++) {
		for (int k = 0; k < SNAP_NKINDS; k++) {
			uint64_t id = s->tasks[i].file[k].nodeid;

			if (!id)
				continue;
			all++;
			/* not above the last: one of @prev's, or out of order (counted short) */
			if (id > last) {
				s->nodes[n++] = (struct snap_node){ id, (uint32_t)i, (uint32_t)k };
				last = id;
			}
		}
	}
	s->nnodes = n;
	return n == all ? 0 : build_nodes(s);
}

int snapshot_reindex(struct snapshot *s)
{
	int ret = build_nodes(s);

	for (size_t i = 1; i < s->nnodes && ret == 0; i++)
		if (s->nodes[i].nodeid == s->nodes[i - 1].nodeid)
			ret = -EINVAL;
	return ret;
}

/* what items.c charges a task for, besides its bytes in the arena */
_Static_assert(sizeof(struct snap_task) + sizeof(struct item_ref) +
			       SNAP_NKINDS * sizeof(struct snap_node) +
			       SNAP_NVIEWS * (sizeof(struct snap_value) + 16 + sizeof(uint32_t)) <=
		       ITEMS_TASK_COST,
	       "ITEMS_TASK_COST too small");

/*
 * Build the tasks of @s from the items of @l, in key order; @map (when
 * given) gets 1 + the new index of each task of @prev that is in @s too.
 * 0 or -errno.
 */
static int build_tasks(struct snapshot *s, struct arena *a, struct snap_ctx *ctx,
		       const struct snapshot *prev, const char *body, const struct item_list *l,
		       uint32_t *map)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct item_ref *r = &l->v[i];
		int ret = build_task(a, ctx, prev, body, l, r, &s->tasks[i]);
		const struct snap_task *pt;

		if (ret < 0)
			return ret;
		s->ntasks = i + 1;
		if (!map)
			continue;
		pt = r->ptask ? &prev->tasks[r->ptask - 1]
			      : prev_task(prev, r->key, items_id(l, r), r->id_len);
		if (pt)
			map[pt - prev->tasks] = (uint32_t)i + 1;
	}
	return 0;
}

int snapshot_parse(char *body, size_t len, const struct snapshot *prev, struct snap_ctx *ctx,
		   struct snapshot **out, char *err, size_t errlen)
{
	struct item_list l = { 0 };
	struct arena a = { 0 };
	struct snapshot *s;
	uint32_t *map = NULL; /* @prev's tasks -> 1 + their index in @s */
	int ret = -ENOMEM;

	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	atomic_init(&s->refs, 1);
	ctx->stamped = false;
	ctx->reused = 0;
	ret = items_collect(body, len, ctx->hash_key, ctx->no_reuse ? NULL : prev, &l, &s->stats,
			    err, errlen);
	if (ret < 0)
		goto out_free_snap;
	ret = -ENOMEM;
	s->tasks = big_malloc(sizeof(*s->tasks) * (l.n + 1));
	if (!s->tasks)
		goto out_nomem;
	/* sized once, from the scan's bounds: pages never written cost nothing */
	a.cap = l.arena + 1;
	a.buf = big_malloc(a.cap);
	if (!a.buf)
		goto out_nomem;
	if (prev && prev->nodes && !(map = big_calloc(prev->ntasks + 1, sizeof(*map))))
		goto out_nomem;
	ret = build_tasks(s, &a, ctx, prev, body, &l, map);
	for (int v = 0; v < SNAP_NVIEWS && ret == 0; v++)
		ret = view_build(s, &a, ctx->hash_key, (enum snap_view_kind)v);
	if (ret < 0)
		goto out_nomem;
	s->arena = a.buf;
	s->arena_len = a.len;
	a.buf = NULL;
	if (s->arena_len && s->arena_len < a.cap) {
		char *shrunk = realloc(s->arena, s->arena_len);

		if (shrunk)
			s->arena = shrunk;
	}
	if ((map ? build_nodes_after(s, prev, map) : build_nodes(s)) < 0 ||
	    build_order(s, &l) < 0) {
		ret = -ENOMEM;
		goto out_nomem;
	}
	free(map);
	map = NULL;

	if (prev && same_listing(prev, s))
		s->mtime_ns = prev->mtime_ns;
	else
		s->mtime_ns = next_stamp(ctx);
	s->views_mtime_ns = prev ? prev->views_mtime_ns : s->mtime_ns;
	items_free(&l);
	*out = s;
	return 0;

out_nomem:
	if (ret == -EPROTO)
		snprintf(err, errlen, "an item the scanner accepted was refused by cJSON");
	else
		snprintf(err, errlen,
			 ret == -E2BIG ? "response too large to index" : "out of memory");
out_free_snap:
	free(map);
	free(a.buf);
	items_free(&l);
	snapshot_put(s);
	return ret;
}

struct snapshot *snapshot_get(struct snapshot *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void snapshot_put(struct snapshot *s)
{
	if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (int v = 0; v < SNAP_NVIEWS; v++) {
		free(s->view[v].values);
		free(s->view[v].members);
	}
	free(s->tasks);
	free(s->order);
	free(s->nodes);
	free(s->arena);
	free(s);
}

void snapshot_restamp(struct snapshot *s, struct snap_ctx *ctx, int64_t at_ns)
{
	int64_t shift;

	if (!ctx->stamped || at_ns <= ctx->first_ns || ctx->newest_ns >= INT64_MAX - NS_PER_S)
		return;
	shift = at_ns - ctx->first_ns;
	if (shift > INT64_MAX - NS_PER_S - ctx->newest_ns)
		return;
	/* stamps only grow: whatever is >= the first is this parse's own */
	for (size_t i = 0; i < s->ntasks; i++)
		for (int k = 0; k < SNAP_NKINDS; k++)
			if (s->tasks[i].file[k].nodeid &&
			    s->tasks[i].file[k].mtime_ns >= ctx->first_ns)
				s->tasks[i].file[k].mtime_ns += shift;
	if (s->mtime_ns >= ctx->first_ns)
		s->mtime_ns += shift;
	if (s->views_mtime_ns >= ctx->first_ns)
		s->views_mtime_ns += shift;
	ctx->first_ns += shift;
	ctx->newest_ns += shift;
}

/* ---- lookups ---- */

static size_t lower_bound_key(const struct snapshot *s, uint64_t key)
{
	return LOWER_BOUND(s->tasks, s->ntasks, key, key);
}

const struct snap_task *snapshot_find_key(const struct snapshot *s, uint64_t key)
{
	size_t i = lower_bound_key(s, key);

	return i < s->ntasks && s->tasks[i].key == key ? &s->tasks[i] : NULL;
}

const struct snap_task *snapshot_find(const struct snapshot *s, const uint64_t hash_key[2],
				      const char *name, size_t len)
{
	const struct snap_task *t;

	if (!name_valid(name, len))
		return NULL;
	t = snapshot_find_key(s, snapshot_hash(hash_key, name, len));
	if (t && t->id_len == len && memcmp(snap_task_id(s, t), name, len) == 0)
		return t;
	return NULL;
}

bool snapshot_find_node(const struct snapshot *s, uint64_t nodeid, const struct snap_task **task,
			enum snap_kind *kind)
{
	size_t lo = LOWER_BOUND(s->nodes, s->nnodes, nodeid, nodeid);

	if (lo == s->nnodes || s->nodes[lo].nodeid != nodeid)
		return false;
	*task = &s->tasks[s->nodes[lo].task];
	*kind = (enum snap_kind)s->nodes[lo].kind;
	return true;
}

size_t snapshot_seek(const struct snapshot *s, uint64_t off)
{
	/* cookie = key + SNAP_DIR_OFFSET; want the first cookie > off */
	if (off < SNAP_DIR_OFFSET)
		return 0;
	return lower_bound_key(s, off - SNAP_DIR_OFFSET + 1);
}
