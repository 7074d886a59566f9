// SPDX-License-Identifier: MIT
/* radix: a stable sort by a uint64_t member, checked against qsort. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "radix.h"

struct elem {
	uint32_t pad;
	uint32_t order; /* position before sorting: ties must keep it */
	uint64_t key;
	char tail[5];
};

static int by_key_then_order(const void *a, const void *b)
{
	const struct elem *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static uint64_t rng = 88172645463325252ULL;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* @n elements whose keys are next() & @mask | @high: ties, skipped passes, full width */
static void one(size_t n, uint64_t mask, uint64_t high)
{
	struct elem *a = calloc(n + 1, sizeof(*a)), *b = calloc(n + 1, sizeof(*b));
	int same = 1;

	if (!a || !b) {
		CHECK(!"calloc");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		a[i].order = (uint32_t)i;
		a[i].key = (next() & mask) | high;
		a[i].tail[0] = (char)i;
	}
	memcpy(b, a, n * sizeof(*a));
	CHECK(radix_sort_u64(a, n, sizeof(*a), offsetof(struct elem, key)) == 0);
	qsort(b, n, sizeof(*b), by_key_then_order);
	for (size_t i = 0; i < n && same; i++)
		same = a[i].key == b[i].key && a[i].order == b[i].order &&
		       a[i].tail[0] == b[i].tail[0];
	CHECK(same);
out:
	free(a);
	free(b);
}

int main(void)
{
	one(0, ~0ULL, 0);
	one(1, ~0ULL, 0);
	one(2, ~0ULL, 0);
	one(1000, ~0ULL, 0);		    /* every byte differs: eight passes */
	one(1000, 0xff, 0);		    /* many ties: stability */
	one(1000, 0, 42);		    /* all equal: no pass at all */
	one(5000, 0xffff00ULL, 1ULL << 62); /* passes 0 and 3..7 skipped */
	one(100000, (1ULL << 40) - 1, 16);  /* node ids */
	one(777, 0xf0f0f0f0f0f0f0f0ULL, 0); /* odd sizes, odd digits */
	return check_done("test_radix");
}
