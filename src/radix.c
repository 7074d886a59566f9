// SPDX-License-Identifier: MIT
/* Stable radix sort by a uint64_t member. */
#include "radix.h"
#include "bigmem.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline uint64_t key_at(const char *p, size_t field)
{
	uint64_t k;

	memcpy(&k, p + field, sizeof(k));
	return k;
}

int radix_sort_u64(void *base, size_t n, size_t size, size_t field)
{
	size_t count[8][256];
	char *src = base, *dst, *tmp;

	if (n < 2)
		return 0;
	tmp = big_malloc(n * size);
	if (!tmp)
		return -ENOMEM;
	memset(count, 0, sizeof(count));
	for (size_t i = 0; i < n; i++) {
		uint64_t k = key_at(src + i * size, field);

		for (int d = 0; d < 8; d++)
			count[d][(k >> (8 * d)) & 0xff]++;
	}
	dst = tmp;
	for (int d = 0; d < 8; d++) {
		size_t *c = count[d], sum = 0;

		if (c[(key_at(src, field) >> (8 * d)) & 0xff] == n)
			continue; /* one digit for all: this pass would change nothing */
		for (int b = 0; b < 256; b++) {
			size_t here = c[b];

			c[b] = sum;
			sum += here;
		}
		for (size_t i = 0; i < n; i++) {
			const char *e = src + i * size;

			memcpy(dst + c[(key_at(e, field) >> (8 * d)) & 0xff]++ * size, e, size);
		}
		dst = src;
		src = src == tmp ? base : tmp;
	}
	if (src != base)
		memcpy(base, src, n * size);
	free(tmp);
	return 0;
}
