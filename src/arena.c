// SPDX-License-Identifier: MIT
/* The packed string storage of a snapshot. */
#include "arena.h"
#include "bigmem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int64_t arena_add(struct arena *a, const char *data, size_t len, bool nl)
{
	size_t need = a->len + len + (nl ? 1 : 0) + 1;
	size_t off = a->len;

	if (need > UINT32_MAX)
		return -E2BIG;
	if (need > a->cap) {
		size_t cap = a->cap ? a->cap : 65536;
		char *buf;

		while (cap < need)
			cap *= 2;
		buf = big_realloc(a->buf, cap);
		if (!buf)
			return -ENOMEM;
		a->buf = buf;
		a->cap = cap;
	}
	memcpy(a->buf + a->len, data, len);
	a->len += len;
	if (nl)
		a->buf[a->len++] = '\n';
	a->buf[a->len] = '\0'; /* ids are used as C strings */
	a->len++;
	return (int64_t)off;
}
