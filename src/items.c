// SPDX-License-Identifier: MIT
/* Which items of an answer get a folder, within a memory budget. */
#include "items.h"

#include "bigmem.h"
#include "radix.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "name.h"
#include "scan.h"
#include "snapshot.h"

const char *const items_skip_names[ITEMS_NSKIPS] = {
	[ITEMS_SKIP_NOT_OBJECT] = "not an object",     [ITEMS_SKIP_NO_ID] = "no string id",
	[ITEMS_SKIP_BAD_NAME] = "id not a valid name", [ITEMS_SKIP_INVALID] = "not strict JSON",
	[ITEMS_SKIP_TOO_DEEP] = "nested too deep",     [ITEMS_SKIP_TOO_LARGE] = "too large",
	[ITEMS_SKIP_COLLISION] = "id hash collision",
};

/*
 * Upper bounds, in bytes, of what building costs: a cJSON node with its
 * malloc overhead and key copy, and the number token json.c keeps for it.
 */
#define VALUE_COST (96 + 8)
#define ID_MAX	   2048 /* a longer id token cannot decode to a valid name */

struct collector {
	const char *body;
	size_t len;
	const uint64_t *hash_key;
	const struct snapshot *prev; /* its tasks may stand for unchanged items */
	size_t cursor;		     /* where in prev->order the next item may be */
	struct item_list *l;
	struct snap_stats *st;
	uint64_t item_limit; /* an item costing more is skipped */
	uint64_t need;	     /* bytes the kept items take for good */
	uint64_t transient;  /* bytes the largest kept item's parse takes */
	int err;	     /* -ENOMEM once an allocation failed */
};

/* Append @s to the examples, escaping anything not printable ASCII. */
static void note_example(struct snap_stats *st, const char *s, size_t len)
{
	size_t used = strlen(st->examples);
	char *p = st->examples + used;
	size_t room = sizeof(st->examples) - used;

	if (room < 24)
		return;
	if (used)
		*p++ = ' ', room--;
	*p++ = '"', room--;
	for (size_t i = 0; i < len && room > 6; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			*p++ = (char)c;
			room--;
		} else {
			p += snprintf(p, room, "\\x%02x", c);
			room -= 4;
		}
	}
	*p++ = '"';
	*p = '\0';
}

void items_skipped(struct snap_stats *st, enum items_skip why, const char *example, size_t len)
{
	st->skipped++;
	st->skip[why]++;
	if (example)
		note_example(st, example, len);
}

void items_skip_summary(const struct snap_stats *st, char *buf, size_t len)
{
	size_t used = 0;

	snprintf(buf, len, "none");
	for (int k = 0; k < ITEMS_NSKIPS; k++) {
		int n;

		if (!st->skip[k] || used >= len)
			continue;
		n = snprintf(buf + used, len - used, "%s%zu %s", used ? ", " : "", st->skip[k],
			     items_skip_names[k]);
		if (n > 0)
			used += (size_t)n;
	}
}

/* The raw text of a string token, without its quotes, for an example. */
static void skip_with_token(struct collector *c, enum items_skip why, const struct scan_span *id,
			    const char *otherwise)
{
	if (id->type == '"')
		items_skipped(c->st, why, c->body + id->off + 1, id->len - 2);
	else
		items_skipped(c->st, why, otherwise, strlen(otherwise));
}

/* A field's file text: a string decodes shorter; \b in compact JSON grows 3x. */
static uint64_t field_cost(const struct scan_span *f)
{
	if (!f->type)
		return 0;
	return (f->type == '"' ? f->len : 3ULL * f->len) + 2;
}

/* Parse tree, number index, printer buffer and compact field texts. */
static uint64_t transient_cost(const struct scan_item *si)
{
	uint64_t t = (uint64_t)si->nvalues * VALUE_COST + 2ULL * si->len + 2 * si->pretty;

	for (int k = SCAN_STATE; k < SCAN_NFIELDS; k++)
		t += 2 * field_cost(&si->field[k]);
	return t;
}

