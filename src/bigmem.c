// SPDX-License-Identifier: MIT
/* Large blocks, with a hint for transparent huge pages (bigmem.h). */
#include "bigmem.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define HUGE_2M ((uintptr_t)2 << 20)

void big_hint(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
	uintptr_t from, to;

	if (!p || n < BIGMEM_HINT_MIN)
		return;
	from = ((uintptr_t)p + HUGE_2M - 1) & ~(HUGE_2M - 1);
	to = ((uintptr_t)p + n) & ~(HUGE_2M - 1);
	if (to > from)
		(void)madvise((void *)from, to - from, MADV_HUGEPAGE);
#else
	(void)p;
	(void)n;
#endif
}

void *big_malloc(size_t n)
{
	void *p = malloc(n);

	big_hint(p, n);
	return p;
}

void *big_calloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (p && n)
		big_hint(p, n * size); /* calloc checked the product */
	return p;
}

void *big_realloc(void *p, size_t n)
{
	void *q = realloc(p, n);

	big_hint(q, n);
	return q;
}
