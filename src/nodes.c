// SPDX-License-Identifier: MIT
/* Lookup counts by node id: linear probing with backward-shift deletion. */
#include "nodes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * One open-addressing map from node id (never 0) to a 64-bit value: linear
 * probing, the load kept under 13/16, backward-shift deletion.  Slots are
 * 16 bytes: at 100,000 tasks the kernel may hold 400,000 file node ids,
 * so the counts take 8 MiB.  Blobs are rare (replaced versions still
 * held), so they live in a second map of the same kind rather than in a
 * pointer field of every slot.
 */
struct slot {
	uint64_t key; /* 0: empty */
	uint64_t val;
};

struct map {
	struct slot *slots;
	unsigned bits; /* capacity is 1 << bits */
	size_t used;
};

struct nodes {
	struct map counts; /* node id -> lookup count */
	struct map blobs;  /* node id -> struct blob *, for counted ids only */
};

struct blob *blob_new(uint64_t ino, int64_t mtime_ns, const char *data, size_t len)
{
	struct blob *b = malloc(sizeof(*b) + len + 1);

	if (!b)
		return NULL;
	atomic_init(&b->refs, 1);
	b->ino = ino;
	b->mtime_ns = mtime_ns;
	b->len = len;
	memcpy(b->data, data, len);
	b->data[len] = '\0';
	return b;
}

struct blob *blob_get(struct blob *b)
{
	atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
	return b;
}

void blob_put(struct blob *b)
{
	if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
		free(b);
}

static size_t map_cap(const struct map *m)
{
	return (size_t)1 << m->bits;
}

static size_t map_home(const struct map *m, uint64_t key)
{
	/* Fibonacci hashing: the top bits of the product spread sequential ids */
	return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> (64 - m->bits));
}

static size_t map_next(const struct map *m, size_t i)
{
	return (i + 1) & (map_cap(m) - 1);
}

static int map_init(struct map *m, unsigned bits)
{
	m->slots = calloc((size_t)1 << bits, sizeof(*m->slots));
	m->bits = bits;
	m->used = 0;
	return m->slots ? 0 : -ENOMEM;
}

static struct slot *map_find(const struct map *m, uint64_t key)
{
	for (size_t i = map_home(m, key);; i = map_next(m, i)) {
		if (m->slots[i].key == key)
			return &m->slots[i];
		if (m->slots[i].key == 0)
			return NULL;
	}
}

static void map_place(struct map *m, struct slot s)
{
	size_t i;

	for (i = map_home(m, s.key); m->slots[i].key; i = map_next(m, i))
		;
	m->slots[i] = s;
	m->used++;
}

/* map_add - a new key (not present); 0 or -ENOMEM */
static int map_add(struct map *m, uint64_t key, uint64_t val)
{
	if ((m->used + 1) * 16 > map_cap(m) * 13) {
		struct map bigger;
		struct slot *old = m->slots;
		size_t oldcap = map_cap(m);

		if (map_init(&bigger, m->bits + 1) < 0)
			return -ENOMEM;
		for (size_t i = 0; i < oldcap; i++)
			if (old[i].key)
				map_place(&bigger, old[i]);
		free(old);
		*m = bigger;
	}
	map_place(m, (struct slot){ key, val });
	return 0;
}

/* Remove slot @s and shift later members of its cluster back. */
static void map_remove(struct map *m, struct slot *s)
{
	size_t i = (size_t)(s - m->slots), j = i;

	for (;;) {
		size_t home;

		j = map_next(m, j);
		if (!m->slots[j].key)
			break;
		home = map_home(m, m->slots[j].key);
		/* may slot j move to the hole at i? only if home is not in (i, j] */
		if ((i <= j) ? (home <= i || home > j) : (home <= i && home > j)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i] = (struct slot){ 0, 0 };
	m->used--;
}

struct nodes *nodes_new(void)
{
	struct nodes *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	if (map_init(&t->counts, 10) < 0 || map_init(&t->blobs, 4) < 0) {
		free(t->counts.slots);
		free(t);
		return NULL;
	}
	return t;
}

void nodes_free(struct nodes *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < map_cap(&t->blobs); i++)
		if (t->blobs.slots[i].key)
			blob_put((struct blob *)(uintptr_t)t->blobs.slots[i].val);
	free(t->counts.slots);
	free(t->blobs.slots);
	free(t);
}

int nodes_ref(struct nodes *t, uint64_t nodeid, uint64_t n)
{
	struct slot *s = map_find(&t->counts, nodeid);

	if (s) {
		s->val += n;
		return 0;
	}
	return map_add(&t->counts, nodeid, n);
}

uint64_t nodes_count(const struct nodes *t, uint64_t nodeid)
{
	const struct slot *s = map_find(&t->counts, nodeid);

	return s ? s->val : 0;
}

struct blob *nodes_blob(const struct nodes *t, uint64_t nodeid)
{
	const struct slot *s = map_find(&t->blobs, nodeid);

	return s ? (struct blob *)(uintptr_t)s->val : NULL;
}

int nodes_set_blob(struct nodes *t, uint64_t nodeid, struct blob *b)
{
	struct slot *s;

	if (!map_find(&t->counts, nodeid)) {
		blob_put(b);
		return 0;
	}
	s = map_find(&t->blobs, nodeid);
	if (!s)
		return map_add(&t->blobs, nodeid, (uintptr_t)b);
	blob_put((struct blob *)(uintptr_t)s->val);
	s->val = (uintptr_t)b;
	return 0;
}

struct blob *nodes_forget(struct nodes *t, uint64_t nodeid, uint64_t n)
{
	struct slot *s = map_find(&t->counts, nodeid), *sb;
	struct blob *b = NULL;

	if (!s)
		return NULL;
	if (s->val > n) {
		s->val -= n;
		return NULL;
	}
	map_remove(&t->counts, s);
	sb = map_find(&t->blobs, nodeid);
	if (sb) {
		b = (struct blob *)(uintptr_t)sb->val;
		map_remove(&t->blobs, sb);
	}
	return b;
}

size_t nodes_size(const struct nodes *t)
{
	return t->counts.used;
}

size_t nodes_blobs(const struct nodes *t)
{
	return t->blobs.used;
}