/* The id, each field's file, raw.json and the view value names. */
static uint64_t arena_cost(const struct scan_item *si, size_t id_len)
{
	uint64_t a = id_len + 1 + si->pretty + 2;

	for (int k = SCAN_STATE; k < SCAN_NFIELDS; k++)
		a += field_cost(&si->field[k]);
	return a + field_cost(&si->field[SCAN_STATE]) + field_cost(&si->field[SCAN_OPERATION]);
}

static uint32_t saturate(uint64_t v)
{
	return v < UINT32_MAX ? (uint32_t)v : UINT32_MAX;
}

/* Append an item to build, zeroed but for @key. */
static struct item_ref *new_ref(struct collector *c, uint64_t key)
{
	struct item_list *l = c->l;
	struct item_ref *r;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		struct item_ref *v = big_realloc(l->v, cap * sizeof(*v));

		if (!v) {
			c->err = -ENOMEM;
			return NULL;
		}
		l->v = v;
		l->cap = cap;
	}
	r = &l->v[l->n++];
	memset(r, 0, sizeof(*r));
	r->key = key;
	return r;
}

/* Append a scanned item to build; @key is the keyed hash of @id, kept in the list's ids. */
static struct item_ref *add_ref(struct collector *c, uint64_t key, const char *id, size_t id_len)
{
	int64_t off = arena_add(&c->l->ids, id, id_len, false);
	struct item_ref *r;

	if (off < 0) {
		c->err = (int)off;
		return NULL;
	}
	r = new_ref(c, key);
	if (!r)
		return NULL;
	r->id_off = (uint32_t)off;
	r->id_len = (uint32_t)id_len;
	return r;
}

/* What an item kept costs, charged to the answer's budget. */
static void charge(struct collector *c, struct item_ref *r, uint64_t arena, uint64_t parse)
{
	r->arena = arena;
	r->parse = saturate(parse);
	c->l->arena += arena;
	c->need += ITEMS_TASK_COST + arena + r->id_len + 1;
	if (parse > c->transient)
		c->transient = parse;
}

/* After an item scanned anew: go on from its place in the previous answer, if it had one. */
static void resync(struct collector *c, uint64_t key)
{
	const struct snapshot *p = c->prev;
	const struct snap_task *t = p ? snapshot_find_key(p, key) : NULL;
	size_t from = c->cursor > 2 ? c->cursor - 2 : 0;

	if (!t)
		return;
	for (size_t i = from; i < p->ntasks && i < c->cursor + 8; i++) {
		if (p->order[i] == (uint32_t)(t - p->tasks)) {
			c->cursor = i + 1;
			return;
		}
	}
}

/*
 * scan.c asks, at each item: are the bytes at @off those of the task of
 * the previous answer that came next?  If so, that task's id, key and
 * costs stand for the item, which is then not scanned: the length.
 */
static size_t known_item(void *arg, uint32_t off, uint32_t idx)
{
	struct collector *c = arg;
	const struct snapshot *p = c->prev;
	const struct snap_task *t;
	struct item_ref *r;
	uint64_t h;

	if (!p || c->err || c->cursor >= p->ntasks)
		return 0;
	/* the tasks are in key order, the walk in answer order: fetch ahead */
	if (c->cursor + 8 < p->ntasks)
		__builtin_prefetch(&p->tasks[p->order[c->cursor + 8]]);
	t = &p->tasks[p->order[c->cursor]];
	if (t->item_len < 2 || t->item_len > c->len - off || t->item_arena == UINT32_MAX ||
	    t->item_parse == UINT32_MAX || c->body[off + t->item_len - 1] != '}')
		return 0;
	if ((uint64_t)t->item_parse + t->item_arena + ITEMS_TASK_COST > c->item_limit)
		return 0; /* over this answer's limit: let the scan say why */
	h = snapshot_item_hash(c->hash_key, c->body + off, t->item_len);
	if (h != t->item_hash)
		return 0;
	c->st->items++;
	c->st->unscanned++;
	r = new_ref(c, t->key);
	if (!r)
		return 0;
	r->id_off = t->id_off; /* in @prev's arena */
	r->id_len = t->id_len;
	r->idx = idx;
	r->off = off;
	r->len = t->item_len;
	r->hash = h;
	r->ptask = (uint32_t)(t - p->tasks) + 1;
	charge(c, r, t->item_arena, t->item_parse);
	c->cursor++;
	return t->item_len;
}

