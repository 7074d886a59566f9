/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_SORTED_H
#define INGESTFS_SORTED_H

/*
 * One binary search for every sorted index of the program (tasks, file
 * nodes, view values, graves): arrays of structs kept in ascending order of
 * a uint64_t member.  Header only; includes nothing of the project.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * lower_bound_u64 - index of the first of @n elements (each @size bytes,
 * sorted by the uint64_t at offset @field) whose key is >= @key.
 */
static inline size_t lower_bound_u64(const void *base, size_t n, size_t size, size_t field,
				     uint64_t key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t k;

		memcpy(&k, (const char *)base + mid * size + field, sizeof(k));
		if (k < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

#define LOWER_BOUND(arr, n, member, key) \
	lower_bound_u64((arr), (n), sizeof(*(arr)), offsetof(__typeof__(*(arr)), member), (key))

#endif
