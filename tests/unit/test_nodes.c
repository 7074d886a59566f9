// SPDX-License-Identifier: MIT
/* nodes: the lookup-count table against a plain array model. */
#include <stdlib.h>

#include "check.h"
#include "nodes.h"

#define N 5000

int main(void)
{
	static uint64_t model[N]; /* lookup count of node id 16 + i */
	struct nodes *t = nodes_new();
	struct blob *b;
	unsigned int seed = 12345;
	size_t live = 0, wrong = 0;

	CHECK(t != NULL);
	if (!t)
		return 1;
	/* random refs and forgets exercise growth and backward-shift removal */
	for (int step = 0; step < 200000; step++) {
		size_t i = (size_t)rand_r(&seed) % N;
		uint64_t n = 1 + (uint64_t)rand_r(&seed) % 3;

		if (rand_r(&seed) % 2) {
			CHECK(nodes_ref(t, 16 + i, n) == 0);
			model[i] += n;
		} else {
			b = nodes_forget(t, 16 + i, n);
			blob_put(b);
			model[i] = model[i] > n ? model[i] - n : 0;
		}
	}
	for (size_t i = 0; i < N; i++) {
		if (nodes_count(t, 16 + i) != model[i])
			wrong++;
		if (model[i])
			live++;
	}
	CHECK(wrong == 0);
	CHECK(nodes_size(t) == live);

	/* blobs belong to the entry and come back when it goes */
	CHECK(nodes_ref(t, 1ULL << 40, 2) == 0);
	b = blob_new(7, 100, "hello", 5);
	CHECK(nodes_set_blob(t, 1ULL << 40, b) == 0);
	CHECK(nodes_blob(t, 1ULL << 40) == b);
	CHECK(nodes_blobs(t) == 1);
	CHECK(nodes_forget(t, 1ULL << 40, 1) == NULL);
	CHECK(nodes_forget(t, 1ULL << 40, 1) == b);
	CHECK(nodes_blobs(t) == 0 && nodes_count(t, 1ULL << 40) == 0);
	CHECK(b->len == 5 && b->ino == 7 && b->data[5] == '\0');
	blob_put(b);
	CHECK(nodes_forget(t, 999999999, 1) == NULL);

	/* many blobs: their own map grows and shrinks with the counts */
	{
		enum { M = 3000 };
		static struct blob *kept[M];
		size_t bad = 0;

		for (size_t i = 0; i < M; i++) {
			CHECK(nodes_ref(t, (1ULL << 41) + i, 1) == 0);
			kept[i] = blob_new(i, 0, "x", 1);
			CHECK(nodes_set_blob(t, (1ULL << 41) + i, kept[i]) == 0);
		}
		CHECK(nodes_blobs(t) == M);
		for (size_t i = 0; i < M; i += 2) {
			b = nodes_forget(t, (1ULL << 41) + i, 1);
			bad += b != kept[i];
			blob_put(b);
		}
		for (size_t i = 1; i < M; i += 2)
			bad += nodes_blob(t, (1ULL << 41) + i) != kept[i];
		CHECK(bad == 0);
		CHECK(nodes_blobs(t) == M / 2);
		/* a blob for an id the kernel does not hold is dropped, not kept */
		b = blob_new(1, 0, "y", 1);
		CHECK(nodes_set_blob(t, 1ULL << 42, b) == 0);
		CHECK(nodes_blob(t, 1ULL << 42) == NULL && nodes_blobs(t) == M / 2);
	}
	nodes_free(t);
	return check_done("test_nodes");
}