static void on_item(void *arg, const struct scan_item *si)
{
	struct collector *c = arg;
	const struct scan_span *id = &si->field[SCAN_ID];
	char buf[ID_MAX];
	uint64_t transient, arena, key;
	struct item_ref *r;
	size_t n;

	c->st->items++;
	if (c->err)
		return;
	if (si->defect) {
		if (!c->st->invalid)
			c->st->invalid = si->defect;
		skip_with_token(c, ITEMS_SKIP_INVALID, id, "(not strict JSON)");
		return;
	}
	if (c->body[si->off] != '{') {
		skip_with_token(c, ITEMS_SKIP_NOT_OBJECT, id, "(not an object)");
		return;
	}
	if (si->depth > ITEMS_MAX_DEPTH) {
		skip_with_token(c, ITEMS_SKIP_TOO_DEEP, id, "(nested too deep)");
		return;
	}
	if (id->type != '"') {
		skip_with_token(c, ITEMS_SKIP_NO_ID, id, "(id not a string)");
		return;
	}
	if (id->len > sizeof(buf)) {
		skip_with_token(c, ITEMS_SKIP_BAD_NAME, id, "");
		return;
	}
	n = scan_string(c->body + id->off, id->len, buf);
	if (!name_valid(buf, n)) {
		items_skipped(c->st, ITEMS_SKIP_BAD_NAME, buf, n);
		return;
	}
	transient = transient_cost(si);
	arena = arena_cost(si, n);
	if (transient + arena + ITEMS_TASK_COST > c->item_limit) {
		items_skipped(c->st, ITEMS_SKIP_TOO_LARGE, buf, n);
		return;
	}
	key = snapshot_hash(c->hash_key, buf, n);
	r = add_ref(c, key, buf, n);
	if (!r)
		return;
	r->idx = si->idx;
	r->off = si->off;
	r->len = si->len;
	charge(c, r, arena, transient);
	resync(c, key);
}

