/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_RADIX_H
#define INGESTFS_RADIX_H

/*
 * A stable LSD radix sort of an array of structs by a uint64_t member: the
 * items of an answer are sorted by key when no previous snapshot gives
 * their order (a first build, or the items scanned anew), where a
 * comparison sort took a tenth of the CPU.  Eight
 * byte-wide passes, skipping those in which every key has the same digit
 * (node ids' high bytes).  Stable, so elements added in order of a second
 * key come out ordered by (key, that order).  Includes nothing of the
 * project; allocates one buffer of n elements, freed before it returns.
 */

#include <stddef.h>

/*
 * radix_sort_u64 - sort @n elements of @size bytes at @base by the
 * uint64_t at offset @field.  0, or -ENOMEM with @base untouched.
 */
int radix_sort_u64(void *base, size_t n, size_t size, size_t field);

#endif
