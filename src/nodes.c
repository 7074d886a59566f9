// SPDX-License-Identifier: MIT
/* Lookup counts by node id: linear probing with backward-shift deletion. */
#include "nodes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct node_slot {
	uint64_t nodeid; /* 0: empty */
	uint64_t nlookup;
	struct blob *blob;
};

struct nodes {
	struct node_slot *slots;
	size_t mask; /* capacity - 1; capacity is a power of two */
	size_t used;
	size_t blobs;
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

static size_t slot_of(const struct nodes *t, uint64_t nodeid)
{
	/* Fibonacci hashing spreads the sequential node ids */
	return (size_t)((nodeid * 0x9e3779b97f4a7c15ULL) >> 20) & t->mask;
}

struct nodes *nodes_new(void)
{
	struct nodes *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->slots = calloc(1024, sizeof(*t->slots));
	if (!t->slots) {
		free(t);
		return NULL;
	}
	t->mask = 1023;
	return t;
}

void nodes_free(struct nodes *t)
{
	if (!t)
		return;
	for (size_t i = 0; i <= t->mask; i++)
		blob_put(t->slots[i].blob);
	free(t->slots);
	free(t);
}

static struct node_slot *find_slot(const struct nodes *t, uint64_t nodeid)
{
	for (size_t i = slot_of(t, nodeid);; i = (i + 1) & t->mask) {
		if (t->slots[i].nodeid == nodeid)
			return &t->slots[i];
		if (t->slots[i].nodeid == 0)
			return NULL;
	}
}

static int grow(struct nodes *t)
{
	struct node_slot *old = t->slots;
	size_t oldcap = t->mask + 1;

	t->slots = calloc(oldcap * 2, sizeof(*t->slots));
	if (!t->slots) {
		t->slots = old;
		return -ENOMEM;
	}
	t->mask = oldcap * 2 - 1;
	for (size_t i = 0; i < oldcap; i++) {
		size_t j;

		if (!old[i].nodeid)
			continue;
		for (j = slot_of(t, old[i].nodeid); t->slots[j].nodeid; j = (j + 1) & t->mask)
			;
		t->slots[j] = old[i];
	}
	free(old);
	return 0;
}

int nodes_ref(struct nodes *t, uint64_t nodeid, uint64_t n)
{
	struct node_slot *s = find_slot(t, nodeid);
	size_t i;

	if (s) {
		s->nlookup += n;
		return 0;
	}
	/* keep the load at or under one half */
	if ((t->used + 1) * 2 > t->mask + 1 && grow(t) < 0)
		return -ENOMEM;
	for (i = slot_of(t, nodeid); t->slots[i].nodeid; i = (i + 1) & t->mask)
		;
	t->slots[i].nodeid = nodeid;
	t->slots[i].nlookup = n;
	t->slots[i].blob = NULL;
	t->used++;
	return 0;
}

uint64_t nodes_count(const struct nodes *t, uint64_t nodeid)
{
	const struct node_slot *s = find_slot(t, nodeid);

	return s ? s->nlookup : 0;
}

struct blob *nodes_blob(const struct nodes *t, uint64_t nodeid)
{
	const struct node_slot *s = find_slot(t, nodeid);

	return s ? s->blob : NULL;
}

void nodes_set_blob(struct nodes *t, uint64_t nodeid, struct blob *b)
{
	struct node_slot *s = find_slot(t, nodeid);

	if (!s) {
		blob_put(b);
		return;
	}
	if (s->blob)
		blob_put(s->blob);
	else
		t->blobs++;
	s->blob = b;
}

/* Remove slot @i and shift later members of its cluster back. */
static void remove_slot(struct nodes *t, size_t i)
{
	size_t j = i;

	for (;;) {
		size_t home;

		j = (j + 1) & t->mask;
		if (!t->slots[j].nodeid)
			break;
		home = slot_of(t, t->slots[j].nodeid);
		/* may slot j move to the hole at i? only if home is not in (i, j] */
		if ((i <= j) ? (home <= i || home > j) : (home <= i && home > j)) {
			t->slots[i] = t->slots[j];
			i = j;
		}
	}
	memset(&t->slots[i], 0, sizeof(t->slots[i]));
	t->used--;
}

struct blob *nodes_forget(struct nodes *t, uint64_t nodeid, uint64_t n)
{
	struct node_slot *s = find_slot(t, nodeid);
	struct blob *b;

	if (!s)
		return NULL;
	if (s->nlookup > n) {
		s->nlookup -= n;
		return NULL;
	}
	b = s->blob;
	if (b)
		t->blobs--;
	remove_slot(t, (size_t)(s - t->slots));
	return b;
}

size_t nodes_size(const struct nodes *t)
{
	return t->used;
}

size_t nodes_blobs(const struct nodes *t)
{
	return t->blobs;
}