static int ref_cmp(const void *a, const void *b)
{
	const struct item_ref *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/*
 * Keep @r after @kept refs of @l (the last of them: its nearest smaller or
 * equal key), or drop it when that one has the same key: a repeated id, or
 * a 59-bit keyed hash collision (astronomically rare) that the first keeps.
 */
static void keep(struct item_list *l, struct item_ref *out, size_t *kept, const struct item_ref *r,
		 struct snap_stats *st)
{
	const struct item_ref *first = *kept ? &out[*kept - 1] : NULL;

	if (first && first->key == r->key) {
		if (first->id_len == r->id_len &&
		    memcmp(items_id(l, first), items_id(l, r), r->id_len) == 0)
			st->duplicates++;
		else
			items_skipped(st, ITEMS_SKIP_COLLISION, items_id(l, r), r->id_len);
		l->arena -= r->arena;
		return;
	}
	out[(*kept)++] = *r;
}

static bool ref_before(const struct item_ref *a, const struct item_ref *b)
{
	return a->key < b->key || (a->key == b->key && a->idx < b->idx);
}

/*
 * The list in key order when items of @prev (@nprev tasks) are in it:
 * those are placed by their task's index (its tasks are in key order),
 * only the items scanned anew are sorted, and the two are merged.
 */
static int order_known(struct item_list *l, size_t nprev, struct snap_stats *st)
{
	uint32_t *slot = big_calloc(nprev + 1, sizeof(*slot));
	/* not big_malloc: few are scanned anew, and a huge page would be zeroed whole */
	struct item_ref *scanned = malloc(sizeof(*scanned) * (l->n + 1));
	struct item_ref *out = big_malloc(sizeof(*out) * (l->n + 1));
	size_t ns = 0, kept = 0, j = 0, k = 0;

	if (!slot || !scanned || !out)
		goto nomem;
	/* in the answer's order: a task's first item takes its slot */
	for (size_t i = 0; i < l->n; i++) {
		const struct item_ref *r = &l->v[i];

		if (!r->ptask)
			scanned[ns++] = *r;
		else if (!slot[r->ptask - 1])
			slot[r->ptask - 1] = (uint32_t)i + 1;
		else { /* the same task's bytes again: a repeated id */
			st->duplicates++;
			l->arena -= r->arena;
		}
	}
	/* stable: of equal keys, the answer's order (idx) stays */
	if (radix_sort_u64(scanned, ns, sizeof(*scanned), offsetof(struct item_ref, key)) < 0)
		goto nomem;
	for (;;) {
		while (j < nprev && !slot[j])
			j++;
		if (j == nprev && k == ns)
			break;
		if (k == ns || (j < nprev && ref_before(&l->v[slot[j] - 1], &scanned[k])))
			keep(l, out, &kept, &l->v[slot[j++] - 1], st);
		else
			keep(l, out, &kept, &scanned[k++], st);
	}
	free(slot);
	free(scanned);
	free(l->v);
	l->v = out;
	l->n = kept;
	l->cap = l->n + 1;
	return 0;
nomem:
	free(slot);
	free(scanned);
	free(out);
	return -ENOMEM;
}

/* Sort by key; of equal ids the first in the answer stays. */
static int drop_repeats(struct item_list *l, const struct snapshot *prev, struct snap_stats *st)
{
	size_t kept = 0;

	if (!l->n)
		return 0; /* and l->v may be NULL, which qsort must not see */
	if (prev && st->unscanned)
		return order_known(l, prev->ntasks, st);
	/* stable: of equal keys, the answer's order (idx) stays */
	if (radix_sort_u64(l->v, l->n, sizeof(*l->v), offsetof(struct item_ref, key)) < 0)
		qsort(l->v, l->n, sizeof(*l->v), ref_cmp);
	for (size_t i = 0; i < l->n; i++)
		keep(l, l->v, &kept, &l->v[i], st);
	l->n = kept;
	return 0;
}

int items_collect(char *body, size_t len, const uint64_t hash_key[2], const struct snapshot *prev,
		  struct item_list *l, struct snap_stats *st, char *err, size_t errlen)
{
	struct collector c = {
		.body = body, .len = len, .hash_key = hash_key, .prev = prev, .l = l, .st = st
	};
	struct scan_result res;
	int ret;

	memset(l, 0, sizeof(*l));
	memset(st, 0, sizeof(*st));
	st->total_items = -1;
	l->budget = ITEMS_BUDGET_BASE + ITEMS_BUDGET_RATIO * (uint64_t)len;
	c.item_limit = l->budget / 4;
	st->repaired = json_repair(body, len);
	if (prev && prev->ntasks >= 256) {
		/* most answers hold what the last one did: one block, not a doubling per 2x */
		size_t cap = prev->ntasks + prev->ntasks / 16;

		l->v = big_malloc(cap * sizeof(*l->v));
		l->cap = l->v ? cap : 0;
	}
	ret = scan_answer_known(body, len, on_item, prev && prev->order ? known_item : NULL, &c,
				&res, err, errlen);
	if (ret == 0 && c.err) {
		ret = c.err;
		snprintf(err, errlen,
			 ret == -E2BIG ? "response too large to index" : "out of memory");
	}
	if (ret == 0 && c.need + c.transient > l->budget) {
		snprintf(err, errlen,
			 "answer of %zu bytes needs about %llu MiB to build, more than its budget "
			 "of %llu MiB",
			 len, (unsigned long long)((c.need + c.transient) >> 20),
			 (unsigned long long)(l->budget >> 20));
		ret = -EFBIG;
	}
	if (ret < 0) {
		items_free(l);
		return ret;
	}
	if (res.total.type == '0')
		st->total_items = json_count(body + res.total.off, res.total.len);
	l->prev_ids = prev ? prev->arena : NULL;
	if (drop_repeats(l, prev, st) < 0) {
		items_free(l);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

void items_free(struct item_list *l)
{
	free(l->v);
	free(l->ids.buf);
	memset(l, 0, sizeof(*l));
}
